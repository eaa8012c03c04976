"""Celery tasks: thin adapters over the scanner library.

poll_events / poll_gists -> scan_batch (pushes, gists) / scan_repo -> resolve_and_act
    -> send_alerts

Content is fetched and scanned inside the fetch task; what goes on is findings
as hashes, redacted forms and locations (``Finding.to_dict()`` without the
secret). Every task is idempotent: events and gist versions are claimed once
(Redis SET NX), revocations and audit events carry idempotency keys, alerts are
claimed per (channel, key, place). A redelivered or duplicated task changes
nothing twice.
"""

from __future__ import annotations

import logging
import time
from functools import cache
from typing import Any

from celery import Task, signals

from scanner import pipeline
from scanner.act import Policy
from scanner.engine import Engine
from scanner.errors import PermanentError, TransientError
from scanner.findings import Finding, finding_from_dict
from scanner.keyservice import KeyServiceClient
from scanner.notify.dispatch import Notifier, NotifySettings
from scanner.notify.message import alert_from_dict, alert_to_dict
from scanner.pipeline import Context
from scanner.scan import ScanOptions, ScanResult, build_engine, scan_source
from scanner.sources.github import RepoSource, document_source
from scanner.sources.remote import CloneError
from workers import metrics, state
from workers.app import MAX_COUNTDOWN, app
from workers.github import GitHubUnavailable, RateLimited, github
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
    return build_engine(settings())


@cache
def keyservice() -> KeyServiceClient | None:
    url, token = settings().keyservice()
    return KeyServiceClient(url, token) if url and token else None


def countdown(task: Task, wait: float | None = None) -> float:
    """Exponential backoff with jitter, or exactly what the server asked for."""
    import random

    if wait is not None:
        return min(MAX_COUNTDOWN, wait + random.uniform(0, 1))
    return min(MAX_COUNTDOWN, random.uniform(1, 2) * 2 ** min(task.request.retries, 9))


class Retrying(Task):
    """Transient failures (rate limits, 5xx, an unreachable service) come back later;
    a task that must hand on part of its work calls ``self.retry`` itself."""

    abstract = True
    max_retries = 12


# --- pollers -------------------------------------------------------------------------------


def _due(name: str) -> bool:
    cur = state.get_cursor(name)
    return time.time() >= float(cur.get("next_at", 0))


@app.task(bind=True, base=Retrying, soft_time_limit=60, time_limit=90, max_retries=0)
def poll_events(self: Retrying) -> int:
    """One poll of /events, if X-Poll-Interval allows; queues work for new events."""
    with state.singleton("poll-events", ttl=90) as mine:
        if not mine or not _due("events"):
            return 0
        cur = state.get_cursor("events")
        gh = github()
        try:
            resp = gh.get("/events", params={"per_page": 100}, etag=cur.get("etag") or None)
        except RateLimited as exc:
            state.set_cursor("events", next_at=time.time() + exc.wait)
            return 0
        except GitHubUnavailable:
            state.set_cursor("events", next_at=time.time() + 30)
            return 0
        interval = float(resp.headers.get("x-poll-interval", 60))
        state.set_cursor("events", next_at=time.time() + interval, interval=interval)
        state.count("events_polls")
        if resp.status_code == 304:
            state.count("events_not_modified")
            return 0
        if resp.status_code != 200:
            return 0
        state.set_cursor("events", etag=resp.headers.get("etag", ""))
        docs: list[dict[str, Any]] = []
        page, url = 1, None
        events = _json_list(resp)
        while True:
            new = state.first_times("event", [str(ev.get("id")) for ev in events])
            metrics.EVENTS_POLLED.inc(sum(new))
            for ev, is_new in zip(events, new, strict=True):
                doc = _event_doc(ev) if is_new else None
                if doc is not None:
                    docs.append(doc)
            state.count("events_seen", len(events))
            url = resp.links.get("next", {}).get("url")
            # The newest events come first: when this page's oldest one was already
            # seen, so is everything after it. (Events arriving between two page
            # requests shift the pages, so the last event decides, not the first.)
            if not url or not new or not new[-1] or page >= 3:
                break
            resp = gh.get(url)
            if resp.status_code != 200:
                break
            events, page = _json_list(resp), page + 1
        return queue_docs(docs)


def _json_list(resp: Any) -> list[dict[str, Any]]:
    try:
        body = resp.json()
    except ValueError:
        state.count("github_malformed")
        return []
    return [x for x in body if isinstance(x, dict)] if isinstance(body, list) else []


BATCH = 10  # documents per fetch task: fewer, larger tasks cost the broker far less


def _event_doc(ev: dict[str, Any]) -> dict[str, Any] | None:
    repo = (ev.get("repo") or {}).get("name")
    if not repo:
        return None
    if ev.get("type") == "PushEvent":
        p = ev.get("payload") or {}
        return {
            "kind": "push",
            "repo": repo,
            "before": p.get("before"),
            "head": p.get("head"),
            "event_id": str(ev.get("id")),
            "pushed_at": ev.get("created_at"),
        }
    if ev.get("type") == "PublicEvent":
        scan_repo.delay(repo=repo, reason="public", event_id=str(ev.get("id")))
        state.count("repos_queued")
    return None


def queue_docs(docs: list[dict[str, Any]]) -> int:
    for i in range(0, len(docs), BATCH):
        scan_batch.delay(docs=docs[i : i + BATCH])
    state.count("documents_queued", len(docs))
    return len(docs)


@app.task(bind=True, base=Retrying, soft_time_limit=90, time_limit=120, max_retries=0)
def poll_gists(self: Retrying) -> int:
    with state.singleton("poll-gists", ttl=120) as mine:
        if not mine or not _due("gists"):
            return 0
        cur = state.get_cursor("gists")
        since = cur.get("since")
        gh = github()
        docs: list[dict[str, Any]] = []
        newest = since or ""
        url: str | None = "/gists/public"
        params: dict[str, Any] | None = {"per_page": 100, **({"since": since} if since else {})}
        pages = 0
        try:
            while url and pages < 30:  # 30 x 100 = the 3,000 GitHub lists
                resp = gh.get(url, params=params)
                pages += 1
                if resp.status_code != 200:
                    break
                gists = _json_list(resp)
                metrics.GISTS_POLLED.inc(len(gists))
                versions = [f"{g.get('id')}@{g.get('updated_at')}" for g in gists]
                for g, is_new in zip(gists, state.first_times("gist", versions), strict=True):
                    newest = max(newest, str(g.get("updated_at") or ""))
                    if is_new:
                        docs.append(
                            {
                                "kind": "gist",
                                "gist_id": str(g.get("id")),
                                "updated_at": g.get("updated_at"),
                            }
                        )
                url, params = resp.links.get("next", {}).get("url"), None
        except RateLimited as exc:
            state.set_cursor("gists", next_at=time.time() + exc.wait)
        except GitHubUnavailable:
            state.set_cursor("gists", next_at=time.time() + 30)
        if newest:
            state.set_cursor("gists", since=newest)
        return queue_docs(docs)


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
    )


TRANSIENT = {
    "autoretry_for": (TransientError,),
    "retry_backoff": 2,
    "retry_backoff_max": MAX_COUNTDOWN,
    "retry_jitter": True,
}


@app.task(bind=True, soft_time_limit=60, time_limit=90, max_retries=None, **TRANSIENT)
def resolve_and_act(self: Task, findings: list[dict[str, Any]], meta: dict[str, Any]) -> int:
    found = [finding_from_dict(d) for d in findings]
    ctx = context()
    started = time.perf_counter()
    if ctx.keyservice is not None and any(f.owner == "keyservice" for f in found):
        metrics.LOOKUPS.inc(len({f.secret_sha256 for f in found if f.owner == "keyservice"}))
    outcomes = pipeline.act(found, ctx)  # an unavailable key service retries the whole batch
    metrics.KEYSERVICE_SECONDS.observe(time.perf_counter() - started)
    _observe(found, findings, outcomes)
    retry = [o for o in outcomes.values() if o.action == "failed" and o.retry]
    if retry:  # every step is idempotent: the retry redoes only what is not done
        raise TransientError(f"{len(retry)} key(s) not revoked yet: {retry[0].error}")
    batch = pipeline.alerts(found, outcomes, ctx)
    if batch:
        send_alerts.delay(alerts=[alert_to_dict(a) for a in batch])
    return len(outcomes)


def _observe(found: list[Finding], raw: list[dict[str, Any]], outcomes: dict[str, Any]) -> None:
    fetched = {d["fingerprint"]: float(d.get("fetched_at") or time.time()) for d in raw}
    published = {f.fingerprint: _epoch(f.location.date) for f in found}
    now = time.time()
    for o in outcomes.values():
        state.count(f"outcome_{o.action}")
        metrics.REVOCATIONS.labels(o.action).inc()
        if o.action == "revoked":
            state.record_latency(now - fetched.get(o.fingerprint, now))
            metrics.FETCH_TO_REVOKE.observe(now - fetched.get(o.fingerprint, now))
            if published.get(o.fingerprint):
                metrics.PUSH_TO_REVOKE.observe(max(0.0, now - published[o.fingerprint]))


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
