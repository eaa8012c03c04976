"""`make run`'s script starts the whole local stack for a person watching it: what runs
where, each process's logs in files, a line per revoked key, a summary, what to try next
(each command tested as printed), and on a second run which lines are from before; Ctrl-C
stops every process it started."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests import redis_env
from tests.conftest import ROOT
from tests.notify_receivers import http_inbox
from tests.sim.fixture import start_sim
from tests.workers_fixture import _free_ports


class Run:
    def __init__(self, env: dict) -> None:
        self.proc = subprocess.Popen(
            ["bash", str(ROOT / "deploy/local/run.sh")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""

    @property
    def out(self) -> str:
        return self.buf.decode(errors="replace")

    def wait_for(self, test, seconds: float = 90) -> str:  # type: ignore[no-untyped-def]
        deadline = time.time() + seconds
        while time.time() < deadline:
            self.buf += self.proc.stdout.read() or b""  # type: ignore[union-attr]
            if test(self.out):
                return self.out
            time.sleep(0.5)
        raise AssertionError(f"not seen in {seconds}s:\n{self.out[-4000:]}")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's group
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise
        time.sleep(1)
        left = subprocess.run(["pgrep", "-s", str(self.proc.pid)], capture_output=True, text=True)
        assert left.stdout.strip() == "", f"processes left running: {left.stdout}"


def test_local_stack_for_a_person_watching(tmp_path: Path) -> None:
    for db in (10, 11):
        redis_env.connect(db).flushdb()
    run_dir = tmp_path / "run"
    venv = Path(sys.executable).parent.parent
    keyservice_port, sim_port, serve_port = _free_ports(3)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEYSWEEP_")},
        "VENV": str(venv),
        "KEYSWEEP_RUN_DIR": str(run_dir),
        "KEYSWEEP_RUN_KEYSERVICE_PORT": str(keyservice_port),
        "KEYSWEEP_RUN_SIM_PORT": str(sim_port),
        "KEYSWEEP_RUN_SERVE_PORT": str(serve_port),
        "KEYSWEEP_RUN_SIM_RATE": "10",
        "KEYSWEEP_BROKER_URL": redis_env.url(10),
        "KEYSWEEP_REDIS_URL": redis_env.url(11),
        "KEYSWEEP_RUN_REDIS_PORT": str(redis_env.PORT),
    }
    first = Run(env)
    try:
        out = first.wait_for(
            lambda o: re.search(r"(?m)^revoked mg_", o) and re.search(r"(?m)^summary: this run", o)
        )
        assert f"run: logs          each process in {run_dir}/logs/" in out
        assert "run: GitHub        the GitHub simulator" in out
        line = next(x for x in out.splitlines() if x.startswith("revoked mg_"))
        assert "…" in line  # redacted, never the key
        # The screen is the monitor's: no Celery banners or JSON log lines on it.
        assert "celery@" not in out and not re.search(r"(?m)^\{", out)
        logs = run_dir / "logs"
        for name in (
            "keyservice",
            "github-sim",
            "worker-poll",
            "worker-fetch",
            "worker-act",
            "beat",
            "serve",
            "reporter",
        ):
            assert (logs / f"{name}.log").is_file(), name
        assert (logs / "worker-fetch.log").stat().st_size > 0
        # "Leak a key yourself": the command as printed, from another terminal.
        printed = out.split("leak a key yourself")[1].splitlines()[1].strip()
        assert printed.startswith(f". {run_dir}/env && keysweep keys create")
        leak = subprocess.run(
            ["bash", "-c", printed],
            capture_output=True,
            env={k: v for k, v in env.items() if not k.startswith("KEYSWEEP_")},
            timeout=120,
        )
        assert leak.returncode == 1, leak.stderr.decode()  # found (and revoked): exit 1
        mine = re.search(r"mg_live_[A-Za-z0-9_-]{8}…", leak.stdout.decode()).group(0)  # type: ignore[union-attr]
        first.wait_for(lambda o: f"revoked {mine.rstrip('…')}" in o)
        assert "run: partner       keysweep serve on http://127.0.0.1:" in out
        # "Send a partner alert the way GitLab does": as printed; its key is revoked.
        printed = out.split("send a partner alert the way GitLab does")[1].splitlines()[1]
        sent = subprocess.run(
            ["bash", "-c", printed.strip()],
            capture_output=True,
            env={k: v for k, v in env.items() if not k.startswith("KEYSWEEP_")},
            timeout=120,
        )
        assert sent.returncode == 0 and sent.stdout.decode().strip() == "204", sent
        prefix = re.search(r"minted \S+ \((mg_live_[A-Za-z0-9_-]{8})…", sent.stderr.decode())
        assert prefix, sent.stderr.decode()
        first.wait_for(lambda o: f"revoked {prefix.group(1)}" in o)
    finally:
        first.stop()
    revoked_before = len(re.findall(r"(?m)^revoked mg_", first.out))
    # "try next", the last two, as printed: start again with an alert channel, and against
    # a GitHub of your own (a second simulator stands in for api.github.com).
    tried = first.out.split("try next (Ctrl-C stops everything):")[1]
    channel = tried.split("alerts: stop, then start again")[1].splitlines()[2].strip()
    assert channel.startswith("(or KEYSWEEP_NOTIFY_WEBHOOK_URL with KEYSWEEP_NOTIFY_WEBHOOK_SECRET")
    github_line = tried.split("real GitHub instead of the simulator")[1].splitlines()[1].strip()
    assert github_line == "KEYSWEEP_GITHUB_TOKENS=<your token> make run"
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    token = "ghp_" + secrets.token_hex(18)
    with start_sim(tmp_path / "github", poll_interval=1) as gh, http_inbox(secret) as hook:
        env2 = {
            **env,
            "KEYSWEEP_NOTIFY_WEBHOOK_URL": hook.url,
            "KEYSWEEP_NOTIFY_WEBHOOK_SECRET": secret,
            github_line.split("=", 1)[0]: token,
            "KEYSWEEP_GITHUB_API_URL": gh.url,
        }
        # A second run says which lines are from before; the first run's logs are kept.
        second = Run(env2)
        try:
            out = second.wait_for(lambda o: "── this run ──" in o, 60)
            m = re.search(r"── (\d+) key\(s\) revoked by earlier runs", out)
            assert m, out[-3000:]
            earlier = int(m.group(1))  # all the first run revoked, shown or not before Ctrl-C
            assert earlier >= revoked_before
            before = re.findall(r"(?m)^before  revoked mg_", out)
            assert len(before) == min(5, earlier)  # the last five, each marked
            assert (run_dir / "logs.previous" / "worker-fetch.log").stat().st_size > 0
            assert "run: alerts        webhook" in out
            assert f"run: GitHub        GitHub at {gh.url}" in out
            # The workers read that GitHub with the token given, and the channel hears of
            # the keys they found there, signed.
            gh.generate(pushes=4, plant={"third_party": 3})
            planted = [p["key"] for p in gh.planted() if p["kind"] == "third_party"]
            assert len(planted) == 3

            def all_heard(_: str) -> bool:
                shown = [
                    json.loads(r["body"])["data"]["key"]["redacted"].rstrip("…")
                    for r in hook.requests
                ]
                return all(any(k.startswith(s) for s in shown) for k in planted)

            second.wait_for(all_heard, 90)
            assert gh.stats()["tokens"].get(gh.token_label(token), 0) > 0
            assert hook.verified == len(hook.requests)
        finally:
            second.stop()
