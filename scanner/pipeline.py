"""Resolve → act → notify: the one pipeline every front end uses.

``keysweep scan`` (``--revoke``, ``--dry-run``, ``--notify``), the Celery tasks
and the partner-alert service all call these functions. They differ only in the
``Context`` they pass: which key service and policy, which negative cache and
alert dedup store (in-process for the CLI, Redis for the workers), and whose
rules apply. The stages can run in one process (``run``) or apart: the workers
run ``act`` in one task and ``notify`` in another, on their own queues, handing
over alerts (no secrets) in between.

* ``act``: our keys' hashes (``owner = "keyservice"`` findings only, never
  cleartext, never another provider's hash) go to the key service in batches;
  each key it knows is revoked, audited or left alone per the policy, every
  write idempotent (``scanner.act``). What was done is an ``Outcome`` per
  fingerprint, kept apart from the finding it is about.
* ``alerts``: what people should hear: third-party keys, and our keys that
  were acted on (never a key the service says it never issued).
* ``notify``: routes, deduplicates and delivers the alerts
  (``scanner.notify.dispatch``).

Errors keep their shape: a key-service outage raises a ``TransientError``
(the caller retries or reports "NOT revoked"); one key whose revocation was
refused is a ``failed`` outcome and never stops the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scanner.act import Outcome, Policy
from scanner.act import act as act_on
from scanner.findings import Finding
from scanner.resolve import NegativeCache, resolve

if TYPE_CHECKING:
    from scanner.keyservice import KeyServiceClient
    from scanner.notify.dispatch import Notifier, NotifyReport
    from scanner.notify.message import Alert

CONFIDENCE_RANK = {"low": 0, "medium": 1, "high": 2}


@dataclass
class Context:
    """Everything the pipeline needs, chosen by the front end that calls it."""

    keyservice: KeyServiceClient | None = None  # None: nobody to ask who owns a key
    policy: Policy = field(default_factory=Policy)
    negative_cache: NegativeCache | None = None
    notifier: Notifier | None = None  # None: tell nobody
    revoke: bool = True  # False: only ask who owns each key (what a plain scan shows)
    dry_run: bool = False  # say what would be done, change nothing
    # Public content (workers, partner alerts) alerts on confident matches only;
    # a person scanning their own code sees what they asked for.
    alert_confidence: str = "low"
    # Keys of one batch acted on at the same time (calls to the key service overlap;
    # one key's calls stay in order). 1: one after the other.
    concurrency: int = 1


@dataclass
class Result:
    outcomes: dict[str, Outcome]  # fingerprint -> what was done
    alerts: list[Alert]
    notified: NotifyReport | None = None

    @property
    def not_revoked(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.action == "failed"]


def act(findings: list[Finding], ctx: Context) -> dict[str, Outcome]:
    """Resolve our keys with the key service and act on each per the policy."""
    ours = [f for f in findings if f.owner == "keyservice"]
    if not ours or ctx.keyservice is None:
        return {}
    owned = resolve(ours, ctx.keyservice, ctx.negative_cache)
    outcomes = act_on(
        owned,
        ctx.keyservice,
        ctx.policy,
        dry_run=ctx.dry_run or not ctx.revoke,
        concurrency=ctx.concurrency,
    )
    return {o.fingerprint: o for o in outcomes}


def alerts(findings: list[Finding], outcomes: dict[str, Outcome], ctx: Context) -> list[Alert]:
    """Who should hear about what: the alerts a batch deserves."""
    from scanner.notify.message import alerts_from

    floor = CONFIDENCE_RANK.get(ctx.alert_confidence, 0)
    told = [f for f in findings if CONFIDENCE_RANK.get(f.confidence, 2) >= floor]
    # Without a key service nobody said whose our keys are: the security team still hears.
    return alerts_from(told, outcomes, resolved=ctx.keyservice is not None)


def notify(batch: list[Alert], ctx: Context) -> NotifyReport | None:
    """Deliver alerts through the context's channels (deduplicated, retried, counted)."""
    if ctx.notifier is None or not batch:
        return None
    return ctx.notifier.notify(batch)


def run(findings: list[Finding], ctx: Context) -> Result:
    """All three stages in this process (the CLI, and anything that needs no queue)."""
    outcomes = act(findings, ctx)
    batch = alerts(findings, outcomes, ctx) if ctx.notifier is not None else []
    result = Result(outcomes, batch)
    if not ctx.dry_run:
        result.notified = notify(batch, ctx)
    return result
