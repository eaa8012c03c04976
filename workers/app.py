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
from kombu import Queue

from workers.settings import settings

QUEUES = ("poll", "fetch", "act", "notify")

# The longest a task may run (a full-history clone and scan) and the longest
# retry countdown; the broker's visibility timeout must exceed both, or Redis
# would hand a still-running or still-waiting task to a second worker.
HARD_LIMIT = 15 * 60
MAX_COUNTDOWN = 10 * 60
VISIBILITY_TIMEOUT = 2 * 3600

s = settings()
app = Celery("keysweep", broker=s.broker_url, include=["workers.tasks"])
app.conf.update(
    # Acknowledge after the task ran, and give the message back if the worker
    # process dies mid-task (SIGKILL, OOM): nothing is lost. Tasks are idempotent,
    # so a redelivery changes nothing twice.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # One message at a time per process: long fetches must not hoard messages
    # that idle processes could run.
    worker_prefetch_multiplier=1,
    broker_transport_options={
        "visibility_timeout": VISIBILITY_TIMEOUT,
        "queue_order_strategy": "priority",
    },
    broker_connection_retry_on_startup=True,
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
    task_queues=[Queue(q) for q in QUEUES],
    task_routes={
        "workers.tasks.poll_*": {"queue": "poll"},
        "workers.tasks.scan_*": {"queue": "fetch"},  # scan_batch, scan_repo
        "workers.tasks.resolve_and_act": {"queue": "act"},
        "workers.tasks.send_alerts": {"queue": "notify"},
    },
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    # The scheduler: one beat at a time, enforced by a Redis lock (celery-redbeat).
    redbeat_redis_url=s.redis_url,
    redbeat_key_prefix=f"{s.prefix}:redbeat",
    redbeat_lock_timeout=max(30, int(s.poll_every * 6)),
    beat_max_loop_interval=max(1.0, s.poll_every),
    beat_schedule={
        "poll-events": {
            "task": "workers.tasks.poll_events",
            "schedule": s.poll_every,
            "options": {"expires": s.poll_every * 2},
        },
        "poll-gists": {
            "task": "workers.tasks.poll_gists",
            "schedule": s.poll_every,
            "options": {"expires": s.poll_every * 2},
        },
    },
)
