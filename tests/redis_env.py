"""Where the tests' Redis is: 127.0.0.1:6379 unless KEYSWEEP_TEST_REDIS_ADDR says
otherwise (``host:port``), so two checkouts can run their suites side by side
against two Redis servers without flushing each other's databases."""

from __future__ import annotations

import os

import redis

ADDR = os.environ.get("KEYSWEEP_TEST_REDIS_ADDR", "127.0.0.1:6379")
HOST, _, _port = ADDR.rpartition(":")
PORT = int(_port)


def url(db: int) -> str:
    return f"redis://{ADDR}/{db}"


def connect(db: int, **kw: object) -> redis.Redis:
    return redis.Redis(host=HOST, port=PORT, db=db, **kw)  # type: ignore[arg-type]
