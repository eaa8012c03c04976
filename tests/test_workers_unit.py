"""Worker building blocks against a real Redis: state, the token pool, the GitHub
client's rate-limit handling (respx for GitHub's edge cases), log redaction."""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

from scanner.notify.channels import Delivery
from tests import redis_env
from tests.helpers import load_bench

API = "https://gh.test"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh key prefix on the local Redis, so tests never see each other's state."""
    from workers import settings as settings_mod
    from workers import state

    monkeypatch.setenv("KEYSWEEP_REDIS_URL", redis_env.url(14))
    monkeypatch.setenv("KEYSWEEP_REDIS_PREFIX", f"kstest-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("KEYSWEEP_GITHUB_TOKENS", "tok-a,tok-b")
    monkeypatch.setenv("KEYSWEEP_GITHUB_API_URL", API)
    settings_mod.settings.cache_clear()
    state.client.cache_clear()
    yield
    r = state.client()
    for k in r.scan_iter(f"{settings_mod.settings().prefix}:*"):
        r.delete(k)
    settings_mod.settings.cache_clear()
    state.client.cache_clear()


def test_dedupe_is_first_caller_only() -> None:
    from workers import state

    assert state.first_time("event", "evt-QQQ-1")
    assert not state.first_time("event", "evt-QQQ-1")
    assert state.first_time("event", "evt-QQQ-2")
    # Keys hold digests of ids, not the ids themselves.
    assert not any("QQQ" in k for k in state.dump_all())


def test_singleton_lock() -> None:
    from workers import state

    with state.singleton("poll") as first, state.singleton("poll") as second:
        assert first and not second
    with state.singleton("poll") as again:
        assert again


def test_negative_cache_and_alert_dedup() -> None:
    from workers import state

    neg = state.RedisNegativeCache(ttl=60)
    neg.remember_unknown(["a" * 64])
    assert neg.known_unknown(["a" * 64, "b" * 64]) == {"a" * 64}
    from tests.test_notify import dedup_contract

    dedup_contract(lambda ttl: state.RedisDedup(pending_ttl=ttl))
    # What Redis holds is a hash-named key with a holder id or "s", never an alert.
    assert all(v.startswith(("p:", "s")) for k, v in state.dump_all().items() if "notified" in k)


def test_a_pending_alert_claim_lasts_half_the_ledger_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    """README: a killed notify worker's pending claim lapses after half of
    KEYSWEEP_LEDGER_LEASE, so the ledger's redo (after the whole lease) can send."""
    from workers import settings as settings_mod
    from workers import state

    monkeypatch.setenv("KEYSWEEP_LEDGER_LEASE", "8")
    settings_mod.settings.cache_clear()
    d = state.RedisDedup()
    assert d.claim("k", "holder")
    (name,) = [k for k in state.dump_all() if "notified" in k]
    assert 3_000 < state.client().pttl(name) <= 4_000
    d.confirm(["k"])
    assert state.client().ttl(name) > 80 * 24 * 3600  # sent: kept for 90 days


def test_an_alert_delivered_while_redis_restarts_is_marked_sent_and_never_resent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Redis (AOF, as deployed) is SIGKILLed right after a webhook took the alert and is
    back 0.5 s later: the "sent" mark waits for it instead of failing the task, so the
    claim is never left pending for the ledger's redo to send again."""
    from scanner.notify.dispatch import Notifier
    from tests.test_notify import Recorder, alert
    from workers import settings as settings_mod
    from workers import state

    server = load_bench("faults").RedisServer(tmp_path / "redis")
    server.start()
    restarted = threading.Event()
    restarts: list[threading.Thread] = []

    def restart() -> None:
        time.sleep(0.5)  # the outage
        server.start()
        restarted.set()

    class KillsRedisAsItSends(Recorder):
        def send(self, delivery: Delivery) -> None:
            super().send(delivery)
            server.kill()
            restarts.append(threading.Thread(target=restart, daemon=True))
            restarts[-1].start()

    try:
        monkeypatch.setenv("KEYSWEEP_REDIS_URL", f"redis://127.0.0.1:{server.port}/1")
        monkeypatch.setenv("KEYSWEEP_LEDGER_LEASE", "4")
        settings_mod.settings.cache_clear()
        state.client.cache_clear()
        channel = KillsRedisAsItSends()
        report = Notifier({"webhook": channel}, state.RedisDedup()).notify([alert(1)])
        assert restarted.is_set() and report.sent == {"webhook:alert": 1}
        claims = {k: v for k, v in state.dump_all().items() if "notified" in k}
        assert claims and set(claims.values()) == {"s"}, claims
        # The ledger's redo, after the lease: already said, nothing sent.
        again = Notifier({"webhook": channel}, state.RedisDedup()).notify([alert(1)])
        assert again.skipped == 1 and not again.sent and len(channel.sent) == 1
    finally:
        for t in restarts:
            t.join(30)  # so the server it starts is the one stopped here
        server.stop()
        monkeypatch.setenv("KEYSWEEP_REDIS_URL", redis_env.url(14))  # the fixture's cleanup
        settings_mod.settings.cache_clear()
        state.client.cache_clear()


def test_the_alert_store_gives_up_on_a_redis_that_stays_down_after_one_lease(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The store rides out an outage of one ledger lease and no more, bounded by time,
    not by attempts: against a Redis that takes connections and never answers (stalled),
    each attempt costs the client's 10-s socket timeout, and the call fails after the
    first one that ends past the lease, so the task's own limit and the ledger take over
    (counting attempts, this took 50 s here, and 20 minutes at the default lease)."""
    import redis

    from workers import settings as settings_mod
    from workers import state

    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(16)  # connections complete in the kernel; nothing ever reads them
    try:
        monkeypatch.setenv("KEYSWEEP_REDIS_URL", f"redis://127.0.0.1:{stalled.getsockname()[1]}/1")
        settings_mod.settings.cache_clear()
        state.client.cache_clear()
        store = state.RedisDedup(pending_ttl=0.5)  # a lease of 1 s
        started = time.monotonic()
        with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
            store.confirm(["k"])
        assert time.monotonic() - started < 25
    finally:
        stalled.close()
        monkeypatch.setenv("KEYSWEEP_REDIS_URL", redis_env.url(14))  # the fixture's cleanup
        settings_mod.settings.cache_clear()
        state.client.cache_clear()


@respx.mock
def test_token_pool_rests_an_exhausted_token_and_uses_the_other() -> None:
    from workers.github import GitHub

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        tok = request.headers["Authorization"].split()[-1]
        seen.append(tok)
        if tok == "tok-a":
            return httpx.Response(
                403,
                headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "9999999999"},
                json={"message": "API rate limit exceeded"},
            )
        return httpx.Response(
            200,
            json=[],
            headers={
                "x-ratelimit-remaining": "4999",
                "x-ratelimit-limit": "5000",
                "x-ratelimit-reset": "9999999999",
            },
        )

    respx.get(f"{API}/events").mock(side_effect=answer)
    gh = GitHub(API, ("tok-a", "tok-b"))
    for _ in range(4):
        assert gh.get("/events").status_code == 200
    # tok-a answered at most once, then rested until its reset.
    assert seen.count("tok-a") == 1 and seen.count("tok-b") == 4
    budgets = gh.pool.budgets()
    assert budgets[0]["remaining"] == "0" and budgets[1]["remaining"] == "4999"


@respx.mock
def test_retry_after_rests_the_token_for_every_worker_and_nothing_is_sent_early() -> None:
    from workers.github import GitHub, RateLimited

    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        tok = request.headers["Authorization"].split()[-1]
        sent.append(tok)
        if tok == "tok-a":
            return httpx.Response(429, headers={"retry-after": "30"})
        return httpx.Response(200, json=[])

    respx.get(f"{API}/a").mock(side_effect=answer)
    worker1, worker2 = GitHub(API, ("tok-a", "tok-b")), GitHub(API, ("tok-a", "tok-b"))
    with pytest.raises(RateLimited) as err:
        while True:  # round-robin reaches tok-a within two requests
            worker1.get("/a")
    assert err.value.wait == 30
    # Another worker (its own client, the same Redis) never sends with tok-a now.
    for _ in range(6):
        assert worker2.get("/a").status_code == 200
    assert sent.count("tok-a") == 1, sent
    # With tok-a the only token, nothing is sent at all: the wait comes back instead.
    alone = GitHub(API, ("tok-a",))
    with pytest.raises(RateLimited) as err:
        alone.get("/a")
    assert 25 < err.value.wait <= 30 and sent.count("tok-a") == 1


@respx.mock
def test_a_secondary_limit_stops_every_token() -> None:
    from workers.github import GitHub, RateLimited

    route = respx.get(f"{API}/b").mock(
        return_value=httpx.Response(
            403,
            headers={"retry-after": "60"},
            json={"message": "You have exceeded a secondary rate limit"},
        )
    )
    gh = GitHub(API, ("tok-a", "tok-b"))
    with pytest.raises(RateLimited) as err:
        gh.get("/b")
    assert err.value.wait == 60 and route.call_count == 1
    with pytest.raises(RateLimited) as err:  # neither token may send
        GitHub(API, ("tok-a", "tok-b")).get("/b")
    assert 55 < err.value.wait <= 60 and route.call_count == 1


@respx.mock
def test_5xx_and_malformed_answers_are_transient() -> None:
    from workers.github import GitHub, GitHubUnavailable

    gh = GitHub(API, ("tok-a",))
    respx.get(f"{API}/c").mock(return_value=httpx.Response(502))
    with pytest.raises(GitHubUnavailable):
        gh.get("/c")
    respx.get(f"{API}/d").mock(return_value=httpx.Response(200, text="{not json"))
    with pytest.raises(GitHubUnavailable, match="malformed JSON"):
        gh.get_json("/d")


def test_an_older_answer_never_overwrites_a_newer_one() -> None:
    from workers.github import TokenPool

    pool = TokenPool(("tok-a",))

    def answer(remaining: int, used: int, reset: int) -> httpx.Headers:
        return httpx.Headers(
            {
                "x-ratelimit-remaining": str(remaining),
                "x-ratelimit-limit": "5000",
                "x-ratelimit-used": str(used),
                "x-ratelimit-reset": str(reset),
            }
        )

    pool.update(0, answer(4000, 1000, 2000))
    pool.update(0, answer(4500, 500, 2000))  # answered earlier, arrived later
    assert pool.budgets()[0]["remaining"] == "4000"
    pool.update(0, answer(4999, 1, 5600))  # a new window
    assert pool.budgets()[0]["remaining"] == "4999"
    pool.update(0, answer(0, 5000, 2000))  # the old window's last answer, late
    assert pool.budgets()[0]["remaining"] == "4999"


@respx.mock
def test_every_token_exhausted_waits_until_the_soonest_reset() -> None:
    import time

    from workers.github import GitHub, RateLimited

    reset = int(time.time()) + 120
    respx.get(f"{API}/e").mock(
        return_value=httpx.Response(
            403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}
        )
    )
    gh = GitHub(API, ("tok-a", "tok-b"))
    with pytest.raises(RateLimited) as err:
        gh.get("/e")
    assert 100 < err.value.wait <= 121


def test_json_logs_redact_keys_as_a_last_line_of_defence() -> None:
    from tests.helpers import github_token, mg_live
    from workers.logs import RedactingJsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingJsonFormatter())
    logger = logging.getLogger("keysweep.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    live, gh = mg_live(), github_token()
    logger.error("oops, a key slipped into a log line: %s and %s", live, gh)
    line = stream.getvalue().strip()
    entry = json.loads(line)
    assert live not in line and gh not in line
    assert live[:16] + "…" in entry["msg"] and gh[:12] + "…" in entry["msg"]


def test_the_alert_task_retries_an_alert_a_dead_sender_holds_until_its_claim_lapses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``send_alerts`` run again at once after its worker died mid-send (RabbitMQ
    redelivers as soon as the connection drops) finds the alert pending for the dead
    sender: it fails with a transient error (Celery retries it) instead of finishing as
    if the alert had been said, and once the claim has lapsed it sends the alert."""
    from scanner.errors import TransientError
    from scanner.notify.dispatch import Notifier
    from scanner.notify.message import alert_to_dict
    from tests.notify_receivers import http_inbox
    from tests.test_notify import Recorder, alert, whsec
    from workers import settings as settings_mod
    from workers import state, tasks

    secret = whsec()
    with http_inbox(secret) as hook:
        monkeypatch.setenv("KEYSWEEP_NOTIFY_WEBHOOK_URL", hook.url)
        monkeypatch.setenv("KEYSWEEP_NOTIFY_WEBHOOK_SECRET", secret)
        settings_mod.settings.cache_clear()
        # The worker that died: its claims pending for 1 s, its message never confirmed.
        planned, _, _ = Notifier({"webhook": Recorder()}, state.RedisDedup(pending_ttl=1)).plan(
            [alert(1)], "worker-that-died"
        )
        assert planned
        with pytest.raises(TransientError, match="held by another sender"):
            tasks.send_alerts([alert_to_dict(alert(1))])
        assert hook.requests == []
        deadline = time.monotonic() + 15
        while True:  # Celery's retries, with backoff
            try:
                assert tasks.send_alerts([alert_to_dict(alert(1))]) == 1
                break
            except TransientError:
                assert time.monotonic() < deadline, "the dead sender's claim never lapsed"
                time.sleep(0.2)
        assert len(hook.requests) == 1 and hook.verified == 1
        assert tasks.send_alerts([alert_to_dict(alert(1))]) == 0  # said: nothing more
        assert len(hook.requests) == 1
