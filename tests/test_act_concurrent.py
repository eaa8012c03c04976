"""The act path with the keys of one batch acted on at once (what the workers do):
against the reference key service as a real process, every key is revoked once and
audited once per place, one key's findings are acted on in order, and the outcomes
come back in the order of the findings."""

from __future__ import annotations

from scanner.act import act
from scanner.config import Config
from scanner.findings import Finding, Location
from scanner.keyservice import KeyServiceClient
from scanner.partner.intake import Intake
from scanner.resolve import resolve
from scanner.scan import build_engine
from tests.helpers import mg_live
from tests.keyservice_fixture import keyservice  # noqa: F401
from tests.test_revoke_e2e import events


def findings_of(token: str, where: str) -> list[Finding]:
    engine = build_engine(Config(), honour_allow=False)
    loc = Location(kind="github_commit", repo="o/r", path=where, line=1, url=f"https://x/{where}")
    return Intake(engine).findings_for(token, loc)


def test_keys_of_a_batch_acted_on_at_once_each_once(keyservice) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    ks = keyservice
    minted = [ks.mint(env="live" if i % 2 else "test") for i in range(12)]
    twice = minted[:3]  # reported again from a second place, right after, in the same batch
    batch: list[Finding] = []
    for i, m in enumerate(minted):
        batch += findings_of(m["key"], f"a{i}.env")
        if m in twice:
            batch += findings_of(m["key"], f"b{i}.env")
    batch += findings_of(mg_live(), "unknown.env")  # well-formed, never issued

    with KeyServiceClient(ks.url, ks.token) as client:
        owned = resolve(batch, client)
        outcomes = act(owned, client, _policy(), concurrency=8)
        assert [o.fingerprint for o in outcomes] == [f.fingerprint for f in batch]
        assert [o.action for o in outcomes[:-1]] == ["revoked"] * 15
        assert outcomes[-1].action == "unknown"
        trail = events(ks)

        for i, m in enumerate(minted):
            mine = [e for e in trail if e["target"] == m["display_prefix"]]
            places = [e["metadata"]["path"] for e in mine if e["action"] == "api_key.leak_detected"]
            revoked = [e for e in mine if e["action"] == "api_key.revoked"]
            assert len(revoked) == 1
            if m in twice:
                # One key's findings one after the other: detected, revoked, detected.
                assert [(e["action"], e["metadata"]["path"]) for e in mine] == [
                    ("api_key.leak_detected", f"a{i}.env"),
                    ("api_key.revoked", f"a{i}.env"),
                    ("api_key.leak_detected", f"b{i}.env"),
                ]
            else:
                assert places == [f"a{i}.env"]
        with ks.client() as http:
            hashes = [o.record.sha256 for o in owned if o.record]
            status = http.post("/v1/keys/lookup", json={"hashes": hashes}).json()["matches"]
        assert {m["status"] for m in status} == {"revoked"}

        # The same batch again (a redelivered task): nothing changes.
        again = act(resolve(batch, client), client, _policy(), concurrency=8)
        assert [o.action for o in again[:-1]] == ["already_revoked"] * 15
        assert events(ks) == trail


def _policy():  # type: ignore[no-untyped-def]
    from scanner.act import Policy

    return Policy()
