"""Findings: what a scan reports, with the cleartext kept inside this process.

A ``Match`` from the engine plus a ``Location`` from the source becomes a
``Finding``. The same secret found in many places is one finding with its first
location (the oldest commit in a history scan) and an occurrence count, as
Nosey Parker groups matches. The fingerprint depends on the rule and the
secret only (not on paths or line numbers), so baselines never churn.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import Any

from scanner.engine import Match
from scanner.validators import shannon_entropy

MAX_LOCATIONS = 100  # locations kept per finding; ``occurrences`` counts them all


@dataclass(frozen=True)
class Location:
    kind: str  # "file" | "git" | "stdin" | "push" | "gist"
    path: str | None = None
    line: int | None = None
    repo: str | None = None
    commit: str | None = None
    author: str | None = None
    email: str | None = None
    date: str | None = None
    url: str | None = None
    column: int | None = None  # 1-based, in characters of the line, where known
    subject: str | None = None  # the commit's subject line (history findings)
    decoded: str | None = None  # how the secret was decoded to be found: "base64", "percent>base64"

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "repo": self.repo,
            "commit": self.commit,
            "subject": self.subject,
            "author": self.author,
            "email": self.email,
            "date": self.date,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "url": self.url,
            "decoded": self.decoded,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Location:
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})

    def short(self) -> str:
        where = f"{self.path or '<stdin>'}:{self.line}" if self.line else (self.path or "<stdin>")
        return f"{where} @ {self.commit[:12]}" if self.commit else where


def sha256_hex(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()


# A PEM armour line names the kind of key and nothing of it: "-----BEGIN RSA PRIVATE KEY-----".
_ARMOUR = re.compile(r"-----BEGIN [A-Z0-9][A-Z0-9 ]{0,60}-----")


def redact(secret: bytes, prefixes: tuple[str, ...], percent: int | None = None) -> str:
    """The known prefix plus at most 8 characters (fewer for short secrets). ``percent``
    (``--redact=N``) hides at least N% of what follows the prefix: 100 shows the prefix only.

    A PEM block shows its armour line alone, however its lines are written: with real
    newlines, or with ``\\n`` escapes inside a JSON string (a GCP service-account file),
    where "the first line" would be the whole key."""
    text = secret.decode("utf-8", "replace")
    if text.startswith("-----BEGIN"):
        armour = _ARMOUR.match(text)
        return (armour.group(0) if armour else "-----BEGIN") + "…"
    prefix = next((p for p in prefixes if text.lower().startswith(p.lower())), "")
    body = text[len(prefix) :]
    shown = min(8, len(body) // 4)
    if percent is not None:
        shown = min(shown, int(len(body) * (100 - max(0, min(100, percent))) / 100))
    return text[: len(prefix) + shown] + "…"


def fingerprint(rule_id: str, secret_sha256: str) -> str:
    return hashlib.sha256(f"keysweep:v1:{rule_id}:{secret_sha256}".encode()).hexdigest()[:32]


@dataclass
class Finding:
    rule_id: str
    description: str
    severity: str
    owner: str
    secret_sha256: str
    redacted: str
    fingerprint: str
    location: Location
    confidence: str = "high"
    expires_at: int | None = None
    expired: bool = False
    companion_sha256: str | None = None
    # A run-on mg_ key (KEY_old, KEY-backup): the SHA-256 of the whole run, looked up
    # beside ``secret_sha256``; the key service's answer decides which one is the key.
    run_sha256: str | None = None
    occurrences: int = 1
    locations: list[Location] = field(default_factory=list)
    entropy: float | None = None  # bits per character of the secret, where the rule computed it
    tags: list[str] = field(default_factory=list)
    secret: bytes | None = field(default=None, repr=False)  # cleartext, this process only

    def to_dict(
        self, show_secret: bool = False, outcome: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The finding as data; ``outcome`` (what was done to it, kept apart from the
        finding) is joined in as ``keyservice`` when a report has one."""
        d: dict[str, Any] = {
            "rule_id": self.rule_id,
            "description": self.description,
            "severity": self.severity,
            "owner": self.owner,
            "confidence": self.confidence,
            "secret_sha256": self.secret_sha256,
            "redacted": self.redacted,
            "fingerprint": self.fingerprint,
            "source": self.location.as_dict(),
            "occurrences": self.occurrences,
            "locations": [loc.as_dict() for loc in self.locations],
        }
        if self.expires_at is not None:
            d["expires_at"] = self.expires_at
            d["expired"] = self.expired
        if self.companion_sha256:
            d["companion_sha256"] = self.companion_sha256
        if self.run_sha256:
            d["run_sha256"] = self.run_sha256
        if self.entropy is not None:
            d["entropy"] = round(self.entropy, 3)
        if self.tags:
            d["tags"] = list(self.tags)
        if outcome is not None:
            d["keyservice"] = outcome
        if show_secret and self.secret is not None:
            d["secret"] = self.secret.decode("utf-8", "replace")
        return d


def finding_from_dict(d: dict[str, Any]) -> Finding:
    """A finding as it crosses a process boundary (``to_dict`` without the secret)."""
    location = Location.from_dict(d["source"])
    return Finding(
        rule_id=d["rule_id"],
        description=d.get("description", ""),
        severity=d["severity"],
        owner=d["owner"],
        secret_sha256=d["secret_sha256"],
        redacted=d["redacted"],
        fingerprint=d["fingerprint"],
        location=location,
        confidence=d.get("confidence", "high"),
        expires_at=d.get("expires_at"),
        expired=bool(d.get("expired", False)),
        companion_sha256=d.get("companion_sha256"),
        run_sha256=d.get("run_sha256"),
        occurrences=int(d.get("occurrences", 1)),
        locations=[Location.from_dict(x) for x in d.get("locations", [])] or [location],
        entropy=d.get("entropy"),
        tags=list(d.get("tags", [])),
    )


class FindingSet:
    """Groups matches by (rule, secret); the earliest location (lowest order) is first.

    ``add(..., per_path=True)`` (a history scanned file version by file version): the
    secret at one path is one occurrence, at the earliest version that holds it (its
    lines there, if it is on several); later versions of the file, which still hold
    it, add nothing."""

    def __init__(self, expired_before: float | None = None) -> None:
        self._by_key: dict[tuple[str, str], tuple[Any, Finding]] = {}
        # (rule, secret, path) -> (order of the version kept, its locations)
        self._at_path: dict[tuple[str, str, str | None], tuple[Any, list[Location]]] = {}
        self.expired_before = expired_before

    def add(
        self, match: Match, location: Location, order: Any = 0, per_path: bool = False
    ) -> Finding | None:
        rule = match.rule
        digest = sha256_hex(match.secret)
        key = (rule.id, digest)
        entry = self._by_key.get(key)
        if per_path:
            at = (rule.id, digest, location.path)
            kept = self._at_path.get(at)
            if kept is None or order < kept[0]:
                if kept is not None and entry is not None:  # an earlier version replaces it
                    finding = entry[1]
                    finding.occurrences -= len(kept[1])
                    finding.locations = [x for x in finding.locations if x not in kept[1]]
                self._at_path[at] = (order, [location])
            elif order == kept[0]:
                kept[1].append(location)  # the same version: another line
            else:
                return None  # a later version of the file still holding it
        if entry is None:
            finding = Finding(
                rule_id=rule.id,
                description=rule.description,
                severity=rule.severity,
                owner=rule.owner,
                secret_sha256=digest,
                redacted=redact(match.secret, rule.prefixes),
                fingerprint=fingerprint(rule.id, digest),
                location=location,
                confidence=match.confidence,
                expires_at=match.expires_at,
                expired=(
                    match.expires_at is not None
                    and self.expired_before is not None
                    and match.expires_at < self.expired_before
                ),
                companion_sha256=sha256_hex(match.companion) if match.companion else None,
                run_sha256=sha256_hex(match.run) if match.run else None,
                locations=[location],
                tags=list(rule.tags),
                entropy=match.entropy
                if match.entropy is not None
                else (shannon_entropy(match.secret) if rule.min_entropy is not None else None),
                secret=match.secret,
            )
            self._by_key[key] = (order, finding)
            return finding
        first_order, finding = entry
        finding.occurrences += 1
        if finding.run_sha256 is None and match.run:
            finding.run_sha256 = sha256_hex(match.run)  # the key written once as KEY_old
        if len(finding.locations) < MAX_LOCATIONS and location not in finding.locations:
            finding.locations.append(location)
        if order < first_order:
            finding.location = location
            self._by_key[key] = (order, finding)
        return finding

    def findings(self) -> list[Finding]:
        out = [f for _, f in self._by_key.values()]
        for f in out:
            # The first location leads the list; the rest keep their discovery order.
            rest = [loc for loc in f.locations if loc != f.location]
            f.locations = [f.location, *rest]
        out.sort(key=lambda f: (f.location.path or "", f.location.line or 0, f.rule_id))
        return out

    def __len__(self) -> int:
        return len(self._by_key)


def without_secret(f: Finding) -> Finding:
    return replace(f, secret=None)
