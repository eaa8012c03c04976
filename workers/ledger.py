"""The pending-work ledger: every claimed document and every finding handed to the
act path is tracked in Redis from claim to done, independently of the broker.

A piece of work is one Celery task message: its task name, queue and keyword
arguments (ids, hashes, redacted forms and locations; never a secret or file
content). Its ledger id is the Celery task id, so a retry or a redelivery of the
same message is the same piece of work.

* ``claim_and_track``: a poller's dedupe marks (SET NX) and the ledger entries of
  the work they create are written in ONE Lua script: an event is never marked
  seen without its work being on record.
* ``track``: the same for work that has no dedupe mark (findings, alerts).
* A task that starts holds a lease that a thread in its process renews; done
  (success, or a permanent error recorded) deletes the entry.
* The sweeper (``sweep``, run by every worker and beat process, at most once per
  interval across them) re-sends what is overdue: a message lost by the broker,
  a worker SIGKILLed mid-task, a Redis restart that dropped a command's reply.
* Act work that fails (key service down) is **parked**, never dropped: the sweeper
  lets one parked piece through as a probe, with a backoff capped at
  ``KEYSWEEP_PARK_PROBE_MAX`` seconds, and releases every parked piece as soon
  as a probe succeeds.

A redo is harmless: dedupe marks, idempotency keys on every key-service write and
alert claims keep each effect exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from workers import state

log = logging.getLogger("keysweep.ledger")


@dataclass(frozen=True)
class Timing:
    lease: float = 30.0  # a running task renews every lease/3; dead after `lease`
    grace: float = 60.0  # a queued message not started after this is re-sent
    sweep_every: float = 2.0
    probe_max: float = 60.0  # longest wait between two probes of a parked act path
    max_attempts: int = 6  # failures of non-act work before it is set aside as dead

    @classmethod
    def from_settings(cls) -> Timing:
        s = state.settings()
        return cls(
            lease=s.ledger_lease,
            grace=s.ledger_grace,
            sweep_every=s.sweep_every,
            probe_max=s.park_probe_max,
        )


_timing: Timing | None = None


def timing() -> Timing:
    global _timing
    if _timing is None:
        _timing = Timing.from_settings()
    return _timing


def k(*parts: str) -> str:
    return state.key("ledger", *parts)


# --- writing work down ------------------------------------------------------------------

# KEYS: due zset. ARGV: now, deadline, item key prefix, seen ttl, json spec.
# spec = {"claims": [{"seen": key, "task": t|null, "queue": q, "kw": json, "group": bool}],
#         "batch": n, "ids": [...]}
_CLAIM_AND_TRACK = """
local now, deadline, pfx, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local spec = cjson.decode(ARGV[5])
local out, groups, idn, fresh_flags = {}, {}, 0, {}
local function new_id()
  idn = idn + 1
  return spec.ids[idn]
end
local function put(task, queue, kwargs_json, kind)
  local id = new_id()
  redis.call('hset', pfx .. id, 'task', task, 'queue', queue, 'kwargs', kwargs_json,
             'kind', kind, 'created', now, 'state', 'queued', 'attempts', 0)
  redis.call('zadd', KEYS[1], deadline, id)
  table.insert(out, {id, task, queue, kwargs_json})
end
for _, c in ipairs(spec.claims) do
  local fresh = true
  if c.seen and c.seen ~= cjson.null then
    fresh = redis.call('set', c.seen, now, 'NX', 'EX', ttl)
  end
  table.insert(fresh_flags, fresh and 1 or 0)
  if fresh and c.task and c.task ~= cjson.null then
    if c.group then
      local g = groups[c.task]
      if g == nil then g = {task = c.task, queue = c.queue, docs = {}}; groups[c.task] = g end
      table.insert(g.docs, cjson.decode(c.kw))
      if #g.docs >= spec.batch then
        put(g.task, g.queue, cjson.encode({docs = g.docs}), c.queue)
        groups[c.task] = nil
      end
    else
      put(c.task, c.queue, c.kw, c.queue)
    end
  end
end
for _, g in pairs(groups) do
  put(g.task, g.queue, cjson.encode({docs = g.docs}), g.queue)
end
return cjson.encode({out, fresh_flags})
"""


@dataclass(frozen=True)
class Work:
    id: str
    task: str
    queue: str
    kwargs: dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """A dedupe mark to set, and the work it creates when it is new."""

    seen: str | None
    task: str | None = None
    queue: str = "fetch"
    kwargs: dict[str, Any] | None = None
    group: bool = False  # batched into {"docs": [...]} with others of the same task


def claim_and_track(claims: list[Claim], batch: int = 10, ttl: int | None = None) -> list[Work]:
    """Set every dedupe mark and record the work of the new ones, in one atomic step."""
    return claim_and_track_flags(claims, batch, ttl)[0]


def claim_and_track_flags(
    claims: list[Claim], batch: int = 10, ttl: int | None = None
) -> tuple[list[Work], list[bool]]:
    """``claim_and_track``, and for each claim whether its mark was new."""
    if not claims:
        return [], []
    spec = {
        "claims": [
            {
                "seen": c.seen,
                "task": c.task,
                "queue": c.queue,
                "kw": json.dumps(c.kwargs or {}),
                "group": c.group,
            }
            for c in claims
        ],
        "batch": batch,
        "ids": [uuid.uuid4().hex for _ in claims],
    }
    now = time.time()
    raw = state.client().eval(
        _CLAIM_AND_TRACK,
        1,
        k("due"),
        f"{now:.3f}",
        now + timing().grace,
        k("item", ""),
        ttl or state.settings().dedupe_ttl,
        json.dumps(spec),
    )
    works, fresh = json.loads(raw)
    return (
        [Work(i, t, q, json.loads(kw)) for i, t, q, kw in works or []],
        [bool(f) for f in fresh or []],
    )


def track(task: str, queue: str, kwargs: dict[str, Any]) -> Work:
    """Record one piece of work that has no dedupe mark (findings, alerts)."""
    return claim_and_track([Claim(None, task, queue, kwargs)])[0]


def publish(work: Work) -> bool:
    """Send the work's message; a broker failure is logged, and the sweeper re-sends it."""
    from workers.app import app

    try:
        app.send_task(work.task, kwargs=work.kwargs, task_id=work.id, queue=work.queue)
        return True
    except Exception as exc:  # the broker is down or restarting: the ledger keeps it
        log.warning("publish failed, the sweeper will re-send work=%s error=%r", work.id, exc)
        return False


def publish_all(works: list[Work]) -> int:
    return sum(publish(w) for w in works)


# --- the life of a running task -----------------------------------------------------------

_BEGIN = """
if redis.call('exists', KEYS[2]) == 0 then return 0 end
redis.call('hset', KEYS[2], 'state', 'running', 'started', ARGV[2])
redis.call('hincrby', KEYS[2], 'attempts', 1)
redis.call('zrem', KEYS[3], ARGV[3])
redis.call('zadd', KEYS[1], ARGV[1], ARGV[3])
return 1
"""


class _Leases:
    """One thread per process renews the leases of the tasks running in it."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.pid = 0

    def add(self, ident: str) -> None:
        with self.lock:
            self.ids.add(ident)
            if self.thread is None or self.pid != os.getpid() or not self.thread.is_alive():
                self.pid = os.getpid()
                self.thread = threading.Thread(target=self.run, daemon=True, name="ledger-lease")
                self.thread.start()

    def remove(self, ident: str) -> None:
        with self.lock:
            self.ids.discard(ident)

    def run(self) -> None:
        while True:
            time.sleep(max(0.2, timing().lease / 3))
            with self.lock:
                ids = list(self.ids)
            if not ids:
                continue
            try:
                deadline = time.time() + timing().lease
                pipe = state.client().pipeline(transaction=False)
                for i in ids:
                    pipe.zadd(k("due"), {i: deadline}, xx=True)
                pipe.execute()
            except Exception as exc:  # Redis restarting: the next round renews
                log.warning("lease renewal failed: %r", exc)


LEASES = _Leases()


def begin(ident: str) -> bool:
    """A task starts: hold the lease. False when the work is already done."""
    now = time.time()
    got = state.client().eval(
        _BEGIN, 3, k("due"), k("item", ident), k("parked"), now + timing().lease, now, ident
    )
    if got:
        LEASES.add(ident)
    return bool(got)


def end(ident: str) -> None:
    LEASES.remove(ident)


def done(ident: str) -> None:
    LEASES.remove(ident)
    r = state.client()
    was_parked = r.hget(k("item", ident), "parked")
    pipe = r.pipeline(transaction=True)
    pipe.zrem(k("due"), ident)
    pipe.zrem(k("parked"), ident)
    pipe.delete(k("item", ident))
    pipe.hincrby(k("stats"), "done", 1)
    if was_parked:  # a parked piece went through: the act path works again
        pipe.set(k("act_ok"), "1")
        pipe.delete(k("probe"))
    pipe.execute()


def retry_at(ident: str, when: float) -> None:
    """Celery retries this message at ``when``: expect it to start by then."""
    LEASES.remove(ident)
    r = state.client()
    pipe = r.pipeline(transaction=True)
    pipe.hset(k("item", ident), "state", "retrying")
    pipe.zadd(k("due"), {ident: when + timing().grace}, xx=True)
    pipe.execute()


def park(ident: str, reason: str) -> None:
    """Act work the key service could not take: kept until a probe shows it is back."""
    LEASES.remove(ident)
    r = state.client()
    if not r.exists(k("item", ident)):
        return
    pipe = r.pipeline(transaction=True)
    pipe.zrem(k("due"), ident)
    pipe.zadd(k("parked"), {ident: time.time()}, nx=True)
    pipe.hset(k("item", ident), mapping={"state": "parked", "parked": "1", "why": reason[:200]})
    pipe.delete(k("act_ok"))
    pipe.execute()


def failed(ident: str, queue: str, reason: str, retry_in: float | None = None) -> None:
    """A task failed for good, as far as Celery is concerned.

    * ``retry_in`` (a transient error: a GitHub limit to wait out, GitHub or the
      network unavailable): redone after that wait, however often; never set aside.
    * Act work: parked (see ``park``).
    * Anything else: redone with a backoff and, after ``max_attempts`` such failures,
      set aside as dead (counted in ``keysweep_dead_work``, logged, never silent)."""
    r = state.client()
    queue = r.hget(k("item", ident), "queue") or queue
    if retry_in is not None:
        LEASES.remove(ident)
        pipe = r.pipeline(transaction=True)
        pipe.zadd(k("due"), {ident: time.time() + max(0.5, retry_in)}, xx=True)
        pipe.hset(k("item", ident), "state", "waiting")
        pipe.execute()
        return
    if queue == "act":
        park(ident, reason)
        return
    LEASES.remove(ident)
    failures = int(r.hincrby(k("item", ident), "failures", 1)) if r.exists(k("item", ident)) else 0
    if failures >= timing().max_attempts:
        pipe = r.pipeline(transaction=True)
        pipe.zrem(k("due"), ident)
        pipe.zadd(k("dead"), {ident: time.time()})
        pipe.hset(k("item", ident), mapping={"state": "dead", "why": reason[:200]})
        pipe.hincrby(k("stats"), "dead", 1)
        pipe.execute()
        log.error("work set aside after %d failures work=%s error=%s", failures, ident, reason)
        return
    backoff = min(600.0, timing().grace * 2 ** max(0, failures - 1))
    r.zadd(k("due"), {ident: time.time() + backoff}, xx=True)


# --- the sweeper ---------------------------------------------------------------------------

# KEYS: due, item prefix(as KEYS[2] for the stats). ARGV: now, grace, limit, item prefix
_SWEEP = """
local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, id in ipairs(due) do
  local item = ARGV[4] .. id
  local h = redis.call('hmget', item, 'task', 'queue', 'kwargs', 'resent')
  if h[1] then
    local n = tonumber(h[4] or '0')
    local wait = tonumber(ARGV[2]) * math.pow(2, math.min(n, 4))
    redis.call('zadd', KEYS[1], tonumber(ARGV[1]) + wait, id)
    redis.call('hset', item, 'resent', n + 1, 'state', 'queued')
    table.insert(out, {id, h[1], h[2], h[3]})
  else
    redis.call('zrem', KEYS[1], id)
  end
end
if #out > 0 then redis.call('hincrby', KEYS[2], 'resent', #out) end
return cjson.encode(out)
"""

# KEYS: parked, due, probe, act_ok, stats. ARGV: now, grace, probe_max, item prefix.
# Releases every parked piece after a success, else one probe when it is time.
_UNPARK = """
local ids = {}
if redis.call('exists', KEYS[4]) == 1 then
  ids = redis.call('zrange', KEYS[1], 0, 999)
  if #ids == 0 then redis.call('del', KEYS[4]) end
else
  local nxt = tonumber(redis.call('hget', KEYS[3], 'next') or '0')
  if tonumber(ARGV[1]) < nxt then return cjson.encode({}) end
  ids = redis.call('zrange', KEYS[1], 0, 0)
  if #ids == 0 then return cjson.encode({}) end
  local backoff = tonumber(redis.call('hget', KEYS[3], 'backoff') or '1')
  redis.call('hset', KEYS[3], 'next', tonumber(ARGV[1]) + backoff,
             'backoff', math.min(backoff * 2, tonumber(ARGV[3])), 'probe', ids[1])
  redis.call('hincrby', KEYS[5], 'probes', 1)
end
local out = {}
for _, id in ipairs(ids) do
  local item = ARGV[4] .. id
  local h = redis.call('hmget', item, 'task', 'queue', 'kwargs')
  redis.call('zrem', KEYS[1], id)
  if h[1] then
    redis.call('hset', item, 'state', 'queued')
    redis.call('zadd', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[2]), id)
    table.insert(out, {id, h[1], h[2], h[3]})
  end
end
return cjson.encode(out)
"""


def due_work(now: float | None = None, limit: int = 500) -> list[Work]:
    """Claim what is overdue (its deadline moves on, so one sweeper re-sends it)."""
    now = time.time() if now is None else now
    raw = state.client().eval(
        _SWEEP, 2, k("due"), k("stats"), now, timing().grace, limit, k("item", "")
    )
    out = [Work(i, t, q, json.loads(kw)) for i, t, q, kw in json.loads(raw or "[]")]
    raw = state.client().eval(
        _UNPARK,
        5,
        k("parked"),
        k("due"),
        k("probe"),
        k("act_ok"),
        k("stats"),
        now,
        timing().grace,
        timing().probe_max,
        k("item", ""),
    )
    return out + [Work(i, t, q, json.loads(kw)) for i, t, q, kw in json.loads(raw or "[]")]


def sweep_once() -> int:
    """Re-send what is overdue and let parked act work through; at most once per
    interval across every process that runs a sweeper."""
    r = state.client()
    if not r.set(k("sweeping"), os.getpid(), nx=True, px=int(timing().sweep_every * 1000)):
        return 0
    works = due_work()
    if works:
        log.info("sweeper re-sends %d piece(s) of work", len(works))
    return publish_all(works)


def run_sweeper(stop: threading.Event | None = None) -> threading.Thread:
    """A daemon thread that sweeps every ``sweep_every`` seconds until ``stop``."""
    stop = stop or threading.Event()

    def loop() -> None:
        while not stop.wait(timing().sweep_every):
            try:
                sweep_once()
            except Exception as exc:  # Redis or the broker restarting: next round
                log.warning("sweep failed: %r", exc)

    t = threading.Thread(target=loop, daemon=True, name="ledger-sweeper")
    t.start()
    return t


# --- what it holds ---------------------------------------------------------------------------


def summary(now: float | None = None) -> dict[str, Any]:
    """Counts and ages for `keysweep status` and the metrics."""
    now = time.time() if now is None else now
    r = state.client()
    pipe = r.pipeline(transaction=False)
    pipe.zcard(k("due"))
    pipe.zrange(k("parked"), 0, 0, withscores=True)
    pipe.zcard(k("parked"))
    pipe.zcard(k("dead"))
    pipe.hgetall(k("stats"))
    pending, oldest_parked, parked, dead, stats = pipe.execute()
    return {
        "pending": int(pending),
        "parked": int(parked),
        "parked_oldest_age": (now - oldest_parked[0][1]) if oldest_parked else 0.0,
        "dead": int(dead),
        "resent": int(stats.get("resent", 0)),
        "done": int(stats.get("done", 0)),
    }


def oldest_pending_age(now: float | None = None) -> float:
    """Age of the oldest piece of work not yet done (parked included)."""
    now = time.time() if now is None else now
    r = state.client()
    ids = [*r.zrange(k("due"), 0, -1), *r.zrange(k("parked"), 0, -1)]
    if not ids:
        return 0.0
    pipe = r.pipeline(transaction=False)
    for i in ids[:5000]:
        pipe.hget(k("item", i), "created")
    created = [float(c) for c in pipe.execute() if c]
    return now - min(created) if created else 0.0
