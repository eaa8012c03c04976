"""Rate limits (primary and secondary), injected faults and request statistics."""

from __future__ import annotations

import hashlib
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any


def token_label(token: str | None, client_ip: str = "127.0.0.1") -> str:
    """How stats and rate limits name a caller: never the token itself."""
    if not token:
        return f"anon:{client_ip}"
    return "token:" + hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass
class Bucket:
    used: int = 0
    reset: float = 0.0  # epoch seconds


@dataclass
class Fault:
    path_prefix: str
    status: int | None  # None: only slow the real answer down
    count: int
    retry_after: float | None = None
    delay: float = 0.0
    secondary: bool = False
    message: str | None = None
    query: str = ""  # the fault applies only when the query string contains this
    hits: int = 0

    def json(self) -> dict[str, Any]:
        return {
            "path_prefix": self.path_prefix,
            "status": self.status,
            "count": self.count,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "secondary": self.secondary,
            "query": self.query,
            "hits": self.hits,
        }


class RateLimiter:
    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}
        self.points: dict[tuple[str, str], tuple[int, int]] = {}  # (label, endpoint) -> (minute, n)

    def bucket(self, label: str, window: float) -> Bucket:
        now = time.time()
        b = self.buckets.get(label)
        if b is None or now >= b.reset:
            b = Bucket(0, float(int(now + window)))
            self.buckets[label] = b
        return b

    def charge_points(self, label: str, endpoint: str, limit: int) -> bool:
        """Count one point; False when the per-minute budget of the endpoint is spent."""
        minute = int(time.time() // 60)
        key = (label, endpoint)
        m, n = self.points.get(key, (minute, 0))
        if m != minute:
            m, n = minute, 0
        if n >= limit:
            self.points[key] = (m, n)
            return False
        self.points[key] = (m, n + 1)
        return True

    def reset(self) -> None:
        self.buckets.clear()
        self.points.clear()


class Waits:
    """The waits the simulator declared (a ``retry-after``, an exhausted budget until
    its reset, a secondary limit for every caller), and the requests that arrived
    during one: requests sent before GitHub allowed them.

    A request that arrives within ``GRACE`` seconds of the answer that declared the
    wait is not counted: it was already on its way (sent by another process before
    the declaring answer reached the client)."""

    GRACE = 0.25

    def __init__(self) -> None:
        self.until: dict[str | None, tuple[float, float]] = {}  # label|None(all) -> (at, until)

    def declare(self, label: str | None, until: float) -> None:
        now = time.time()
        at, cur = self.until.get(label, (now, 0.0))
        if until > cur:
            self.until[label] = (now if cur <= now else at, until)

    def arrived(self, label: str, stats: Stats) -> None:
        now = time.time()
        for who in (label, None):
            at, until = self.until.get(who, (0.0, 0.0))
            if at + self.GRACE < now < until:
                stats.early += 1
                stats.early_requests.append(
                    {
                        "t": now,
                        "token": label,
                        "declared_at": at,
                        "until": until,
                        "scope": "token" if who else "all",
                    }
                )
                return


class Faults:
    def __init__(self) -> None:
        self.items: list[Fault] = []
        self.hits = 0

    def add(self, fault: Fault) -> None:
        self.items.append(fault)

    def take(self, path: str, query: str = "") -> Fault | None:
        for f in self.items:
            if f.count > 0 and path.startswith(f.path_prefix) and f.query in query:
                f.count -= 1
                f.hits += 1
                self.hits += 1
                return f
        return None

    def clear(self) -> None:
        self.items.clear()


@dataclass
class Stats:
    started: float = field(default_factory=time.time)
    requests: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    tokens: Counter[str] = field(default_factory=Counter)
    if_none_match: int = 0
    not_modified: int = 0
    rate_limited: int = 0
    secondary_limited: int = 0
    fault_hits: int = 0
    early: int = 0
    early_requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    inflight: Counter[str] = field(default_factory=Counter)
    inflight_total: int = 0
    max_inflight: int = 0
    max_inflight_by_token: Counter[str] = field(default_factory=Counter)
    events_requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=5000))
    generated_docs: int = 0
    mint_errors: int = 0
    generation_errors: list[str] = field(default_factory=list)

    def enter(self, label: str) -> int:
        self.inflight[label] += 1
        self.inflight_total += 1
        self.max_inflight = max(self.max_inflight, self.inflight_total)
        n = self.inflight[label]
        if n > self.max_inflight_by_token[label]:
            self.max_inflight_by_token[label] = n
        return n

    def leave(self, label: str) -> None:
        self.inflight[label] -= 1
        self.inflight_total -= 1

    def json(self) -> dict[str, Any]:
        return {
            "uptime": time.time() - self.started,
            "requests": dict(self.requests),
            "statuses": {k: {str(s): n for s, n in v.items()} for k, v in self.statuses.items()},
            "tokens": dict(self.tokens),
            "if_none_match": self.if_none_match,
            "not_modified": self.not_modified,
            "rate_limited": self.rate_limited,
            "secondary_limited": self.secondary_limited,
            "fault_hits": self.fault_hits,
            "early": self.early,
            "early_requests": list(self.early_requests),
            "inflight": self.inflight_total,
            "max_inflight": self.max_inflight,
            "max_inflight_by_token": dict(self.max_inflight_by_token),
            "events_requests": list(self.events_requests),
            "generated_docs": self.generated_docs,
            "mint_errors": self.mint_errors,
            "generation_errors": self.generation_errors[-20:],
        }
