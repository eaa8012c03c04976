"""Start the background deployment for a test: `keysweep worker` and `keysweep beat`
as real processes against the local Redis, pointed at a simulator and a key service."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests import redis_env
from tests.conftest import KEYSWEEP

BROKER_DB = int(os.environ.get("KEYSWEEP_TEST_BROKER_DB", "13"))
STATE_DB = int(os.environ.get("KEYSWEEP_TEST_STATE_DB", "12"))


@dataclass
class Deployment:
    env: dict[str, str]
    logs: dict[str, Path] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = self.logs.setdefault(name, Path(self.env["KEYSWEEP_TEST_LOGDIR"]) / f"{name}.log")
        fh = open(log, "ab")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            [KEYSWEEP, *args], env=self.env, stdout=fh, stderr=fh, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop(self) -> None:
        for name in list(self.procs):
            self.kill(name)

    def log_text(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.logs.values() if p.exists())

    def state(self) -> redis.Redis:
        return redis.Redis.from_url(self.env["KEYSWEEP_REDIS_URL"], decode_responses=True)

    def broker(self) -> redis.Redis:
        return redis.Redis.from_url(self.env["KEYSWEEP_BROKER_URL"])

    def counts(self) -> dict[str, int]:
        r = self.state()
        return {
            k: int(v) for k, v in r.hgetall(f"{self.env['KEYSWEEP_REDIS_PREFIX']}:stats").items()
        }

    def wait_for(self, predicate, timeout: float = 60, every: float = 0.25) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return True
            time.sleep(every)
        return bool(predicate())


def _free_port() -> int:
    return _free_ports(1)[0]


def _free_ports(n: int) -> list[int]:
    """``n`` different free ports: each socket stays bound until all are picked (one at
    a time, the kernel may give the port it just freed again)."""
    import socket
    from contextlib import ExitStack

    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


@contextmanager
def deployment(
    tmp_path: Path,
    sim_url: str,
    keyservice=None,
    notify: dict | None = None,  # type: ignore[no-untyped-def]
    extra_env: dict[str, str] | None = None,
    start: bool = True,
) -> Iterator[Deployment]:
    logdir = tmp_path / "logs"
    logdir.mkdir(exist_ok=True)
    host = sim_url.split("://", 1)[1].split("/", 1)[0]
    env = {
        **os.environ,
        "KEYSWEEP_BROKER_URL": redis_env.url(BROKER_DB),
        "KEYSWEEP_REDIS_URL": redis_env.url(STATE_DB),
        "KEYSWEEP_REDIS_PREFIX": f"kse2e-{uuid.uuid4().hex[:8]}",
        "KEYSWEEP_GITHUB_API_URL": sim_url,
        "KEYSWEEP_GITHUB_TOKENS": "sim-token-1,sim-token-2",
        "KEYSWEEP_CLONE_HTTP_HOSTS": host,
        "KEYSWEEP_POLL_EVERY": "0.5",
        "KEYSWEEP_STATE_DIR": str(tmp_path / "state"),
        "KEYSWEEP_TEST_LOGDIR": str(logdir),
        "KEYSWEEP_METRICS_PORT": str(_free_port()),
        "KEYSWEEP_HEARTBEAT_FILE": str(tmp_path / "alive"),
    }
    if keyservice is not None:
        env["KEYSWEEP_KEYSERVICE_URL"] = keyservice.url
        env["KEYSWEEP_KEYSERVICE_TOKEN"] = keyservice.token
    env.update(notify or {})
    env.update(extra_env or {})
    for db in (BROKER_DB, STATE_DB):
        redis_env.connect(db).flushdb()
    dep = Deployment(env)
    try:
        if start:
            dep.start("worker", "worker", "-c", "3", "-n", "w1@%h")
            dep.start("beat", "beat")
        yield dep
    finally:
        dep.stop()
