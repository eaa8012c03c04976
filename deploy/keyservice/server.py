#!/usr/bin/env python3
"""Run the reference key service on uvicorn.

    KEYSERVICE_TOKEN=... python deploy/keyservice/server.py \
        [--host 127.0.0.1] [--port 8080] [--db keyservice.sqlite3] [--port-file FILE]

``--port 0`` binds a free port. Once the server accepts connections it prints
``keyservice listening on http://HOST:PORT`` on stdout and, with ``--port-file``,
writes ``http://HOST:PORT`` to that file (atomically). Logs go to stderr; the
access log shows paths only, and anything shaped like a full key is cut down to
its display prefix before it is logged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import os
import socket
import sys
from pathlib import Path
from typing import Any

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from app import create_app, redact_keys

log = logging.getLogger("keyservice")


class RedactKeys(logging.Filter):
    """Redact full-key-shaped strings in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_keys(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_keys(a) if isinstance(a, str) else a for a in record.args)
        return True


def log_config() -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactKeys}},
        "formatters": {
            "default": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(asctime)s %(levelprefix)s %(message)s",
                "use_colors": False,
            },
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(asctime)s %(levelprefix)s %(client_addr)s "%(request_line)s" '
                "%(status_code)s",
                "use_colors": False,
            },
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "keyservice": {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
    }


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets of a
    # listener it knows is TCP; without it Nagle + delayed ACKs cost ~40 ms a request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def url_for(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_token(token_file: str | None) -> str | None:
    if token_file:
        token = Path(token_file).read_text(encoding="utf-8").strip()
    else:
        token = os.environ.get("KEYSERVICE_TOKEN", "").strip()
    return token or None


async def serve(server: uvicorn.Server, sock: socket.socket, port_file: str | None) -> None:
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task  # startup failed: surface the error / exit code
            return
        await asyncio.sleep(0.02)
    url = url_for(sock)
    if port_file:
        write_atomically(Path(port_file), url + "\n")
    print(f"keyservice listening on {url}", flush=True)
    await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="keysweep reference key service (v1 contract)")
    parser.add_argument("--host", default=os.environ.get("KEYSERVICE_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("KEYSERVICE_PORT", "8080")),
        help="TCP port; 0 picks a free one",
    )
    parser.add_argument(
        "--db", default=os.environ.get("KEYSERVICE_DB", "keyservice.sqlite3"),
        help="SQLite database file (created if missing)",
    )
    parser.add_argument("--port-file", help="write http://HOST:PORT here once listening")
    parser.add_argument(
        "--token-file", help="read the API token from this file instead of $KEYSERVICE_TOKEN"
    )
    args = parser.parse_args(argv)

    config_dict = log_config()
    logging.config.dictConfig(config_dict)
    token = read_token(args.token_file)
    if token is None:
        log.warning("no token configured (KEYSERVICE_TOKEN / --token-file): /v1 answers 503")

    Path(args.db).resolve().parent.mkdir(parents=True, exist_ok=True)
    app = create_app(args.db, token)
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        log.error("cannot listen on %s port %s: %s", args.host, args.port, exc)
        return 1
    config = uvicorn.Config(
        app,
        log_config=config_dict,
        access_log=True,
        proxy_headers=False,
        server_header=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    try:
        asyncio.run(serve(server, sock, args.port_file))
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
