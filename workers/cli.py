"""``keysweep worker | beat | status | enqueue``: the service's commands.

Registered as ``keysweep.commands`` entry points, so the ``scanner`` CLI finds
them without importing this package (the library never depends on Celery).
"""

from __future__ import annotations

import argparse
import json
import sys
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
        "lock (celery-redbeat) lets only one beat schedule at a time, and a beat that dies "
        "is replaced within 5 s. The scheduler runs in a child process that is restarted "
        "whenever it exits (a Redis restart makes it exit), until this command is stopped.",
    )
    p.add_argument("--loglevel", "-l", default="INFO")
    p.add_argument(
        "--no-restart", action="store_true", help="exit when the scheduler exits (no restart)"
    )
    args = p.parse_args(argv)
    if args.no_restart:
        return _beat_child(args.loglevel)
    return supervise([sys.executable, "-m", "workers.cli", "beat-child", args.loglevel], "beat")


def _beat_child(loglevel: str) -> int:
    from workers.app import app
    from workers.logs import setup_logging

    setup_logging(loglevel)
    app.start(["beat", "-S", "redbeat.RedBeatScheduler", "-l", loglevel])
    return 0


def supervise(cmd: list[str], name: str, pause: float = 1.0) -> int:
    """Run ``cmd`` and start it again whenever it exits, until SIGTERM/SIGINT, which
    are passed on (the child then exits cleanly and, for beat, releases its lock)."""
    import signal
    import subprocess

    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    while not stopping:
        child = subprocess.Popen(cmd)
        code = child.wait()
        if not stopping:
            print(
                json.dumps({"level": "WARNING", "logger": "keysweep.supervise",
                            "msg": f"{name} exited with {code}; starting it again"}),
                file=sys.stderr,
                flush=True,
            )
            time.sleep(pause)
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code


def status(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="keysweep status", description="Queue depths, cursors, token budgets and counts."
    )
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep going: a line per revoked key (redacted) and a running summary (redrawn in "
        "place on a terminal, a line every 10 s elsewhere)",
    )
    p.add_argument(
        "--since",
        type=float,
        default=None,
        metavar="EPOCH",
        help="with --follow: revocations before this time (seconds since 1970) are marked "
        "'before', and the summary counts from it",
    )
    p.add_argument(
        "--honcho-pid", type=int, default=None, help=argparse.SUPPRESS
    )  # `make run`: stop when the stack stops
    args = p.parse_args(argv)
    from workers.status import collect

    if args.follow:
        return follow(args.since, args.honcho_pid)
    data = collect()
    if args.format == "json":
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    print("queues:   " + "  ".join(f"{q} {n}" for q, n in data["queues"].items()))
    led = data["ledger"]
    print(
        f"pending:  {led['pending']} piece(s) of work not yet done, {led['parked']} parked "
        f"(oldest {led['parked_oldest_age']:.0f}s: the key service is failing), "
        f"{led['dead']} set aside, {led['resent']} re-sent by the sweeper"
    )
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


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def follow(since: float | None = None, watch_pid: int | None = None) -> int:
    """Live lines for a person watching `make run`: each revocation (those from before
    ``since`` marked as such), and a summary of this run, redrawn in place on a terminal."""
    import sys
    from datetime import UTC, datetime

    from scanner.keyservice import KeyServiceClient
    from scanner.report.safe_text import printable
    from workers.settings import settings
    from workers.status import collect

    tty = sys.stdout.isatty()
    started = since if since is not None else time.time()
    start_iso = datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")
    start_iso = start_iso.replace("+00:00", "Z")  # as the audit events write it
    url, token = settings().keyservice()
    client = KeyServiceClient(url, token) if url and token else None
    seen: set[str] = set()
    first = True
    base: dict[str, int] | None = None
    status_line = ""
    last_summary = 0.0

    def say(line: str) -> None:
        if tty:
            sys.stdout.write("\r\x1b[K" + line + "\n" + status_line)
        else:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def describe(e: dict) -> str:  # type: ignore[type-arg]
        meta = e.get("metadata") or {}
        where = meta.get("source_url") or meta.get("path") or "?"
        return printable(f"revoked {e['target']}… ({e.get('org_id') or '-'}) found at {where}")

    try:
        while True:
            if not _alive(watch_pid):
                import os

                logs = os.path.join(os.environ.get("KEYSWEEP_RUN_DIR", ".run"), "logs")
                say(
                    "run: stopped; if you did not press Ctrl-C, a process failed: "
                    f"see {logs}/honcho.log and the process's own log there"
                )
                return 1
            if client is not None:
                try:
                    events = client.audit_events(action="api_key.revoked")
                except Exception as exc:  # the service may still be starting
                    if not first:
                        say(f"(key service not answering: {type(exc).__name__})")
                    events = None
                if events is not None:
                    fresh = [e for e in events if e["id"] not in seen]
                    seen.update(e["id"] for e in fresh)
                    before = [e for e in fresh if first and str(e.get("timestamp", "")) < start_iso]
                    if before:
                        say(
                            f"── {len(before)} key(s) revoked by earlier runs (the same key "
                            "service database); lines marked 'before' ──"
                        )
                        for e in before[-5:]:
                            say(f"before  {describe(e)}")
                        say("── this run ──")
                    for e in fresh:
                        if e not in before:
                            say(describe(e))
                    first = False
            now = time.time()
            try:
                counts = collect()["counts"]
            except Exception as exc:  # Redis restarting: say so, keep watching
                counts = None
                status_line = f"summary: (state not readable: {type(exc).__name__})"
            if counts is not None:
                if base is None:
                    base = dict(counts)

                def n(k: str, c: dict[str, int] = counts, b: dict[str, int] = base) -> int:
                    return int(c.get(k, 0)) - int(b.get(k, 0))

                alerts = sum(
                    int(v) - int((base or {}).get(k, 0))
                    for k, v in counts.items()
                    if k.startswith("alerts_sent")
                )
                status_line = (
                    f"summary: this run {int(now - started)}s: documents "
                    f"{n('documents_scanned')}, findings {n('findings')}, revoked "
                    f"{n('outcome_revoked')}, alerts {alerts}, github requests "
                    f"{n('github_requests')}"
                )
            if tty:
                sys.stdout.write("\r\x1b[K" + status_line)
                sys.stdout.flush()
            elif now - last_summary >= 10:
                last_summary = now
                say(status_line)
            time.sleep(1 if tty else 2)
    except KeyboardInterrupt:
        if tty:
            sys.stdout.write("\n")
        return 0


def enqueue(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="keysweep enqueue",
        description="Queue a full-history scan of a repository, or a scan of a gist.",
    )
    p.add_argument("kind", choices=("repo", "gist"))
    p.add_argument("target", help="repository URL (https://github.com/owner/repo) or gist id")
    args = p.parse_args(argv)
    from scanner.sources.remote import parse_remote
    from workers import ledger
    from workers.pollers import SCAN_BATCH, SCAN_REPO
    from workers.settings import settings

    s = settings()
    # Recorded in the pending-work ledger before it is sent, as the pollers' work is: a
    # message the broker loses, or a worker that dies holding it, is re-sent.
    if args.kind == "repo":
        remote = parse_remote(
            args.target, [*s.clone_hosts, *s.clone_http_hosts], http_hosts=s.clone_http_hosts
        )  # refuse a hostile URL here
        ledger.publish(ledger.track(SCAN_REPO, "fetch", {"url": remote.url, "reason": "manual"}))
        print(f"keysweep: queued a full-history scan of {remote.display}")
    else:
        if not args.target.isalnum():
            p.error("a gist id is letters and digits")
        docs = [{"kind": "gist", "gist_id": args.target}]
        ledger.publish(ledger.track(SCAN_BATCH, "fetch", {"docs": docs}))
        print(f"keysweep: queued gist {args.target}")
    return 0


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "beat-child":
    sys.exit(_beat_child(sys.argv[2]))
