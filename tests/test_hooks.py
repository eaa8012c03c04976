"""Pre-commit and pre-push hooks, through real git and the real pre-commit framework."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import KEYSWEEP, ROOT
from tests.helpers import GIT_ENV, Repo, git, mg_live, mg_test

ENV = {**os.environ, **GIT_ENV}


def commit(repo: Path, *extra: str, msg: str = "change") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(repo), "commit", "-q", "-m", msg, *extra],
        capture_output=True,
        env=ENV,
        timeout=300,
    )


def hook(
    repo: Path, *args: str, stdin: bytes | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KEYSWEEP, "hook", *args],
        cwd=repo,
        capture_output=True,
        input=stdin,
        env={**ENV, **(env or {})},
        timeout=120,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "work")
    r.write("README.md", "# project\n")
    r.write("src/app.py", "import os\n\nDEBUG = False\n")
    r.commit("init")
    return r


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("KEYSWEEP_CACHE_DIR", str(d))
    ENV["KEYSWEEP_CACHE_DIR"] = str(d)
    return d


# --- keysweep hook pre-commit, run directly -------------------------------------------


def test_staged_key_blocks_with_location_and_advice(repo: Repo, cache: Path) -> None:
    key = mg_live()
    repo.write("src/app.py", f"import os\n\nDEBUG = False\nAPI_KEY = '{key}'\n")
    git(repo.path, "add", "src/app.py")
    p = hook(repo.path, "pre-commit")
    err = p.stderr.decode()
    assert p.returncode == 1
    assert "src/app.py:4" in err and "mg-live-key" in err and key[:16] + "…" in err
    assert "live production key: rotate it now (Keys → Rotate)" in err
    assert "keysweep:allow" in err and "keysweep baseline add --staged" in err
    assert "git commit --no-verify" in err
    # No pre-push hook is installed here: the message does not promise one.
    assert "no keysweep pre-push hook is installed" in err and "still checks" not in err
    assert key not in err + p.stdout.decode()


def test_index_not_working_tree(repo: Repo, cache: Path) -> None:
    key = mg_live()
    # Staged, then removed from the working tree only: the index still has it.
    repo.write("conf.env", f"KEY={key}\n")
    git(repo.path, "add", "conf.env")
    repo.write("conf.env", "KEY=${FROM_ENV}\n")
    assert hook(repo.path, "pre-commit").returncode == 1
    # Staged clean, key only in an unstaged edit: passes.
    git(repo.path, "add", "conf.env")
    repo.write("conf.env", f"KEY={key}\n")
    p = hook(repo.path, "pre-commit")
    assert p.returncode == 0, p.stderr.decode()


def test_partially_staged_file_is_judged_by_staged_hunks(repo: Repo, cache: Path) -> None:
    key = mg_test()
    lines = [f"line {i}" for i in range(40)]
    repo.write("big.txt", "\n".join(lines) + "\n")
    repo.commit("big")
    lines[2] = f"token = {key}"
    lines[35] = "changed far below"
    repo.write("big.txt", "\n".join(lines) + "\n")
    # Stage only the second hunk (the clean one).
    subprocess.run(
        ["git", "-C", str(repo.path), "add", "-p", "big.txt"],
        input=b"n\ny\n",
        capture_output=True,
        env=ENV,
        check=True,
    )
    assert hook(repo.path, "pre-commit").returncode == 0
    # Now stage the hunk with the key too.
    git(repo.path, "add", "big.txt")
    p = hook(repo.path, "pre-commit")
    assert p.returncode == 1 and "big.txt:3" in p.stderr.decode()


def test_allow_comment_baseline_and_config(repo: Repo, cache: Path) -> None:
    key = mg_live()
    repo.write("a.py", f"K = '{key}'  # keysweep:allow test fixture\n")
    git(repo.path, "add", "a.py")
    assert hook(repo.path, "pre-commit").returncode == 0
    # A baseline recorded by `keysweep baseline create` is honoured by default.
    other = mg_live()
    repo.write("b.py", f"K = '{other}'\n")
    git(repo.path, "add", "b.py")
    assert hook(repo.path, "pre-commit").returncode == 1
    subprocess.run(
        [
            KEYSWEEP,
            "baseline",
            "create",
            "--no-history",
            "--output",
            ".keysweep-baseline.json",
            ".",
        ],
        cwd=repo.path,
        check=True,
        capture_output=True,
    )
    assert hook(repo.path, "pre-commit").returncode == 0
    # Config: excluded paths are not scanned.
    third = mg_live()
    repo.write("fixtures/c.py", f"K = '{third}'\n")
    git(repo.path, "add", "fixtures/c.py")
    assert hook(repo.path, "pre-commit").returncode == 1
    repo.write(".keysweep.toml", 'exclude_paths = ["fixtures/*"]\n')
    assert hook(repo.path, "pre-commit").returncode == 0


def test_every_hook_honours_baseline_flag_setting_and_config_flag(
    pushed: tuple[Repo, Path], cache: Path
) -> None:
    """The README: all three hooks honour `--baseline`, the `baseline` setting and
    `--config`, as they honour `.keysweep-baseline.json` and `.keysweep.toml`."""
    repo, _ = pushed
    base = git(repo.path, "rev-parse", "HEAD").strip()
    repo.write("conf/dev.env", f"KEY={mg_test()}\n")
    git(repo.path, "add", "conf/dev.env")
    assert commit(repo.path, "--no-verify").returncode == 0  # what pre-push sees
    repo.write("conf/local.env", f"KEY={mg_test()}\n")
    git(repo.path, "add", "conf/local.env")  # what pre-commit sees

    def hooks(*options: str) -> list[int]:
        head = git(repo.path, "rev-parse", "HEAD").strip()
        line = f"refs/heads/main {head} refs/heads/main {base}\n".encode()
        return [
            hook(repo.path, "pre-commit", *options).returncode,
            hook(repo.path, "files", "conf/dev.env", "conf/local.env", *options).returncode,
            hook(repo.path, "pre-push", "origin", "url", *options, stdin=line).returncode,
        ]

    assert hooks() == [1, 1, 1]
    (repo.path / "ci").mkdir()
    for scope in ([], ["--staged"]):
        p = subprocess.run(
            [KEYSWEEP, "baseline", "add", *scope, "--output", "ci/known.json"],
            cwd=repo.path,
            capture_output=True,
            env=ENV,
        )
        assert p.returncode == 0, p.stderr.decode()
    assert hooks("--baseline", "ci/known.json") == [0, 0, 0]
    repo.write(".keysweep.toml", 'baseline = "ci/known.json"\n')
    assert hooks() == [0, 0, 0]
    repo.remove(".keysweep.toml")
    assert hooks() == [1, 1, 1]
    elsewhere = repo.path.parent / "elsewhere.toml"
    elsewhere.write_text('disabled_rules = ["mg-test-key"]\n')
    assert hooks("--config", str(elsewhere)) == [0, 0, 0]


def test_files_hook_takes_options_before_the_file_names(repo: Repo, cache: Path) -> None:
    """pre-commit runs `entry args... files...`: `args: [--confidence, high]` (the README's
    advice) or `--baseline FILE` come before the names of keysweep-files' files."""
    from scanner.examples import expand

    password = expand("{base62:18}7Q")  # made now: this repository holds no secret
    repo.write("db.py", f'DB_PASSWORD = "{password}"\n')  # a generic secret: medium only
    repo.write("conf.env", f"KEY={mg_test()}\n")
    assert hook(repo.path, "files", "db.py", "conf.env").returncode == 1
    assert hook(repo.path, "files", "--confidence", "high", "db.py").returncode == 0
    p = hook(repo.path, "files", "--confidence", "high", "db.py", "conf.env")
    assert p.returncode == 1 and "conf.env:1" in p.stderr.decode()
    assert "db.py" not in p.stderr.decode()
    bad = hook(repo.path, "files", "--confidense", "high", "db.py")
    assert bad.returncode == 2 and "did you mean --confidence?" in bad.stderr.decode()


def test_fast_path_cache_never_hides_a_key(repo: Repo, cache: Path) -> None:
    repo.write("clean.txt", "hello\n")
    git(repo.path, "add", "clean.txt")
    assert hook(repo.path, "pre-commit").returncode == 0  # full path: writes the cache
    (entry,) = list(cache.iterdir())
    assert entry.stat().st_mode & 0o077 == 0  # private
    assert hook(repo.path, "pre-commit").returncode == 0  # fast path
    key = mg_live()
    repo.write("leak.txt", key + "\n")
    git(repo.path, "add", "leak.txt")
    assert hook(repo.path, "pre-commit").returncode == 1
    # A damaged cache is ignored, not trusted.
    entry.write_bytes(b"keysweep-hs-cache-v1\n" + b"garbage")
    assert hook(repo.path, "pre-commit").returncode == 1
    # A config change is a new cache key: a newly disabled rule takes effect.
    repo.write(".keysweep.toml", 'disabled_rules = ["mg-live-key"]\n')
    assert hook(repo.path, "pre-commit").returncode == 0


def test_fast_path_cache_knows_rules_from_outside_the_repository(
    repo: Repo, cache: Path, tmp_path: Path
) -> None:
    """README (Speed): the cache makes the hook faster, never more lenient, also when a
    rule comes from the operator's file, KEYSWEEP_RULES or a file `.gitleaks.toml`'s
    `[extend] path` names (none of them is the repository's own config)."""
    from scanner.examples import expand

    repo.write("clean.txt", "hello\n")
    git(repo.path, "add", "clean.txt")
    assert hook(repo.path, "pre-commit").returncode == 0  # full path: writes the cache
    repo.write("t.py", f"x = 'acme_tok_{expand('{base62:24}')}'\n")
    git(repo.path, "add", "t.py")
    assert hook(repo.path, "pre-commit").returncode == 0  # no rule knows it: fast path
    rule = {
        "id": "acme-token",
        "description": "ACME internal token",
        "prefixes": ["acme_tok_"],
        "pattern": "(acme_tok_[A-Za-z0-9]{24})",
    }
    operator = tmp_path / "operator.toml"
    operator.write_text(
        "[[rules]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in rule.items())
    )
    assert hook(repo.path, "pre-commit", env={"KEYSWEEP_CONFIG": str(operator)}).returncode == 1
    p = hook(repo.path, "pre-commit", env={"KEYSWEEP_RULES": json.dumps([rule])})
    assert p.returncode == 1 and "acme-token" in p.stderr.decode()
    # .gitleaks.toml unchanged, the file it extends gains the rule.
    repo.write("ci/gitleaks-base.toml", "# the team's shared rules\n")
    repo.write(".gitleaks.toml", '[extend]\npath = "ci/gitleaks-base.toml"\n')
    assert hook(repo.path, "pre-commit").returncode == 0  # writes the cache for this config
    assert hook(repo.path, "pre-commit").returncode == 0
    repo.write(
        "ci/gitleaks-base.toml",
        '[[rules]]\nid = "acme"\nregex = "(acme_tok_[A-Za-z0-9]{24})"\nkeywords = ["acme_tok_"]\n',
    )
    assert hook(repo.path, "pre-commit").returncode == 1


def test_hook_error_is_exit_2_with_one_line(tmp_path: Path, cache: Path) -> None:
    p = hook(tmp_path, "pre-commit")
    assert p.returncode == 2
    assert p.stderr.decode().strip().count("\n") == 0 and "error" in p.stderr.decode()
    r = Repo(tmp_path / "r")
    r.write(".keysweep.toml", "this is [not toml\n")
    r.write("x.txt", mg_live())
    git(r.path, "add", "x.txt")
    p = hook(r.path, "pre-commit")
    assert p.returncode == 2 and "not valid TOML" in p.stderr.decode()


# --- keysweep hook pre-push, with git's stdin ----------------------------------------------


@pytest.fixture
def pushed(repo: Repo, tmp_path: Path) -> tuple[Repo, Path]:
    remote = repo.add_origin(tmp_path / "remote.git")
    git(repo.path, "push", "-q", "origin", "main")
    return repo, remote


def test_pre_push_ranges(pushed: tuple[Repo, Path], cache: Path) -> None:
    repo, _ = pushed
    base = git(repo.path, "rev-parse", "HEAD").strip()
    key = mg_live()
    repo.write("leak.py", f"K = '{key}'\n")
    leaky = repo.commit("leak, committed with --no-verify")
    repo.write("leak.py", "K = None\n")
    head = repo.commit("remove it again (still in history)")
    line = f"refs/heads/main {head} refs/heads/main {base}\n".encode()
    p = hook(repo.path, "pre-push", "origin", "url", stdin=line)
    assert p.returncode == 1
    err = p.stderr.decode()
    assert f'leak.py:1 (commit {leaky[:12]} "leak, committed with --no-verify")' in err
    assert "git push --no-verify" in err
    # Only what is not on the remote yet: pushing an old, clean range passes.
    line = f"refs/heads/main {base} refs/heads/main {base}\n".encode()
    assert hook(repo.path, "pre-push", "origin", "url", stdin=line).returncode == 0
    # A new branch is compared with what the remote already has.
    zero = "0" * 40
    line = f"refs/heads/topic {head} refs/heads/topic {zero}\n".encode()
    assert hook(repo.path, "pre-push", "origin", "url", stdin=line).returncode == 1
    # Deleting a branch publishes nothing.
    line = f"(delete) {zero} refs/heads/old {base}\n".encode()
    assert hook(repo.path, "pre-push", "origin", "url", stdin=line).returncode == 0


# --- keysweep install-hook, with real git commit and git push ---------------------------


def test_install_hook_blocks_commit_and_push(pushed: tuple[Repo, Path], cache: Path) -> None:
    repo, _ = pushed
    p = subprocess.run(
        [KEYSWEEP, "install-hook", "--pre-push"], cwd=repo.path, capture_output=True, env=ENV
    )
    assert p.returncode == 0 and "installed keysweep pre-commit hook" in p.stdout.decode()
    key = mg_live()
    repo.write("leak.py", f"K = '{key}'\n")
    git(repo.path, "add", "leak.py")
    c = commit(repo.path)
    assert c.returncode != 0 and "commit blocked" in c.stderr.decode()
    assert "the keysweep pre-push hook still checks the commit" in c.stderr.decode()
    # --no-verify gets past pre-commit, and pre-push still stops it.
    assert commit(repo.path, "--no-verify").returncode == 0
    push = subprocess.run(
        ["git", "-C", str(repo.path), "push", "origin", "main"], capture_output=True, env=ENV
    )
    assert push.returncode != 0 and "push blocked" in push.stderr.decode()
    # A clean push goes through.
    git(repo.path, "reset", "-q", "--hard", "HEAD~1")
    repo.write("ok.txt", "fine\n")
    git(repo.path, "add", "ok.txt")
    assert commit(repo.path).returncode == 0
    push = subprocess.run(
        ["git", "-C", str(repo.path), "push", "origin", "main"], capture_output=True, env=ENV
    )
    assert push.returncode == 0, push.stderr.decode()


def test_install_hook_pre_push_sees_every_ref_of_push_all(
    pushed: tuple[Repo, Path], cache: Path
) -> None:
    """`git push --all`: the key is on a branch that is not the first ref git hands over
    (the pre-commit framework would see only the first); install-hook's hook reads every
    ref, and nothing is pushed."""
    repo, remote = pushed
    assert (
        subprocess.run(
            [KEYSWEEP, "install-hook", "--pre-push"], cwd=repo.path, capture_output=True, env=ENV
        ).returncode
        == 0
    )
    git(repo.path, "checkout", "-q", "-b", "aa-clean")
    repo.write("clean.txt", "fine\n")
    git(repo.path, "add", "clean.txt")
    assert commit(repo.path).returncode == 0
    git(repo.path, "checkout", "-q", "-b", "zz-leak", "main")
    repo.write("leak.py", f"K = '{mg_live()}'\n")
    git(repo.path, "add", "leak.py")
    assert commit(repo.path, "--no-verify").returncode == 0
    git(repo.path, "checkout", "-q", "main")
    push = subprocess.run(
        ["git", "-C", str(repo.path), "push", "--all", "origin"], capture_output=True, env=ENV
    )
    assert push.returncode != 0 and "leak.py:1" in push.stderr.decode()
    heads = git(remote, "for-each-ref", "--format=%(refname)", "refs/heads")
    assert heads.split() == ["refs/heads/main"]  # neither branch went out


def test_install_hook_chains_and_never_overwrites_silently(repo: Repo, cache: Path) -> None:
    hooks = repo.path / ".git" / "hooks"
    existing = hooks / "pre-commit"
    marker = repo.path / "ran-local-hook"
    existing.write_text(f"#!/bin/sh\ntouch '{marker}'\nexit 0\n")
    existing.chmod(0o755)

    def install(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [KEYSWEEP, "install-hook", *args], cwd=repo.path, capture_output=True, env=ENV
        )

    p = install()
    assert p.returncode == 0 and "kept as pre-commit.local" in p.stdout.decode()
    assert (hooks / "pre-commit.local").read_text().startswith("#!/bin/sh\ntouch")
    assert "already installed" in install().stdout.decode()
    repo.write("a.txt", "clean\n")
    git(repo.path, "add", "a.txt")
    assert commit(repo.path).returncode == 0 and marker.exists()
    # A failing chained hook still stops the commit.
    (hooks / "pre-commit.local").write_text("#!/bin/sh\nexit 3\n")
    repo.write("b.txt", "clean\n")
    git(repo.path, "add", "b.txt")
    assert commit(repo.path).returncode != 0
    # Another foreign hook with .local taken: refused, unless --force.
    existing.write_text("#!/bin/sh\nexit 0\n")
    p = install()
    assert p.returncode == 2 and "--force" in p.stderr.decode()
    assert existing.read_text() == "#!/bin/sh\nexit 0\n"
    assert install("--force").returncode == 0
    assert "keysweep" in existing.read_text()


def test_install_hook_honours_core_hooks_path(repo: Repo, cache: Path) -> None:
    """A team that keeps its hooks in the repository (core.hooksPath) gets keysweep's
    there, beside its own, and git runs them."""
    shared = repo.path / ".githooks"
    shared.mkdir()
    (shared / "pre-push").write_text("#!/bin/sh\ncat > /dev/null\nexit 0\n")
    (shared / "pre-push").chmod(0o755)
    git(repo.path, "config", "core.hooksPath", ".githooks")
    p = subprocess.run(
        [KEYSWEEP, "install-hook", "--pre-push"], cwd=repo.path, capture_output=True, env=ENV
    )
    out = p.stdout.decode()
    assert p.returncode == 0 and f"pre-commit hook at {shared / 'pre-commit'}" in out
    assert "kept as pre-push.local" in out and (shared / "pre-push.local").exists()
    assert not (repo.path / ".git" / "hooks" / "pre-commit").exists()
    repo.write("leak.py", f"K = '{mg_live()}'\n")
    git(repo.path, "add", "leak.py")
    c = commit(repo.path)
    assert c.returncode != 0 and "commit blocked" in c.stderr.decode()


# --- the real pre-commit framework, with this repository as the hook repository ---------


@pytest.fixture(scope="module")
def framework_home(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if shutil.which("pre-commit", path=os.path.dirname(sys.executable)) is None:
        pytest.fail("pre-commit is not installed (it is in the [test] extra)")
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return {"home": tmp_path_factory.mktemp("pre-commit-home"), "rev": head}


def framework(repo: Path, home: dict, *args: str, stdin: bytes | None = None):  # type: ignore[no-untyped-def]
    exe = os.path.join(os.path.dirname(sys.executable), "pre-commit")
    env = {**ENV, "PRE_COMMIT_HOME": str(home["home"])}
    return subprocess.run(
        [exe, *args], cwd=repo, capture_output=True, env=env, input=stdin, timeout=600
    )


def test_pre_commit_framework(pushed: tuple[Repo, Path], framework_home: dict, cache: Path) -> None:
    repo, _ = pushed
    repo.write(
        ".pre-commit-config.yaml",
        (
            "repos:\n"
            f"  - repo: {ROOT}\n"
            f"    rev: {framework_home['rev']}\n"
            "    hooks:\n"
            "      - id: keysweep\n"
            "      - id: keysweep-pre-push\n"
        ),
    )
    git(repo.path, "add", ".pre-commit-config.yaml")
    p = framework(
        repo.path, framework_home, "install", "--hook-type", "pre-commit", "--hook-type", "pre-push"
    )
    assert p.returncode == 0, p.stderr.decode()
    env = {**ENV, "PRE_COMMIT_HOME": str(framework_home["home"])}

    def git_commit(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["git", "-C", str(repo.path), "commit", "-q", "-m", "x", *extra],
            capture_output=True,
            env=env,
            timeout=600,
        )

    assert git_commit().returncode == 0  # the config itself: clean
    key = mg_live()
    repo.write("settings.py", f"DEBUG = 1\nKEY = '{key}'\n")
    git(repo.path, "add", "settings.py")
    c = git_commit()
    out = c.stdout.decode() + c.stderr.decode()
    assert c.returncode != 0 and "settings.py:2" in out and "rotate it now" in out
    assert "the keysweep pre-push hook still checks the commit" in out
    assert key not in out
    # An allow comment lets it through.
    repo.write("settings.py", f"DEBUG = 1\nKEY = '{key}'  # keysweep:allow\n")
    git(repo.path, "add", "settings.py")
    assert git_commit().returncode == 0
    # Committed with --no-verify: the pre-push hook stops the push to the bare remote.
    repo.write("other.py", f"K = '{mg_live()}'\n")
    git(repo.path, "add", "other.py")
    assert git_commit("--no-verify").returncode == 0
    push = subprocess.run(
        ["git", "-C", str(repo.path), "push", "origin", "main"],
        capture_output=True,
        env=env,
        timeout=600,
    )
    assert push.returncode != 0 and "other.py:1" in push.stdout.decode() + push.stderr.decode()
    git(repo.path, "reset", "-q", "--hard", "HEAD~1")
    push = subprocess.run(
        ["git", "-C", str(repo.path), "push", "origin", "main"],
        capture_output=True,
        env=env,
        timeout=600,
    )
    assert push.returncode == 0, push.stdout.decode() + push.stderr.decode()


# --- every kind of push, through both ways of installing the hook ---------------------------
#
# pre-commit hands a hook PRE_COMMIT_FROM_REF/TO_REF only when the push does not include a
# root commit; on a repository's first push it says nothing but the branch. A hook that is
# not told what is pushed scans every commit the remote does not have: never passes blind.


def _install(repo: Path, mode: str, home: dict) -> dict:
    """Install the pre-push hook the way ``mode`` says; returns the environment for git."""
    env = {**ENV, "PRE_COMMIT_HOME": str(home["home"])}
    if mode == "install-hook":
        p = subprocess.run(
            [KEYSWEEP, "install-hook", "--pre-push"], cwd=repo, capture_output=True, env=env
        )
        assert p.returncode == 0, p.stderr.decode()
        return env
    (repo / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {ROOT}\n    rev: {home['rev']}\n    hooks:\n"
        "      - id: keysweep\n      - id: keysweep-pre-push\n"
    )
    p = framework(repo, home, "install", "--hook-type", "pre-commit", "--hook-type", "pre-push")
    assert p.returncode == 0, p.stderr.decode()
    return env


def _push(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(repo), "push", *args], capture_output=True, env=env, timeout=600
    )


def _commit_all(repo: Path, env: dict, msg: str, *extra: str) -> None:
    git(repo, "add", "-A")
    p = subprocess.run(
        ["git", "-C", str(repo), "commit", "-q", "--no-verify", "--allow-empty", "-m", msg, *extra],
        capture_output=True,
        env=env,
    )
    assert p.returncode == 0, p.stderr.decode()


def _remote_has(remote: Path, ref: str) -> bool:
    probe = subprocess.run(
        ["git", "-C", str(remote), "rev-parse", "--verify", "--quiet", ref], capture_output=True
    )
    return probe.returncode == 0


MODES = ["framework", "install-hook"]


@pytest.mark.parametrize("mode", MODES)
def test_first_push_with_a_key_in_the_root_commit_is_blocked(
    tmp_path: Path, framework_home: dict, cache: Path, mode: str
) -> None:
    repo = Repo(tmp_path / "new")
    remote = repo.add_origin(tmp_path / "remote.git")
    env = _install(repo.path, mode, framework_home)
    key = mg_live()
    repo.write("config.py", f"KEY = '{key}'\n")
    _commit_all(repo.path, env, "first commit")
    push = _push(repo.path, env, "origin", "main")
    out = push.stdout.decode() + push.stderr.decode()
    assert push.returncode != 0 and "push blocked" in out and "config.py:1" in out, out
    assert not _remote_has(remote, "main") and key not in out
    # The same first push without the key goes through.
    repo.write("config.py", "import os\nKEY = os.environ['KEY']\n")
    _commit_all(repo.path, env, "first commit", "--amend")
    push = _push(repo.path, env, "origin", "main")
    assert push.returncode == 0, push.stdout.decode() + push.stderr.decode()
    assert _remote_has(remote, "main")


@pytest.mark.parametrize("mode", MODES)
def test_new_branch_without_upstream_and_force_push_are_scanned(
    tmp_path: Path, framework_home: dict, cache: Path, mode: str
) -> None:
    repo = Repo(tmp_path / "work")
    remote = repo.add_origin(tmp_path / "remote.git")
    repo.write("README.md", "# project\n")
    repo.commit("init")
    env = _install(repo.path, mode, framework_home)
    _commit_all(repo.path, env, "hook config")
    assert _push(repo.path, env, "-u", "origin", "main").returncode == 0
    # A new branch, never pushed, no upstream: its key is stopped.
    git(repo.path, "checkout", "-q", "-b", "topic")
    repo.write("topic.py", f"T = '{mg_live()}'\n")
    _commit_all(repo.path, env, "topic work")
    push = _push(repo.path, env, "origin", "topic")
    out = push.stdout.decode() + push.stderr.decode()
    assert push.returncode != 0 and "topic.py:1" in out, out
    assert not _remote_has(remote, "topic")
    # A force-push of a rewritten main that now holds a key is stopped too.
    git(repo.path, "checkout", "-q", "main")
    repo.write("README.md", f"# project\ntoken: {mg_live()}\n")
    _commit_all(repo.path, env, "hook config", "--amend")
    push = _push(repo.path, env, "--force", "origin", "main")
    out = push.stdout.decode() + push.stderr.decode()
    assert push.returncode != 0 and "README.md:2" in out, out
    # A clean force-push goes through.
    repo.write("README.md", "# project, again\n")
    _commit_all(repo.path, env, "hook config", "--amend")
    push = _push(repo.path, env, "--force", "origin", "main")
    assert push.returncode == 0, push.stdout.decode() + push.stderr.decode()


def test_pre_push_run_by_hand_scans_every_unpushed_commit(
    pushed: tuple[Repo, Path], cache: Path
) -> None:
    repo, _ = pushed
    repo.write("later.py", f"K = '{mg_test()}'\n")
    repo.commit("not pushed yet")
    # No refs on stdin (run by hand, or a caller that says nothing): never a blind pass.
    p = hook(repo.path, "pre-push", "origin", stdin=b"")
    assert p.returncode == 1 and "later.py:1" in p.stderr.decode()
    git(repo.path, "push", "-q", "origin", "main")
    assert hook(repo.path, "pre-push", "origin", stdin=b"").returncode == 0
