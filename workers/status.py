"""What `keysweep status` shows: read from the broker and the state Redis."""

from __future__ import annotations

import statistics
from typing import Any

import redis

from workers import ledger, state
from workers.app import QUEUES
from workers.github import github
from workers.settings import settings


def queue_depths() -> dict[str, int]:
    from workers.app import BROKER

    if BROKER == "rabbitmq":
        return _rabbitmq_depths()
    broker = redis.Redis.from_url(settings().broker_url, socket_timeout=5)
    # kombu's Redis transport keeps each queue as a list named after it (plus
    # priority lists "<queue>\x06\x16<n>").
    out = {}
    for q in QUEUES:
        total = broker.llen(q)
        for k in broker.scan_iter(f"{q}\x06\x16*"):
            total += broker.llen(k)
        out[q] = int(total)
    return out


def _rabbitmq_depths() -> dict[str, int]:
    """Ready messages per queue (a passive declare: nothing is created)."""
    from kombu import Connection

    out = {}
    with Connection(settings().broker_url, connect_timeout=5) as conn:
        channel = conn.channel()
        for q in QUEUES:
            try:
                out[q] = int(channel.queue_declare(q, passive=True).message_count)
            except Exception:  # not declared yet: no worker has started on it
                channel = conn.channel()
                out[q] = 0
    return out


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def collect() -> dict[str, Any]:
    lat = state.latencies()
    return {
        "queues": queue_depths(),
        "cursors": {n: state.get_cursor(n) for n in ("events", "gists")},
        "tokens": github().pool.budgets(),
        "counts": state.counts(),
        "ledger": ledger.summary(),
        "latency": {
            "count": len(lat),
            "p50": percentile(lat, 50),
            "p95": percentile(lat, 95),
            "p99": percentile(lat, 99),
            "mean": statistics.fmean(lat) if lat else 0.0,
        },
    }
