"""Start a test service as a real process and wait until it answers."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def spawn(cmd: Sequence[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """The process, its stdout and stderr into ``log_path``, run from the repository root."""
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(
            list(cmd),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )


def wait_until_healthy(
    proc: subprocess.Popen[bytes],
    port_file: Path,
    log_path: Path,
    *,
    health: str,
    name: str,
    error: type[Exception],
    timeout: float,
) -> str:
    """The URL the process wrote to ``port_file``, once ``URL + health`` answers 200.

    A process that dies, or is not healthy in time, raises ``error`` with its log."""
    deadline = time.monotonic() + timeout
    last_error = "no port file yet"
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            log = log_path.read_text(encoding="utf-8", errors="replace")
            raise error(f"{name} exited with code {code} during start-up:\n{log}")
        if port_file.exists():
            url = port_file.read_text(encoding="utf-8").strip()
            try:
                response = httpx.get(url + health, timeout=2.0)
                if response.status_code == 200:
                    return url
                last_error = f"{health} answered {response.status_code}"
            except httpx.HTTPError as exc:
                last_error = repr(exc)
        time.sleep(0.05)
    proc.kill()
    proc.wait(10)
    log = log_path.read_text(encoding="utf-8", errors="replace")
    raise error(f"{name} not healthy after {timeout:.0f}s ({last_error}); log:\n{log}")


class ServiceProcess:
    """A running test service: its process, URL and log."""

    def __init__(self, proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
        self.proc = proc
        self.url = url
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
