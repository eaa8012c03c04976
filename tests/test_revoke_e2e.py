"""`keysweep scan --revoke` end to end: the reference key service as a real process,
keys minted by it and planted in a real git history, keysweep as a real process."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx

from tests.conftest import KEYSWEEP
from tests.helpers import Repo, mg_live


def scan(ks, repo: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    e = {
        **os.environ,
        "KEYSWEEP_KEYSERVICE_URL": ks.url,
        "KEYSWEEP_KEYSERVICE_TOKEN": ks.token,
        **(env or {}),
    }
    return subprocess.run(
        [KEYSWEEP, "scan", str(repo), "--format", "json", *args],
        capture_output=True,
        env=e,
        timeout=120,
    )


def by_prefix(out: bytes) -> dict[str, dict]:
    return {f["redacted"][:16]: f for f in json.loads(out)}


def events(ks, **params: str) -> list[dict]:  # type: ignore[no-untyped-def]
    r = httpx.get(
        f"{ks.url}/v1/audit-events", params=params, headers={"Authorization": f"Bearer {ks.token}"}
    )
    r.raise_for_status()
    return r.json()["events"]


def lookup(ks, key: str) -> dict:  # type: ignore[no-untyped-def]
    import hashlib

    h = hashlib.sha256(key.encode()).hexdigest()
    r = httpx.post(
        f"{ks.url}/v1/keys/lookup",
        json={"hashes": [h]},
        headers={"Authorization": f"Bearer {ks.token}"},
    )
    (m,) = r.json()["matches"]
    return m


def test_scan_revoke_end_to_end(keyservice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ks = keyservice
    a = ks.mint(env="live", org_id="org_acme", project_id="proj_web")
    b = ks.mint(env="live", org_id="org_acme", project_id="proj_api")
    c = ks.mint(env="test", org_id="org_beta", project_id="proj_x")
    unknown = mg_live()  # well-formed, never issued
    keys = {"a": a["key"], "b": b["key"], "c": c["key"], "u": unknown}

    r = Repo(tmp_path / "repo")
    r.write("app/config.py", f"DEBUG = 1\nKEY = '{keys['a']}'\n")
    r.commit("add config")
    r.write("app/config.py", "DEBUG = 1\nKEY = os.environ['KEY']\n")
    r.write("deploy/env.sh", f"export KEY={keys['a']}\nexport TEST_KEY={keys['c']}\n")
    r.commit("move key to env file, add test key")
    r.remove("deploy/env.sh")
    r.commit("remove env file")
    r.write("notes.txt", f"old: {keys['b']}\nnot ours: {keys['u']}\n")
    r.commit("notes")

    first = scan(ks, r.path, "--revoke")
    assert first.returncode == 1, first.stderr.decode()
    found = by_prefix(first.stdout)
    for name, minted in (("a", a), ("b", b), ("c", c)):
        res = found[minted["display_prefix"]]["keyservice"]
        assert res["action"] == "revoked", res
        assert (res["status_before"], res["status_after"]) == ("active", "revoked")
        assert res["key_id"] == minted["key_id"] and res["org_id"] == minted["org_id"]
        assert res["project_id"] == minted["project_id"]
        assert lookup(ks, keys[name])["status"] == "revoked"
    assert found[unknown[:16]]["keyservice"]["action"] == "unknown"

    # The audit trail: leak_detected per key and location, revoked once; prefixes only.
    detected_a = events(ks, target=a["display_prefix"], action="api_key.leak_detected")
    assert {(e["metadata"]["path"], e["metadata"]["line"]) for e in detected_a} == {
        ("app/config.py", 2),
        ("deploy/env.sh", 1),
    }
    for minted in (a, b, c):
        revoked = events(ks, target=minted["display_prefix"], action="api_key.revoked")
        assert len(revoked) == 1
        assert revoked[0]["actor"] == "keysweep" and revoked[0]["org_id"] == minted["org_id"]
        meta = revoked[0]["metadata"]
        assert meta["fingerprint"] == found[minted["display_prefix"]]["fingerprint"]
        assert meta["commit"] and meta["path"] and meta["rule_id"].startswith("mg-")
    all_events = events(ks)
    assert all(len(e["target"]) == 16 for e in all_events)
    revoked_at = {k: lookup(ks, keys[k])["revoked_at"] for k in ("a", "b", "c")}

    # Twice: nothing changes the second time.
    second = scan(ks, r.path, "--revoke")
    assert second.returncode == 1
    again = by_prefix(second.stdout)
    for minted in (a, b, c):
        assert again[minted["display_prefix"]]["keyservice"]["action"] == "already_revoked"
    assert events(ks) == all_events
    assert {k: lookup(ks, keys[k])["revoked_at"] for k in ("a", "b", "c")} == revoked_at

    # No cleartext key anywhere: service DB and log, audit events, keysweep's output.
    db = Path(ks.db_path)
    stored = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    log = Path(ks.log_path).read_bytes()
    outputs = first.stdout + first.stderr + second.stdout + second.stderr
    trail = json.dumps(all_events).encode()
    for key in keys.values():
        for blob, what in (
            (stored, "database"),
            (log, "service log"),
            (outputs, "output"),
            (trail, "audit events"),
        ):
            assert key.encode() not in blob, f"cleartext key in {what}"


def test_dry_run_policy_and_lookup_only(keyservice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ks = keyservice
    live = ks.mint(env="live")
    test = ks.mint(env="test")
    r = Repo(tmp_path / "repo")
    r.write("a.env", f"LIVE={live['key']}\nTEST={test['key']}\n")
    r.commit("keys")

    plain = scan(ks, r.path)  # no --revoke: owners and status shown, nothing changes
    found = by_prefix(plain.stdout)
    assert found[live["display_prefix"]]["keyservice"]["action"] == "would_revoke"
    assert found[live["display_prefix"]]["keyservice"]["owner"]["email"]
    dry = scan(ks, r.path, "--revoke", "--dry-run")
    assert by_prefix(dry.stdout)[live["display_prefix"]]["keyservice"]["action"] == "would_revoke"
    assert lookup(ks, live["key"])["status"] == "active" and events(ks) == []

    text = subprocess.run(
        [KEYSWEEP, "scan", str(r.path), "--revoke", "--no-progress"],
        capture_output=True,
        env={
            **os.environ,
            "KEYSWEEP_KEYSERVICE_URL": ks.url,
            "KEYSWEEP_KEYSERVICE_TOKEN": ks.token,
            "KEYSWEEP_POLICY_TEST": "alert",
        },
        timeout=120,
    )
    out = text.stdout.decode()
    assert "revoked now" in out and "alert only (policy): not revoked" in out
    assert "active → revoked" in out
    assert lookup(ks, live["key"])["status"] == "revoked"
    assert lookup(ks, test["key"])["status"] == "active"
    assert len(events(ks, target=test["display_prefix"], action="api_key.leak_detected")) == 1
    assert events(ks, target=test["display_prefix"], action="api_key.revoked") == []


def test_key_service_down_is_a_clear_error_and_findings_still_show(tmp_path: Path) -> None:
    r = Repo(tmp_path / "repo")
    key = mg_live()
    r.write("k.txt", key + "\n")
    r.commit("k")
    env = {
        **os.environ,
        "KEYSWEEP_KEYSERVICE_URL": "http://127.0.0.1:9",
        "KEYSWEEP_KEYSERVICE_TOKEN": "x",
    }
    p = subprocess.run(
        [KEYSWEEP, "scan", str(r.path), "--revoke", "--format", "json"],
        capture_output=True,
        env=env,
        timeout=180,
    )
    assert p.returncode == 2
    err = p.stderr.decode()
    assert "NOT revoked" in err and key not in err
    (f,) = json.loads(p.stdout)  # the report is still written
    assert f["rule_id"] == "mg-live-key" and f["source"]["path"] == "k.txt"
    p = subprocess.run(
        [KEYSWEEP, "scan", str(r.path), "--revoke"],
        capture_output=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("KEYSWEEP_")},
        timeout=60,
    )
    assert p.returncode == 2 and "KEYSWEEP_KEYSERVICE_URL" in p.stderr.decode()
