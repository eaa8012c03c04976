"""The simulator's published state: events, commits, gists, repositories, ground truth.

Only the event loop touches a ``Store`` (generation happens in a worker thread
and hands over a finished ``Batch``), so there is no locking here.
"""

from __future__ import annotations

import bisect
import json
import time
from collections import OrderedDict, deque
from typing import Any

from tests.sim.model import ZERO_SHA, Batch, Commit, Gist, RepoInfo, Urls, iso

EVENTS_CAP = 300  # GitHub keeps the newest 300 public events
GISTS_CAP = 3000  # /gists/public pages through at most 3000 gists


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Store:
    def __init__(self, urls: Urls, retain_docs: int = 20_000) -> None:
        self.urls = urls
        self.retain_docs = retain_docs
        self.reset()

    def reset(self) -> None:
        self.events: deque[tuple[str, bytes]] = deque(maxlen=EVENTS_CAP)  # newest first
        self.event_bodies: OrderedDict[str, bytes] = OrderedDict()
        self.event_types: dict[str, str] = {}
        self.repos: dict[str, RepoInfo] = {}
        self.commits: dict[tuple[str, str], Commit] = {}
        self.gists: dict[str, Gist] = {}
        self.gist_order: list[tuple[float, int, str]] = []  # (updated_at, seq, id), ascending
        self.gist_seq = 0
        self.docs: deque[tuple[str, Any]] = deque()  # retention queue, oldest first
        self.planted: list[dict[str, Any]] = []
        self.published = {"pushes": 0, "gists": 0, "public_repos": 0, "events": 0}
        self.version = 0

    # -- publishing --------------------------------------------------------

    def publish(self, batch: Batch) -> None:
        now = time.time()
        stamp = iso(now)
        for repo in batch.repos:
            self.repos.pop(repo.full_name, None)  # most recently pushed last
            self.repos[repo.full_name] = repo
        for c in batch.commits:
            self.commits[(c.repo, c.sha)] = c
            self.docs.append(("commit", (c.repo, c.sha)))
        for g in batch.gists:
            g.created_at = g.updated_at = now
            g.list_body = dumps(g.list_json(self.urls))
            self.gists[g.id] = g
            self.gist_seq += 1
            self.gist_order.append((now, self.gist_seq, g.id))
            self.docs.append(("gist", g.id))
            self.published["gists"] += 1
        for ev in batch.events:
            ev["created_at"] = stamp
            body = dumps(ev)
            self.events.appendleft((ev["id"], body))
            self.event_bodies[ev["id"]] = body
            self.event_types[ev["id"]] = ev["type"]
            self.published["events"] += 1
            if ev["type"] == "PushEvent":
                self.published["pushes"] += 1
            elif ev["type"] == "PublicEvent":
                self.published["public_repos"] += 1
        for p in batch.planted:
            p["published_at"] = now
            self.planted.append(p)
        self.version += 1
        self._evict()

    def _evict(self) -> None:
        while len(self.docs) > self.retain_docs:
            kind, key = self.docs.popleft()
            if kind == "commit":
                self.commits.pop(key, None)
            else:
                self.gists.pop(key, None)
        while len(self.event_bodies) > max(self.retain_docs, EVENTS_CAP):
            old, _ = self.event_bodies.popitem(last=False)
            self.event_types.pop(old, None)
        cap = max(2 * self.retain_docs, 1000)
        if len(self.repos) > cap + 1000:  # repositories nothing retained refers to any more
            for name in [n for n, r in self.repos.items() if not r.has_git][
                : len(self.repos) - cap
            ]:
                del self.repos[name]
        if len(self.gist_order) > 2 * GISTS_CAP + self.retain_docs:
            self.gist_order = [g for g in self.gist_order if g[2] in self.gists]

    def duplicate(self, event_id: str | None) -> str | None:
        """Deliver an event again at the top of /events (GitHub does re-deliver)."""
        if event_id is None:
            event_id = next(
                (i for i, _ in self.events if self.event_types.get(i) == "PushEvent"), None
            )
        if event_id is None or event_id not in self.event_bodies:
            return None
        self.events.appendleft((event_id, self.event_bodies[event_id]))
        self.version += 1
        return event_id

    # -- reading -----------------------------------------------------------

    def event_page(self, offset: int, limit: int) -> tuple[bytes, int]:
        items = list(self.events)
        page = items[offset : offset + limit]
        return b"[" + b",".join(body for _, body in page) + b"]", len(items)

    def gist_page(self, since: float | None, offset: int, limit: int) -> tuple[bytes, int]:
        order = self.gist_order
        lo = 0 if since is None else bisect.bisect_left(order, (since, -1, ""))
        picked: list[bytes] = []
        total = 0
        for i in range(len(order) - 1, lo - 1, -1):
            g = self.gists.get(order[i][2])
            if g is None:
                continue
            if offset <= total < offset + limit:
                picked.append(g.list_body)
            total += 1
            if total >= GISTS_CAP:
                break
        return b"[" + b",".join(picked) + b"]", total

    def commit(self, repo: str, sha: str) -> Commit | None:
        return self.commits.get((repo, sha))

    def chain(self, repo: str, base: str, head: str, limit: int = 10_000) -> list[Commit] | None:
        """Commits after ``base`` up to ``head`` (oldest first), following first parents;
        None when ``base`` is not an ancestor (or is all zeros: a new branch)."""
        if base == ZERO_SHA:
            return None
        out: list[Commit] = []
        sha = head
        while sha != base:
            c = self.commits.get((repo, sha))
            if c is None or len(out) >= limit:
                return None
            out.append(c)
            if not c.parents:
                return None
            sha = c.parents[0]
        out.reverse()
        return out

    def content_at(self, repo: str, ref: str, path: str) -> bytes | None:
        """A file's bytes at ``ref``: the newest stored commit at or before it that
        touched the path (histories before the simulation started are not stored)."""
        sha: str | None = ref
        for _ in range(10_000):
            c = self.commits.get((repo, sha)) if sha else None
            if c is None:
                return None
            f = c.by_path.get(path)
            if f is not None:
                return f.content
            sha = c.parents[0] if c.parents else None
        return None
