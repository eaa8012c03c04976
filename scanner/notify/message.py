"""What an alert says: built from findings and outcomes, never from a secret."""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

from scanner.act import Outcome, source_url
from scanner.findings import Finding

SUMMARY_THRESHOLD = 25  # above this many alerts for one recipient in one batch: one summary

DONE = {
    "revoked": "Revoked by keysweep",
    "already_revoked": "Already revoked",
    "alert_only": "Not revoked (alert-only policy)",
    "would_revoke": "Not revoked yet (dry run)",
    "failed": "NOT revoked: the key service call failed",
    "unknown": "Not one of our issued keys",
    "reported": "Reported (third-party key: revoke it with its issuer)",
    "not_checked": "Not checked with the key service (none configured)",
}


@dataclass(frozen=True)
class Place:
    """One location of a leaked key, as alerts show it."""

    key: str  # location identity for deduplication
    repo: str | None
    commit: str | None
    path: str | None
    line: int | None
    url: str | None


@dataclass(frozen=True)
class Alert:
    """One leaked key at one place, as people are told about it."""

    key_ident: str  # key id for our keys, fingerprint for others: what dedup counts
    fingerprint: str
    rule_id: str
    family: str
    redacted: str
    owner_kind: str  # "keyservice" | "third_party"
    environment: str | None
    org_id: str | None
    project_id: str | None
    owner_email: str | None
    owner_name: str | None
    url: str | None
    repo: str | None
    commit: str | None
    path: str | None
    line: int | None
    pushed_at: str | None
    found_at: str
    action: str
    revoked_at: str | None
    places: tuple[Place, ...] = ()  # every known location, the first one first
    extra_locations: int = 0
    facts: dict[str, Any] = field(default_factory=dict)
    remediation: str | None = None  # a third-party rule's own "what to do, where"

    def at(self, place: Place) -> Alert:
        """The same alert, pointing at another of its places (for a follow-up)."""
        return replace(
            self,
            repo=place.repo,
            commit=place.commit,
            path=place.path,
            line=place.line,
            url=place.url,
        )

    @property
    def done(self) -> str:
        text = DONE.get(self.action, self.action)
        if self.action == "revoked" and self.revoked_at:
            text += f" at {self.revoked_at}"
        return text

    @property
    def next_step(self) -> str:
        if self.owner_kind == "keyservice":
            return (
                "Rotate the key (Keys → Rotate) and update what used it, then check the "
                f"audit log for use of {self.redacted.rstrip('…')} since "
                f"{self.pushed_at or 'the push'}."
            )
        since = self.pushed_at or "the push"
        if self.remediation:
            return f"{self.remediation.rstrip('.')}. Then check its logs for use since {since}."
        return (
            f"Revoke this {self.family} with its issuer now and check its logs for use "
            f"since {since}."
        )

    @property
    def where(self) -> str:
        place = f"{self.path}:{self.line}" if self.path and self.line else (self.path or "")
        if self.commit:
            place += f" (commit {self.commit[:12]})"
        return f"{self.repo or ''} {place}".strip()

    def as_payload(self) -> dict[str, Any]:
        return {
            "key": {
                "family": self.family,
                "rule_id": self.rule_id,
                "redacted": self.redacted,
                "environment": self.environment,
                "fingerprint": self.fingerprint,
            },
            "owner": {
                "org_id": self.org_id,
                "project_id": self.project_id,
                "email": self.owner_email,
            },
            "location": {
                "url": self.url,
                "repo": self.repo,
                "commit": self.commit,
                "path": self.path,
                "line": self.line,
                "more_locations": self.extra_locations,
            },
            "pushed_at": self.pushed_at,
            "found_at": self.found_at,
            "action": {
                "result": self.action,
                "description": self.done,
                "revoked_at": self.revoked_at,
            },
            "next_step": self.next_step,
        }


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def alert_for(f: Finding, outcome: Outcome | None, found_at: str | None = None) -> Alert:
    from scanner.act import location_key

    loc = f.location
    ours = f.owner == "keyservice" and outcome is not None and outcome.key_id is not None
    owner = (outcome.owner or {}) if outcome else {}
    return Alert(
        key_ident=outcome.key_id if ours and outcome and outcome.key_id else f.fingerprint,
        fingerprint=f.fingerprint,
        rule_id=f.rule_id,
        family=f.description or f.rule_id,
        redacted=f.redacted,
        owner_kind=f.owner,
        environment=outcome.environment if outcome else None,
        org_id=outcome.org_id if outcome else None,
        project_id=outcome.project_id if outcome else None,
        owner_email=owner.get("email"),
        owner_name=owner.get("name"),
        url=source_url(loc),
        repo=loc.repo,
        commit=loc.commit,
        path=loc.path,
        line=loc.line,
        pushed_at=loc.date,
        found_at=found_at or now_iso(),
        action=outcome.action if outcome else "reported",
        revoked_at=outcome.revoked_at if outcome else None,
        places=tuple(
            Place(location_key(x), x.repo, x.commit, x.path, x.line, source_url(x))
            for x in f.locations
        ),
        extra_locations=max(0, f.occurrences - 1),
        remediation=_remediation(f.rule_id) if f.owner == "third_party" else None,
    )


@cache
def _remediations() -> dict[str, str]:
    """The shipped rules' remediation lines (with the issuer's page), by rule id."""
    from scanner.rules import pack_rules

    out = {}
    for r in pack_rules():
        if r.remediation:
            text = r.remediation
            if r.rotate_url and r.rotate_url not in text:
                text = f"{text.rstrip('.')} ({r.rotate_url})"
            out[r.id] = text
    return out


def _remediation(rule_id: str) -> str | None:
    return _remediations().get(rule_id)


# --- rendering -----------------------------------------------------------------------------


def subject(a: Alert) -> str:
    env = f"{a.environment} " if a.environment else ""
    return f"[keysweep] Leaked {env}key {a.redacted} — {a.done.lower()}"


def plain_text(a: Alert, follow_up: bool = False) -> str:
    if follow_up:
        return (
            f"Follow-up: {a.redacted} ({a.family}) was seen again at {a.where}. "
            f"{a.done}. No new action is needed beyond the rotation."
        )
    lines = [
        f"keysweep found a leaked {a.family}: {a.redacted}",
        "",
        f"Owner:        {a.org_id or '-'} / {a.project_id or '-'}",
        f"Environment:  {a.environment or '-'}",
        f"Where:        {a.where}",
        f"Link:         {a.url or '-'}",
        f"Pushed at:    {a.pushed_at or 'unknown'}",
        f"Found at:     {a.found_at}",
        f"What we did:  {a.done}",
    ]
    if a.extra_locations:
        lines.append(f"Also seen:    {a.extra_locations} more place(s)")
    lines += ["", f"Next step: {a.next_step}"]
    return "\n".join(lines)


def html_text(a: Alert) -> str:
    rows = [
        ("Owner", f"{a.org_id or '-'} / {a.project_id or '-'}"),
        ("Environment", a.environment or "-"),
        ("Where", a.where),
        ("Pushed at", a.pushed_at or "unknown"),
        ("Found at", a.found_at),
        ("What we did", a.done),
    ]
    cells = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in rows
    )
    link = f"<p><a href='{html.escape(a.url)}'>Open the leak</a></p>" if a.url else ""
    return (
        f"<html><body><h2>Leaked {html.escape(a.family)}: <code>{html.escape(a.redacted)}"
        f"</code></h2><table>{cells}</table>{link}"
        f"<p><strong>Next step:</strong> {html.escape(a.next_step)}</p></body></html>"
    )


def summary_text(alerts: list[Alert]) -> str:
    lines = [f"keysweep found {len(alerts)} leaked keys in one batch.", ""]
    for a in alerts[:200]:
        lines.append(f"- {a.redacted} ({a.family}) at {a.where}: {a.done}")
    if len(alerts) > 200:
        lines.append(f"... and {len(alerts) - 200} more")
    lines += [
        "",
        "Next step: rotate every key listed (Keys → Rotate) and check the audit log "
        "for use since each push.",
    ]
    return "\n".join(lines)


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")[:2900]


def slack_blocks(a: Alert, follow_up: bool = False) -> dict[str, Any]:
    if follow_up:
        return {
            "text": plain_text(a, True)[:3000],
            "blocks": [
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": _mrkdwn(plain_text(a, True))},
                }
            ],
        }
    fields = [
        ("Owner", f"{a.org_id or '-'} / {a.project_id or '-'}"),
        ("Environment", a.environment or "-"),
        ("Where", a.where),
        ("What we did", a.done),
        ("Pushed at", a.pushed_at or "unknown"),
        ("Found at", a.found_at),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"Leaked {a.family}"[:150]}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"`{_mrkdwn(a.redacted)}`"},
            "fields": [
                {"type": "mrkdwn", "text": f"*{k}*\n{_mrkdwn(v)}"[:2000]} for k, v in fields
            ],
        },
    ]
    if a.url and a.url.startswith("https://"):
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the leak"},
                        "url": a.url[:3000],
                    }
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": _mrkdwn(f"Next step: {a.next_step}")}],
        }
    )
    return {"text": subject(a)[:3000], "blocks": blocks}


def slack_summary(alerts: list[Alert]) -> dict[str, Any]:
    text = summary_text(alerts)
    return {
        "text": f"[keysweep] {len(alerts)} leaked keys in one batch",
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": f"{len(alerts)} leaked keys"},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(text)}},
        ],
    }


def alerts_from(
    findings: list[Finding], outcomes: dict[str, Outcome], resolved: bool = True
) -> list[Alert]:
    """The alerts a batch deserves: third-party keys, and our keys that were acted on
    (an unknown or ignored key is nobody's to hear about). ``resolved=False``: no key
    service was asked, so our keys are reported to the security team as found
    ("not checked with the key service")."""
    out = []
    for f in findings:
        outcome = outcomes.get(f.fingerprint)
        if (
            f.owner == "third_party"
            or (outcome is not None and outcome.action not in ("unknown", "ignored"))
            or (not resolved and outcome is None)
        ):
            alert = alert_for(f, outcome)
            if f.owner == "keyservice" and outcome is None:
                alert = replace(alert, action="not_checked")
            out.append(alert)
    return out


def alert_to_dict(a: Alert) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(a)


def alert_from_dict(d: dict[str, Any]) -> Alert:
    places = tuple(Place(**p) for p in d.get("places", ()))
    return Alert(**{**d, "places": places})
