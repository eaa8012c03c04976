"""Redis state shared by every worker: cursors, dedupe, token budgets, caches, counters.

Every key starts with the configured prefix and holds ids, hashes, counts and
timestamps — never a cleartext key, never file content.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from functools import cache
from typing import Any

import redis
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from scanner.notify.dedup import SENT_TTL, Claim
from workers.settings import settings


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(
        settings().redis_url,
        decode_responses=True,
        socket_timeout=10,
        socket_connect_timeout=5,
        health_check_interval=30,
    )


def key(*parts: object) -> str:
    return ":".join([settings().prefix, *map(str, parts)])


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


# --- dedupe: each event and gist version is worked on once -----------------------------


def first_time(kind: str, ident: str, ttl: int | None = None) -> bool:
    """SET NX with a TTL: True for the first caller only."""
    return bool(
        client().set(
            key("seen", kind, digest(ident)),
            int(time.time()),
            nx=True,
            ex=ttl or settings().dedupe_ttl,
        )
    )


def first_times(kind: str, idents: list[str], ttl: int | None = None) -> list[bool]:
    """``first_time`` for many ids in one round trip."""
    pipe = client().pipeline(transaction=False)
    now = int(time.time())
    for ident in idents:
        pipe.set(key("seen", kind, digest(ident)), now, nx=True, ex=ttl or settings().dedupe_ttl)
    return [bool(x) for x in pipe.execute()]


def forget(kind: str, ident: str) -> None:
    client().delete(key("seen", kind, digest(ident)))


# --- cursors and poll pacing -------------------------------------------------------------


def get_cursor(name: str) -> dict[str, str]:
    return client().hgetall(key("cursor", name))


def set_cursor(name: str, **values: object) -> None:
    client().hset(key("cursor", name), mapping={k: str(v) for k, v in values.items()})


_EXTEND = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)


@contextmanager
def singleton(name: str, ttl: float = 10.0) -> Iterator[bool]:
    """A lock so that only one poller of a kind runs at once, even with many workers.

    The holder renews it every ttl/3 seconds from a thread: a holder that is killed
    frees it within ``ttl`` seconds, however long a poll may take."""
    import threading

    token = uuid.uuid4().hex
    k = key("lock", name)
    ms = int(ttl * 1000)
    got = bool(client().set(k, token, nx=True, px=ms))
    done = threading.Event()

    def renew() -> None:
        while not done.wait(ttl / 3):
            with suppress(redis.RedisError):
                client().eval(_EXTEND, 1, k, token, ms)

    if got:
        threading.Thread(target=renew, daemon=True, name=f"lock-{name}").start()
    try:
        yield got
    finally:
        done.set()
        if got:
            client().eval(
                "if redis.call('get', KEYS[1]) == ARGV[1] then "
                "return redis.call('del', KEYS[1]) end return 0",
                1,
                k,
                token,
            )


# --- a global cap on in-flight GitHub requests (a lease semaphore) ----------------------

_ACQUIRE = """
redis.call('zremrangebyscore', KEYS[1], '-inf', ARGV[1])
if redis.call('zcard', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('zadd', KEYS[1], ARGV[2], ARGV[4])
  return 1
end
return 0
"""


@contextmanager
def github_slot(limit: int | None = None, lease: float = 60.0) -> Iterator[None]:
    limit = limit or settings().github_concurrency
    k = key("github", "inflight")
    me = uuid.uuid4().hex
    while True:
        now = time.time()
        if client().eval(_ACQUIRE, 1, k, now, now + lease, limit, me):
            break
        time.sleep(0.05)
    try:
        yield
    finally:
        client().zrem(k, me)


# --- counters for `keysweep status` and the benchmark -----------------------------------


def count(name: str, n: int = 1) -> None:
    client().hincrby(key("stats"), name, n)


def count_many(
    names: dict[str, int], latencies: list[float] | None = None, kind: str = "fetch_to_revoke"
) -> None:
    """``count`` for several counters and ``record_latency`` for several latencies, in
    one round trip."""
    if not names and not latencies:
        return
    pipe = client().pipeline(transaction=False)
    for name, n in names.items():
        pipe.hincrby(key("stats"), name, n)
    if latencies:
        pipe.rpush(key("latency", kind), *(f"{s:.4f}" for s in latencies))
        pipe.ltrim(key("latency", kind), -100_000, -1)
    pipe.execute()


def counts() -> dict[str, int]:
    return {k: int(v) for k, v in client().hgetall(key("stats")).items()}


def record_latency(seconds: float, kind: str = "fetch_to_revoke") -> None:
    pipe = client().pipeline()
    pipe.rpush(key("latency", kind), f"{seconds:.4f}")
    pipe.ltrim(key("latency", kind), -100_000, -1)
    pipe.execute()


def latencies(kind: str = "fetch_to_revoke") -> list[float]:
    return [float(x) for x in client().lrange(key("latency", kind), 0, -1)]


# --- the key service's negative cache, shared by every worker ---------------------------


class RedisNegativeCache:
    """Hashes the key service does not know, remembered for a while (TTL)."""

    def __init__(self, ttl: int | None = None) -> None:
        self.ttl = ttl or settings().negative_cache_ttl

    def known_unknown(self, hashes: list[str]) -> set[str]:
        if not hashes:
            return set()
        flags = client().mget([key("neg", h) for h in hashes])
        return {h for h, f in zip(hashes, flags, strict=True) if f}

    def remember_unknown(self, hashes: Iterable[str]) -> None:
        pipe = client().pipeline()
        for h in hashes:
            pipe.set(key("neg", h), 1, ex=self.ttl)
        pipe.execute()


# 1: taken (every key); 0: a key is sent; -1: a key is pending for another holder.
_TAKE = """
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == false or v == ARGV[1] then
    redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
  elseif string.sub(v, 1, 2) == 'p:' then
    return -1
  else
    return 0
  end
end
return 1
"""
_CLAIM = {1: Claim.TAKEN, 0: Claim.SENT, -1: Claim.BUSY}
_GIVE_BACK = """
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
return 1
"""


class RedisDedup:
    """Who was already told what (alerts): two-step claims (``scanner.notify.dedup``).

    A pending claim holds ``p:<holder>`` for ``pending_ttl`` (half the ledger lease, so
    it has lapsed when the ledger redoes the work of a worker that died holding it);
    a sent one holds ``s`` for ``ttl``.

    Every call is idempotent (a claim is taken by a script that also accepts the
    holder's own value) and is retried, with redis-py's ``Retry``, through a Redis
    outage of up to one ledger lease (at most ``MAX_OUTAGE`` seconds, inside the alert
    task's time limit): a Redis restart between a delivery and its ``confirm`` must
    not leave the claim pending, or the redo would send it again.
    """

    RETRY_EVERY = 0.25  # seconds between attempts while Redis does not answer
    MAX_OUTAGE = 60.0  # seconds; send_alerts' soft time limit is 90 s

    def __init__(self, ttl: int = SENT_TTL, pending_ttl: float | None = None) -> None:
        self.ttl = ttl
        pending = pending_ttl or settings().ledger_lease / 2
        self.pending_ms = int(1000 * pending)
        self.outage = min(2 * pending, self.MAX_OUTAGE)
        self.retry = Retry(
            ConstantBackoff(self.RETRY_EVERY),
            retries=-1,  # bounded by time (``_call``), not by count: a stalled Redis
            # costs a socket timeout per attempt, a refused connection nothing
            supported_errors=(redis.ConnectionError, redis.TimeoutError),  # loading included
        )

    def _call(self, do: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.outage

        def give_up_after_the_outage(error: Exception) -> None:
            if time.monotonic() >= deadline:
                raise error

        return self.retry.call_with_retry(do, give_up_after_the_outage)

    def _take(self, keys: list[str], holder: str) -> Claim:
        if not keys:
            return Claim.TAKEN
        names = [key("notified", k) for k in keys]
        value = f"p:{holder}"
        got = self._call(lambda: client().eval(_TAKE, len(names), *names, value, self.pending_ms))
        return _CLAIM[int(got)]

    def claim(self, k: str, holder: str) -> Claim:
        return self._take([k], holder)

    def hold(self, keys: Iterable[str], holder: str) -> Claim:
        return self._take(list(keys), holder)

    def confirm(self, keys: Iterable[str]) -> None:
        names = [key("notified", k) for k in keys]

        def sent() -> None:
            pipe = client().pipeline(transaction=False)
            for name in names:
                pipe.set(name, "s", ex=self.ttl)
            pipe.execute()

        if names:
            self._call(sent)

    def release(self, keys: Iterable[str], holder: str) -> None:
        names = [key("notified", k) for k in keys]
        if names:
            self._call(lambda: client().eval(_GIVE_BACK, len(names), *names, f"p:{holder}"))


def dump_all() -> dict[str, Any]:
    """Every key and value under the prefix (tests look for planted keys in it)."""
    out: dict[str, Any] = {}
    r = client()
    for k in r.scan_iter(f"{settings().prefix}:*"):
        t = r.type(k)
        if t == "string":
            out[k] = r.get(k)
        elif t == "hash":
            out[k] = r.hgetall(k)
        elif t == "list":
            out[k] = r.lrange(k, 0, -1)
        elif t == "set":
            out[k] = sorted(r.smembers(k))
        elif t == "zset":
            out[k] = r.zrange(k, 0, -1, withscores=True)
    return out
