"""Run the GitHub REST API simulator as a process.

    python -m tests.sim --host 127.0.0.1 --port 0 --port-file sim.url \\
        [--keyservice-url URL --keyservice-token TOKEN] [--seed N] [--rate DOCS_PER_SEC] \\
        [--poll-interval SECONDS] [--workdir DIR] [--access-log]

With ``--port 0`` a free port is bound. Once it accepts connections it prints
``github-sim listening on http://HOST:PORT`` and writes that URL to
``--port-file``. SIGTERM or Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import uvicorn

from tests.sim.app import Sim, create_app
from tests.sim.config import SimConfig
from tests.sim.model import Urls

log = logging.getLogger("github-sim")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets
    # whose proto says TCP, and without it Nagle + delayed ACK add ~40 ms per response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def url_for(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


async def serve(
    server: uvicorn.Server, sock: socket.socket, url: str, port_file: str | None
) -> None:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            return
        await asyncio.sleep(0.02)
    if port_file:
        write_atomically(Path(port_file), url + "\n")
    print(f"github-sim listening on {url}", flush=True)
    await task


def parser() -> argparse.ArgumentParser:
    d = SimConfig()
    p = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="TCP port; 0 binds a free one")
    p.add_argument("--port-file", help="write http://HOST:PORT here once listening")
    p.add_argument("--keyservice-url", help="reference key service used to mint mg_ keys")
    p.add_argument(
        "--keyservice-token",
        default=os.environ.get("KEYSERVICE_TOKEN"),
        help="its token (default: $KEYSERVICE_TOKEN)",
    )
    p.add_argument("--seed", type=int, help="seed for the generated documents (keys stay random)")
    p.add_argument("--rate", type=float, default=0.0, help="background documents per second")
    p.add_argument("--plant-every", type=int, default=0, help="plant in every Nth background doc")
    p.add_argument("--poll-interval", type=float, default=d.poll_interval, help="X-Poll-Interval")
    p.add_argument("--workdir", help="where bare git repositories go (default: a temp dir)")
    p.add_argument("--access-log", action="store_true", help="log every request to stderr")
    p.add_argument("--rate-limit", type=int, default=d.rate_limit, help="requests/hour/token")
    p.add_argument("--unauth-rate-limit", type=int, default=d.unauth_rate_limit)
    p.add_argument("--rate-window", type=float, default=d.rate_window, help="seconds")
    p.add_argument("--max-concurrent", type=int, default=d.max_concurrent)
    p.add_argument("--points-per-minute", type=int, default=d.points_per_minute)
    p.add_argument("--max-patch-bytes", type=int, default=d.max_patch_bytes)
    p.add_argument("--gist-truncate-bytes", type=int, default=d.gist_truncate_bytes)
    p.add_argument("--gist-clone-bytes", type=int, default=d.gist_clone_bytes)
    p.add_argument("--retain-docs", type=int, default=d.retain_docs)
    p.add_argument("--html-base", default="https://github.com", help="base of html_url links")
    p.add_argument(
        "--partner-url", help="send secret scanning partner alerts for planted mg_ keys here"
    )
    p.add_argument(
        "--partner-delay", type=float, default=0.0, help="seconds from a push to its alert"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = SimConfig(
        poll_interval=args.poll_interval,
        rate_limit=args.rate_limit,
        unauth_rate_limit=args.unauth_rate_limit,
        rate_window=args.rate_window,
        max_concurrent=args.max_concurrent,
        points_per_minute=args.points_per_minute,
        max_patch_bytes=args.max_patch_bytes,
        gist_truncate_bytes=args.gist_truncate_bytes,
        gist_clone_bytes=args.gist_clone_bytes,
        retain_docs=args.retain_docs,
        rate=args.rate,
        plant_every=args.plant_every,
    )
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        log.error("cannot listen on %s port %s: %s", args.host, args.port, exc)
        return 1
    url = url_for(sock)
    own_workdir = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="github-sim-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    sim = Sim(
        config,
        Urls(api=url, html=args.html_base.rstrip("/")),
        workdir,
        seed=args.seed,
        keyservice_url=args.keyservice_url,
        keyservice_token=args.keyservice_token,
    )
    sim.partner.config.url = args.partner_url
    sim.partner.config.delay = args.partner_delay
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(sim),
            access_log=args.access_log,
            log_level="info" if args.access_log else "warning",
            proxy_headers=False,
            server_header=False,
            date_header=True,
            lifespan="on",
            workers=1,
            timeout_keep_alive=30,
            backlog=1024,
        )
    )
    try:
        asyncio.run(serve(server, sock, url, args.port_file))
    finally:
        sock.close()
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
