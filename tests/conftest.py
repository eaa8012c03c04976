from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEYSWEEP = shutil.which("keysweep", path=os.path.dirname(sys.executable)) or "keysweep"


@pytest.fixture
def keysweep_bin() -> str:
    return KEYSWEEP


pytest_plugins = ["tests.keyservice_fixture"]


_own_redis: subprocess.Popen[bytes] | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs two), every worker but the first gets a
    Redis server of its own, so tests that flush their databases never meet."""
    global _own_redis
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or worker == "gw0" or "KEYSWEEP_TEST_REDIS_ADDR_SHARED" in os.environ:
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix=f"keysweep-test-redis-{worker}-")
    _own_redis = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    os.environ["KEYSWEEP_TEST_REDIS_ADDR"] = f"127.0.0.1:{port}"


def pytest_unconfigure(config: pytest.Config) -> None:
    if _own_redis is not None:
        _own_redis.terminate()
        _own_redis.wait(10)
