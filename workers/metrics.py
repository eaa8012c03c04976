"""Prometheus metrics from every worker process (prometheus_client multiprocess mode).

Each prefork child writes its samples to ``PROMETHEUS_MULTIPROC_DIR``; the
worker's main process serves them all on ``KEYSWEEP_METRICS_PORT`` (default
9808, ``0`` = off) at ``/metrics``. Labels are rule ids, owner kinds, results,
channels, queue names and token *indexes*: never a secret, a hash, a token or
a repository name.

The worker also touches a heartbeat file (``KEYSWEEP_HEARTBEAT_FILE``) on every
task and every 10 s: a liveness probe checks its age, which costs nothing,
unlike ``celery inspect ping`` on every probe.
"""

from __future__ import annotations

import contextlib
import threading
import time

from prometheus_client import Counter, Gauge, Histogram

from workers.settings import settings

EVENTS_POLLED = Counter("keysweep_events_polled", "GitHub events seen by the poller")
GISTS_POLLED = Counter("keysweep_gists_polled", "Public gist versions seen by the poller")
DOCUMENTS = Counter("keysweep_documents_fetched", "Documents fetched and scanned", ["kind"])
BYTES = Counter("keysweep_bytes_scanned", "Bytes scanned by the engine")
FINDINGS = Counter("keysweep_findings", "Findings", ["rule", "owner"])
LOOKUPS = Counter("keysweep_keyservice_lookups", "Hashes looked up in the key service")
REVOCATIONS = Counter("keysweep_revocations", "Outcomes of acting on our keys", ["result"])
ALERTS = Counter("keysweep_alerts", "Alert deliveries", ["channel", "result"])
KEYSERVICE_SECONDS = Histogram(
    "keysweep_keyservice_seconds",
    "Key-service call latency",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
GITHUB_SECONDS = Histogram(
    "keysweep_github_seconds",
    "GitHub request latency",
    ["status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
GITHUB_ERRORS = Counter("keysweep_github_errors", "GitHub errors and limits", ["kind"])
GITHUB_BUDGET = Gauge(
    "keysweep_github_budget_remaining",
    "Requests left per token (by index)",
    ["token_index"],
    multiprocess_mode="mostrecent",
)
PUSH_TO_REVOKE = Histogram(
    "keysweep_push_to_revoke_seconds",
    "Seconds from a document's publication to its key's revocation",
    buckets=(1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
FETCH_TO_REVOKE = Histogram(
    "keysweep_fetch_to_revoke_seconds",
    "Seconds from fetching a document to revoking its key",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)


def touch_heartbeat() -> None:
    with contextlib.suppress(OSError):
        settings().heartbeat_file.touch()


def start_exporter() -> None:
    """In the worker's main process: serve every child's samples, plus queue depths."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server
    from prometheus_client.core import GaugeMetricFamily

    port = settings().metrics_port

    def beat() -> None:
        while True:
            touch_heartbeat()
            time.sleep(10)

    threading.Thread(target=beat, daemon=True, name="keysweep-heartbeat").start()
    if port == 0:
        return

    class QueueDepth:
        def collect(self):  # type: ignore[no-untyped-def]
            from workers.status import queue_depths

            g = GaugeMetricFamily(
                "keysweep_queue_depth", "Messages waiting per queue", labels=["queue"]
            )
            try:
                for q, n in queue_depths().items():
                    g.add_metric([q], n)
            except Exception:  # the broker is down: say nothing rather than fail the scrape
                return
            yield g

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(QueueDepth())
    start_http_server(port, registry=registry)


def process_exited(pid: int) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
