"""Third-party GitHub tokens found by the crawler are reported to the simulator's
`POST /credentials/revoke` by `keysweep report-credentials`, sealed until then, within
GitHub's limits, and never written anywhere in the clear."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import KEYSWEEP
from tests.helpers import github_token
from tests.sim.fixture import start_sim
from tests.test_workers_e2e import BrokerSnooper, _dump
from tests.workers_fixture import deployment

REVOCABLE = ("ghp_", "github_pat_", "gho_", "ghu_", "ghr_")


def keypair(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "reporter.key"
    out = subprocess.run(
        [KEYSWEEP, "report-credentials", "keygen", "--private-key-file", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    line = next(x for x in out.stdout.splitlines() if x.startswith("KEYSWEEP_REPORT_PUBLIC_KEY="))
    return path, line.split("=", 1)[1]


def report_env(tmp_path: Path) -> dict[str, str]:
    key_file, public = keypair(tmp_path)
    return {
        "KEYSWEEP_REPORT_CREDENTIALS": "1",
        "KEYSWEEP_REPORT_PUBLIC_KEY": public,
        "KEYSWEEP_REPORT_PRIVATE_KEY_FILE": str(key_file),
        "KEYSWEEP_REPORT_EVERY": "0.5",
    }


def counts(dep: Any) -> dict[str, int]:
    return dep.counts()


def test_crawled_github_tokens_are_reported_sealed_and_destroyed(tmp_path: Path) -> None:
    with start_sim(tmp_path / "sim", poll_interval=1) as sim:
        sim.config(third_party_rules=["github-classic-token", "github-fine-grained-pat"])
        with deployment(tmp_path, sim.url, extra_env=report_env(tmp_path)) as dep:
            snoop = BrokerSnooper(dep.broker())
            sim.generate(pushes=10, gists=4, plant={"third_party": 10})
            truth = sim.planted()
            assert len(truth) == 10 and all(p["rule_id"].startswith("github") for p in truth)
            wanted = {p["key"] for p in truth if p["key"].startswith(REVOCABLE)}
            not_wanted = {p["key"] for p in truth} - wanted
            assert wanted, truth
            # Positive signal: the fetch workers sealed every revocable token.
            assert dep.wait_for(lambda: dep.counts().get("documents_scanned", 0) >= 14, 90)
            state_dump = json.dumps({k: str(v) for k, v in _dump(dep.state()).items()})
            assert f"{dep.env['KEYSWEEP_REDIS_PREFIX']}:credrevoke:sealed" in state_dump
            dep.start("reporter", "report-credentials")
            assert dep.wait_for(lambda: wanted <= set(sim.credentials()["revoked"]), 60)
            got = sim.credentials()
            assert set(got["revoked"]) == wanted and not not_wanted & set(got["revoked"])
            assert all(r["status"] == 202 and r["count"] <= 1000 for r in got["requests"])
            status = subprocess.run(
                [KEYSWEEP, "report-credentials", "status"],
                env=dep.env,
                capture_output=True,
                text=True,
            )
            assert f"pending 0, reported {len(wanted)}, dropped 0" in status.stdout
            # Destroyed once reported; never in the clear anywhere.
            r = dep.state()
            prefix = dep.env["KEYSWEEP_REDIS_PREFIX"]
            assert r.hlen(f"{prefix}:credrevoke:sealed") == 0
            messages = snoop.close()
            state_dump = json.dumps({k: str(v) for k, v in _dump(r).items()}).encode()
            logs = dep.log_text()
            scrape = httpx.get(
                f"http://127.0.0.1:{dep.env['KEYSWEEP_METRICS_PORT']}/metrics", timeout=10
            ).text.encode()
            for p in truth:
                for blob, where in (
                    (messages, "task messages"),
                    (state_dump, "Redis"),
                    (logs, "logs"),
                    (scrape, "metrics"),
                ):
                    assert p["key"].encode() not in blob, f"planted token in {where}"


HAND_OVER = """
import sys
from scanner.config import Config
from scanner.scan import Collector, build_engine
from scanner.sources.files import BufferFragment
from workers.credreport import hand_over
tokens = sys.stdin.read().split()
collector = Collector(build_engine(Config()), [])
collector.scan(BufferFragment("\\n".join(tokens).encode(), "push", "leak.txt", "o/r"))
print(hand_over(collector.found.findings()))
"""


def hand_over(dep: Any, tokens: set[str]) -> str:
    """What a fetch worker does with tokens it found: seal and queue them; the count."""
    return subprocess.run(
        [sys.executable, "-c", HAND_OVER],
        input="\n".join(tokens),
        env=dep.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_reporter_keeps_to_1000_a_request_and_the_hourly_budget(tmp_path: Path) -> None:
    with start_sim(tmp_path / "sim") as sim:
        sim.credentials(per_hour=2)
        env = report_env(tmp_path)
        # The private key may come from the environment instead of a file.
        env["KEYSWEEP_REPORT_PRIVATE_KEY"] = Path(
            env.pop("KEYSWEEP_REPORT_PRIVATE_KEY_FILE")
        ).read_text()
        with deployment(tmp_path, sim.url, start=False, extra_env=env) as dep:
            dep.env["KEYSWEEP_REPORT_PER_HOUR"] = "2"
            dep.env["KEYSWEEP_REPORT_EVERY"] = "3600"  # full batches go at once all the same
            dep.env["KEYSWEEP_REPORT_MAX_PENDING"] = "2400"
            tokens = {github_token() for _ in range(2500)}
            assert hand_over(dep, tokens) == "2400"  # the rest dropped, and counted
            dep.start("reporter", "report-credentials")
            # Positive signal: the reporter says its hourly budget is spent.
            assert dep.wait_for(lambda: b"hourly budget spent" in dep.log_text(), 60)
            got = sim.credentials()
            assert [r["status"] for r in got["requests"]] == [202, 202]
            assert [r["count"] for r in got["requests"]] == [1000, 1000]
            assert len(set(got["revoked"])) == 2000 and set(got["revoked"]) <= tokens
            c = counts(dep)
            assert c["credrevoke_reported"] == 2000 and c["credrevoke_dropped"] == 100
            status = subprocess.run(
                [KEYSWEEP, "report-credentials", "status"],
                env=dep.env,
                capture_output=True,
                text=True,
            )
            assert "pending 400, reported 2000, dropped 100" in status.stdout
            # Found again: the reported and pending ones are not queued twice; the ones
            # dropped for want of room are, now that there is room.
            assert hand_over(dep, tokens) == "100"


def test_reporter_without_its_key_says_what_to_do(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KEYSWEEP_REPORT_PRIVATE_KEY_FILE", "KEYSWEEP_REPORT_PRIVATE_KEY")
    }
    p = subprocess.run(
        [KEYSWEEP, "report-credentials", "once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and "keysweep report-credentials keygen" in p.stderr


def test_a_batch_github_refuses_three_times_is_dropped(tmp_path: Path) -> None:
    with start_sim(tmp_path / "sim") as sim:
        sim.credentials(max=5)  # GitHub answers 422 to more than this per request
        with deployment(tmp_path, sim.url, start=False, extra_env=report_env(tmp_path)) as dep:
            tokens = {github_token() for _ in range(10)}
            hand_over(dep, tokens)
            dep.start("reporter", "report-credentials")
            assert dep.wait_for(lambda: dep.counts().get("credrevoke_dropped", 0) == 10, 60)
            assert [r["status"] for r in sim.credentials()["requests"]] == [422, 422, 422]
            assert sim.credentials()["revoked"] == []


def test_github_failing_part_way_keeps_every_token_until_reported(tmp_path: Path) -> None:
    """GitHub answers 503 twice: nothing is lost, nothing is reported twice, and the
    sealed tokens are destroyed once GitHub took them."""
    with start_sim(tmp_path / "sim") as sim:
        sim.fault("/credentials/revoke", 503, count=2)
        with deployment(tmp_path, sim.url, start=False, extra_env=report_env(tmp_path)) as dep:
            tokens = {github_token() for _ in range(30)}
            hand_over(dep, tokens)
            dep.start("reporter", "report-credentials")
            assert dep.wait_for(lambda: dep.counts().get("credrevoke_reported", 0) == 30, 60), (
                dep.counts()
            )
            c = dep.counts()
            assert c.get("credrevoke_status_503") == 2 and not c.get("credrevoke_dropped")
            assert b"kept for later" in dep.log_text()
            got = sim.credentials()
            assert sorted(got["revoked"]) == sorted(tokens)  # each once
            status = subprocess.run(
                [KEYSWEEP, "report-credentials", "status"],
                env=dep.env,
                capture_output=True,
                text=True,
            )
            assert "pending 0, reported 30, dropped 0" in status.stdout
            # The sealed boxes are gone from Redis once reported.
            r = dep.state()
            prefix = dep.env["KEYSWEEP_REDIS_PREFIX"]
            assert r.hlen(f"{prefix}:credrevoke:sealed") == 0
            assert r.zcard(f"{prefix}:credrevoke:queue") == 0
