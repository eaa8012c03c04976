"""The key-service client's edge cases, one HTTP client against respx."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
import respx

from scanner.findings import FindingSet, Location
from scanner.keyservice import CircuitBreaker, CircuitOpenError, KeyServiceClient, KeyServiceError
from scanner.resolve import MemoryNegativeCache, resolve

URL = "https://keys.test"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(sleeps: list[float]) -> KeyServiceClient:
    return KeyServiceClient(URL, "t0ken", retries=3, backoff=0.5, sleep=sleeps.append)


def match(h: str, key_id: str = "key_1") -> dict:
    return {
        "sha256": h,
        "key_id": key_id,
        "display_prefix": "mg_live_abcdefgh",
        "environment": "live",
        "status": "active",
        "revoked_at": None,
        "org_id": "org_1",
        "project_id": "proj_1",
        "owner": {"name": "Ann", "email": "ann@example.com"},
    }


H = hashlib.sha256(b"one").hexdigest()


@respx.mock
def test_429_waits_retry_after_then_succeeds(client: KeyServiceClient, sleeps: list[float]) -> None:
    route = respx.post(f"{URL}/v1/keys/lookup").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "2"}),
            httpx.Response(200, json={"matches": [match(H)]}),
        ]
    )
    assert client.lookup([H])[H].key_id == "key_1"
    assert route.call_count == 2 and sleeps == [2.0]
    assert route.calls[0].request.headers["Authorization"] == "Bearer t0ken"


@respx.mock
def test_5xx_then_success_backs_off_with_jitter(
    client: KeyServiceClient, sleeps: list[float]
) -> None:
    route = respx.post(f"{URL}/v1/keys/lookup").mock(
        side_effect=[
            httpx.Response(503),
            httpx.Response(502),
            httpx.Response(200, json={"matches": []}),
        ]
    )
    assert client.lookup([H]) == {}
    assert route.call_count == 3
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0


@respx.mock
def test_timeouts_are_retried_then_reported(client: KeyServiceClient, sleeps: list[float]) -> None:
    route = respx.post(f"{URL}/v1/keys/lookup").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(KeyServiceError, match="failed after 4 attempts: ReadTimeout"):
        client.lookup([H])
    assert route.call_count == 4 and len(sleeps) == 3


@respx.mock
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_4xx_are_not_retried(client: KeyServiceClient, status: int) -> None:
    route = respx.post(f"{URL}/v1/keys/lookup").mock(
        return_value=httpx.Response(status, json={"error": "nope"})
    )
    with pytest.raises(KeyServiceError, match=f"{status} nope") as err:
        client.lookup([H])
    assert route.call_count == 1 and err.value.status == status
    if status == 401:
        assert "KEYSWEEP_KEYSERVICE_TOKEN" in str(err.value)


@respx.mock
def test_malformed_json_is_a_clear_error(client: KeyServiceClient) -> None:
    respx.post(f"{URL}/v1/keys/lookup").mock(return_value=httpx.Response(200, text="{nope"))
    with pytest.raises(KeyServiceError, match="malformed JSON"):
        client.lookup([H])
    respx.post(f"{URL}/v1/keys/lookup").mock(return_value=httpx.Response(200, json={"x": 1}))
    with pytest.raises(KeyServiceError, match="malformed"):
        client.lookup([H])


@respx.mock
def test_circuit_opens_then_half_opens_and_closes(sleeps: list[float]) -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, reset_after=30, clock=clock)
    client = KeyServiceClient(URL, "t", retries=5, breaker=breaker, sleep=sleeps.append)
    route = respx.post(f"{URL}/v1/keys/lookup").mock(return_value=httpx.Response(500))
    with pytest.raises(CircuitOpenError):
        client.lookup([H])
    assert route.call_count == 3 and breaker.state == "open"  # no storm: 3, not 6
    with pytest.raises(CircuitOpenError):
        client.lookup([H])
    assert route.call_count == 3  # open: not even tried
    clock.now += 31
    route.mock(return_value=httpx.Response(200, json={"matches": []}))
    assert client.lookup([H]) == {}
    assert route.call_count == 4 and breaker.state == "closed"


def test_the_scan_clients_breaker_is_the_readmes() -> None:
    """README (Revoking leaked keys): 5 consecutive failures, then 30 s open, then one probe."""
    clock = Clock()
    b = KeyServiceClient(URL, "t").breaker
    b.clock = clock
    for _ in range(4):
        b.failure()
    assert b.allow()
    b.failure()
    assert not b.allow()
    clock.now += 29
    assert not b.allow()
    clock.now += 2
    assert b.allow() and b.state == "half-open"


def test_half_open_probe_failure_reopens() -> None:
    clock = Clock()
    b = CircuitBreaker(threshold=2, reset_after=10, clock=clock)
    b.failure()
    b.failure()
    assert not b.allow()
    clock.now += 11
    assert b.allow() and b.state == "half-open"
    b.failure()
    assert b.state == "open" and not b.allow()


@respx.mock
def test_lookup_batches_of_1000(client: KeyServiceClient) -> None:
    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2500)]
    route = respx.post(f"{URL}/v1/keys/lookup").mock(
        return_value=httpx.Response(200, json={"matches": []})
    )
    client.lookup(hashes)
    sizes = [len(json.loads(c.request.content)["hashes"]) for c in route.calls]
    assert sizes == [1000, 1000, 500]


def _findings() -> list:
    from scanner.engine import Engine
    from scanner.rules import load_rules
    from tests.helpers import github_token, mg_live

    eng = Engine(load_rules())
    fs = FindingSet()
    text = f"{mg_live()}\n{github_token()}\n".encode()
    for m in eng.scan(text):
        fs.add(m, Location(kind="stdin"))
    return fs.findings()


@respx.mock
def test_resolve_sends_only_our_hashes_and_caches_unknowns(client: KeyServiceClient) -> None:
    findings = _findings()
    ours = next(f for f in findings if f.owner == "keyservice")
    theirs = next(f for f in findings if f.owner == "third_party")
    route = respx.post(f"{URL}/v1/keys/lookup").mock(
        return_value=httpx.Response(200, json={"matches": []})
    )
    cache = MemoryNegativeCache(ttl=60)
    owned = resolve(findings, client, cache)
    assert [o.finding.fingerprint for o in owned] == [ours.fingerprint] and owned[0].record is None
    sent = json.loads(route.calls[0].request.content)["hashes"]
    assert sent == [ours.secret_sha256] and theirs.secret_sha256 not in sent
    resolve(findings, client, cache)
    assert route.call_count == 1  # the unknown hash is not asked about again


def test_negative_cache_is_bounded_and_expires() -> None:
    clock = Clock()
    cache = MemoryNegativeCache(maxsize=2, ttl=10, clock=clock)
    cache.remember_unknown(["a", "b", "c"])
    assert len(cache) == 2 and cache.known_unknown(["a", "b", "c"]) == {"b", "c"}
    clock.now += 11
    assert cache.known_unknown(["b", "c"]) == set()
