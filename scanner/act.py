"""Act: revoke our leaked keys and leave an audit trail, idempotently.

Per key environment the policy says ``revoke`` (default), ``alert`` (report and
audit, change nothing) or ``ignore``. Every write carries an Idempotency-Key
derived from the key id and the finding's fingerprint or location, so a retried
or repeated run changes nothing twice:

* ``api_key.leak_detected`` once per key and source location;
* the revoke call once per key and finding (replaying it returns the first
  answer, so a run that died between revoking and auditing still audits);
* ``api_key.revoked`` once per key, when the revocation was ours.

Audit events carry the display prefix as target and locations, never the key.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from scanner import __version__
from scanner.errors import KeysweepError, TransientError
from scanner.findings import Finding, Location
from scanner.resolve import Owned

if TYPE_CHECKING:
    from scanner.keyservice import KeyServiceClient

MODES = ("revoke", "alert", "ignore")


@dataclass(frozen=True)
class Policy:
    live: str = "revoke"
    test: str = "revoke"

    def __post_init__(self) -> None:
        for env, mode in (("live", self.live), ("test", self.test)):
            if mode not in MODES:
                raise KeysweepError(f"policy for {env} keys must be one of {MODES}, not {mode!r}")

    def mode(self, environment: str) -> str:
        return self.live if environment == "live" else self.test


@dataclass
class Outcome:
    """What happened to one owned key; safe to print and serialise (no secret)."""

    fingerprint: str
    redacted: str
    action: (
        str  # revoked | already_revoked | would_revoke | alert_only | ignored | unknown | failed
    )
    key_id: str | None = None
    display_prefix: str | None = None
    environment: str | None = None
    org_id: str | None = None
    project_id: str | None = None
    owner: dict[str, str | None] | None = None
    status_before: str | None = None
    status_after: str | None = None
    revoked_at: str | None = None
    audit_events: list[str] = field(default_factory=list)
    error: str | None = None
    retry: bool = False  # a failure worth trying again (the key service was unavailable)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:48]


def location_key(loc: Location) -> str:
    return "|".join(str(x or "") for x in (loc.repo, loc.commit, loc.path, loc.line, loc.url))


def source_url(loc: Location) -> str | None:
    """A link a person can open: the line on GitHub, GitLab or Bitbucket when the
    repository is there, else repository, commit, path and line."""
    from scanner.links import browse_url

    if loc.url:
        return loc.url
    repo = loc.repo or ""
    link = browse_url(repo, loc.commit, loc.path, loc.line)
    if link:
        return link
    if repo and loc.path:
        at = f"@{loc.commit}" if loc.commit else ""
        return f"{repo}{at}:{loc.path}" + (f"#L{loc.line}" if loc.line else "")
    return repo or loc.path


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _event(action: str, owned: Owned, loc: Location, now: str) -> dict[str, Any]:
    rec = owned.record
    assert rec is not None
    f = owned.finding
    return {
        "action": action,
        "actor": "keysweep",
        "target": rec.display_prefix,
        "timestamp": now,
        "ip": None,
        "user_agent": f"keysweep/{__version__}",
        "org_id": rec.org_id,
        "metadata": {
            "source_url": source_url(loc),
            "repo": loc.repo,
            "commit": loc.commit,
            "path": loc.path,
            "line": loc.line,
            "fingerprint": f.fingerprint,
            "rule_id": f.rule_id,
            "key_id": rec.key_id,
        },
    }


def act_one(
    owned: Owned,
    client: KeyServiceClient,
    policy: Policy,
    *,
    dry_run: bool = False,
    now: str | None = None,
) -> Outcome:
    f: Finding = owned.finding
    rec = owned.record
    out = Outcome(fingerprint=f.fingerprint, redacted=f.redacted, action="unknown")
    if rec is None:
        return out
    out.key_id, out.display_prefix, out.environment = (
        rec.key_id,
        rec.display_prefix,
        rec.environment,
    )
    out.org_id, out.project_id = rec.org_id, rec.project_id
    out.owner = {"name": rec.owner_name, "email": rec.owner_email}
    out.status_before = out.status_after = rec.status
    out.revoked_at = rec.revoked_at
    mode = policy.mode(rec.environment)
    if mode == "ignore":
        out.action = "ignored"
        return out
    if dry_run:
        revoking = mode == "revoke" and rec.status != "revoked"
        out.action = (
            "would_revoke"
            if revoking
            else ("already_revoked" if rec.status == "revoked" else "alert_only")
        )
        return out
    now = now or _now()
    for loc in f.locations:
        out.audit_events.append(
            client.audit(
                _event("api_key.leak_detected", owned, loc, now),
                _key("leak_detected", rec.key_id, location_key(loc)),
            )
        )
    if mode == "alert":
        out.action = "alert_only"
        return out
    result = client.revoke(
        rec.key_id,
        idempotency_key=_key("revoke", rec.key_id, f.fingerprint),
        source_url=source_url(f.location),
        detected_at=now,
    )
    out.status_after, out.revoked_at = result.status, result.revoked_at
    if not result.already_revoked:
        # Ours (first time, or a replay of our own revocation): audit it once per key.
        out.audit_events.append(
            client.audit(
                _event("api_key.revoked", owned, f.location, now), _key("revoked", rec.key_id)
            )
        )
    out.action = (
        "already_revoked" if rec.status == "revoked" or result.already_revoked else "revoked"
    )
    return out


def _act_safely(o: Owned, client: KeyServiceClient, policy: Policy, dry_run: bool) -> Outcome:
    try:
        return act_one(o, client, policy, dry_run=dry_run)
    except KeysweepError as exc:
        return Outcome(
            fingerprint=o.finding.fingerprint,
            redacted=o.finding.redacted,
            action="failed",
            key_id=o.record.key_id if o.record else None,
            error=str(exc),
            retry=isinstance(exc, TransientError),
        )


_POOL: tuple[int, int, ThreadPoolExecutor] | None = None  # pid, size, pool
_POOL_LOCK = threading.Lock()


def _pool(size: int) -> ThreadPoolExecutor:
    """One pool per process, shared by every caller (its threads only wait on the key
    service): at most ``size`` calls to it at once from this process. A forked child
    makes its own (threads do not survive a fork)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid() or _POOL[1] < size:
            pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="keysweep-act")
            _POOL = (os.getpid(), size, pool)
        return _POOL[2]


def act(
    owned: list[Owned],
    client: KeyServiceClient,
    policy: Policy,
    *,
    dry_run: bool = False,
    concurrency: int = 1,
) -> list[Outcome]:
    """Act on each key; one key's failure is recorded and the others go on.

    With ``concurrency`` > 1, different keys are acted on at the same time (their calls
    to the key service overlap); the findings of one key stay in order, one after the
    other, so its revocation and audit events are asked for exactly as when
    sequential. Outcomes come back in the order of ``owned``."""
    groups: dict[str, list[int]] = {}
    for i, o in enumerate(owned):
        groups.setdefault(o.record.key_id if o.record else f"#{i}", []).append(i)
    work = [g for g in groups.values() if owned[g[0]].record is not None]
    outcomes: list[Outcome | None] = [None] * len(owned)

    def run(indices: list[int]) -> None:
        for i in indices:
            outcomes[i] = _act_safely(owned[i], client, policy, dry_run)

    if concurrency > 1 and len(work) > 1 and not dry_run:
        for fut in [_pool(concurrency).submit(run, g) for g in work]:
            fut.result()
    for g in groups.values():
        if outcomes[g[0]] is None:
            run(g)
    return [o for o in outcomes if o is not None]
