"""``keysweep worker | beat | status | enqueue``: the service's commands.

Registered as ``keysweep.commands`` entry points, so the ``scanner`` CLI finds
them without importing this package (the library never depends on Celery).
"""

from __future__ import annotations

import argparse
import json
import time

from workers.app import QUEUES


def prepare_multiproc_dir() -> None:
    """A fresh directory where every worker process writes its metric samples."""
    import os
    import shutil
    import tempfile

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="keysweep-metrics-")
        return
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)


def worker(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="keysweep worker",
        description="Run a Celery worker. Queues: poll (event and gist pollers), fetch (fetch "
        "and scan), act (key-service lookups, revocation, audit), notify (alerts). Run one "
        "worker per queue kind in production so slow HTTP never starves revocation.",
    )
    p.add_argument(
        "--queues",
        "-Q",
        default=",".join(QUEUES),
        help=f"comma-separated queues to consume (default: {','.join(QUEUES)})",
    )
    p.add_argument(
        "--concurrency", "-c", type=int, default=None, help="worker processes (default: CPU count)"
    )
    p.add_argument(
        "--pool",
        "-P",
        default="prefork",
        choices=("prefork", "threads", "solo"),
        help="prefork (default; CPU-bound work) or threads (I/O-bound fetches)",
    )
    p.add_argument("--loglevel", "-l", default="INFO")
    p.add_argument("--hostname", "-n", default=None)
    args = p.parse_args(argv)
    unknown = set(args.queues.split(",")) - set(QUEUES)
    if unknown:
        p.error(f"unknown queue(s): {', '.join(sorted(unknown))}")
    prepare_multiproc_dir()  # before prometheus_client is imported by the tasks
    from workers.app import app
    from workers.logs import setup_logging

    setup_logging(args.loglevel)
    cmd = [
        "worker",
        "-Q",
        args.queues,
        "-l",
        args.loglevel,
        "-P",
        args.pool,
        "--without-gossip",
        "--without-mingle",
    ]
    if args.concurrency:
        cmd += ["-c", str(args.concurrency)]
    if args.hostname:
        cmd += ["-n", args.hostname]
    app.worker_main(cmd)
    return 0


def beat(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="keysweep beat",
        description="Run the scheduler that drives the pollers. Safe to run twice: a Redis "
        "lock (celery-redbeat) lets only one beat schedule at a time.",
    )
    p.add_argument("--loglevel", "-l", default="INFO")
    args = p.parse_args(argv)
    from workers.app import app
    from workers.logs import setup_logging

    setup_logging(args.loglevel)
    app.start(["beat", "-S", "redbeat.RedBeatScheduler", "-l", args.loglevel])
    return 0


def status(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="keysweep status", description="Queue depths, cursors, token budgets and counts."
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep going: a line per revoked key (redacted), a summary every 10 s",
    )
    args = p.parse_args(argv)
    from workers.status import collect

    if args.follow:
        return follow()
    data = collect()
    if args.format == "json":
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    print("queues:   " + "  ".join(f"{q} {n}" for q, n in data["queues"].items()))
    for name, cur in data["cursors"].items():
        nxt = float(cur.get("next_at", 0)) - time.time()
        print(
            f"cursor:   {name}: next poll in {max(0, nxt):.0f}s "
            f"(interval {cur.get('interval', '-')}s, since {cur.get('since', '-')})"
        )
    for i, b in enumerate(data["tokens"]):
        print(
            f"token {i}:  {b.get('remaining', '?')}/{b.get('limit', '?')} left, "
            f"resets {b.get('reset', '?')}"
        )
    c = data["counts"]
    print(
        f"counts:   documents {c.get('documents_scanned', 0)} "
        f"(passed over: {c.get('documents_failed', 0)}), findings {c.get('findings', 0)}, "
        f"revoked {c.get('outcome_revoked', 0)}, already revoked "
        f"{c.get('outcome_already_revoked', 0)}, github requests {c.get('github_requests', 0)}"
    )
    if data["latency"]["count"]:
        lat = data["latency"]
        print(
            f"latency:  fetch→revoke p50 {lat['p50']:.2f}s p95 {lat['p95']:.2f}s "
            f"p99 {lat['p99']:.2f}s over {lat['count']}"
        )
    return 0


def follow() -> int:
    """Live lines for a person watching `make run`: each revocation, then a running summary."""
    from scanner.keyservice import KeyServiceClient
    from workers.settings import settings
    from workers.status import collect

    url, token = settings().keyservice()
    client = KeyServiceClient(url, token) if url and token else None
    seen: set[str] = set()
    last_summary = 0.0
    while True:
        if client is not None:
            try:
                for e in client.audit_events(action="api_key.revoked"):
                    if e["id"] in seen:
                        continue
                    seen.add(e["id"])
                    meta = e.get("metadata") or {}
                    print(
                        f"revoked {e['target']}… ({e.get('org_id') or '-'}) found at "
                        f"{meta.get('source_url') or meta.get('path')}",
                        flush=True,
                    )
            except Exception as exc:  # the service may still be starting
                print(f"(key service not answering: {type(exc).__name__})", flush=True)
        if time.time() - last_summary >= 10:
            last_summary = time.time()
            c = collect()["counts"]
            print(
                f"summary: documents {c.get('documents_scanned', 0)}, findings "
                f"{c.get('findings', 0)}, revoked {c.get('outcome_revoked', 0)}, "
                f"alerts {sum(v for k, v in c.items() if k.startswith('alerts_sent'))}, "
                f"github requests {c.get('github_requests', 0)}",
                flush=True,
            )
        time.sleep(2)


def enqueue(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="keysweep enqueue",
        description="Queue a full-history scan of a repository, or a scan of a gist.",
    )
    p.add_argument("kind", choices=("repo", "gist"))
    p.add_argument("target", help="repository URL (https://github.com/owner/repo) or gist id")
    args = p.parse_args(argv)
    from scanner.sources.remote import parse_remote
    from workers.settings import settings
    from workers.tasks import scan_batch, scan_repo

    s = settings()
    if args.kind == "repo":
        remote = parse_remote(
            args.target, [*s.clone_hosts, *s.clone_http_hosts], http_hosts=s.clone_http_hosts
        )  # refuse a hostile URL here
        scan_repo.delay(url=remote.url, reason="manual")
        print(f"keysweep: queued a full-history scan of {remote.display}")
    else:
        if not args.target.isalnum():
            p.error("a gist id is letters and digits")
        scan_batch.delay(docs=[{"kind": "gist", "gist_id": args.target}])
        print(f"keysweep: queued gist {args.target}")
    return 0
