"""The reference key service (deploy/keyservice) against the v1 contract.

Everything runs against a real ``server.py`` subprocess over real HTTP on
loopback. Every response any test receives is validated against the schema that
``deploy/keyservice/openapi.json`` documents for that operation and status code.
Keys exist only at run time: the service mints them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.keyservice_fixture import KeyService, KeyServiceError, keyservice, start_keyservice

__all__ = ["keyservice"]  # the fixture, re-exported so pytest finds it here

ROOT = Path(__file__).resolve().parent.parent
KEYSERVICE_DIR = ROOT / "deploy" / "keyservice"
OPENAPI_FILE = KEYSERVICE_DIR / "openapi.json"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
KEY_RE = re.compile(r"mg_(live|test)_[A-Za-z0-9_-]{32}")


# --------------------------------------------------------------------------- OpenAPI helper

FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return datetime.fromisoformat(value).tzinfo is not None


class OpenAPI:
    """Validates responses against an OpenAPI 3.1 document's response schemas."""

    BASE = "urn:keysweep:keyservice-openapi"

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        resource: Resource[Any] = Resource(contents=doc, specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(self.BASE, resource)
        self.templates: list[tuple[re.Pattern[str], str]] = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(p)) + "$"), p)
            for p in doc["paths"]
        ]
        # (method, path template, status) of every response validated so far.
        self.exercised: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def operations(self) -> set[tuple[str, str]]:
        return {
            (method.upper(), path)
            for path, item in self.doc["paths"].items()
            for method in item
            if method in HTTP_METHODS
        }

    def documented_responses(self) -> set[tuple[str, str, str]]:
        return {
            (method, path, status)
            for method, path in self.operations()
            for status in self.doc["paths"][path][method.lower()]["responses"]
        }

    def pointer(self, ref: str) -> tuple[Any, str]:
        assert ref.startswith("#/"), ref
        node: Any = self.doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, ref[1:]

    def template_for(self, path: str) -> str:
        matches = [template for rx, template in self.templates if rx.match(path)]
        # A literal path beats a templated one (/v1/keys/lookup vs /v1/keys/{key_id}...).
        matches.sort(key=lambda t: t.count("{"))
        assert matches, f"{path} is not documented in openapi.json"
        return matches[0]

    def response_validator(self, method: str, template: str, status: str) -> Draft202012Validator:
        operation = self.doc["paths"][template].get(method.lower())
        assert operation is not None, f"{method} {template} is not documented"
        responses = operation["responses"]
        assert status in responses, f"{method} {template} answered undocumented {status}"
        node = responses[status]
        where = (
            "/"
            + "/".join(
                p.replace("~", "~0").replace("/", "~1") for p in ("paths", template, method.lower())
            )
            + f"/responses/{status}"
        )
        if "$ref" in node:
            node, where = self.pointer(node["$ref"])
        assert "application/json" in node.get("content", {}), f"{where}: no JSON content"
        schema_ptr = where + "/content/application~1json/schema"
        ref = {"$ref": f"{self.BASE}#{quote(schema_ptr, safe='/~')}"}
        return Draft202012Validator(ref, registry=self.registry, format_checker=FORMATS)

    def validate(self, response: httpx.Response) -> None:
        method = response.request.method
        template = self.template_for(response.request.url.path)
        status = str(response.status_code)
        validator = self.response_validator(method, template, status)
        ctype = response.headers.get("content-type", "")
        assert ctype.startswith("application/json"), f"{method} {template}: {ctype!r}"
        body = response.json()
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        assert not errors, (
            f"{method} {template} {status} does not match openapi.json: "
            + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
        )
        with self._lock:
            self.exercised.add((method, template, status))

    def hook(self, response: httpx.Response) -> None:
        response.read()
        self.validate(response)


SPEC = OpenAPI(json.loads(OPENAPI_FILE.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyService]:
    with start_keyservice(tmp_path_factory.mktemp("keyservice")) as service:
        service.response_hooks.append(SPEC.hook)
        yield service


@pytest.fixture(scope="module")
def ks_no_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyService]:
    with start_keyservice(tmp_path_factory.mktemp("keyservice-notoken"), token=None) as service:
        service.response_hooks.append(SPEC.hook)
        yield service


@pytest.fixture
def api(ks: KeyService) -> Iterator[httpx.Client]:
    with ks.client() as client:
        yield client


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def idem() -> str:
    return "idem-" + secrets.token_hex(8)


def revoke(
    client: httpx.Client, key_id: str, idempotency_key: str | None, **body: Any
) -> httpx.Response:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    payload = {
        "reason": "leaked",
        "source_url": "https://github.com/octo/demo/blob/abc123/config.py#L3",
        "detected_at": "2024-05-01T12:00:00Z",
        **body,
    }
    return client.post(f"/v1/keys/{key_id}/revoke", json=payload, headers=headers)


def audit_event(target: str, **overrides: Any) -> dict[str, Any]:
    event = {
        "action": "api_key.leak_detected",
        "actor": "keysweep",
        "target": target,
        "timestamp": "2024-05-01T12:00:00+00:00",
        "ip": "192.0.2.10",
        "user_agent": "keysweep/0.1",
        "org_id": "org_test",
        "metadata": {
            "source_url": "https://github.com/octo/demo/blob/abc123/config.py#L3",
            "commit": "abc123",
            "path": "config.py",
            "line": 3,
            "fingerprint": "fp-" + secrets.token_hex(8),
        },
    }
    event.update(overrides)
    return event


# --------------------------------------------------------------------------- fixture


def test_keyservice_fixture_gives_a_fresh_service(keyservice: KeyService) -> None:
    keyservice.response_hooks.append(SPEC.hook)
    created = keyservice.mint(env="test", org_id="org_fresh")
    with keyservice.client() as client:
        events = client.get("/v1/audit-events").json()["events"]
        lookup = client.post("/v1/keys/lookup", json={"hashes": [sha(created["key"])]}).json()
    assert events == []
    assert [m["org_id"] for m in lookup["matches"]] == ["org_fresh"]
    assert keyservice.db_path.exists()
    assert f"keyservice listening on {keyservice.url}" in keyservice.log()


def test_start_failure_reports_the_server_output(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is not an address of this machine: bind() fails.
    with (
        pytest.raises(KeyServiceError, match=re.escape("cannot listen on 192.0.2.1")) as info,
        start_keyservice(tmp_path, extra_args=["--host", "192.0.2.1"]),
    ):
        pass
    assert "exited with code 1" in str(info.value)


# --------------------------------------------------------------------------- auth


def test_healthz_and_openapi_need_no_token(ks: KeyService) -> None:
    with ks.client(auth=False) as anon:
        assert anon.get("/healthz").json() == {"status": "ok"}
        served = anon.get("/openapi.json")
        assert served.status_code == 200
        assert served.json() == SPEC.doc


def test_auth_missing_or_wrong_token_is_401(ks: KeyService) -> None:
    lookup = {"hashes": ["0" * 64]}
    wrong = ks.token + "x" if ks.token else "x"
    with ks.client(auth=False) as anon:
        for headers in (
            {},
            {"Authorization": f"Bearer {wrong}"},
            {"Authorization": "Bearer"},
            {"Authorization": f"Basic {ks.token}"},
            {"X-API-Key": wrong},
            {"X-API-Key": ""},
        ):
            for response in (
                anon.post("/v1/keys/lookup", json=lookup, headers=headers),
                anon.get("/v1/audit-events", headers=headers),
                anon.post(
                    "/v1/keys/key_0000000000000000/revoke",
                    json={"reason": "leaked"},
                    headers={**headers, "Idempotency-Key": idem()},
                ),
            ):
                assert response.status_code == 401, (headers, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer")
                assert response.json()["error"]
        ok_bearer = anon.post(
            "/v1/keys/lookup", json=lookup, headers={"Authorization": f"Bearer {ks.token}"}
        )
        ok_api_key = anon.post("/v1/keys/lookup", json=lookup, headers={"X-API-Key": ks.token})
        assert ok_bearer.status_code == 200, ok_bearer.text
        assert ok_api_key.status_code == 200, ok_api_key.text
        assert ok_bearer.json() == ok_api_key.json() == {"matches": []}


def test_no_token_configured_is_503(ks_no_token: KeyService) -> None:
    with ks_no_token.client(auth=False) as anon:
        assert anon.get("/healthz").status_code == 200
        for headers in ({}, {"Authorization": "Bearer anything"}, {"X-API-Key": "anything"}):
            response = anon.post("/v1/keys/lookup", json={"hashes": ["0" * 64]}, headers=headers)
            assert response.status_code == 503
            assert response.json() == {"error": "service has no token configured"}
            assert anon.get("/v1/audit-events", headers=headers).status_code == 503
    assert "no token configured" in ks_no_token.log()


# --------------------------------------------------------------------------- keys


def test_create_then_lookup_by_sha256(ks: KeyService, api: httpx.Client) -> None:
    owner = {"name": "Grace Owner", "email": "grace@example.com"}
    live = ks.mint(env="live", org_id="org_a", project_id="proj_a", owner=owner)
    test = ks.mint(env="test", org_id="org_b", project_id="proj_b")
    for created, env in ((live, "live"), (test, "test")):
        assert KEY_RE.fullmatch(created["key"]), "key format"
        assert created["key"].startswith(f"mg_{env}_")
        assert created["display_prefix"] == created["key"][:16]
        assert re.fullmatch(r"key_[0-9a-f]{16}", created["key_id"])
        assert created["status"] == "active"
    assert live["key"] != test["key"]

    unknown = sha("not a key " + secrets.token_hex(8))
    response = api.post(
        "/v1/keys/lookup", json={"hashes": [unknown, sha(test["key"]), sha(live["key"])]}
    )
    assert response.status_code == 200
    matches = response.json()["matches"]
    assert [m["sha256"] for m in matches] == [sha(test["key"]), sha(live["key"])]
    assert matches[1] == {
        "sha256": sha(live["key"]),
        "key_id": live["key_id"],
        "display_prefix": live["display_prefix"],
        "environment": "live",
        "status": "active",
        "revoked_at": None,
        "org_id": "org_a",
        "project_id": "proj_a",
        "owner": owner,
    }
    assert matches[0]["environment"] == "test"
    assert matches[0]["org_id"] == "org_b"

    only_unknown = api.post("/v1/keys/lookup", json={"hashes": [unknown]})
    assert only_unknown.json() == {"matches": []}
    # The hash of the key, not the key or its prefix, is what finds it.
    assert api.post("/v1/keys/lookup", json={"hashes": [sha(live["key"] + "\n")]}).json() == {
        "matches": []
    }


def test_create_key_validates_body(api: httpx.Client) -> None:
    good = {
        "org_id": "org",
        "project_id": "proj",
        "environment": "live",
        "owner": {"name": "N", "email": "n@example.com"},
    }
    for bad in (
        {**good, "environment": "prod"},
        {k: v for k, v in good.items() if k != "org_id"},
        {**good, "owner": "n@example.com"},
        {**good, "owner": {"name": "N", "email": "not-an-email"}},
    ):
        response = api.post("/v1/keys", json=bad)
        assert response.status_code == 400, bad
        assert "key" not in response.json()


def test_lookup_rejects_bad_input(api: httpx.Client) -> None:
    too_many = [sha(str(i)) for i in range(1001)]
    response = api.post("/v1/keys/lookup", json={"hashes": too_many})
    assert response.status_code == 413
    assert api.post("/v1/keys/lookup", json={"hashes": too_many[:1000]}).status_code == 200
    for hashes in (
        [sha("x").upper()],
        [sha("x")[:63]],
        [sha("x") + "0"],
        ["g" * 64],
        [123],
        [],
        sha("x"),
        None,
    ):
        response = api.post("/v1/keys/lookup", json={"hashes": hashes})
        assert response.status_code == 400, hashes
    assert api.post("/v1/keys/lookup", json={}).status_code == 400
    assert api.post("/v1/keys/lookup", json=[sha("x")]).status_code == 400
    not_json = api.post(
        "/v1/keys/lookup", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400


# --------------------------------------------------------------------------- revoke


def test_revoke_is_idempotent(ks: KeyService, api: httpx.Client) -> None:
    created = ks.mint()
    key_id = created["key_id"]
    first_key = idem()
    first = revoke(api, key_id, first_key)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["key_id"] == key_id
    assert body["status"] == "revoked"
    assert body["already_revoked"] is False
    revoked_at = datetime.fromisoformat(body["revoked_at"])
    assert revoked_at.utcoffset() is not None and revoked_at.utcoffset().total_seconds() == 0

    replay = revoke(api, key_id, first_key, source_url="https://example.com/other")
    assert replay.status_code == 200
    assert replay.content == first.content
    assert replay.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers

    second = revoke(api, key_id, idem())
    assert second.status_code == 200
    assert second.json() == {**body, "already_revoked": True}

    looked_up = api.post("/v1/keys/lookup", json={"hashes": [sha(created["key"])]}).json()
    (match,) = looked_up["matches"]
    assert match["status"] == "revoked"
    assert match["revoked_at"] == body["revoked_at"]

    # Revoking one key leaves others active.
    other = ks.mint()
    (other_match,) = api.post("/v1/keys/lookup", json={"hashes": [sha(other["key"])]}).json()[
        "matches"
    ]
    assert other_match["status"] == "active"
    assert other_match["revoked_at"] is None


def test_revoke_errors(ks: KeyService, api: httpx.Client) -> None:
    unknown = revoke(api, "key_" + secrets.token_hex(8), idem())
    assert unknown.status_code == 404
    assert revoke(api, "nonsense", idem()).status_code == 404
    created = ks.mint()
    missing_idem = revoke(api, created["key_id"], None)
    assert missing_idem.status_code == 400
    assert "Idempotency-Key" in missing_idem.json()["error"]
    assert revoke(api, created["key_id"], idem(), reason="bored").status_code == 400
    assert revoke(api, created["key_id"], idem(), detected_at="yesterday").status_code == 400
    # None of the rejected calls revoked the key.
    (match,) = api.post("/v1/keys/lookup", json={"hashes": [sha(created["key"])]}).json()["matches"]
    assert match["status"] == "active"


def test_concurrent_revokes_revoke_once(ks: KeyService) -> None:
    created = ks.mint()

    def one(_: int) -> dict[str, Any]:
        with ks.client() as client:
            response = revoke(client, created["key_id"], idem())
            assert response.status_code == 200
            result: dict[str, Any] = response.json()
            return result

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(16)))
    assert sum(not r["already_revoked"] for r in results) == 1
    assert len({r["revoked_at"] for r in results}) == 1


# --------------------------------------------------------------------------- audit


def test_audit_event_idempotent_and_filtered(ks: KeyService, api: httpx.Client) -> None:
    target = ks.mint()["display_prefix"]
    event = audit_event(target)
    key = idem()
    first = api.post("/v1/audit-events", json=event, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    event_id = first.json()["id"]
    again = api.post(
        "/v1/audit-events",
        json={**event, "action": "api_key.revoked"},
        headers={"Idempotency-Key": key},
    )
    assert again.status_code == 201
    assert again.json() == {"id": event_id}
    assert again.headers.get("idempotent-replayed") == "true"

    revoked = api.post(
        "/v1/audit-events",
        json=audit_event(target, action="api_key.revoked"),
        headers={"Idempotency-Key": idem()},
    )
    assert revoked.status_code == 201
    assert revoked.json()["id"] != event_id

    events = api.get("/v1/audit-events", params={"target": target}).json()["events"]
    assert [e["id"] for e in events] == [event_id, revoked.json()["id"]]
    stored = events[0]
    assert stored["action"] == "api_key.leak_detected"
    assert stored["actor"] == "keysweep"
    assert stored["target"] == target
    assert stored["timestamp"] == "2024-05-01T12:00:00.000000Z"
    assert (stored["ip"], stored["user_agent"], stored["org_id"]) == (
        "192.0.2.10",
        "keysweep/0.1",
        "org_test",
    )
    assert stored["metadata"] == event["metadata"]

    only_revoked = api.get(
        "/v1/audit-events", params={"target": target, "action": "api_key.revoked"}
    ).json()["events"]
    assert [e["id"] for e in only_revoked] == [revoked.json()["id"]]
    all_revoked = api.get("/v1/audit-events", params={"action": "api_key.revoked"}).json()
    assert revoked.json()["id"] in {e["id"] for e in all_revoked["events"]}
    assert event_id not in {e["id"] for e in all_revoked["events"]}
    everything = api.get("/v1/audit-events").json()["events"]
    assert {event_id, revoked.json()["id"]} <= {e["id"] for e in everything}


def test_audit_event_defaults_ip_and_user_agent(ks: KeyService) -> None:
    target = ks.mint(env="test")["display_prefix"]
    event = audit_event(target)
    del event["ip"], event["user_agent"], event["metadata"]
    with ks.client() as client:
        client.headers["User-Agent"] = "keysweep-worker/9"
        created = client.post("/v1/audit-events", json=event)
        assert created.status_code == 201
        (stored,) = client.get("/v1/audit-events", params={"target": target}).json()["events"]
    assert stored["id"] == created.json()["id"]
    assert stored["ip"] == "127.0.0.1"
    assert stored["user_agent"] == "keysweep-worker/9"
    assert stored["metadata"] == {}


def test_audit_event_concurrent_same_idempotency_key(ks: KeyService) -> None:
    target = ks.mint()["display_prefix"]
    event = audit_event(target)
    key = idem()

    def one(_: int) -> str:
        with ks.client() as client:
            response = client.post("/v1/audit-events", json=event, headers={"Idempotency-Key": key})
            assert response.status_code == 201
            return str(response.json()["id"])

    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(one, range(16)))
    assert len(ids) == 1
    with ks.client() as client:
        events = client.get("/v1/audit-events", params={"target": target}).json()["events"]
    assert [e["id"] for e in events] == list(ids)


def test_audit_event_validation(ks: KeyService, api: httpx.Client) -> None:
    created = ks.mint()
    target = created["display_prefix"]
    full_key = created["key"]
    bad_events = [
        audit_event(target, action="api_key.deleted"),
        audit_event(full_key),
        audit_event(target + "x"),
        audit_event("sk_live_abcdefgh"),
        audit_event(target, metadata=["not", "an", "object"]),
        audit_event(target, metadata={"note": f"found {full_key} in config.py"}),
        audit_event(target, timestamp="not a time"),
        {k: v for k, v in audit_event(target).items() if k != "actor"},
    ]
    for bad in bad_events:
        response = api.post("/v1/audit-events", json=bad, headers={"Idempotency-Key": idem()})
        assert response.status_code == 400, bad["target"]
        assert full_key not in response.text
    assert api.get("/v1/audit-events", params={"target": target}).json() == {"events": []}
    assert api.get("/v1/audit-events", params={"target": full_key}).status_code == 400
    assert api.get("/v1/audit-events", params={"action": "nope"}).status_code == 400
    # A shorter prefix (at most 8 body characters) is a valid target.
    short = api.post("/v1/audit-events", json=audit_event(target[:12]))
    assert short.status_code == 201


# --------------------------------------------------------------------------- no cleartext


def test_no_cleartext_key_in_database_or_log(tmp_path: Path) -> None:
    with start_keyservice(tmp_path) as service:
        service.response_hooks.append(SPEC.hook)
        created = [service.mint(env=env) for env in ("live", "test", "live", "test", "live")]
        keys = [c["key"] for c in created]
        with service.client() as client:
            client.headers["User-Agent"] = f"curl/8 {keys[4]}"
            lookup = client.post("/v1/keys/lookup", json={"hashes": [sha(k) for k in keys]})
            assert len(lookup.json()["matches"]) == len(keys)
            for c in created[:3]:
                assert revoke(client, c["key_id"], idem()).status_code == 200
                event = audit_event(c["display_prefix"], action="api_key.revoked")
                assert client.post("/v1/audit-events", json=event).status_code == 201
            # Hostile calls that carry a full key: refused, and the key must not stick.
            assert revoke(client, keys[3], idem()).status_code == 404
            bad_url = revoke(client, created[3]["key_id"], idem(), source_url=f"x?k={keys[3]}")
            assert bad_url.status_code == 400
            assert client.post("/v1/audit-events", json=audit_event(keys[4])).status_code == 400
            leaky = audit_event(created[4]["display_prefix"], metadata={"line": keys[4]})
            assert client.post("/v1/audit-events", json=leaky).status_code == 400
            query = client.get("/v1/audit-events", params={"target": keys[0]})
            assert query.status_code == 400
            # The User-Agent default is stored redacted.
            plain = audit_event(created[4]["display_prefix"])
            del plain["user_agent"]
            assert client.post("/v1/audit-events", json=plain).status_code == 201
            (stored,) = client.get(
                "/v1/audit-events", params={"target": created[4]["display_prefix"]}
            ).json()["events"]
            assert stored["user_agent"] == f"curl/8 {created[4]['display_prefix']}..."

        def db_bytes() -> bytes:
            files = sorted(tmp_path.glob(service.db_path.name + "*"))
            assert service.db_path in files
            return b"".join(f.read_bytes() for f in files)

        running = db_bytes()
        service.stop()
        stopped = db_bytes()
        log = service.log_path.read_bytes()

    for key in keys:
        for blob, where in ((running, "db (running)"), (stopped, "db"), (log, "log")):
            assert key.encode() not in blob, f"cleartext key found in {where}"
    for key in keys:
        assert sha(key).encode() in stopped
    # The log is real (access lines present) and shows redacted forms only.
    text = log.decode()
    assert "POST /v1/keys/lookup" in text
    assert f"/v1/keys/{keys[3][:16]}.../revoke" in text
    assert f"target={keys[0][:16]}..." in text
    assert "keyservice listening on http://127.0.0.1:" in text


# --------------------------------------------------------------------------- OpenAPI


def load_app_module() -> Any:
    spec = importlib.util.spec_from_file_location("keyservice_app", KEYSERVICE_DIR / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_openapi_documents_exactly_the_served_routes(tmp_path: Path) -> None:
    app = load_app_module().create_app(str(tmp_path / "routes.sqlite3"), "token")
    served = {
        (method, route.path)
        for route in app.routes
        for method in (getattr(route, "methods", None) or ())
        if method != "HEAD"
    }
    assert served
    assert served == SPEC.operations()


def test_openapi_document_is_well_formed() -> None:
    doc = SPEC.doc
    assert doc["openapi"].startswith("3.1.")
    schemes = doc["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= schemes["bearerAuth"].items()
    assert schemes["apiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    for ref in refs(doc):
        SPEC.pointer(ref)  # raises KeyError when dangling
    for method, path in SPEC.operations():
        operation = doc["paths"][path][method.lower()]
        assert operation.get("operationId"), (method, path)
        if path.startswith("/v1/"):
            assert operation.get("security") is None, "v1 calls use the global security"
            assert {"400", "401", "503"} <= set(operation["responses"]), (method, path)
            assert "requestBody" in operation or method == "GET"
        else:
            assert operation["security"] == [], "healthz and openapi.json are open"
        for status in operation["responses"]:
            SPEC.response_validator(method, path, status)
    revoke_op = doc["paths"]["/v1/keys/{key_id}/revoke"]["post"]
    assert "404" in revoke_op["responses"]


def test_openapi_validation_catches_drift() -> None:
    validator = SPEC.response_validator("POST", "/v1/keys/{key_id}/revoke", "200")
    good = {
        "key_id": "key_0123456789abcdef",
        "status": "revoked",
        "revoked_at": "2024-05-01T12:00:00.000000Z",
        "already_revoked": False,
    }
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "already_revoked": "no"})
    assert not validator.is_valid({**good, "extra": 1})
    assert not validator.is_valid({k: v for k, v in good.items() if k != "revoked_at"})
    lookup = SPEC.response_validator("POST", "/v1/keys/lookup", "200")
    assert not lookup.is_valid({"matches": [{"sha256": "0" * 64}]})
    with pytest.raises(AssertionError, match="undocumented"):
        SPEC.response_validator("POST", "/v1/keys/lookup", "418")


def test_every_documented_response_is_exercised(ks: KeyService, ks_no_token: KeyService) -> None:
    """Drive each documented (operation, status) once; the hook validates each answer."""
    created = ks.mint()
    with ks.client() as api, ks.client(auth=False) as anon, ks_no_token.client() as off:
        anon.get("/healthz")
        anon.get("/openapi.json")
        api.post("/v1/keys", json={"environment": "nope"})
        api.post("/v1/keys/lookup", json={"hashes": [sha(created["key"])]})
        api.post("/v1/keys/lookup", json={"hashes": ["x"]})
        api.post("/v1/keys/lookup", json={"hashes": ["0" * 64] * 1001})
        revoke(api, created["key_id"], idem())
        revoke(api, created["key_id"], None)
        revoke(api, "key_" + secrets.token_hex(8), idem())
        api.post("/v1/audit-events", json=audit_event(created["display_prefix"]))
        api.post("/v1/audit-events", json=audit_event(created["key"]))
        api.get("/v1/audit-events", params={"target": created["display_prefix"]})
        api.get("/v1/audit-events", params={"action": "nope"})
        for method, path in SPEC.operations():
            if path.startswith("/v1/"):
                url = path.replace("{key_id}", created["key_id"])
                anon.request(method, url, json={})
                off.request(method, url, json={})
    missing = SPEC.documented_responses() - SPEC.exercised
    assert not missing, f"documented but never exercised/validated: {sorted(missing)}"
