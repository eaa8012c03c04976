"""Run `keysweep serve` as a real process on loopback for a test or the benchmark."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import KEYSWEEP
from tests.procs import ServiceProcess, spawn, wait_until_healthy

GITHUB_PATH = "/github/secret-scanning"


class ServeError(RuntimeError):
    pass


class Serve(ServiceProcess):
    @property
    def alerts_url(self) -> str:
        return self.url + GITHUB_PATH

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=10).text


@contextlib.contextmanager
def start_serve(tmp_path: Path, env: dict[str, str], *, name: str = "serve") -> Iterator[Serve]:
    """``keysweep serve --port 0 --port-file`` with ``env``; waits for /healthz."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    log_path = tmp_path / f"{name}.log"
    port_file = tmp_path / f"{name}.url"
    port_file.unlink(missing_ok=True)
    cmd = [KEYSWEEP, "serve", "--port-file", str(port_file)]
    where = {"KEYSWEEP_SERVE_HOST": "127.0.0.1", "KEYSWEEP_SERVE_PORT": "0"}
    proc = spawn(cmd, {**os.environ, **where, **env, "PYTHONUNBUFFERED": "1"}, log_path)
    serve: Serve | None = None
    try:
        url = wait_until_healthy(
            proc, port_file, log_path, health="/healthz", name=name, error=ServeError, timeout=30
        )
        serve = Serve(proc, url, log_path)
        yield serve
    finally:
        if serve is not None:
            serve.stop()
        elif proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
