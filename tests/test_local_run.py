"""`make run`'s script starts the whole local stack, shows revocations live, and Ctrl-C
stops every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests import redis_env
from tests.conftest import ROOT
from tests.workers_fixture import _free_port


def test_local_stack_revokes_and_stops_cleanly(tmp_path: Path) -> None:
    for db in (10, 11):
        redis_env.connect(db).flushdb()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEYSWEEP_")},
        "VENV": str(Path(sys.executable).parent.parent),
        "KEYSWEEP_RUN_DIR": str(tmp_path / "run"),
        "KEYSWEEP_RUN_KEYSERVICE_PORT": str(_free_port()),
        "KEYSWEEP_RUN_SIM_PORT": str(_free_port()),
        "KEYSWEEP_RUN_SERVE_PORT": str(_free_port()),
        "KEYSWEEP_RUN_SIM_RATE": "10",
        "KEYSWEEP_BROKER_URL": redis_env.url(10),
        "KEYSWEEP_REDIS_URL": redis_env.url(11),
        "KEYSWEEP_RUN_REDIS_PORT": str(redis_env.PORT),
    }
    proc = subprocess.Popen(
        ["bash", str(ROOT / "deploy/local/run.sh")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 90
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    try:
        while time.time() < deadline:
            chunk = proc.stdout.read() or b""
            buf += chunk
            if b"| revoked mg_" in buf and b"| summary:" in buf:
                break
            time.sleep(0.5)
        out = buf.decode(errors="replace")
        assert "run: key service" in out and "run: GitHub        the GitHub simulator" in out
        assert "| revoked mg_" in out, out[-3000:]
        line = next(x for x in out.splitlines() if "| revoked mg_" in x)
        assert "…" in line  # redacted, never the key
        assert "run: partner       keysweep serve on http://127.0.0.1:" in out
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's group
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    time.sleep(1)
    leftover = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", f"processes left running: {leftover.stdout}"
