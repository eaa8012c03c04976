"""The pending-work ledger and the pollers, on a real Redis against the GitHub
simulator over real HTTP. The pollers run in this process (no broker: what they
record in the ledger is what the sweeper would re-send if every message were lost)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import redis_env
from tests.sim.fixture import GitHubSim, start_sim


@pytest.fixture
def ledger_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from workers import ledger, settings, state

    monkeypatch.setenv("KEYSWEEP_REDIS_URL", redis_env.url(14))
    monkeypatch.setenv("KEYSWEEP_REDIS_PREFIX", f"ksledger-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("KEYSWEEP_GITHUB_TOKENS", "tok-a,tok-b")
    settings.settings.cache_clear()
    state.client.cache_clear()
    ledger._timing = ledger.Timing(lease=3, grace=5, sweep_every=0.2, probe_max=2)
    published: list[ledger.Work] = []
    monkeypatch.setattr(ledger, "publish", lambda w: published.append(w) or True)
    yield
    r = state.client()
    for k in r.scan_iter(f"{settings.settings().prefix}:*"):
        r.delete(k)
    ledger._timing = None
    settings.settings.cache_clear()
    state.client.cache_clear()


@pytest.fixture
def sim(tmp_path: Path, ledger_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHubSim]:
    from workers import github, settings

    with start_sim(tmp_path / "sim", poll_interval=0) as s:
        monkeypatch.setenv("KEYSWEEP_GITHUB_API_URL", s.url)
        settings.settings.cache_clear()
        github.github.cache_clear()
        yield s
        github.github.cache_clear()


def tracked_docs() -> list[dict]:
    """Every document the ledger holds (what the sweeper would redo)."""
    from workers import ledger, state

    r = state.client()
    out = []
    for i in r.zrange(ledger.k("due"), 0, -1):
        kw = json.loads(r.hget(ledger.k("item", i), "kwargs"))
        out += kw.get("docs", [kw])
    return out


def push_event_ids(sim: GitHubSim) -> set[str]:
    with sim.client("t") as gh:
        ids = set()
        for page in (1, 2, 3):
            r = gh.get("/events", params={"per_page": 100, "page": page})
            ids |= {e["id"] for e in r.json() if e["type"] == "PushEvent"}
    return ids


def poll_events() -> int:
    from workers import pollers, state

    state.set_cursor("events", next_at=0)
    return pollers._poll_events()


def test_claim_and_work_are_one_step_and_the_sweeper_redoes_lost_work(ledger_env: None) -> None:
    from workers import ledger, state

    seen = [state.key("seen", "event", str(i)) for i in range(3)]
    claims = [
        ledger.Claim(seen[0], "workers.tasks.scan_batch", "fetch", {"kind": "push", "n": 0}, True),
        ledger.Claim(seen[1], "workers.tasks.scan_batch", "fetch", {"kind": "push", "n": 1}, True),
        ledger.Claim(seen[2]),  # noise: a mark, no work
    ]
    works, fresh = ledger.claim_and_track_flags(claims)
    assert fresh == [True, True, True] and len(works) == 1
    assert [d["n"] for d in works[0].kwargs["docs"]] == [0, 1]
    # The same events again: already seen, no new work.
    again, fresh = ledger.claim_and_track_flags(claims)
    assert again == [] and fresh == [False, False, False]
    # The message was never sent (a crash, a lost message): once overdue, the sweeper
    # hands the same work back, with the same id (the Celery task id).
    assert ledger.due_work() == []
    later = ledger.due_work(time.time() + ledger.timing().grace + 1)
    assert [w.id for w in later] == [works[0].id] and later[0].kwargs == works[0].kwargs
    # A task that runs holds a lease; done removes it for good.
    assert ledger.begin(works[0].id)
    ledger.done(works[0].id)
    assert not ledger.begin(works[0].id)
    assert ledger.due_work(time.time() + 3600) == []


def test_act_work_is_parked_probed_and_released_never_dropped(ledger_env: None) -> None:
    from workers import ledger

    works = [ledger.track("workers.tasks.resolve_and_act", "act", {"n": i}) for i in range(3)]
    for w in works:
        assert ledger.begin(w.id)
        ledger.failed(w.id, "act", "KeyServiceError: down")
    s = ledger.summary()
    assert s["parked"] == 3 and s["pending"] == 0
    # One probe at a time, however long the outage lasts.
    probe = ledger.due_work()
    assert len(probe) == 1 and ledger.due_work() == []
    ledger.failed(probe[0].id, "act", "KeyServiceError: still down")
    assert ledger.summary()["parked"] == 3
    # The key service is back: the probe succeeds and every parked piece goes out.
    probe = ledger.due_work(time.time() + 10)
    assert len(probe) == 1
    ledger.begin(probe[0].id)
    ledger.done(probe[0].id)
    released = ledger.due_work(time.time() + 10)
    assert {w.id for w in released} | {probe[0].id} == {w.id for w in works}
    assert ledger.summary()["parked"] == 0


def test_a_failed_page_leaves_the_cursor_and_the_next_poll_reads_on(sim: GitHubSim) -> None:
    from workers import state

    sim.generate(pushes=30, gists=0, noise=0)
    poll_events()
    first = state.get_cursor("events")
    sim.generate(pushes=180, gists=0, noise=0)
    sim.fault("/events", 502, query="page=2", count=1)
    poll_events()  # page 1 read and claimed, page 2 failed
    cur = state.get_cursor("events")
    assert cur["through"] == first["through"] and cur["etag"] == ""
    assert len(tracked_docs()) < 210
    poll_events()  # reads on past what it claimed, down to what it read before
    assert {d["event_id"] for d in tracked_docs()} == push_event_ids(sim)
    assert len(tracked_docs()) == 210  # nothing twice


def test_events_that_fell_off_the_feed_are_counted(sim: GitHubSim) -> None:
    from workers import metrics, state

    sim.generate(pushes=20, gists=0, noise=0)
    poll_events()
    before = metrics.EVENTS_MISSED._value.get()
    sim.generate(pushes=400, gists=0, noise=0)  # more than the 300 the feed keeps
    poll_events()
    missed = state.counts().get("events_missed", 0)
    assert 60 <= missed <= 140, missed  # about 100 fell off (an estimate from the ids)
    assert metrics.EVENTS_MISSED._value.get() - before == missed
    assert {d["event_id"] for d in tracked_docs()} >= push_event_ids(sim)


def test_the_gist_cursor_never_passes_a_page_it_did_not_read(sim: GitHubSim) -> None:
    from workers import pollers, state

    sim.generate(pushes=0, gists=150, noise=0)
    sim.fault("/gists/public", 502, query="page=2", count=1)
    state.set_cursor("gists", next_at=0)
    pollers._poll_gists()
    assert "since" not in state.get_cursor("gists")  # page 2 failed: the cursor stays
    state.set_cursor("gists", next_at=0)
    pollers._poll_gists()
    ids = {d["gist_id"] for d in tracked_docs() if d["kind"] == "gist"}
    with sim.client("t") as gh:
        listed = {
            g["id"]
            for p in (1, 2)
            for g in gh.get("/gists/public", params={"per_page": 100, "page": p}).json()
        }
    assert ids == listed and len(listed) == 150
    assert state.get_cursor("gists")["since"]


def test_keysweep_enqueue_records_its_work_in_the_ledger() -> None:
    """`keysweep enqueue repo|gist` (README: Background deployment): the work is tracked
    from the start like the pollers' (so a lost message is redone), and `keysweep status`
    shows it queued and pending."""
    import os
    import subprocess

    from tests.conftest import KEYSWEEP

    broker_db = 9  # no other test uses it
    broker = redis_env.connect(broker_db)
    broker.flushdb()
    prefix = f"ksenqueue-{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEYSWEEP_")},
        "KEYSWEEP_BROKER_URL": redis_env.url(broker_db),
        "KEYSWEEP_REDIS_URL": redis_env.url(14),
        "KEYSWEEP_REDIS_PREFIX": prefix,
    }

    def keysweep(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KEYSWEEP, *args], capture_output=True, text=True, env=env, timeout=60
        )

    try:
        gist = keysweep("enqueue", "gist", "0123abcd")
        assert gist.returncode == 0 and "queued gist 0123abcd" in gist.stdout
        repo = keysweep("enqueue", "repo", "https://github.com/acme/proj")
        assert repo.returncode == 0, repo.stderr
        assert "queued a full-history scan of https://github.com/acme/proj" in repo.stdout
        status = json.loads(keysweep("status", "--format", "json").stdout)
        assert status["queues"]["fetch"] == 2 and status["ledger"]["pending"] == 2
        assert "pending:  2 piece(s) of work not yet done" in keysweep("status").stdout
        bad = keysweep("enqueue", "gist", "../../etc")
        assert bad.returncode == 2 and "a gist id is letters and digits" in bad.stderr
    finally:
        broker.flushdb()
        state = redis_env.connect(14)
        for k in state.scan_iter(f"{prefix}:*"):
            state.delete(k)
