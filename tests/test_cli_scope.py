"""What `keysweep scan` scans and how it names it, as users of gitleaks and TruffleHog
expect: a path in a work tree is that repository's history, commit ranges as git takes
them, patches on stdin keep their places, findings name their repository with a link,
clone errors say git's reason, and the command line is strict and helpful."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import KEYSWEEP
from tests.helpers import GIT_ENV, Repo, git, github_token, mg_live, mg_test


def run(*args: str, cwd: Path | None = None, stdin: bytes | None = None, env: dict | None = None):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [KEYSWEEP, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=120,
        env={**os.environ, **GIT_ENV, **(env or {})},
    )


@pytest.fixture
def three(tmp_path: Path) -> dict:
    """Three commits, each adding a key in another directory."""
    r = Repo(tmp_path / "proj")
    keys = {"api": mg_live(), "web": mg_test(), "docs": github_token()}
    shas = {}
    for d, key in keys.items():
        r.write(f"{d}/conf.py", f"# {d}\nKEY = '{key}'\n")
        shas[d] = r.commit(f"add {d}")
    return {"repo": r, "keys": keys, "shas": shas}


def paths(p: subprocess.CompletedProcess) -> list[str]:
    return sorted(f["source"]["path"] for f in json.loads(p.stdout))


def test_subdirectory_means_that_repositorys_history_limited_to_it(three: dict) -> None:
    r = three["repo"]
    # Remove the key from the work tree: a files-only scan would now say "no leaks".
    r.write("web/conf.py", "# web\nKEY = None\n")
    r.commit("remove the web key (it stays in history)")
    p = run("scan", cwd=r.path / "web")
    out = p.stdout.decode()
    assert p.returncode == 1, out
    assert "web/conf.py:2" in out and "api/conf.py" not in out
    assert "touching web (as git log --full-history -- web)" in out
    p = run("scan", "--format", "json", cwd=r.path / "web")
    assert paths(p) == ["web/conf.py"]
    # The same from the top with the path, and a file path.
    assert paths(run("scan", "web", "--format", "json", cwd=r.path)) == ["web/conf.py"]
    assert paths(run("scan", "api/conf.py", "--format", "json", cwd=r.path)) == ["api/conf.py"]
    # At the top: everything.
    assert paths(run("scan", "--format", "json", cwd=r.path)) == [
        "api/conf.py",
        "docs/conf.py",
        "web/conf.py",
    ]


def test_a_directory_of_a_work_tree_as_it_is_is_that_repositorys(tmp_path: Path) -> None:
    """`keysweep scan DIR --no-history` below the top of a work tree: the repository's own
    .keysweep.toml and baseline apply, and paths are named from its top, as a history
    scan, the hooks and the baseline name them."""
    r = Repo(tmp_path / "proj")
    r.write("README.md", "# project\n")
    r.commit("init")
    r.write("src/app.py", f"KEY = '{mg_live()}'\n")
    r.write("src/fixtures/keys.py", f"KEY = '{mg_test()}'\n")
    r.write(".keysweep.toml", 'exclude_paths = ["src/fixtures/*"]\n')
    p = run("scan", "src", "--no-history", "--format", "json", cwd=r.path)
    (f,) = json.loads(p.stdout)
    assert (f["source"]["path"], f["source"]["repo"]) == ("src/app.py", str(r.path.resolve()))
    inside = run("scan", ".", "--no-history", "--format", "json", cwd=r.path / "src")
    assert paths(inside) == ["src/app.py"]
    one = run("scan", "app.py", "--no-history", "--format", "json", cwd=r.path / "src")
    assert paths(one) == ["src/app.py"]
    assert run("baseline", "create", "--no-history", cwd=r.path).returncode == 0
    assert run("scan", "src", "--no-history", cwd=r.path).returncode == 0
    assert run("scan", ".", "--no-history", cwd=r.path / "src").returncode == 0


def test_commit_ranges_as_git_takes_them(three: dict) -> None:
    r, shas = three["repo"], three["shas"]
    one = run("scan", shas["web"], "--format", "json", cwd=r.path)
    assert paths(one) == ["web/conf.py"]  # one commit: that commit only
    rng = run("scan", f"{shas['api']}..{shas['docs']}", "--format", "json", cwd=r.path)
    assert paths(rng) == ["docs/conf.py", "web/conf.py"]
    opts = run(
        "scan", "--log-opts", f"{shas['api']}..{shas['web']}", "--format", "json", cwd=r.path
    )
    assert paths(opts) == ["web/conf.py"]
    text = run("scan", f"{shas['api']}..{shas['docs']}", cwd=r.path).stdout.decode()
    assert f"2 commits ({shas['api']}..{shas['docs']})" in text
    bad = run("scan", "--log-opts=--output=/tmp/x main", cwd=r.path)
    assert bad.returncode == 2 and "--output is not allowed" in bad.stderr.decode()
    nothing = run("scan", "no-such-ref..HEAD", cwd=r.path)
    assert nothing.returncode == 2 and "not a revision" in nothing.stderr.decode()


def test_jobs_changes_how_many_git_pipelines_not_what_is_found(three: dict) -> None:
    r = three["repo"]
    every = paths(run("scan", "--format", "json", cwd=r.path))
    for jobs in ("1", "3"):
        p = run("scan", "--jobs", jobs, "--format", "json", cwd=r.path)
        assert p.returncode == 1 and paths(p) == every
    assert run("scan", "--jobs", "many", cwd=r.path).returncode == 2


def test_since_error_keeps_gits_words(three: dict) -> None:
    p = run("scan", "--since", "nosuchref", cwd=three["repo"].path)
    assert p.returncode == 2
    assert "git rev-list failed: fatal: bad revision '^nosuchref'" in p.stderr.decode()


def test_patch_on_stdin_keeps_path_commit_and_line(three: dict) -> None:
    r, shas = three["repo"], three["shas"]
    show = git(r.path, "show", shas["web"]).encode()
    p = run("scan", "-", "--format", "json", stdin=show)
    (f,) = json.loads(p.stdout)
    src = f["source"]
    assert (src["path"], src["line"], src["commit"]) == ("web/conf.py", 2, shas["web"])
    assert src["author"] == "Ada Tester" and src["subject"] == "add web"
    log = git(r.path, "log", "-p").encode()
    p = run("scan", "-", "--format", "json", stdin=log)
    assert {(f["source"]["path"], f["source"]["commit"]) for f in json.loads(p.stdout)} == {
        (f"{d}/conf.py", shas[d]) for d in shas
    }
    diff = git(r.path, "diff", shas["api"], shas["web"]).encode()
    (f,) = json.loads(run("scan", "-", "--format", "json", stdin=diff).stdout)
    assert (f["source"]["path"], f["source"]["line"]) == ("web/conf.py", 2)
    plain = run("scan", "-", "--format", "json", stdin=f"a\nb {mg_test()}\n".encode())
    (f,) = json.loads(plain.stdout)
    assert (f["source"]["path"], f["source"]["line"]) == (None, 2)


def test_json_has_column_subject_entropy_and_tags(tmp_path: Path) -> None:
    r = Repo(tmp_path / "r")
    key = mg_live()
    r.write("a.py", f"x = 1\nAPI_KEY = '{key}'\n")
    r.write(".env", "SYNTH_API_KEY=" + "q7Xv2Lm9Zt4Rb8Nc" * 2 + "\n")
    r.commit("add the settings")
    docs = {
        f["rule_id"]: f for f in json.loads(run("scan", str(r.path), "--format", "json").stdout)
    }
    src = docs["mg-live-key"]["source"]
    assert src["column"] == len("API_KEY = '") + 1 and src["subject"] == "add the settings"
    assert "entropy" not in docs["mg-live-key"]  # that rule computes none
    # A rule with min_entropy carries what it computed.
    assert docs["synth-api-key-assignment"]["entropy"] > 3.5
    # Tags: the rule's own, e.g. on a rule of the repository's config.
    (r.path / ".keysweep.toml").write_text(
        '[[rules]]\nid = "acme-token"\nprefixes = ["acme_tok_"]\ntags = ["internal", "acme"]\n'
        "pattern = '(acme_tok_[A-Za-z0-9]{24})'\n"
    )
    (r.path / "t.txt").write_text("acme_tok_" + "Zq7" * 8 + "\n")
    tagged = json.loads(run("scan", str(r.path), "--no-history", "--format", "json").stdout)
    assert next(f for f in tagged if f["rule_id"] == "acme-token")["tags"] == ["internal", "acme"]
    sarif = json.loads(run("scan", str(r.path), "--format", "sarif").stdout)
    region = sarif["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert region["startColumn"] >= 1


def test_findings_name_their_repository_with_a_link(three: dict, tmp_path: Path) -> None:
    r, shas = three["repo"], three["shas"]
    alone = json.loads(run("scan", str(r.path), "--format", "json").stdout)
    assert {f["source"]["repo"] for f in alone} == {str(r.path.resolve())}
    for remote, link in (
        (
            "https://x-access-token:s3cr3t@github.com/acme/proj.git",
            f"https://github.com/acme/proj/blob/{shas['web']}/web/conf.py#L2",
        ),
        (
            "git@gitlab.com:acme/proj.git",
            f"https://gitlab.com/acme/proj/-/blob/{shas['web']}/web/conf.py#L2",
        ),
        (
            "https://bitbucket.org/acme/proj",
            f"https://bitbucket.org/acme/proj/src/{shas['web']}/web/conf.py#lines-2",
        ),
    ):
        git(r.path, "remote", "remove", "origin") if "origin" in git(r.path, "remote") else None
        git(r.path, "remote", "add", "origin", remote)
        p = run("scan", str(r.path), "--format", "json")
        assert "s3cr3t" not in p.stdout.decode() + p.stderr.decode()
        web = next(f for f in json.loads(p.stdout) if f["source"]["path"] == "web/conf.py")
        assert web["source"]["url"] == link
        assert "x-access-token" not in web["source"]["repo"]
        text = run("scan", str(r.path)).stdout.decode()
        assert f"link      {link}" in text
    # Not origin but the only remote: its URL.
    git(r.path, "remote", "rename", "origin", "upstream")
    only = json.loads(run("scan", str(r.path), "--format", "json").stdout)
    assert {f["source"]["repo"] for f in only} == {"https://bitbucket.org/acme/proj"}
    # A remote that is a local path names that repository by its absolute path, from
    # wherever the scan runs.
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--bare", str(r.path), str(mirror))
    git(r.path, "remote", "add", "origin", "../mirror.git")
    local = json.loads(run("scan", "--format", "json", cwd=r.path / "web").stdout)
    assert {f["source"]["repo"] for f in local} == {str(mirror.resolve())}


def test_audit_events_carry_the_link(keyservice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ks = keyservice
    minted = ks.mint(env="live")
    r = Repo(tmp_path / "r")
    r.write("deploy.sh", f"export KEY={minted['key']}\n")
    sha = r.commit("deploy")
    git(r.path, "remote", "add", "origin", "https://github.com/acme/proj.git")
    env = {"KEYSWEEP_KEYSERVICE_URL": ks.url, "KEYSWEEP_KEYSERVICE_TOKEN": ks.token}
    p = run("scan", str(r.path), "--revoke", "--no-notify", env=env)
    assert p.returncode == 1, p.stderr.decode()
    resp = httpx.get(
        f"{ks.url}/v1/audit-events",
        params={"action": "api_key.revoked"},
        headers={"Authorization": f"Bearer {ks.token}"},
    )
    (event,) = resp.json()["events"]
    link = f"https://github.com/acme/proj/blob/{sha}/deploy.sh#L1"
    assert event["metadata"]["source_url"] == link
    assert event["metadata"]["repo"] == "https://github.com/acme/proj.git"
    # The text report says what was done, and what is left to do.
    again = run("scan", str(r.path), "--revoke", "--dry-run", env=env).stdout.decode()
    assert "was already revoked" in again and "rotate it now" not in again


def test_dry_run_reads_would_revoke_and_unknown_keys_are_not_to_rotate(
    keyservice, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    ks = keyservice
    minted = ks.mint(env="live")
    r = Repo(tmp_path / "r")
    r.write("a.env", f"KEY={minted['key']}\nOTHER={mg_live()}\n")
    r.commit("keys")
    env = {"KEYSWEEP_KEYSERVICE_URL": ks.url, "KEYSWEEP_KEYSERVICE_TOKEN": ks.token}
    out = run("scan", str(r.path), "--revoke", "--dry-run", env=env).stdout.decode()
    assert "would revoke (dry run: nothing changed)" in out
    assert "would be revoked" not in out and "run with --revoke" not in out
    blocks = out.split("\n\n")
    unknown = next(b for b in blocks if "a.env:2" in b)
    assert "never issued this key: there is nothing to rotate" in unknown
    assert "rotate it now" not in unknown and "stays in git history" not in unknown
    # Without --revoke or --dry-run the scan only asked who owns the key: no "dry run"
    # the person never asked for, and the live key is still theirs to rotate.
    plain = run("scan", str(r.path), env=env).stdout.decode()
    ours = next(b for b in plain.split("\n\n") if "a.env:1" in b)
    assert "dry run" not in ours and "would revoke" not in ours
    assert "not revoked: this scan only looked it up (--revoke revokes it)" in ours
    assert "status    active\n" in ours and "rotate it now" in ours


def test_remediation_per_family_and_history_only_for_history(tmp_path: Path) -> None:
    gh = github_token()
    d = tmp_path / "d"
    d.mkdir()
    (d / "t.txt").write_text(f"{gh}\n")
    files = run("scan", str(d), "--no-history").stdout.decode()
    assert "Revoke it on GitHub" in files and "https://github.com/settings/tokens" in files
    assert "stays in git history" not in files
    r = Repo(tmp_path / "r")
    r.write("t.txt", f"{gh}\n")
    r.commit("token")
    history = run("scan", str(r.path)).stdout.decode()
    assert "Revoke it on GitHub" in history and "stays in git history" in history
    rules = json.loads(run("rules", "list", "--format", "json").stdout)
    third = [x for x in rules if x["owner"] == "third_party"]
    assert all(x["remediation"] for x in third), [x["id"] for x in third if not x["remediation"]]


def test_clone_errors_say_gits_reason_without_credentials() -> None:
    p = run(
        "scan",
        "https://someone:hunter2@no-such-host.invalid/acme/repo",
        "--allow-host",
        "no-such-host.invalid",
    )
    err = p.stderr.decode()
    assert p.returncode == 2
    assert "cannot clone https://no-such-host.invalid/acme/repo:" in err
    assert "Could not resolve host" in err and "hunter2" not in err and "someone" not in err


def test_output_dash_redact_version_verbose(three: dict, tmp_path: Path) -> None:
    r, keys = three["repo"], three["keys"]
    p = run("scan", "-o", "-", "--format", "json", cwd=r.path)
    assert len(json.loads(p.stdout)) == 3 and not (r.path / "-").exists()
    red = {
        f["rule_id"]: f["redacted"]
        for f in json.loads(run("scan", "--redact", "--format", "json", cwd=r.path).stdout)
    }
    assert red["mg-live-key"] == "mg_live_…"
    half = json.loads(run("scan", "--redact=50", "--format", "json", cwd=r.path).stdout)
    assert {f["redacted"] for f in half} >= {keys["api"][:16] + "…"}  # never more than default
    assert run("scan", "--redact=150", cwd=r.path).returncode == 2
    assert run("scan", "--redact", "--show-secrets", cwd=r.path).returncode == 2
    v = run("version")
    assert v.returncode == 0 and v.stdout.decode().startswith("keysweep ")
    assert run("--version").stdout == v.stdout
    verbose = run("scan", "-v", cwd=r.path)
    assert "keysweep: INFO: history of" in verbose.stderr.decode()
    assert "keysweep: INFO: history of" in run("scan", "--verbose", cwd=r.path).stderr.decode()
    assert "git rev-list --all" in verbose.stderr.decode()
    quiet = run("scan", "--log-level", "error", cwd=r.path)
    assert "INFO" not in quiet.stderr.decode()


def test_unknown_options_suggest_and_abbreviations_are_refused() -> None:
    p = run("scan", "--outptu", "x")
    assert p.returncode == 2 and "did you mean --output?" in p.stderr.decode()
    p = run("scna")
    assert p.returncode == 2 and "did you mean scan?" in p.stderr.decode()
    p = run("scan", "--no-hist")  # argparse would take it for --no-history by default
    assert p.returncode == 2 and "unrecognized arguments: --no-hist" in p.stderr.decode()


def test_bash_completion_completes_commands_and_options(tmp_path: Path) -> None:
    script = run("completion", "bash").stdout.decode()
    assert script
    (tmp_path / "ks.bash").write_text(script)

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        probe = (
            f"source {tmp_path / 'ks.bash'}\n"
            f"COMP_WORDS=({line})\nCOMP_CWORD={len(words) - 1}\n"
            f"COMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n"
            "_shtab_keysweep keysweep\n"
            'printf "%s\\n" "${COMPREPLY[@]}"\n'
        )
        out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    assert "scan" in complete("keysweep", "sc")
    assert "--no-history" in complete("keysweep", "scan", "--no-h")
    assert set(complete("keysweep", "completion", "")) >= {"bash", "zsh", "fish"}
    fish = run("completion", "fish").stdout.decode()
    assert "complete -c keysweep" in fish and "-l no-history" in fish
    assert "#compdef keysweep" in run("completion", "zsh").stdout.decode()


def test_the_summary_counts_in_words(three: dict, tmp_path: Path) -> None:
    r, shas = three["repo"], three["shas"]
    one = run("scan", shas["web"], cwd=r.path)
    assert f"1 commit ({shas['web']}) of" in one.stdout.decode() + one.stderr.decode()
    d = tmp_path / "one-file"
    d.mkdir()
    (d / "a.txt").write_text("nothing here\n")
    clean = run("scan", str(d), "--no-history")
    out = clean.stdout.decode() + clean.stderr.decode()
    assert clean.returncode == 0 and f"no leaks found; 1 file under {d}" in out, out


def test_a_scan_run_inside_another_repositorys_hook_reads_the_repository_named(
    tmp_path: Path,
) -> None:
    """A git hook (or ``git rebase --exec``) of repository A leaves GIT_DIR and
    GIT_INDEX_FILE set; ``git -C B`` obeys them. ``keysweep scan B`` from there scans B,
    and says it ignored them: before, it read A's history and said B was clean."""
    a, b = Repo(tmp_path / "a"), Repo(tmp_path / "b")
    a.write("README", "nothing here\n")
    a.commit("a")
    b.write("conf.py", f"KEY = '{mg_live()}'\n")
    b.commit("b")
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "settings.env").write_text(f"KEY={mg_live()}\n")
    hook_env = {"GIT_DIR": str(a.path / ".git"), "GIT_INDEX_FILE": str(a.path / ".git/index")}
    for target, where in ((b.path, "conf.py"), (plain, "settings.env")):
        p = run("scan", str(target), "--format", "json", "--no-progress", env=hook_env)
        assert p.returncode == 1, p.stderr.decode()
        assert paths(p) == [where]
        note = p.stderr.decode()
        assert "GIT_DIR, GIT_INDEX_FILE pointed at another repository" in note, note
    # A's own scan under A's variables is A's: clean, and nothing said about them.
    p = run("scan", str(a.path), "--no-progress", env=hook_env)
    assert p.returncode == 0 and "pointed at" not in p.stderr.decode()


def test_a_staged_scan_in_its_own_pre_commit_hook_reads_gits_temporary_index(
    tmp_path: Path,
) -> None:
    """``git commit -a`` stages into a temporary index and names it in GIT_INDEX_FILE
    for the hook: the repository's own variables are kept, so the key is seen."""
    r = Repo(tmp_path / "r")
    r.write("conf.py", "KEY = None\n")
    r.commit("start")
    hook = r.path / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\nexec {KEYSWEEP} scan --staged . --no-progress\n")
    hook.chmod(0o755)
    r.write("conf.py", f"KEY = '{mg_live()}'\n")  # changed, not staged: -a stages it
    p = subprocess.run(
        ["git", "-C", str(r.path), "commit", "-a", "-q", "-m", "key"],
        capture_output=True,
        env={**os.environ, **GIT_ENV},
        timeout=120,
    )
    assert p.returncode != 0, "the commit went through with a key in it"
    assert "conf.py:1" in p.stdout.decode() + p.stderr.decode()
    assert "pointed at" not in p.stderr.decode()
    assert git(r.path, "log", "--format=%s").split() == ["start"]
