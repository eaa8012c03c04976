"""Delivery channels: a Standard Webhooks endpoint, a Slack incoming webhook, SMTP email.

Each channel sends one message and raises ``DeliveryError`` when it could not;
``retryable`` says whether trying again may help. Retrying, counting and
routing are the dispatcher's job.
"""

from __future__ import annotations

import hashlib
import json
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import httpx

from scanner import __version__
from scanner.errors import KeysweepError
from scanner.notify.message import (
    Alert,
    html_text,
    plain_text,
    slack_blocks,
    slack_summary,
    subject,
    summary_text,
)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class DeliveryError(KeysweepError):
    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class Delivery:
    """One message: a full alert, a short follow-up, or a summary of many alerts."""

    kind: str  # "alert" | "followup" | "summary"
    alerts: tuple[Alert, ...]
    recipient: str | None = None  # an email address for the email channel

    @property
    def ident(self) -> str:
        """The same for the same message sent again (a redone task): what was told, to whom.

        Sent as the Standard Webhooks ``webhook-id`` ("the same when the same webhook is
        being resent") and in the email's ``Message-ID``, so a receiver that deduplicates
        on them sees a redelivery as one message. Built from hashes and locations only.
        """
        h = hashlib.sha256(f"{self.kind}\x1f{self.recipient or ''}".encode())
        for a in self.alerts:
            h.update(f"\x1e{a.key_ident}\x1f{a.commit}\x1f{a.path}\x1f{a.line}".encode())
        return h.hexdigest()[:32]


class Channel(Protocol):
    name: str

    def send(self, delivery: Delivery) -> None: ...


def _post(
    client: httpx.Client, url: str, content: bytes, headers: dict[str, str], what: str
) -> None:
    parts = urlsplit(url)
    # Name the channel and the host (never the path: a Slack URL's path is its secret).
    what = f"{what} ({parts.hostname}{f':{parts.port}' if parts.port else ''})"
    try:
        resp = client.post(url, content=content, headers=headers)
    except httpx.TransportError as exc:
        raise DeliveryError(f"{what}: {type(exc).__name__}") from None
    if resp.status_code >= 300:
        retryable = resp.status_code >= 500 or resp.status_code in (408, 429)
        raise DeliveryError(f"{what}: HTTP {resp.status_code}", retryable)


def event_type(kind: str) -> str:
    return {
        "alert": "keysweep.leak",
        "followup": "keysweep.leak.followup",
        "summary": "keysweep.leak.summary",
    }[kind]


class WebhookChannel:
    """JSON POST signed per Standard Webhooks (webhook-id, -timestamp, -signature)."""

    name = "webhook"

    def __init__(self, url: str, secret: str, client: httpx.Client | None = None) -> None:
        from standardwebhooks.webhooks import Webhook

        self.url = url
        self._signer = Webhook(secret)
        self._http = client or httpx.Client(timeout=TIMEOUT)

    def body(self, delivery: Delivery) -> dict[str, Any]:
        data: Any
        if delivery.kind == "summary":
            data = {
                "count": len(delivery.alerts),
                "alerts": [a.as_payload() for a in delivery.alerts],
            }
        else:
            data = delivery.alerts[0].as_payload()
        return {
            "type": event_type(delivery.kind),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": data,
        }

    def send(self, delivery: Delivery) -> None:
        payload = json.dumps(self.body(delivery), separators=(",", ":"))
        msg_id = "msg_" + delivery.ident
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": f"keysweep/{__version__}",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(msg_id, now, payload),
        }
        _post(self._http, self.url, payload.encode(), headers, "webhook")


class SlackChannel:
    """A Slack incoming webhook: Block Kit message."""

    name = "slack"

    def __init__(self, url: str, client: httpx.Client | None = None) -> None:
        self.url = url
        self._http = client or httpx.Client(timeout=TIMEOUT)

    def body(self, delivery: Delivery) -> dict[str, Any]:
        if delivery.kind == "summary":
            return slack_summary(list(delivery.alerts))
        return slack_blocks(delivery.alerts[0], follow_up=delivery.kind == "followup")

    def send(self, delivery: Delivery) -> None:
        _post(
            self._http,
            self.url,
            json.dumps(self.body(delivery)).encode(),
            {"content-type": "application/json"},
            "slack",
        )


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None
    password: str | None
    implicit_tls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpSettings:
        """``smtp://user:pass@host:587`` (STARTTLS when offered) or ``smtps://…:465``."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise KeysweepError("KEYSWEEP_SMTP_URL must look like smtp://user:pass@host:587")
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if parts.scheme == "smtps" else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=parts.scheme == "smtps",
        )


class EmailChannel:
    """Plain-text and HTML email over SMTP: STARTTLS when offered, login when configured."""

    name = "email"

    def __init__(self, smtp_url: str, from_addr: str, timeout: float = 15.0) -> None:
        self.settings = SmtpSettings.from_url(smtp_url)
        self.from_addr = from_addr
        self.timeout = timeout

    def message(self, delivery: Delivery) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.from_addr
        msg["To"] = delivery.recipient or ""
        address = parseaddr(self.from_addr)[1]
        domain = address.rpartition("@")[2] if "@" in address else ""
        msg["Message-ID"] = f"<{delivery.ident}@{domain or 'keysweep.invalid'}>"
        alerts = list(delivery.alerts)
        if delivery.kind == "summary":
            msg["Subject"] = f"[keysweep] {len(alerts)} leaked keys found"
            msg.set_content(summary_text(alerts))
        elif delivery.kind == "followup":
            msg["Subject"] = f"[keysweep] Follow-up: {alerts[0].redacted} seen again"
            msg.set_content(plain_text(alerts[0], follow_up=True))
        else:
            msg["Subject"] = subject(alerts[0])
            msg.set_content(plain_text(alerts[0]))
            msg.add_alternative(html_text(alerts[0]), subtype="html")
        return msg

    def send(self, delivery: Delivery) -> None:
        if not delivery.recipient:
            raise DeliveryError("email: no recipient", retryable=False)
        s = self.settings
        context = ssl.create_default_context()
        try:
            smtp: smtplib.SMTP
            if s.implicit_tls:
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=self.timeout)
            with smtp:
                smtp.ehlo()
                if not s.implicit_tls and smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if s.username:
                    smtp.login(s.username, s.password or "")
                smtp.send_message(self.message(delivery))
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"email ({s.host}:{s.port}): login refused ({exc.smtp_code})", retryable=False
            ) from None
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError(
                f"email ({s.host}:{s.port}): recipient refused", retryable=False
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"email ({s.host}:{s.port}): {type(exc).__name__}") from None
