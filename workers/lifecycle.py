"""Celery's signals wired to the ledger: a task that starts holds a lease, a task
that succeeds is done, a retry is expected back at its ETA, a failure is redone
(act work: parked). Every worker's main process and beat run the sweeper."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from celery import signals

from workers import ledger

log = logging.getLogger("keysweep.ledger")


def _safe(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception as exc:  # Redis restarting: the lease runs out and the sweeper redoes it
        log.warning("ledger %s failed: %r", getattr(fn, "__name__", fn), exc)


@signals.task_prerun.connect
def _started(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _safe(ledger.begin, task_id)


@signals.task_success.connect
def _succeeded(sender: Any = None, **_: Any) -> None:
    task_id = getattr(getattr(sender, "request", None), "id", None)
    if task_id:
        _safe(ledger.done, task_id)


@signals.task_retry.connect
def _retrying(request: Any = None, reason: Any = None, **_: Any) -> None:
    task_id = getattr(request, "id", None)
    if not task_id:
        return
    when = getattr(reason, "when", None)
    at = when.timestamp() if isinstance(when, datetime) else time.time() + float(when or 0)
    _safe(ledger.retry_at, task_id, at)


@signals.task_failure.connect
def _failed(
    task_id: str | None = None, exception: BaseException | None = None, sender: Any = None, **_: Any
) -> None:
    if not task_id:
        return
    queue = (
        (getattr(getattr(sender, "request", None), "delivery_info", None) or {}).get("routing_key")
    ) or ""
    _safe(
        ledger.failed,
        task_id,
        queue,
        f"{type(exception).__name__}: {exception}",
        transient_wait(exception),
    )


def transient_wait(exc: BaseException | None) -> float | None:
    """How long to wait before redoing work that failed on a transient error (a
    GitHub limit, GitHub or the network unavailable); None for any other error."""
    from scanner.errors import TransientError

    if isinstance(exc, TransientError):
        return float(exc.wait) if exc.wait is not None else ledger.timing().grace
    return None


@signals.task_postrun.connect
def _ended(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        ledger.end(task_id)


@signals.worker_ready.connect
def _worker_sweeper(**_: Any) -> None:
    ledger.run_sweeper()


@signals.beat_init.connect
def _beat_sweeper(**_: Any) -> None:
    ledger.run_sweeper()
