"""A team's .gitleaks.toml and .gitleaksignore, read as gitleaks reads them, through
`keysweep scan` as a user runs it (a real process, real files, real git)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import regex

from scanner.examples import expand
from scanner.gitleaks_compat import GitleaksError, parse_ignore, translate_regex
from tests.conftest import KEYSWEEP
from tests.helpers import Repo

ACME_RULE = """
[[rules]]
id = "acme-internal-token"
description = "ACME internal token"
regex = '''(?i)\\b(acme_[a-z0-9]{24})\\b'''
secretGroup = 1
keywords = ["acme_"]
"""


def acme() -> str:
    return expand("acme_{alnum_lower:24}")


def scan(path: Path, *args: str) -> tuple[int, list[dict], str]:
    p = subprocess.run(
        [KEYSWEEP, "scan", str(path), "--format", "json", "--no-progress", *args],
        capture_output=True,
        timeout=120,
    )
    out = json.loads(p.stdout) if p.returncode in (0, 1) else []
    return p.returncode, out, p.stderr.decode()


def found(path: Path, *args: str) -> list[tuple[str, str, int]]:
    code, out, err = scan(path, *args)
    assert code in (0, 1), err
    return sorted((f["rule_id"], f["source"]["path"], f["source"]["line"]) for f in out)


def project(tmp_path: Path, config: str, files: dict[str, str]) -> Path:
    d = tmp_path / "proj"
    d.mkdir()
    (d / ".gitleaks.toml").write_text(config)
    for rel, text in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


# --- regexes: Go RE2 in, Python regex out --------------------------------------------


@pytest.mark.parametrize(
    ("go", "text", "matches"),
    [
        (r"abc\z", "xabc", True),
        (r"\Qa.b*c\E+", "a.b*cc", True),
        (r"\Qa.b*c\E", "aXbbc", False),
        (r"\101\x42", "AB", True),  # octal in RE2, a backreference in Python
        (r"x{,3}", "x{,3}", True),  # RE2 reads it literally
        (r"[[]x]", "[x]", True),  # a literal [ in a class, a nested set in VERSION1
        (r"[[:alpha:]]+7", "abc7", True),
        (r"[a-z--]+", "a-b", True),
        (r"(?i)\bkey\b", "KEY", True),
    ],
)
def test_go_regex_constructs_are_translated(go: str, text: str, matches: bool) -> None:
    pattern = regex.compile(translate_regex(go, "r").encode(), regex.V1)
    assert (pattern.search(text.encode()) is not None) is matches


@pytest.mark.parametrize(
    ("go", "says"),
    [(r"a\Cb", "\\C"), (r"\p{Greek}+", "Unicode classes"), (r"(?U)a+", "the U flag")],
)
def test_untranslatable_constructs_are_refused_by_name(go: str, says: str) -> None:
    with pytest.raises(GitleaksError) as exc:
        translate_regex(go, "team-rule")
    assert "team-rule" in str(exc.value) and says in str(exc.value)


def test_a_broken_config_is_an_error_that_names_the_rule(tmp_path: Path) -> None:
    d = project(tmp_path, '[[rules]]\nid = "bad"\nregex = """(?U)x+"""\nkeywords=["x"]\n', {})
    code, _, err = scan(d, "--no-history")
    assert code == 2 and "bad" in err and "U flag" in err


# --- rules -----------------------------------------------------------------------------


def test_team_rule_is_found_with_its_secret_group(tmp_path: Path) -> None:
    token = acme()
    d = project(tmp_path, ACME_RULE, {"app.py": f'ACME_TOKEN = "{token}"\n'})
    code, out, _ = scan(d, "--no-history")
    assert code == 1
    assert [(f["rule_id"], f["source"]["line"]) for f in out] == [("acme-internal-token", 1)]
    assert "gitleaks" in out[0]["tags"]


def test_team_rule_entropy_and_keywords(tmp_path: Path) -> None:
    config = ACME_RULE + "entropy = 3.5\n"
    d = project(
        tmp_path,
        config,
        {"a.py": f"t = '{acme()}'\n", "b.py": "t = 'acme_aaaaaaaaaaaaaaaaaaaaaaaa'\n"},
    )
    assert found(d, "--no-history") == [("acme-internal-token", "a.py", 1)]


def test_rule_without_keywords_still_runs(tmp_path: Path) -> None:
    config = "[[rules]]\nid = \"acme-nokw\"\nregex = '''\\b(acme_[a-z0-9]{24})\\b'''\n"
    d = project(tmp_path, config, {"a.py": f"t = '{acme()}'\n"})
    assert found(d, "--no-history") == [("acme-nokw", "a.py", 1)]


def test_team_rules_are_listed(tmp_path: Path) -> None:
    d = project(tmp_path, ACME_RULE, {})
    p = subprocess.run(
        [KEYSWEEP, "rules", "list", "--format", "json", "--filter", "acme"],
        cwd=d,
        capture_output=True,
        timeout=60,
    )
    assert [r["id"] for r in json.loads(p.stdout)] == ["acme-internal-token"]
    assert [r["file"] for r in json.loads(p.stdout)] == [".gitleaks.toml"]


# --- allowlists --------------------------------------------------------------------------


def test_rule_allowlist_stopwords_regexes_and_targets(tmp_path: Path) -> None:
    config = (
        ACME_RULE
        + "[[rules.allowlists]]\nstopwords = [\"acme_test\"]\n"
        + "[[rules.allowlists]]\nregexTarget = \"line\"\nregexes = ['''# fake''']\n"
        + "[[rules.allowlists]]\nregexTarget = \"match\"\nregexes = ['''^ACME_[0-9]''']\n"
    )
    files = {
        "real.py": f"t = '{acme()}'\n",
        "stop.py": "t = '" + expand("acme_test{lower:20}") + "'\n",
        "line.py": f"t = '{acme()}'  # fake\n",
        "match.py": "t = '" + expand("ACME_9{alnum_lower:23}") + "'\n",
    }
    d = project(tmp_path, config, files)
    assert found(d, "--no-history") == [("acme-internal-token", "real.py", 1)]


def test_condition_and_needs_every_criterion(tmp_path: Path) -> None:
    config = (
        ACME_RULE
        + "[[rules.allowlists]]\ncondition = \"AND\"\npaths = ['''^fixtures/''']\n"
        + "stopwords = [\"acme_fix\"]\n"
    )
    files = {
        "fixtures/a.py": "t = '" + expand("acme_fix{lower:21}") + "'\n",  # both: allowed
        "fixtures/b.py": f"t = '{acme()}'\n",  # path only: reported
        "c.py": "t = '" + expand("acme_fix{lower:21}") + "'\n",  # stopword only: reported
    }
    d = project(tmp_path, config, files)
    assert [p for _, p, _ in found(d, "--no-history")] == ["c.py", "fixtures/b.py"]


def test_global_allowlist_old_and_new_forms_and_target_rules(tmp_path: Path) -> None:
    aws = expand("AKIA{upper32:16}")
    config = (
        ACME_RULE
        + "[allowlist]\npaths = ['''^vendor/''']\n"
        + "[[allowlists]]\ntargetRules = [\"aws-access-token\"]\npaths = ['''^docs/''']\n"
    )
    files = {
        "vendor/a.py": f"t = '{acme()}'\n",  # every rule: allowed
        "docs/a.md": f"key {aws}\nt = '{acme()}'\n",  # aws allowed (gitleaks id), acme not
    }
    d = project(tmp_path, config, files)
    assert found(d, "--no-history") == [("acme-internal-token", "docs/a.md", 2)]


def test_commit_allowlist(tmp_path: Path) -> None:
    r = Repo(tmp_path / "repo")
    r.write("a.py", f"t = '{acme()}'\n")
    first = r.commit("first")
    r.write("b.py", f"t = '{acme()}'\n")
    r.commit("second")
    r.write(".gitleaks.toml", ACME_RULE + f"[allowlist]\ncommits = [\"{first}\"]\n")
    assert [p for _, p, _ in found(r.path)] == ["b.py"]


# --- extend ------------------------------------------------------------------------------


def test_extend_use_default_and_disabled_rules_map_to_keysweep(tmp_path: Path) -> None:
    jwt = expand("{jwt}")
    aws = expand("AKIA{upper32:16}")
    files = {"a.env": f"TOKEN={jwt}\nAWS_ACCESS_KEY_ID={aws}\n"}
    d = project(tmp_path, '[extend]\nuseDefault = true\ndisabledRules = ["jwt"]\n', files)
    assert [r for r, _, _ in found(d, "--no-history")] == ["aws-access-key-id"]


def test_default_rule_id_with_only_an_allowlist_extends_keysweeps_rule(tmp_path: Path) -> None:
    secret = expand("{base62:16}9Q")
    config = (
        '[extend]\nuseDefault = true\n[[rules]]\nid = "generic-api-key"\n'
        "[[rules.allowlists]]\nregexTarget = \"line\"\nregexes = ['''staging''']\n"
    )
    files = {"a.env": f"DB_PASSWORD={secret}\n", "b.env": f"DB_PASSWORD={secret}x # staging\n"}
    d = project(tmp_path, config, files)
    assert found(d, "--no-history") == [("generic-secret", "a.env", 1)]


def test_extend_path_is_followed_inside_the_repository_only(tmp_path: Path) -> None:
    d = project(tmp_path, '[extend]\npath = "ci/base.toml"\n', {"a.py": f"t = '{acme()}'\n"})
    (d / "ci").mkdir()
    (d / "ci" / "base.toml").write_text(ACME_RULE)
    assert found(d, "--no-history") == [("acme-internal-token", "a.py", 1)]
    (d / ".gitleaks.toml").write_text('[extend]\npath = "../../outside.toml"\n')
    code, _, err = scan(d, "--no-history")
    assert code == 2 and "outside the repository" in err
    (d / ".gitleaks.toml").write_text('[extend]\nurl = "https://example.net/x.toml"\n')
    code, _, err = scan(d, "--no-history")
    assert code == 2 and "url is not supported" in err


# --- .gitleaksignore ---------------------------------------------------------------------


def test_gitleaksignore_fingerprints_history_and_files(tmp_path: Path) -> None:
    r = Repo(tmp_path / "repo")
    aws = expand("AKIA{upper32:16}")
    r.write("deploy/env.sh", f"export AWS_ACCESS_KEY_ID={aws}\n")
    r.write("app.py", f"t = '{acme()}'\n")
    r.write(".gitleaks.toml", ACME_RULE)
    sha = r.commit("leak")
    assert [p for _, p, _ in found(r.path)] == ["app.py", "deploy/env.sh"]
    # history: commit:path:rule-id:line, with gitleaks' rule id or keysweep's
    (r.path / ".gitleaksignore").write_text(
        f"# reviewed 2024-05\n{sha}:deploy/env.sh:aws-access-token:1\n"
        f"{sha}:app.py:acme-internal-token:1\n"
    )
    assert found(r.path) == []
    # files: path:rule-id:line (a history fingerprint does not hide a working-tree file)
    assert len(found(r.path, "--no-history")) == 2
    (r.path / ".gitleaksignore").write_text("deploy/env.sh:aws-access-key-id:1\n")
    assert [p for _, p, _ in found(r.path, "--no-history")] == ["app.py"]


def test_gitleaksignore_lines_parse_as_gitleaks_writes_them() -> None:
    sha = "0123456789abcdef0123456789abcdef01234567"
    got = parse_ignore(f"{sha}:src/a:b.py:generic-api-key:12\n\n# note\nweb/x.js:jwt:3\n")
    assert got == {(sha, "src/a:b.py", "generic-secret", 12), (None, "web/x.js", "jwt", 3)}
    with pytest.raises(GitleaksError):
        parse_ignore("not a fingerprint\n")


def test_the_hook_honours_the_team_tuning(tmp_path: Path) -> None:
    r = Repo(tmp_path / "repo")
    r.write(".gitleaks.toml", ACME_RULE + "[allowlist]\npaths = ['''^fixtures/''']\n")
    r.commit("config")
    r.write("fixtures/a.py", f"t = '{acme()}'\n")
    subprocess.run(["git", "-C", str(r.path), "add", "-A"], check=True)
    hook = [KEYSWEEP, "hook", "pre-commit"]
    assert subprocess.run(hook, cwd=r.path, capture_output=True, timeout=60).returncode == 0
    r.write("app.py", f"t = '{acme()}'\n")
    subprocess.run(["git", "-C", str(r.path), "add", "-A"], check=True)
    p = subprocess.run(hook, cwd=r.path, capture_output=True, timeout=60)
    assert p.returncode == 1 and b"acme-internal-token" in p.stderr


def test_the_hook_cache_is_keyed_by_the_gitleaks_config_and_every_pack_file(
    tmp_path: Path,
) -> None:
    from scanner import hook_cache

    before = hook_cache.cache_key(str(tmp_path), "v")
    (tmp_path / ".gitleaks.toml").write_text(ACME_RULE)
    after = hook_cache.cache_key(str(tmp_path), "v")
    assert before != after  # a new literal (acme_) must not be missed by a stale database
    pack = Path(hook_cache.__file__).parent / "rules"
    assert len(list(pack.glob("*.toml"))) >= 8
    (tmp_path / ".gitleaks.toml").write_text(ACME_RULE)
    assert hook_cache.cache_key(str(tmp_path), "v") == after
