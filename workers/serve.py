"""``keysweep serve``: the partner-alert service, wired to the Celery act path.

The app lives in ``scanner.partner`` and knows nothing of Celery or Redis; this
command gives it ``workers.submit.submit_findings`` as its way into the act path
and a readiness check of Redis and the broker, then runs it on uvicorn.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from pathlib import Path

DEFAULT_PORT = 8080


def ready() -> dict[str, bool]:
    """Redis (worker state) and the broker both answer."""
    from workers import state
    from workers.app import app

    checks: dict[str, bool] = {}
    try:
        checks["redis"] = bool(state.client().ping())
    except Exception:
        checks["redis"] = False
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = True
    except Exception:
        checks["broker"] = False
    return checks


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def serve(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="keysweep serve",
        description="Receive leak reports pushed to us: GitHub secret scanning partner alerts "
        "(POST /github/secret-scanning) and GitLab's Token Revocation API (GET "
        "/v1/revocable_token_types, POST /v1/revoke_tokens). Reported keys join the same "
        "resolve -> revoke -> audit -> alert path as the crawler's. Also /healthz, /readyz "
        "(Redis and broker) and /metrics. Serve plain HTTP behind a TLS-terminating ingress.",
    )
    p.add_argument(
        "--host",
        help="address to bind (KEYSWEEP_SERVE_HOST; default 127.0.0.1, 0.0.0.0 in a container)",
    )
    p.add_argument(
        "--port",
        type=int,
        help=f"TCP port (KEYSWEEP_SERVE_PORT; default {DEFAULT_PORT}; 0 binds a free one)",
    )
    p.add_argument("--port-file", help="once listening, write http://HOST:PORT to this file")
    p.add_argument("--loglevel", "-l", default="INFO")
    args = p.parse_args(argv)

    # One process: its metrics are its own, never prometheus_client's multiprocess files.
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    import uvicorn

    from scanner.partner.app import create_app
    from scanner.partner.settings import serve_settings
    from scanner.scan import build_engine
    from workers.logs import setup_logging
    from workers.submit import submit_findings

    setup_logging(args.loglevel)
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per key-service call is noise
    settings = serve_settings()
    import workers.tasks  # noqa: F401  (load the Celery app now, not on the first alert)

    # Public content: a leaker's allow comment does not protect a live key.
    engine = build_engine(settings, honour_allow=False)
    app = create_app(settings, submit=submit_findings, engine=engine, ready=ready)
    where = args.host if args.host is not None else settings.serve_host
    sock = bind(where, args.port if args.port is not None else settings.serve_port)
    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level=args.loglevel.lower(),
        proxy_headers=True,
        # The client address of the rate limit comes from X-Forwarded-For only when
        # the connection is from a proxy listed here (your ingress).
        forwarded_allow_ips=settings.serve_forwarded_allow_ips,
        # Longer than a client's or load balancer's idle timeout: a reused connection is
        # never closed under a request that is on its way.
        timeout_keep_alive=75,
        limit_concurrency=1000,
        server_header=False,
    )
    server = uvicorn.Server(config)

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.02)
        if args.port_file:
            tmp = Path(args.port_file + ".tmp")
            tmp.write_text(url + "\n", encoding="utf-8")
            os.replace(tmp, args.port_file)
        print(f"keysweep serve listening on {url}", flush=True)
        await task

    asyncio.run(run())
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))
