"""The workers as thin adapters over the library pipeline: error shapes decide what
is retried and what is recorded and passed over."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import KEYSWEEP
from tests.sim.fixture import start_sim
from tests.test_workers_e2e import statuses
from tests.workers_fixture import deployment


def test_a_refused_document_never_fails_its_batch(keyservice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """GitHub refuses one repository's push for good (451): it is counted and passed
    over, and the other pushes of the same poll are still fetched, scanned and revoked."""
    ks = keyservice
    with start_sim(tmp_path / "sim", ks, poll_interval=1) as sim:
        sim.generate(pushes=4, plant={"live": 4})
        planted = [p for p in sim.planted("live") if p["doc"]["type"] == "push"]
        repos = sorted({p["doc"]["repo"] for p in planted})
        assert len(repos) >= 2, planted
        refused = repos[0]
        sim.fault(f"/repos/{refused}/", 451, count=1000)
        with deployment(tmp_path, sim.url, ks) as dep:
            good = [p for p in planted if p["doc"]["repo"] != refused]
            bad = [p for p in planted if p["doc"]["repo"] == refused]

            def done() -> bool:
                st = statuses(ks, good)
                return (
                    set(st.values()) == {"revoked"} and dep.counts().get("documents_failed", 0) >= 1
                )

            assert dep.wait_for(done, timeout=90), (statuses(ks, planted), dep.counts())
            assert set(statuses(ks, bad).values()) == {"active"}
            log = dep.log_text()
            assert b"document skipped kind=push" in log and b"451" in log
            shown = subprocess.run(
                [KEYSWEEP, "status"], env=dep.env, capture_output=True, text=True, check=True
            ).stdout
            failed = dep.counts()["documents_failed"]
            assert f"(passed over: {failed})" in shown, shown
