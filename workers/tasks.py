"""Celery tasks: thin adapters over the scanner library.

(workers.pollers) poll_events / poll_gists -> scan_batch (pushes, gists) / scan_repo
    -> resolve_and_act -> send_alerts

Every message after the pollers is tracked in the pending-work ledger
(workers/ledger.py) from the moment it is claimed until its task succeeds.

Content is fetched and scanned inside the fetch task; what goes on is findings
as hashes, redacted forms and locations (``Finding.to_dict()`` without the
secret). Every task is idempotent: events and gist versions are claimed once
(Redis SET NX), revocations and audit events carry idempotency keys, alerts are
claimed per (channel, key, place). A redelivered or duplicated task changes
nothing twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from functools import cache
from typing import Any

from celery import Task, signals

from scanner import pipeline
from scanner.act import Policy
from scanner.engine import Engine
from scanner.errors import KeysweepError, PermanentError, TransientError
from scanner.findings import Finding, finding_from_dict
from scanner.keyservice import CircuitBreaker, KeyServiceClient
from scanner.notify.dispatch import Notifier, NotifySettings
from scanner.notify.message import alert_from_dict, alert_to_dict
from scanner.pipeline import Context
from scanner.scan import ScanOptions, ScanResult, build_engine, scan_source
from scanner.sources.github import RepoSource, document_source
from scanner.sources.remote import CloneError
from workers import metrics, state
from workers.app import MAX_COUNTDOWN, app
from workers.github import github
from workers.settings import settings

log = logging.getLogger("keysweep.workers")


@signals.worker_init.connect
def _exporter(**_: Any) -> None:
    metrics.start_exporter()


@signals.task_prerun.connect
def _alive(**_: Any) -> None:
    metrics.touch_heartbeat()


@signals.worker_process_shutdown.connect
def _child_gone(pid: int | None = None, **_: Any) -> None:
    import os

    metrics.process_exited(pid or os.getpid())


@cache
def engine() -> Engine:
    # Public content: a leaker's allow comment does not protect a live key. The key
    # service is always there to ask: an mg_ run of 33-64 characters is looked up too.
    return build_engine(settings(), honour_allow=False, lookup_runs=True)


_KEYSERVICE: list[KeyServiceClient | None] = []
_KEYSERVICE_LOCK = threading.Lock()


def keyservice() -> KeyServiceClient | None:
    """This process's one client (one connection pool, kept alive), made once even
    when the first tasks of a threads pool all start together."""
    if _KEYSERVICE:
        return _KEYSERVICE[0]
    with _KEYSERVICE_LOCK:
        if not _KEYSERVICE:
            url, token = settings().keyservice()
            # The ledger parks act work while the key service is down and probes it (at
            # most every KEYSWEEP_PARK_PROBE_MAX s): the client's own breaker only needs
            # to stop a storm inside one batch, so it reopens after 5 s instead of 30.
            breaker = CircuitBreaker(reset_after=5.0)
            _KEYSERVICE.append(
                KeyServiceClient(url, token, breaker=breaker) if url and token else None
            )
        return _KEYSERVICE[0]


@signals.worker_process_init.connect
def _warm_child(**_: Any) -> None:
    """A prefork child makes its client before its first task, not during it."""
    keyservice()


@signals.worker_ready.connect
def _warm(sender: Any = None, **_: Any) -> None:
    """A threads (or solo) pool runs tasks in this process: make the client now. A
    prefork parent does not (its children make their own after the fork)."""
    pool = getattr(sender, "pool", None)
    if type(pool).__module__ in ("celery.concurrency.thread", "celery.concurrency.solo"):
        keyservice()


def countdown(task: Task, wait: float | None = None) -> float:
    """Exponential backoff with jitter, or exactly what the server asked for."""
    import random

    # Never under a second: on RabbitMQ, Celery's native delayed delivery turns a
    # countdown into int(seconds), and 0 < countdown < 1 makes the retry fail and the
    # message be rejected without requeue (the ledger would redo it, a grace later).
    if wait is not None:
        return min(MAX_COUNTDOWN, max(1.0, wait + random.uniform(0, 1)))
    return min(MAX_COUNTDOWN, random.uniform(1, 2) * 2 ** min(task.request.retries, 9))


class Retrying(Task):
    """Transient failures (rate limits, 5xx, an unreachable service) come back later;
    a task that must hand on part of its work calls ``self.retry`` itself."""

    abstract = True
    max_retries = 12


# --- fetch and scan: thin adapters over scanner.sources.github and scanner.scan -----------


def _scan(source: Any) -> ScanResult:
    return scan_source(source, engine(), settings(), ScanOptions(jobs=2))


def _record(kind: str, result: ScanResult) -> None:
    state.count("documents_scanned")
    metrics.DOCUMENTS.labels(kind).inc()
    metrics.BYTES.inc(result.bytes_scanned)
    sk = result.skipped
    if sk.too_large:
        state.count("files_skipped_large", sk.too_large)
    if sk.binary:
        state.count("files_skipped_binary", sk.binary)
    if sk.archives_capped:  # a bomb, an oversized member, nesting too deep: named in the log
        state.count("archives_capped", sk.archives_capped)
        log.warning("archive members skipped kind=%s capped=%s", kind, "; ".join(sk.capped))
    for f in result.findings:
        metrics.FINDINGS.labels(f.rule_id, f.owner).inc()


@app.task(bind=True, base=Retrying, soft_time_limit=150, time_limit=200)
def scan_batch(self: Retrying, docs: list[dict[str, Any]]) -> int:
    """Fetch and scan a few pushes and gists; findings go on without their secrets.

    A transient error (rate limit, GitHub down) hands on what is done and retries the
    rest; a permanent one (a refused or malformed document) is counted and skipped."""
    found: list[dict[str, Any]] = []
    for i, doc in enumerate(docs):
        fetched_at = time.time()
        try:
            result = _scan(document_source(github(), doc))
        except TransientError as exc:
            _hand_on(found)
            # What is done stays done; the rest comes back later.
            raise self.retry(
                exc=exc, kwargs={"docs": docs[i:]}, countdown=countdown(self, exc.wait)
            ) from None
        except PermanentError as exc:
            state.count("documents_failed")
            metrics.GITHUB_ERRORS.labels("permanent").inc()
            log.warning("document skipped kind=%s error=%s", doc.get("kind"), exc)
            continue
        _record(str(doc.get("kind")), result)
        report_to_issuer(result.findings)  # third-party GitHub tokens, sealed, while we hold them
        found.extend({**f.to_dict(), "fetched_at": fetched_at} for f in result.findings)
    _hand_on(found)
    return len(found)


def report_to_issuer(findings: list[Any]) -> None:
    """The hook: findings still holding their cleartext, inside the fetch process."""
    from workers.credreport import hand_over

    hand_over(findings)


def _hand_on(found: list[dict[str, Any]]) -> None:
    from workers.submit import submit_findings

    submit_findings(found, {"source": "crawler"})


@app.task(bind=True, base=Retrying, soft_time_limit=840, time_limit=900)
def scan_repo(
    self: Retrying,
    repo: str | None = None,
    url: str | None = None,
    reason: str = "manual",
    event_id: str | None = None,
) -> int:
    """Full history of a clone: a repository just made public, or asked for by hand."""
    s = settings()
    fetched_at = time.time()
    source = RepoSource(
        github(), repo, url, allowed_hosts=s.clone_hosts, http_hosts=s.clone_http_hosts
    )
    try:
        result = _scan(source)
    except (TransientError, CloneError) as exc:
        raise self.retry(exc=exc, countdown=countdown(self, getattr(exc, "wait", None))) from None
    except PermanentError as exc:
        state.count("documents_failed")
        log.warning("repository skipped reason=%s error=%s", reason, exc)
        return 0
    _record("repo", result)
    report_to_issuer(result.findings)
    _hand_on([{**f.to_dict(), "fetched_at": fetched_at} for f in result.findings])
    return len(result.findings)


# --- resolve, act, notify: thin adapters over scanner.pipeline ---------------------------------


def context(*, notify: bool = False) -> Context:
    """The one pipeline's context in the workers: Redis caches and dedup, confident alerts."""
    s = settings()
    notifier = None
    if notify:
        channels = NotifySettings.from_settings(s).channels()
        if channels:
            notifier = Notifier(channels, state.RedisDedup(), audit=keyservice())
    return Context(
        keyservice=keyservice(),
        policy=Policy(*s.policy()),
        negative_cache=state.RedisNegativeCache(),
        notifier=notifier,
        alert_confidence="high",
        concurrency=ACT_CONCURRENCY,
    )


# Keys of one batch acted on at once, per worker process (calls to the key service
# overlap; one key's calls stay in order).
ACT_CONCURRENCY = 8

TRANSIENT = {
    "autoretry_for": (TransientError,),
    "retry_backoff": 2,
    "retry_backoff_max": MAX_COUNTDOWN,
    "retry_jitter": True,
}


class Parked(KeysweepError):
    """The key service cannot take this work now: the ledger parks it (never dropped,
    never retried on its own: the ledger's probe lets it through when the service
    answers again). Not a TransientError, so Celery's autoretry leaves it alone."""


@app.task(bind=True, soft_time_limit=60, time_limit=90, max_retries=0)
def resolve_and_act(self: Task, findings: list[dict[str, Any]], meta: dict[str, Any]) -> int:
    found = [finding_from_dict(d) for d in findings]
    ctx = context()
    started = time.perf_counter()
    if ctx.keyservice is not None and any(f.owner == "keyservice" for f in found):
        metrics.LOOKUPS.inc(len({f.secret_sha256 for f in found if f.owner == "keyservice"}))
    try:
        outcomes = pipeline.act(found, ctx)
    except TransientError as exc:  # the key service is down: park the batch (workers.ledger)
        raise Parked(str(exc)) from None
    metrics.KEYSERVICE_SECONDS.observe(time.perf_counter() - started)
    _observe(found, findings, outcomes)
    retry = [o for o in outcomes.values() if o.action == "failed" and o.retry]
    if retry:  # every step is idempotent: the redo changes only what is not done
        raise Parked(f"{len(retry)} key(s) not revoked yet: {retry[0].error}")
    batch = pipeline.alerts(found, outcomes, ctx)
    if batch:
        from workers.submit import submit_alerts

        submit_alerts([alert_to_dict(a) for a in batch])
    return len(outcomes)


def _observe(found: list[Finding], raw: list[dict[str, Any]], outcomes: dict[str, Any]) -> None:
    fetched = {d["fingerprint"]: float(d.get("fetched_at") or time.time()) for d in raw}
    published = {f.fingerprint: _epoch(f.location.date) for f in found}
    now = time.time()
    actions: Counter[str] = Counter()
    latencies: list[float] = []
    for o in outcomes.values():
        actions[o.action] += 1
        if o.action == "revoked":
            latencies.append(now - fetched.get(o.fingerprint, now))
            metrics.FETCH_TO_REVOKE.observe(latencies[-1])
            if published.get(o.fingerprint):
                metrics.PUSH_TO_REVOKE.observe(max(0.0, now - published[o.fingerprint]))
    for action, n in actions.items():
        metrics.REVOCATIONS.labels(action).inc(n)
    # One round trip for the batch's counters and latencies.
    state.count_many({f"outcome_{a}": n for a, n in actions.items()}, latencies)


@app.task(bind=True, soft_time_limit=90, time_limit=120, max_retries=None, **TRANSIENT)
def send_alerts(self: Task, alerts: list[dict[str, Any]]) -> int:
    report = pipeline.notify([alert_from_dict(a) for a in alerts], context(notify=True))
    if report is None:
        return 0
    for label, n in report.sent.items():
        state.count(f"alerts_sent_{label.replace(':', '_')}", n)
        metrics.ALERTS.labels(label.split(":")[0], "sent").inc(n)
    for label, n in report.failed.items():
        state.count(f"alerts_failed_{label.replace(':', '_')}", n)
        metrics.ALERTS.labels(label.split(":")[0], "failed").inc(n)
    if report.errors:  # undelivered claims were released: a retry sends only those
        raise TransientError("; ".join(report.errors))
    if report.busy:  # another sender holds them (or died holding them): not said yet
        raise TransientError(
            f"{report.busy} alert(s) held by another sender: retried until sent or lapsed"
        )
    return sum(report.sent.values())


def _epoch(iso: str | None) -> float | None:
    """A commit or gist date as epoch seconds, or None."""
    if not iso:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
