"""The Celery application and its reliability settings, each chosen on purpose.

Queues by kind of work, so slow HTTP never starves revocation:

* ``poll``   - the event and gist pollers (short, one at a time)
* ``fetch``  - fetch a push, gist or repository and scan it in the same task
               (content never crosses the broker: only findings without secrets do)
* ``act``    - resolve hashes with the key service, revoke, audit
* ``notify`` - alerts to owners and the security team
"""

from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from workers.settings import settings

QUEUES = ("poll", "fetch", "act", "notify")


def broker_kind(url: str) -> str:
    """``redis`` or ``rabbitmq`` (amqp://, pyamqp://, amqps://), from the broker URL."""
    scheme = url.split("://", 1)[0].lower()
    return "rabbitmq" if scheme in ("amqp", "amqps", "pyamqp") else "redis"


def queues_for(kind: str) -> list[Queue]:
    """RabbitMQ: quorum queues (replicated, redelivered as soon as a consumer's
    connection drops) on topic exchanges, so Celery's native delayed delivery takes
    retries with a countdown instead of a worker holding them. Redis: plain lists."""
    if kind == "rabbitmq":
        return [
            Queue(
                q,
                Exchange(q, type="topic"),
                routing_key=q,
                queue_arguments={"x-queue-type": "quorum"},
            )
            for q in QUEUES
        ]
    return [Queue(q) for q in QUEUES]

# The longest a task may run (a full-history clone and scan) and the longest
# retry countdown; the broker's visibility timeout must exceed both, or Redis
# would hand a still-running or still-waiting task to a second worker.
HARD_LIMIT = 15 * 60
MAX_COUNTDOWN = 10 * 60
VISIBILITY_TIMEOUT = 2 * 3600
LOCK_TIMEOUT = 5

s = settings()
BROKER = broker_kind(s.broker_url)
app = Celery("keysweep", broker=s.broker_url, include=["workers.tasks", "workers.pollers"])
app.conf.update(
    # Acknowledge after the task ran, and give the message back if the worker
    # process dies mid-task (SIGKILL, OOM): nothing is lost. Tasks are idempotent,
    # so a redelivery changes nothing twice.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # One message at a time per process: long fetches must not hoard messages
    # that idle processes could run.
    worker_prefetch_multiplier=1,
    broker_transport_options=(
        # Publisher confirms: a send returns once RabbitMQ has the message.
        {"confirm_publish": True}
        if BROKER == "rabbitmq"
        else {"visibility_timeout": VISIBILITY_TIMEOUT, "queue_order_strategy": "priority"}
    ),
    broker_connection_retry_on_startup=True,
    broker_connection_max_retries=None,  # a worker waits out a broker restart, never gives up
    worker_cancel_long_running_tasks_on_connection_loss=True,
    # No result backend: results are never read, and an unread result is one more
    # place where data could linger.
    task_ignore_result=True,
    task_store_errors_even_if_ignored=False,
    # JSON only: a message is data, never code.
    task_serializer="json",
    accept_content=["json"],
    # A task that hangs is stopped: soft limit raises inside the task, hard limit kills.
    task_soft_time_limit=120,
    task_time_limit=180,
    task_default_queue="fetch",
    task_queues=queues_for(BROKER),
    task_routes={
        "workers.pollers.*": {"queue": "poll"},
        "workers.tasks.scan_*": {"queue": "fetch"},  # scan_batch, scan_repo
        "workers.tasks.resolve_and_act": {"queue": "act"},
        "workers.tasks.send_alerts": {"queue": "notify"},
    },
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    # The scheduler: one beat at a time, enforced by a Redis lock (celery-redbeat).
    # It ticks every second and each tick extends the lock to 5 s: a beat that dies
    # without releasing it is replaced within 5 s (one that exits cleanly releases it).
    redbeat_redis_url=s.redis_url,
    redbeat_key_prefix=f"{s.prefix}:redbeat",
    redbeat_lock_timeout=LOCK_TIMEOUT,
    beat_max_loop_interval=1.0,
    beat_schedule={
        "poll-events": {
            "task": "workers.pollers.poll_events",
            "schedule": s.poll_every,
            "options": {"expires": s.poll_every * 2},
        },
        "poll-gists": {
            "task": "workers.pollers.poll_gists",
            "schedule": s.poll_every,
            "options": {"expires": s.poll_every * 2},
        },
    },
)

import workers.lifecycle  # noqa: E402,F401  (the ledger's signal handlers)
