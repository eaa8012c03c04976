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

from scanner.act import Policy, act
from scanner.config import Config
from scanner.engine import Engine
from scanner.errors import KeysweepError
from scanner.findings import Location, finding_from_dict
from scanner.keyservice import KeyServiceClient, KeyServiceError
from scanner.notify.dispatch import Notifier, NotifySettings
from scanner.notify.message import alert_from_dict, alert_to_dict, alerts_from
from scanner.resolve import resolve
from scanner.scan import Collector, build_engine
from scanner.sources.files import BufferFragment, is_binary
from scanner.sources.git_history import PatchChunk
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


ZERO = "0" * 40
MAX_PAGES = 10  # 10 x 300 = GitHub's 3,000-file ceiling for one commit


@cache
def engine() -> Engine:
    return build_engine(Config())


@cache
def keyservice() -> KeyServiceClient | None:
    url, token = Config().keyservice()
    return KeyServiceClient(url, token) if url and token else None


def countdown(task: Task, wait: float | None = None) -> float:
    """Exponential backoff with jitter, or exactly what the server asked for."""
    import random

    if wait is not None:
        return min(MAX_COUNTDOWN, wait + random.uniform(0, 1))
    return min(MAX_COUNTDOWN, random.uniform(1, 2) * 2 ** min(task.request.retries, 9))


class Retrying(Task):
    """Transient failures (rate limits, 5xx, an unreachable key service) come back later."""

    abstract = True
    max_retries = 12

    def retry_later(self, exc: Exception) -> None:
        wait = exc.wait if isinstance(exc, RateLimited) else None
        raise self.retry(exc=exc, countdown=countdown(self, wait))


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


# --- fetch and scan --------------------------------------------------------------------------


def _patch_text(files: list[dict[str, Any]], sha: str, author: dict[str, Any]) -> bytes:
    """GitHub's per-file patches as one ``git diff -U0``-shaped text the locator reads."""
    header = "\x1f".join(
        [
            sha,
            str(author.get("name", "")),
            str(author.get("email", "")),
            str(author.get("date", "")),
        ]
    )
    parts = [f"\n\x1e{header}\n"]
    for f in files:
        patch = f.get("patch")
        if not patch:
            continue
        name = str(f.get("filename", "")).replace("\n", "?")
        parts.append(f"\ndiff --git a/{name} b/{name}\n+++ b/{name}\n{patch}\n")
    return "".join(parts).encode("utf-8", "surrogatepass")


def scan_files(
    repo: str, sha: str, author: dict[str, Any], files: list[dict[str, Any]], collector: Collector
) -> None:
    """Scan one commit's (or compare's) files: patches where GitHub gave them, raw otherwise."""
    gh = github()
    blobs = {str(f.get("filename")): f.get("blob_url") for f in files}
    collector.decorate = lambda loc: Location(
        kind="push",
        path=loc.path,
        line=loc.line,
        repo=repo,
        commit=loc.commit or sha,
        author=loc.author or author.get("name"),
        email=loc.email or author.get("email"),
        date=loc.date or author.get("date"),
        url=(f"{blobs.get(loc.path or '')}#L{loc.line}" if blobs.get(loc.path or "") else None),
    )
    collector.scan(PatchChunk(_patch_text(files, sha, author), repo, 0, None))
    for f in files:
        if f.get("patch") or f.get("status") == "removed" or not f.get("raw_url"):
            continue
        data = gh.get_bytes(str(f["raw_url"]), settings().max_gist_file)
        if data is None:
            state.count("files_skipped_large")
            continue
        if is_binary(data):
            state.count("files_skipped_binary")
            continue
        collector.scan(BufferFragment(data, "push", str(f.get("filename")), repo))


def fetch_push(collector: Collector, repo: str, before: str | None, head: str | None) -> None:
    gh = github()
    if not head:
        return
    if before and before != ZERO:
        cmp = gh.get_json(f"/repos/{repo}/compare/{before}...{head}")
        if cmp is None:
            return
        commits = cmp.get("commits") or []
        author = ((commits[-1] if commits else {}).get("commit") or {}).get("author") or {}
        files = cmp.get("files") or []
        if len(files) < 300:
            scan_files(repo, head, author, files, collector)
        else:  # the compare is capped at 300 files: page each commit's own list
            for c in commits:
                _scan_commit(repo, str(c.get("sha")), collector)
    else:  # a new branch: the head commit's own files
        _scan_commit(repo, head, collector)


@app.task(bind=True, base=Retrying, soft_time_limit=150, time_limit=200)
def scan_batch(self: Retrying, docs: list[dict[str, Any]]) -> int:
    """Fetch and scan a few pushes and gists; findings go on without their secrets."""
    found: list[dict[str, Any]] = []
    for i, doc in enumerate(docs):
        fetched_at = time.time()
        collector = Collector(engine(), [])
        try:
            if doc["kind"] == "push":
                fetch_push(collector, doc["repo"], doc.get("before"), doc.get("head"))
            else:
                fetch_gist(collector, doc["gist_id"], doc.get("updated_at"))
        except (RateLimited, GitHubUnavailable) as exc:
            _hand_on(found)
            wait = exc.wait if isinstance(exc, RateLimited) else None
            # What is done stays done; the rest comes back later.
            raise self.retry(
                exc=exc, kwargs={"docs": docs[i:]}, countdown=countdown(self, wait)
            ) from None
        state.count("documents_scanned")
        metrics.DOCUMENTS.labels(doc["kind"]).inc()
        metrics.BYTES.inc(collector.bytes)
        findings = collector.found.findings()
        report_to_issuer(findings)  # third-party GitHub tokens, sealed, while we hold them
        for f in findings:
            metrics.FINDINGS.labels(f.rule_id, f.owner).inc()
            found.append({**f.to_dict(), "fetched_at": fetched_at})
    _hand_on(found)
    return len(found)


def report_to_issuer(findings: list[Any]) -> None:
    """The hook: findings still holding their cleartext, inside the fetch process."""
    from workers.credreport import hand_over

    hand_over(findings)


def _hand_on(found: list[dict[str, Any]]) -> None:
    from workers.submit import submit_findings

    submit_findings(found, {"source": "crawler"})


def _scan_commit(repo: str, sha: str, collector: Collector) -> None:
    gh = github()
    for page in range(1, MAX_PAGES + 1):
        body = gh.get_json(f"/repos/{repo}/commits/{sha}", params={"per_page": 300, "page": page})
        if not body:
            return
        files = body.get("files") or []
        author = (body.get("commit") or {}).get("author") or {}
        scan_files(repo, sha, author, files, collector)
        if len(files) < 300:
            return


def fetch_gist(collector: Collector, gist_id: str, updated_at: str | None) -> None:
    gh = github()
    gist = gh.get_json(f"/gists/{gist_id}")
    if gist is None:
        return
    url = gist.get("html_url")
    for name, f in (gist.get("files") or {}).items():
        if int(f.get("size") or 0) > settings().max_gist_file:
            state.count("files_skipped_large")
            continue
        content = f.get("content")
        data = (
            gh.get_bytes(str(f["raw_url"]), settings().max_gist_file)
            if (f.get("truncated") or content is None) and f.get("raw_url")
            else str(content or "").encode("utf-8", "surrogatepass")
        )
        if data is None or is_binary(data):
            state.count("files_skipped")
            continue
        collector.decorate = lambda loc, n=name: Location(
            kind="gist",
            path=n,
            line=loc.line,
            repo=f"gist:{gist_id}",
            commit=updated_at,
            url=f"{url}#file-{n}" if url else None,
            date=gist.get("updated_at"),
        )
        collector.scan(BufferFragment(data, "gist", name))


@app.task(bind=True, base=Retrying, soft_time_limit=840, time_limit=900)
def scan_repo(
    self: Retrying,
    repo: str | None = None,
    url: str | None = None,
    reason: str = "manual",
    event_id: str | None = None,
) -> int:
    """Full history of a clone: a repository just made public, or asked for by hand."""
    from scanner.scan import ScanOptions, scan_git
    from scanner.sources.remote import cloned, parse_remote

    fetched_at = time.time()
    if url is None:
        try:
            meta = github().get_json(f"/repos/{repo}")
        except (RateLimited, GitHubUnavailable) as exc:
            self.retry_later(exc)
        if not meta or not meta.get("clone_url"):
            return 0
        url = str(meta["clone_url"])
    s = settings()
    remote = parse_remote(url, [*s.clone_hosts, *s.clone_http_hosts], http_hosts=s.clone_http_hosts)
    with cloned(remote) as path:
        result = scan_git(path, engine(), Config(), ScanOptions(jobs=2), remote.display)
    state.count("documents_scanned")
    report_to_issuer(result.findings)
    _hand_on([{**f.to_dict(), "fetched_at": fetched_at} for f in result.findings])
    return len(result.findings)


# --- resolve, act, notify ---------------------------------------------------------------------


@app.task(bind=True, base=Retrying, soft_time_limit=60, time_limit=90)
def resolve_and_act(self: Retrying, findings: list[dict[str, Any]], meta: dict[str, Any]) -> int:
    found = [finding_from_dict(d) for d in findings]
    fetched = {d["fingerprint"]: float(d.get("fetched_at") or time.time()) for d in findings}
    outcomes: dict[str, Any] = {}
    ours = [f for f in found if f.owner == "keyservice"]
    client = keyservice()
    if ours and client is not None:
        live, test = Config().policy()
        started = time.perf_counter()
        try:
            metrics.LOOKUPS.inc(len({f.secret_sha256 for f in ours}))
            owned = resolve(ours, client, state.RedisNegativeCache())
            results = act(owned, client, Policy(live, test))
            metrics.KEYSERVICE_SECONDS.observe(time.perf_counter() - started)
        except KeyServiceError as exc:
            self.retry_later(exc)
        failed = [o for o in results if o.action == "failed"]
        if failed:  # retry the whole batch: every step is idempotent
            self.retry_later(KeysweepError(f"{len(failed)} key(s) not revoked: {failed[0].error}"))
        outcomes = {o.fingerprint: o for o in results}
        now = time.time()
        published = {f.fingerprint: _epoch(f.location.date) for f in ours}
        for o in results:
            state.count(f"outcome_{o.action}")
            metrics.REVOCATIONS.labels(o.action).inc()
            if o.action == "revoked":
                state.record_latency(now - fetched.get(o.fingerprint, now))
                metrics.FETCH_TO_REVOKE.observe(now - fetched.get(o.fingerprint, now))
                if published.get(o.fingerprint):
                    metrics.PUSH_TO_REVOKE.observe(max(0.0, now - published[o.fingerprint]))
    alerts = alerts_from(found, outcomes)
    if alerts:
        send_alerts.delay(alerts=[alert_to_dict(a) for a in alerts])
    return len(outcomes)


@app.task(bind=True, base=Retrying, soft_time_limit=90, time_limit=120)
def send_alerts(self: Retrying, alerts: list[dict[str, Any]]) -> int:
    channels = NotifySettings.from_env(Config().notify).channels()
    if not channels:
        return 0
    report = Notifier(channels, state.RedisDedup(), audit=keyservice()).notify(
        [alert_from_dict(a) for a in alerts]
    )
    for label, n in report.sent.items():
        state.count(f"alerts_sent_{label.replace(':', '_')}", n)
        metrics.ALERTS.labels(label.split(":")[0], "sent").inc(n)
    for label, n in report.failed.items():
        state.count(f"alerts_failed_{label.replace(':', '_')}", n)
        metrics.ALERTS.labels(label.split(":")[0], "failed").inc(n)
    if report.errors:  # undelivered claims were released: a retry sends only those
        self.retry_later(KeysweepError("; ".join(report.errors)))
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
