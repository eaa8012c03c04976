"""The partner intake's pieces without processes: GitHub's own signature test
vector, the key cache's refetch limit, findings identical to the crawler's,
feedback labels, and the request parsers' limits."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from scanner.config import Config
from scanner.findings import Location
from scanner.partner.app import label_of
from scanner.partner.intake import (
    BadRequest,
    Intake,
    Report,
    github_reports,
    gitlab_reports,
    location_of,
)
from scanner.partner.signature import KeyRing
from scanner.scan import Collector, build_engine
from scanner.sources.files import BufferFragment
from tests.helpers import mg_live, mg_test

# GitHub's partner-program page publishes this test key, body, identifier and
# signature ("The key id and signature from the example payload is derived from a
# test key"): a public key, not a secret.
DOC_PEM = """-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEsz9ugWDj5jK5ELBK42ynytbo38gP
HzZFI03Exwz8Lh/tCfL3YxwMdLjB+bMznsanlhK0RwcGP3IDb34kQDIo3Q==
-----END PUBLIC KEY-----
"""
DOC_ID = "f9525bf080f75b3506ca1ead061add62b8633a346606dc5fe544e29231c6ee0d"
DOC_SIG = (
    "MEUCIFLZzeK++IhS+y276SRk2Pe5LfDrfvTXu6iwKKcFGCrv"
    "AiEAhHN2kDOhy2I6eGkOFmxNkOJ+L2y8oQ9A2T9GGJo6WJY="
)
DOC_BODY = b'[{"token":"some_token","type":"some_type","url":"some_url","source":"some_source"}]'


def ring(clock: list[float] | None = None, keys: list[dict] | None = None) -> KeyRing:
    calls: list[int] = []

    async def fetch() -> dict:
        calls.append(1)
        return {
            "public_keys": keys
            if keys is not None
            else [{"key_identifier": DOC_ID, "key": DOC_PEM, "is_current": True}]
        }

    kr = KeyRing(fetch, clock=(lambda: clock[0]) if clock else __import__("time").monotonic)
    kr.calls = calls  # type: ignore[attr-defined]
    return kr


def test_githubs_documented_test_vector_verifies_and_a_changed_body_does_not() -> None:
    kr = ring()
    assert asyncio.run(kr.verify(DOC_BODY, DOC_ID, DOC_SIG)).ok
    for body in (DOC_BODY + b"\n", DOC_BODY.replace(b"some_token", b"some_tokem")):
        assert asyncio.run(kr.verify(body, DOC_ID, DOC_SIG)).reason == "bad_signature"
    assert asyncio.run(kr.verify(DOC_BODY, None, DOC_SIG)).reason == "missing"
    assert asyncio.run(kr.verify(DOC_BODY, DOC_ID, "not base64!")).reason == "malformed"


def test_unknown_identifiers_refetch_at_most_once_a_minute() -> None:
    now = [1000.0]
    kr = ring(now)
    for _ in range(50):
        assert asyncio.run(kr.verify(DOC_BODY, "0" * 64, DOC_SIG)).reason == "unknown_key"
    assert len(kr.calls) == 1  # type: ignore[attr-defined]
    now[0] += 59.0
    asyncio.run(kr.verify(DOC_BODY, "0" * 64, DOC_SIG))
    assert len(kr.calls) == 1  # type: ignore[attr-defined]
    now[0] += 1.0
    asyncio.run(kr.verify(DOC_BODY, "0" * 64, DOC_SIG))
    assert len(kr.calls) == 2  # type: ignore[attr-defined]
    # A known identifier never costs a fetch.
    for _ in range(10):
        assert asyncio.run(kr.verify(DOC_BODY, DOC_ID, DOC_SIG)).ok
    assert len(kr.calls) == 2  # type: ignore[attr-defined]


def test_the_key_list_is_refreshed_hourly() -> None:
    now = [1000.0]
    kr = ring(now)
    assert asyncio.run(kr.verify(DOC_BODY, DOC_ID, DOC_SIG)).ok
    now[0] += 3599.0
    assert asyncio.run(kr.verify(DOC_BODY, DOC_ID, DOC_SIG)).ok
    assert len(kr.calls) == 1  # type: ignore[attr-defined]
    now[0] += 1.0
    assert asyncio.run(kr.verify(DOC_BODY, DOC_ID, DOC_SIG)).ok
    assert len(kr.calls) == 2  # type: ignore[attr-defined]


def test_keys_that_are_not_p256_are_ignored() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    pem = other.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    kr = ring(keys=[{"key_identifier": "p384", "key": pem}, {"key_identifier": "junk", "key": "x"}])
    assert asyncio.run(kr.verify(DOC_BODY, "p384", DOC_SIG)).reason == "unknown_key"


def test_partner_findings_have_the_crawlers_rule_ids_and_fingerprints() -> None:
    engine = build_engine(Config())
    keys = [mg_live(), mg_test(), mg_live() + "_old"]
    text = "\n".join(f"API_KEY={k}" for k in keys).encode()
    collector = Collector(engine, [])
    collector.scan(BufferFragment(text, "push", "app.env", "o/r"))
    crawler = {
        (f.rule_id, f.fingerprint, f.secret_sha256, f.redacted) for f in collector.found.findings()
    }
    intake = Intake(engine)
    partner = set()
    for k in keys:
        for f in intake.findings_for(k, Location(kind="github_alert")):
            assert f.secret is None and f.owner == "keyservice"
            partner.add((f.rule_id, f.fingerprint, f.secret_sha256, f.redacted))
    assert crawler <= partner, crawler - partner


def test_github_body_parsing_sources_urls_and_limits() -> None:
    intake = Intake(build_engine(Config()))
    key = mg_live()
    body = [
        {
            "token": key,
            "type": "mg_live",
            "url": f"https://github.com/o/r/blob/{'a' * 40}/src/app.py#L7",
            "source": "Commit",
        },
        {
            "token": key,
            "type": "mg_live",
            "url": f"https://example.com/leak?k={key}",
            "source": "wiki_page",
        },
        {"token": "gho_not_ours", "type": "mg_live", "url": "", "source": "npm"},
    ]
    reports = github_reports(intake, body, 10)
    assert [r.source for r in reports] == ["commit", "unknown", "npm"]
    assert reports[0].token_hash == hashlib.sha256(key.encode()).hexdigest()
    loc = reports[0].findings[0].location
    assert (loc.repo, loc.commit, loc.path, loc.line) == ("o/r", "a" * 40, "src/app.py", 7)
    assert loc.kind == "github_commit"  # who reported it, and GitHub's source
    assert key not in (reports[1].findings[0].location.url or "")  # a URL never carries the key
    assert reports[2].findings == []  # not one of our keys: nothing queued
    for bad in ({"token": key}, [{"type": "x"}], [key], [{"token": 5, "type": "x"}]):
        with pytest.raises(BadRequest):
            github_reports(intake, bad, 10)
    with pytest.raises(BadRequest, match="at most 2"):
        github_reports(intake, body, 2)


def test_gitlab_body_refuses_an_unsupported_type() -> None:
    intake = Intake(build_engine(Config()))
    ok = [{"type": "mg_live", "token": mg_live(), "location": "https://gitlab.example/x"}]
    assert len(gitlab_reports(intake, ok, 10, ("mg_live", "mg_test"))) == 1
    with pytest.raises(BadRequest, match="not supported"):
        gitlab_reports(
            intake, [*ok, {"type": "gitleaks_rule_id_aws", "token": "x"}], 10, ("mg_live",)
        )


def test_labels_from_what_is_known() -> None:
    intake = Intake(build_engine(Config()))
    rep: Report = github_reports(intake, [{"token": mg_live(), "type": "mg_live"}], 10)[0]
    (h,) = rep.hashes
    assert label_of(rep, {h: True}) == "true_positive"
    assert label_of(rep, {h: False}) == "false_positive"
    assert label_of(rep, {}) is None  # the key service did not answer in time: decided later
    empty = Report("0" * 64, "mg_live", "commit", [])
    assert label_of(empty, {}) == "false_positive"


def test_location_of_a_gist_and_of_anything_else() -> None:
    assert (
        location_of("https://gist.github.com/abc123", "github_gist_content").repo == "gist:abc123"
    )
    assert location_of("", "github_unknown").url is None


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_githubs_keys_unavailable_is_a_503_and_nothing_is_queued() -> None:
    from starlette.testclient import TestClient

    from scanner.partner.app import GITHUB_PATH, create_app
    from scanner.partner.settings import ServeSettings

    queued: list[list[dict]] = []

    async def unreachable() -> dict:
        raise OSError("GitHub is unreachable")

    app = create_app(
        ServeSettings(),
        submit=lambda findings, origin: queued.append(findings),
        engine=build_engine(Config()),
        fetch_keys=unreachable,
    )
    with TestClient(app) as client:
        body = json.dumps([{"token": mg_live(), "type": "mg_live"}]).encode()
        r = client.post(
            GITHUB_PATH,
            content=body,
            headers={
                "Github-Public-Key-Identifier": DOC_ID,
                "Github-Public-Key-Signature": DOC_SIG,
            },
        )
        assert r.status_code == 503 and "retry later" in r.json()["error"]
        assert 'keysweep_partner_key_fetches_total{result="failed"}' in client.get("/metrics").text
    assert queued == []


def test_the_partner_app_imports_no_celery_redis_or_workers() -> None:
    import subprocess
    import sys

    code = (
        "import sys, scanner.partner.app, scanner.partner.credentials; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('workers', 'celery', 'redis', "
        "'kombu')]; print(bad); sys.exit(1 if bad else 0)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
