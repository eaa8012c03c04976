"""Public content is not the owner's to allow (issue #11): a leaker's ``# gitleaks:allow``
does not protect a live key from the workers, while ``keysweep scan`` still honours it.
The same pushes carry a JWT whose ``exp`` is NaN, which once killed the batch task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.sim.fixture import GitHubSim, github_sim  # noqa: F401
from tests.test_github_sources import gh  # noqa: F401
from tests.test_hostile import cli, jwt_with_exp, sha
from tests.test_workers_e2e import statuses
from tests.workers_fixture import deployment

ALLOW = "  # gitleaks:allow"


@pytest.fixture
def worker_scan(gh: Any) -> Any:  # noqa: F811
    """The workers' own scan (``workers.tasks._scan``: their engine and settings)."""
    from workers import tasks

    tasks.engine.cache_clear()
    yield tasks._scan
    tasks.engine.cache_clear()


def test_the_workers_scan_finds_an_allowed_key_beside_a_nan_jwt(
    github_sim: GitHubSim,  # noqa: F811
    worker_scan: Any,
    gh: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    from scanner.sources.github import PushSource

    token = jwt_with_exp("NaN")
    github_sim.config(key_line_suffix=f"{ALLOW} id_token={token}")
    github_sim.generate(pushes=3, plant={"live": 2})
    planted = [p for p in github_sim.planted("live") if p["doc"]["type"] == "push"]
    assert planted
    for p in planted:
        doc = p["doc"]
        result = worker_scan(PushSource(gh, doc["repo"], doc["before"], doc["head"]))
        got = {(f.rule_id, f.secret_sha256) for f in result.findings}
        assert ("mg-live-key", p["sha256"]) in got
        assert ("jwt", sha(token)) in got
        # The same line, scanned by its owner: the allow comment is honoured.
        line = next(line for line in _pushed_lines(gh, doc) if ALLOW in line)
        own = cli("scan", "-", "--format", "json", stdin=(line + "\n").encode())
        assert own.returncode == 0, own.stderr
        assert json.loads(own.stdout) == []


def _pushed_lines(client: Any, doc: dict[str, Any]) -> list[str]:
    """The lines the push added to the planted file, as GitHub's compare shows them."""
    data = client.get(f"/repos/{doc['repo']}/commits/{doc['sha']}").json()
    patch = next(f["patch"] for f in data["files"] if f["filename"] == doc["path"])
    return [line[1:] for line in patch.splitlines() if line.startswith("+")]


def test_a_push_with_gitleaks_allow_is_still_revoked(keyservice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """End to end: the simulator's pushes carry ``mg_live_… # gitleaks:allow`` (and a NaN
    JWT on the same line) for keys the reference key service issued; the workers revoke
    every one, and no log line holds one."""
    from tests.sim.fixture import start_sim

    ks = keyservice
    with start_sim(tmp_path / "sim", ks, poll_interval=1) as sim:
        sim.config(key_line_suffix=f"{ALLOW} id_token={jwt_with_exp('NaN')}")
        sim.generate(pushes=4, plant={"live": 3})
        planted = [p for p in sim.planted("live") if p["doc"]["type"] == "push"]
        assert planted
        with deployment(tmp_path, sim.url, ks) as dep:

            def revoked() -> bool:
                st = statuses(ks, planted)
                return len(st) == len(planted) and set(st.values()) == {"revoked"}

            assert dep.wait_for(revoked, timeout=120), (statuses(ks, planted), dep.counts())
            logs = dep.log_text().decode("utf-8", "replace")
            for p in planted:
                assert p["key"] not in logs
            assert "internal error" not in logs and "Logging error" not in logs
