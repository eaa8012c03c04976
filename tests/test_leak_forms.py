"""Issue #11, the engine's part: a key right after an escape sequence, a key that runs on
into more key characters (KEY_old, KEY-backup), low-confidence runs, placeholders, and a
key hidden behind megabytes of prefix padding. Each planted key is generated here and
must come out of ``keysweep scan`` (a real process) with its exact SHA-256."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from scanner.engine import Engine
from scanner.rules import escape_aware, load_rules, rule_from_dict
from tests.conftest import KEYSWEEP
from tests.helpers import git, github_token, mg_live, mg_test, warm_hook
from tests.keyservice_fixture import keyservice  # noqa: F401

RULES = load_rules()


def sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def keysweep(*args: str, stdin: bytes | None = None, env: dict | None = None) -> list[dict]:
    p = subprocess.run(
        [KEYSWEEP, "scan", "--format", "json", "--no-progress", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert p.returncode in (0, 1), p.stderr.decode()
    return json.loads(p.stdout)


# --- boundaries that know escapes ---------------------------------------------------

# (name, text before the key, text after it): how real files write a key after an escape.
ESCAPES = [
    ("json-newline", '{"env": "A=1\\n', '\\n"}'),
    ("json-tab", '{"env": "KEY:\\t', '"}'),
    ("json-html-escaped", '{"html": "\\u003e', '\\u003c/td\\u003e"}'),
    ("url-percent-3d", "https://api.example.net/cb?token%3D", "&x=1"),
    ("url-percent-20", "Authorization: Bearer%20", "\n"),
    ("html-quot", '<div data-cfg="{&quot;key&quot;:&quot;', '&quot;}"></div>'),
    ("html-numeric", "<input value=&#34;", "&#34;>"),
    ("c-hex-escape", 'char *k = "\\x3d', '";'),
    ("c-octal-escape", 'printf("k\\075', '");'),
    ("json-escaped-slash", '{"u": "https:\\/\\/', '"}'),
    ("carriage-return", 'log("x\\r', '")'),
]


def test_escape_forms_found_through_the_cli_from_files(tmp_path: Path) -> None:
    planted: dict[str, tuple[str, str]] = {}
    for name, before, after in ESCAPES:
        key, gh = mg_live(), github_token()
        (tmp_path / f"{name}.txt").write_text(f"{before}{key}{after}\n{before}{gh}{after}\n")
        planted[name] = (key, gh)
    findings = keysweep(str(tmp_path), "--no-history")
    got = {(Path(f["source"]["path"]).stem, f["rule_id"], f["secret_sha256"]) for f in findings}
    for name, (key, gh) in planted.items():
        assert (name, "mg-live-key", sha(key)) in got, name
        assert (name, "github-classic-token", sha(gh)) in got, name


def test_escape_forms_found_through_the_cli_from_stdin() -> None:
    keys = [mg_live() for _ in ESCAPES]
    text = "".join(f"{b}{k}{a}\n" for (_, b, a), k in zip(ESCAPES, keys, strict=True))
    findings = keysweep("-", stdin=text.encode())
    assert {f["secret_sha256"] for f in findings} == {sha(k) for k in keys}
    assert all(f["confidence"] == "high" for f in findings)


def test_the_escape_boundary_is_decided_once_for_every_rule() -> None:
    # A user's own rule gets it too, and an imported rule's leading \b.
    mine = rule_from_dict(
        {"id": "acme", "prefixes": ["acme_"], "pattern": r"(?<![A-Za-z0-9])(acme_[a-z0-9]{24})"},
        "config",
    )
    bare = rule_from_dict(
        {"id": "imported", "prefixes": ["zz_"], "pattern": r"\b(zz_[a-z0-9]{24})\b"}, "gitleaks"
    )
    assert escape_aware(bare.pattern_text) != bare.pattern_text
    eng = Engine([mine, bare])
    value = "0a1b2c3d4e5f6g7h8i9j0k1l"
    for before in ("\\n", "%3D", "\\u003e", "&quot;"):
        found = eng.scan(f"x{before}acme_{value} {before}zz_{value}".encode())
        assert [m.rule.id for m in found] == ["acme", "imported"], before
    # A letter or digit before the literal is still no boundary.
    assert eng.scan(f"xacme_{value} 9zz_{value}".encode()) == []


def test_near_misses_never_reach_stage_2() -> None:
    # Stage 1 checks what a literal-led rule requires after its literal: text dense
    # with near misses makes no window at all for these rules.
    near = b"".join(
        b"x mg_live_" + mg_live()[8:28].encode() + b" AKIA" + b"ABCDEFGHJK" + b" eyJhbGciOi x"
        for _ in range(2000)
    )
    for prefilter in ("hyperscan", "python"):
        eng = Engine(RULES, prefilter=prefilter)
        hit = {eng.rules[i].id for i in eng.prefilter.regions(near)}
        assert not hit & {"mg-live-key", "aws-access-key-id", "jwt"}, (prefilter, hit)


# --- the mg_ format, exactly -------------------------------------------------------


def test_run_on_key_reports_the_32_character_key_and_the_run(tmp_path: Path) -> None:
    old, backup, two, test_key = mg_live(), mg_live(), mg_live(), mg_test()
    (tmp_path / "env").write_text(
        f"KEY_OLD={old}_old\nKEY_BAK='{backup}-backup'\nK2={two}_2\nT={test_key}-prev\n"
    )
    findings = {f["secret_sha256"]: f for f in keysweep(str(tmp_path), "--no-history")}
    for key, run in ((old, "_old"), (backup, "-backup"), (two, "_2"), (test_key, "-prev")):
        f = findings[sha(key)]
        assert f["run_sha256"] == sha(key + run)
        assert f["confidence"] == "high"
        assert f["redacted"] == key[:16] + "…"
    assert len(findings) == 4


def test_two_keys_written_back_to_back_are_two_keys() -> None:
    a, b = mg_live(), mg_test()
    found = Engine(RULES).scan(f"K={a}{b}\n".encode())
    assert [m.secret for m in found] == [a.encode(), b.encode()]


def test_a_longer_run_with_no_separator_is_low_confidence_only(tmp_path: Path) -> None:
    key = mg_live()
    extra = "Q" + mg_live()[8:30]  # 33 + 22 = 55 body characters, no separator after 32
    (tmp_path / "f.txt").write_text(f"k = {key}{extra}\n")
    assert keysweep(str(tmp_path), "--no-history") == []
    assert keysweep(str(tmp_path), "--no-history", "--confidence", "medium") == []
    for flags in (("--low-confidence",), ("--confidence", "low")):
        (f,) = keysweep(str(tmp_path), "--no-history", *flags)
        assert f["confidence"] == "low"
        assert f["secret_sha256"] == sha(key)
        assert f["run_sha256"] == sha(key + extra)


def test_placeholders_are_never_findings(tmp_path: Path) -> None:
    lines = [
        "mg_live_" + "abcdefghijklmnopqrstuvwxyz012345",
        "mg_live_" + "X" * 32,
        "mg_test_" + "x" * 32 + "_old",
        "mg_live_<your-key>",
        "MG_KEY=mg_live_${MG_LIVE_KEY}",
        "mg_live_" + "0123456789abcdef" * 2,
        "mg_live_" + "Ab1-" * 8,
        "mg_test_" + "YOUR_KEY_HERE_" + "x" * 18,
    ]
    (tmp_path / "README.md").write_text("\n".join(lines) + "\n")
    assert keysweep(str(tmp_path), "--no-history", "--low-confidence") == []


# --- never drop a key ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefilter", "form"),
    [("hyperscan", "{key}{pad}"), ("hyperscan", "{pad}\n{key}\n{pad}"), ("python", "{key}{pad}")],
)
def test_a_key_behind_four_megabytes_of_prefix_padding_is_found(prefilter: str, form: str) -> None:
    key = mg_live()
    pad = "mg_live_" * (4 * 1024 * 1024 // 8)
    # A timeout far above the pass's cost (about 1.7 s for 8 MB on a quiet machine), so
    # the count says "one pass, not split" whatever else the machine is doing.
    eng = Engine(RULES, prefilter=prefilter, regex_timeout=60.0)
    data = form.format(key=key, pad=pad).encode()
    assert [m.secret for m in eng.scan(data)] == [key.encode()]
    assert eng.stats.regex_timeouts == 0  # the pattern turns the padding down in one pass


@pytest.mark.parametrize("prefilter", ["hyperscan", "python"])
def test_a_megabyte_of_prefix_padding_alone_is_no_key(prefilter: str) -> None:
    pad = b"mg_live_" * (1024 * 1024 // 8)
    assert Engine(RULES, prefilter=prefilter).scan(pad) == []
    assert Engine(RULES, low_confidence=True, prefilter=prefilter).scan(pad) == []


def test_the_padding_case_through_the_cli(tmp_path: Path) -> None:
    key = mg_live()
    (tmp_path / "blob.txt").write_bytes(key.encode() + b"mg_live_" * (4 * 1024 * 1024 // 8))
    (tmp_path / "pad.txt").write_bytes(b"mg_live_" * (1024 * 1024 // 8))
    findings = keysweep(str(tmp_path), "--no-history")
    assert [(Path(f["source"]["path"]).name, f["secret_sha256"]) for f in findings] == [
        ("blob.txt", sha(key))
    ]


def test_a_window_that_times_out_is_split_around_each_hit_and_counted() -> None:
    # A user's rule that backtracks catastrophically on a long run of "a": the merged
    # window times out; each hit is then confirmed alone, and the real match is kept.
    evil = rule_from_dict(
        {"id": "evil", "prefixes": ["tok_"], "pattern": r"tok_(?:a|aa)+(?:[0-9]{6})"}, "config"
    )
    eng = Engine([evil], regex_timeout=0.05)
    hostile = b"tok_" + b"a" * 60 + b"!"
    real = b"tok_aaa123456"
    data = hostile * 2 + b" " + real + b" " + hostile
    found = eng.scan(data)
    assert [m.secret for m in found] == [real]
    assert eng.stats.regex_timeouts >= 1


# --- the key service decides (end to end) ------------------------------------------


def plant_legacy_key(ks, key: str) -> str:  # type: ignore[no-untyped-def]
    """A key the service issued in an older, longer form (its whole run is the key)."""
    minted = ks.mint(env="live")
    db = sqlite3.connect(ks.db_path)
    with db:
        db.execute("UPDATE api_keys SET sha256 = ? WHERE key_id = ?", (sha(key), minted["key_id"]))
    db.close()
    return str(minted["key_id"])


def test_run_on_key_is_revoked_end_to_end(keyservice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    ks = keyservice
    minted = ks.mint(env="live", org_id="org_acme", project_id="proj_web")
    key = minted["key"]
    legacy_run = mg_live() + "-v2"  # the service knows this whole run as a key
    legacy_id = plant_legacy_key(ks, legacy_run)
    (tmp_path / "backup.env").write_text(f"MG_KEY_OLD={key}_old\nLEGACY={legacy_run}\n")
    env = {"KEYSWEEP_KEYSERVICE_URL": ks.url, "KEYSWEEP_KEYSERVICE_TOKEN": ks.token}
    findings = keysweep(str(tmp_path), "--no-history", "--revoke", "--no-notify", env=env)
    by_hash = {f["secret_sha256"]: f for f in findings}
    f = by_hash[sha(key)]
    assert f["run_sha256"] == sha(key + "_old")
    assert f["keyservice"]["key_id"] == minted["key_id"]
    assert f["keyservice"]["action"] == "revoked"
    g = by_hash[sha(legacy_run[:40])]
    assert g["run_sha256"] == sha(legacy_run)
    assert g["keyservice"]["key_id"] == legacy_id  # the run's hash matched: the run is the key
    assert g["keyservice"]["action"] == "revoked"
    with ks.client() as http:
        hashes = [sha(key), sha(legacy_run)]
        matches = http.post("/v1/keys/lookup", json={"hashes": hashes}).json()["matches"]
    assert {m["status"] for m in matches} == {"revoked"} and len(matches) == 2


def test_a_low_confidence_run_is_looked_up_when_a_key_service_is_configured(  # type: ignore[no-untyped-def]
    keyservice,  # noqa: F811
    tmp_path: Path,
) -> None:
    # The default scan (no --low-confidence) asks the key service about a 33-64
    # character run too: the one it knows is shown and revoked, the other stays hidden.
    ks = keyservice
    known = mg_live() + "Q" + mg_live()[8:18]  # 43 body characters, no separator
    legacy_id = plant_legacy_key(ks, known)
    stranger = mg_live() + "Z" + mg_live()[8:18]
    (tmp_path / "legacy.env").write_text(f"OLD={known}\nOTHER={stranger}\n")
    env = {"KEYSWEEP_KEYSERVICE_URL": ks.url, "KEYSWEEP_KEYSERVICE_TOKEN": ks.token}
    (f,) = keysweep(str(tmp_path), "--no-history", "--revoke", "--no-notify", env=env)
    assert (f["secret_sha256"], f["run_sha256"]) == (sha(known[:40]), sha(known))
    assert f["confidence"] == "low"
    assert (f["keyservice"]["key_id"], f["keyservice"]["action"]) == (legacy_id, "revoked")
    # Without a key service the same scan shows neither.
    assert keysweep(str(tmp_path), "--no-history") == []


# --- the same forms through the pre-commit hook and the workers' scan task ----------------


def test_escape_forms_and_run_ons_are_blocked_by_the_pre_commit_hook(tmp_path: Path) -> None:
    r, hook = warm_hook(tmp_path)
    keys = [mg_live() for _ in ESCAPES]
    text = "".join(f"{b}{k}{a}\n" for (_, b, a), k in zip(ESCAPES, keys, strict=True))
    old = mg_live()
    r.write("cfg.json", text + f"OLD_KEY={old}_old\n")
    git(r.path, "add", "cfg.json")
    p = hook()
    err = p.stderr.decode()
    assert p.returncode == 1, err
    whole = text + f"OLD_KEY={old}_old\n"
    for k in [*keys, old]:
        line = whole[: whole.index(k)].count("\n") + 1
        assert f"cfg.json:{line} " in err and k[:16] + "…" in err, (line, err)
        assert k not in err


class _OneGist:
    def __init__(self, name: str, content: str) -> None:
        self.name, self.content = name, content

    def get_json(self, path: str) -> dict:
        c = self.content
        return {
            "html_url": "https://gist.example/abc",
            "updated_at": "2026-12-06T00:00:00Z",
            "files": {self.name: {"content": c, "size": len(c), "truncated": False}},
        }


def test_escape_forms_and_runs_through_the_workers_scan_task() -> None:
    """The workers' engine: escapes, a run-on key, and a 33-64 character run kept for
    the key service to decide (the workers always have one to ask)."""
    from scanner.sources.github import GistSource
    from workers import tasks

    keys = [mg_live() for _ in ESCAPES]
    text = "".join(f"{b}{k}{a}\n" for (_, b, a), k in zip(ESCAPES, keys, strict=True))
    old, long_run = mg_live(), mg_live() + "Q" + mg_live()[8:18]
    text += f"OLD_KEY={old}-backup\nLEGACY={long_run}\n"
    result = tasks._scan(GistSource(_OneGist("leak.json", text), "abc", "v1"))  # type: ignore[arg-type]
    by_hash = {f.secret_sha256: f for f in result.findings}
    assert {sha(k) for k in keys} <= set(by_hash)
    assert by_hash[sha(old)].run_sha256 == sha(old + "-backup")
    legacy = by_hash[sha(long_run[:40])]
    assert (legacy.confidence, legacy.run_sha256) == ("low", sha(long_run))
