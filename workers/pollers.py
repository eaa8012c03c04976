"""The pollers: GitHub's public events and public gists, turned into tracked work.

They cannot skip:

* An event (or gist version) is marked seen in the same atomic step that records
  its work in the ledger (``ledger.claim_and_track``); the messages go out after,
  and the sweeper re-sends any that a crash or the broker lost.
* A page that fails leaves the cursor where it was: the events ETag is stored
  only when every page needed was read, and the gist ``since`` cursor moves only
  when every page down to it was read.
* A poller that was stalled reads back as far as the feed still reaches (300
  events, 3,000 gists) and counts what had already fallen off
  (``keysweep_events_missed_total``, ``keysweep_gists_missed_total``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from workers import ledger, metrics, state
from workers.app import app
from workers.github import GitHubUnavailable, RateLimited, github

log = logging.getLogger("keysweep.pollers")

BATCH = 10  # documents per fetch task: fewer, larger tasks cost the broker far less
EVENT_PAGES = 3  # 3 x 100 = the 300 events GitHub keeps
GIST_PAGES = 30  # 30 x 100 = the 3,000 gists GitHub lists
SCAN_BATCH = "workers.tasks.scan_batch"
SCAN_REPO = "workers.tasks.scan_repo"


def _due(name: str) -> bool:
    cur = state.get_cursor(name)
    return time.time() >= float(cur.get("next_at", 0))


def _json_list(resp: Any) -> list[dict[str, Any]] | None:
    """A page's items, or None when the page is not a JSON list (treated as a failure)."""
    try:
        body = resp.json()
    except ValueError:
        state.count("github_malformed")
        return None
    return [x for x in body if isinstance(x, dict)] if isinstance(body, list) else None


def event_claim(ev: dict[str, Any]) -> ledger.Claim:
    """The dedupe mark of an event, and the work it brings (none for noise)."""
    seen = state.key("seen", "event", state.digest(str(ev.get("id"))))
    repo = (ev.get("repo") or {}).get("name")
    if repo and ev.get("type") == "PushEvent":
        p = ev.get("payload") or {}
        doc = {
            "kind": "push",
            "repo": repo,
            "before": p.get("before"),
            "head": p.get("head"),
            "event_id": str(ev.get("id")),
            "pushed_at": ev.get("created_at"),
        }
        return ledger.Claim(seen, SCAN_BATCH, "fetch", doc, group=True)
    if repo and ev.get("type") == "PublicEvent":
        kwargs = {"repo": repo, "reason": "public", "event_id": str(ev.get("id"))}
        return ledger.Claim(seen, SCAN_REPO, "fetch", kwargs)
    return ledger.Claim(seen)


def gist_claim(g: dict[str, Any]) -> ledger.Claim:
    version = f"{g.get('id')}@{g.get('updated_at')}"
    doc = {"kind": "gist", "gist_id": str(g.get("id")), "updated_at": g.get("updated_at")}
    return ledger.Claim(
        state.key("seen", "gist", state.digest(version)), SCAN_BATCH, "fetch", doc, group=True
    )


def _record(claims: list[ledger.Claim]) -> tuple[int, list[bool]]:
    works, fresh = ledger.claim_and_track_flags(claims, batch=BATCH)
    ledger.publish_all(works)
    docs = sum(len(w.kwargs.get("docs", [1])) for w in works)
    state.count("documents_queued", docs)
    return docs, fresh


def _event_id(ev: dict[str, Any]) -> int | None:
    try:
        return int(str(ev.get("id")))
    except ValueError:
        return None


def missed_estimate(through: int, oldest: int, ids: list[int]) -> int:
    """How many events fell off between the newest one seen before and the oldest the
    feed still holds, estimated from the spacing of the ids the feed shows (event ids
    are shared with events that are not public, so their difference overcounts)."""
    if oldest <= through or len(ids) < 2:
        return 0
    spacing = (max(ids) - min(ids)) / (len(ids) - 1)
    return max(0, round((oldest - through) / max(spacing, 1.0)) - 1)


@app.task(name="workers.pollers.poll_events", soft_time_limit=60, time_limit=90)
def poll_events() -> int:
    """One poll of /events, if X-Poll-Interval allows; every new event becomes tracked work."""
    with state.singleton("poll-events") as mine:
        if not mine or not _due("events"):
            return 0
        return _poll_events()


def _poll_events() -> int:
    cur = state.get_cursor("events")
    gh = github()
    try:
        resp = gh.get("/events", params={"per_page": 100}, etag=cur.get("etag") or None)
    except RateLimited as exc:
        state.set_cursor("events", next_at=time.time() + exc.wait)
        return 0
    except GitHubUnavailable:
        state.set_cursor("events", next_at=time.time() + 10)
        return 0
    interval = float(resp.headers.get("x-poll-interval", 60))
    state.set_cursor("events", next_at=time.time() + interval, interval=interval)
    state.count("events_polls")
    if resp.status_code == 304:
        state.count("events_not_modified")
        return 0
    etag = resp.headers.get("etag", "")
    queued, page, complete, reached_end = 0, 1, False, False
    ids: list[int] = []
    # Every event up to this id was claimed: the poll reads down until it joins it. (A
    # poll whose later page failed leaves it where it was, so the next poll reads on
    # down past the events it already claimed, to the ones it never saw.)
    through = int(cur.get("through") or 0)
    last: int | None = None
    while True:
        events = _json_list(resp) if resp.status_code == 200 else None
        if events is None:
            state.count("events_page_failed")
            break
        page_ids = [i for i in map(_event_id, events) if i is not None]
        ids += page_ids
        n, fresh = _record([event_claim(ev) for ev in events])
        queued += n
        metrics.EVENTS_POLLED.inc(sum(fresh))
        state.count("events_seen", len(events))
        url = resp.links.get("next", {}).get("url")
        last = _event_id(events[-1]) if events else None
        if through and last is not None and last <= through and fresh and not fresh[-1]:
            # The page's oldest event is one an earlier complete poll claimed: this
            # poll has joined what was read before. (Position, not the smallest id: an
            # event delivered again sits on top with an old id.)
            complete = True
            break
        if not through and (not page_ids or len(page_ids) < len(events)) and (
            not fresh or not fresh[-1]
        ):
            complete = True  # ids that are not numbers: the oldest event was seen before
            break
        if not url or page >= EVENT_PAGES:
            complete = reached_end = True
            break
        try:
            resp = gh.get(url)
        except RateLimited as exc:
            state.set_cursor("events", next_at=time.time() + exc.wait)
            break
        except GitHubUnavailable:
            break
        page += 1
    if complete:
        # Only now may the next poll be answered 304: every page needed was read.
        values: dict[str, object] = {"etag": etag}
        if ids:
            values["through"] = max(through, *ids)
        state.set_cursor("events", **values)
        if reached_end and through and last is not None:
            missed = missed_estimate(through, last, ids)
            if missed:
                metrics.EVENTS_MISSED.inc(missed)
                state.count("events_missed", missed)
                log.warning("events fell off the feed before they were read: about %d", missed)
    else:
        # A failed page: forget the ETag so the next poll reads the pages again.
        state.set_cursor("events", etag="")
    return queued


@app.task(name="workers.pollers.poll_gists", soft_time_limit=90, time_limit=120)
def poll_gists() -> int:
    with state.singleton("poll-gists") as mine:
        if not mine or not _due("gists"):
            return 0
        return _poll_gists()


def _poll_gists() -> int:
    cur = state.get_cursor("gists")
    since = cur.get("since")
    gh = github()
    newest = since or ""
    url: str | None = "/gists/public"
    params: dict[str, Any] | None = {"per_page": 100, **({"since": since} if since else {})}
    pages, queued, complete = 0, 0, False
    last_page = 0
    try:
        while url:
            resp = gh.get(url, params=params)
            gists = _json_list(resp) if resp.status_code == 200 else None
            if gists is None:
                state.count("gists_page_failed")
                break
            pages += 1
            metrics.GISTS_POLLED.inc(len(gists))
            n, _ = _record([gist_claim(g) for g in gists])
            queued += n
            for g in gists:
                newest = max(newest, str(g.get("updated_at") or ""))
            url, params = resp.links.get("next", {}).get("url"), None
            if pages == 1 and resp.links.get("last", {}).get("url"):
                last_page = _page_of(resp.links["last"]["url"])
            if url and pages >= GIST_PAGES:
                missed = max(0, (last_page - GIST_PAGES) * 100)
                if missed:
                    metrics.GISTS_MISSED.inc(missed)
                    state.count("gists_missed", missed)
                url = None
            if not url:
                complete = True
        state.set_cursor("gists", next_at=time.time() + state.settings().poll_every)
    except RateLimited as exc:
        state.set_cursor("gists", next_at=time.time() + exc.wait)
    except GitHubUnavailable:
        state.set_cursor("gists", next_at=time.time() + 10)
    if complete and newest:
        # Every page down to the old cursor was read: only now may it move.
        state.set_cursor("gists", since=newest)
    return queued


def _page_of(url: str) -> int:
    from urllib.parse import parse_qs, urlsplit

    try:
        return int(parse_qs(urlsplit(url).query).get("page", ["0"])[0])
    except ValueError:
        return 0
