"""Route, deduplicate, batch, deliver with retries, count, and audit owner alerts.

Routing: every alert goes to the security team's channels (webhook and/or
Slack); an alert about one of our keys also goes to the key's owner by email.
Third-party keys go to the security team only.

For each (channel, recipient, key) the first sighting is the alarm; a new
location of a key already alarmed about is one short follow-up; anything else
is already said. Above 25 alarms for one recipient in one batch, one summary
goes instead. A failing channel is retried with backoff and never blocks the
others; a delivery that finally fails gives back its claims, so the next run
tries again. Every delivery and failure is counted and logged, without a key.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scanner import __version__
from scanner.errors import KeysweepError
from scanner.notify.channels import (
    Channel,
    Delivery,
    DeliveryError,
    EmailChannel,
    SlackChannel,
    WebhookChannel,
)
from scanner.notify.dedup import Claim, DedupStore
from scanner.notify.message import SUMMARY_THRESHOLD, Alert, now_iso

if TYPE_CHECKING:
    from pydantic import SecretStr

    from scanner.keyservice import KeyServiceClient
    from scanner.settings import Settings

log = logging.getLogger("keysweep.notify")


@dataclass(frozen=True)
class NotifySettings:
    webhook_url: str | None = None
    webhook_secret: str | None = None
    slack_url: str | None = None
    smtp_url: str | None = None
    from_addr: str = "keysweep <keysweep@localhost>"

    @classmethod
    def from_settings(cls, s: Settings) -> NotifySettings:
        """The channels the settings name (environment, --config or the operator's file)."""

        def secret(v: SecretStr | None) -> str | None:
            return v.get_secret_value() if v is not None else None

        return cls(
            webhook_url=s.notify_webhook_url,
            webhook_secret=secret(s.notify_webhook_secret),
            slack_url=s.notify_slack_url,
            smtp_url=secret(s.smtp_url),
            from_addr=s.notify_from,
        )

    def channels(self) -> dict[str, Channel]:
        out: dict[str, Channel] = {}
        if self.webhook_url:
            if not self.webhook_secret:
                raise KeysweepError(
                    "KEYSWEEP_NOTIFY_WEBHOOK_URL needs KEYSWEEP_NOTIFY_WEBHOOK_SECRET "
                    "(a Standard Webhooks secret, whsec_…)"
                )
            out["webhook"] = WebhookChannel(self.webhook_url, self.webhook_secret)
        if self.slack_url:
            out["slack"] = SlackChannel(self.slack_url)
        if self.smtp_url:
            out["email"] = EmailChannel(self.smtp_url, self.from_addr)
        return out


@dataclass
class NotifyReport:
    sent: Counter[str] = field(default_factory=Counter)  # "channel:kind" -> messages
    failed: Counter[str] = field(default_factory=Counter)
    skipped: int = 0  # already said
    # Alerts another sender holds a pending claim on (it is sending them now, or died
    # doing so): not said yet, so the caller comes back once such a claim has lapsed.
    busy: int = 0
    errors: list[str] = field(default_factory=list)


def _h(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


class Notifier:
    def __init__(
        self,
        channels: dict[str, Channel],
        dedup: DedupStore,
        *,
        audit: KeyServiceClient | None = None,
        retries: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.channels = channels
        self.dedup = dedup
        self.audit = audit
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep

    def routes(self, alert: Alert) -> list[tuple[str, str | None]]:
        """(channel name, recipient) pairs for one alert."""
        out: list[tuple[str, str | None]] = [
            (name, None) for name in ("webhook", "slack") if name in self.channels
        ]
        if "email" in self.channels and alert.owner_kind == "keyservice" and alert.owner_email:
            out.append(("email", alert.owner_email))
        return out

    def plan(
        self, alerts: list[Alert], holder: str
    ) -> tuple[list[tuple[str, Delivery, list[str]]], int, int]:
        """Claim what is new (pending, for ``holder``); returns (channel, delivery, claims),
        the count already said and the count another sender holds (busy)."""
        alarms: dict[tuple[str, str | None], list[tuple[Alert, list[str]]]] = {}
        out: list[tuple[str, Delivery, list[str]]] = []
        skipped = busy = 0
        taken: set[str] = set()  # this call's claims: a key claimed once per call

        def claim(k: str) -> Claim:
            if k in taken:
                return Claim.SENT  # this call has it already (an alert listed twice)
            got = self.dedup.claim(k, holder)
            if got is Claim.TAKEN:
                taken.add(k)
            return got

        for a in alerts:
            for channel, recipient in self.routes(a):
                who = recipient or "-"
                # Every place is claimed: a place already told about never earns a message.
                keys = [_h("seen", channel, who, a.key_ident, p.key) for p in a.places]
                got_places = [claim(k) for k in keys]
                fresh = [p for p, got in zip(a.places, got_places, strict=True) if got]
                seen = [k for k, got in zip(keys, got_places, strict=True) if got]
                # A place another sender holds is not said yet (it may die first): this
                # alert comes again once such a claim is sent or has lapsed.
                places_busy = Claim.BUSY in got_places
                busy += places_busy
                if not fresh:
                    skipped += not places_busy  # this key at these places: already said
                    continue
                alarm = _h("alarm", channel, who, a.key_ident)
                got = claim(alarm)
                if got is Claim.TAKEN:
                    alarms.setdefault((channel, recipient), []).append((a, [alarm, *seen]))
                elif got is Claim.BUSY:
                    # Another sender is alarming about this key (or died doing so): whether
                    # these places earn the alarm or a follow-up is known once its claim is
                    # sent or has lapsed. Give them back and come again.
                    self.dedup.release(seen, holder)
                    taken.difference_update(seen)
                    busy += not places_busy
                else:  # a key already alarmed about, somewhere new: one short follow-up
                    out.append((channel, Delivery("followup", (a.at(fresh[0]),), recipient), seen))
        for (channel, recipient), items in alarms.items():
            if len(items) > SUMMARY_THRESHOLD:
                out.append(
                    (
                        channel,
                        Delivery("summary", tuple(a for a, _ in items), recipient),
                        [c for _, claims in items for c in claims],
                    )
                )
            else:
                out.extend((channel, Delivery("alert", (a,), recipient), c) for a, c in items)
        return out, skipped, busy

    def _send(self, channel: Channel, delivery: Delivery) -> None:
        for attempt in range(self.retries + 1):
            try:
                channel.send(delivery)
                return
            except DeliveryError as exc:
                if not exc.retryable or attempt == self.retries:
                    raise
                self.sleep(random.uniform(0, self.backoff * 2**attempt))

    def notify(self, alerts: list[Alert]) -> NotifyReport:
        report = NotifyReport()
        holder = uuid.uuid4().hex  # this call's claims: pending until sent
        planned, report.skipped, report.busy = self.plan(alerts, holder)
        broken: set[str] = set()
        for name, delivery, claims in planned:
            label = f"{name}:{delivery.kind}"
            fingerprints = ",".join(a.fingerprint[:12] for a in delivery.alerts[:5])
            if name in broken:  # it failed every retry already this batch: do not hammer it
                report.failed[label] += 1
                self.dedup.release(claims, holder)
                continue
            if not self.dedup.hold(claims, holder):
                # Ours lapsed and another sender has one of them now, or said it: the
                # rest may be unsaid (a summary, other places). Give all back and come
                # again: the next plan skips what is said and sends the rest.
                self.dedup.release(claims, holder)
                report.busy += 1
                continue
            try:
                self._send(self.channels[name], delivery)
            except DeliveryError as exc:
                broken.add(name)
                report.failed[label] += 1
                report.errors.append(str(exc) if str(exc).startswith(name) else f"{name}: {exc}")
                self.dedup.release(claims, holder)  # not said: the next run says it
                log.warning(
                    "alert delivery failed channel=%s kind=%s fingerprints=%s error=%s",
                    name,
                    delivery.kind,
                    fingerprints,
                    exc,
                )
                continue
            self.dedup.confirm(claims)
            report.sent[label] += 1
            log.info(
                "alert delivered channel=%s kind=%s alerts=%d fingerprints=%s",
                name,
                delivery.kind,
                len(delivery.alerts),
                fingerprints,
            )
            if name == "email":
                self._audit_notified(delivery)
        return report

    def _audit_notified(self, delivery: Delivery) -> None:
        """One ``api_key.leak_notified`` per owner alert (idempotent), through the key service."""
        if self.audit is None:
            return
        for a in delivery.alerts:
            if a.owner_kind != "keyservice":
                continue
            event = {
                "action": "api_key.leak_notified",
                "actor": "keysweep",
                "target": a.redacted.rstrip("…"),
                "timestamp": now_iso(),
                "ip": None,
                "user_agent": f"keysweep/{__version__}",
                "org_id": a.org_id,
                "metadata": {
                    "channel": "email",
                    "recipient": delivery.recipient,
                    "kind": delivery.kind,
                    "source_url": a.url,
                    "commit": a.commit,
                    "path": a.path,
                    "line": a.line,
                    "fingerprint": a.fingerprint,
                    "rule_id": a.rule_id,
                },
            }
            key = _h(
                "notified",
                a.key_ident,
                delivery.recipient or "",
                delivery.kind,
                str(a.commit),
                str(a.path),
                str(a.line),
            )
            try:
                self.audit.audit(event, key)
            except KeysweepError as exc:
                log.warning(
                    "leak_notified audit failed fingerprint=%s error=%s", a.fingerprint[:12], exc
                )
