"""Every command keysweep tells a person to run, run as printed, in the situation that
printed it, does what the message says: the blocked commit or push goes through, the
unscanned changes are found, the false positive stays out."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import KEYSWEEP
from tests.helpers import GIT_ENV, Repo, git, mg_live, mg_test

BIN = os.path.dirname(KEYSWEEP)
ENV = {**os.environ, **GIT_ENV, "PATH": f"{BIN}:{os.environ['PATH']}"}


@pytest.fixture(autouse=True)
def cache(tmp_path: Path) -> None:
    ENV["KEYSWEEP_CACHE_DIR"] = str(tmp_path / "cache")


def printed_commands(message: str) -> list[str]:
    """The command lines of a message: indented lines that start with git or keysweep."""
    return [
        line.strip() for line in message.splitlines() if re.match(r"^\s{4,}(git|keysweep) ", line)
    ]


def sh(cwd: Path, command: str, **env: str) -> subprocess.CompletedProcess:
    """Run a printed command through the shell, as a person pastes it."""
    return subprocess.run(
        ["sh", "-c", command], cwd=cwd, capture_output=True, env={**ENV, **env}, timeout=300
    )


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, env=ENV, timeout=300)


@pytest.fixture
def hooked(tmp_path: Path) -> tuple[Repo, Path]:
    """A repository pushed once, with keysweep's pre-commit and pre-push hooks installed."""
    repo = Repo(tmp_path / "work")
    repo.write("README.md", "# project\n")
    repo.write("src/app.py", "import os\n")
    repo.commit("init")
    remote = repo.add_origin(tmp_path / "remote.git")
    git(repo.path, "push", "-q", "origin", "main")
    assert run(repo.path, KEYSWEEP, "install-hook", "--pre-push").returncode == 0
    return repo, remote


def commit(repo: Repo, msg: str, *extra: str) -> subprocess.CompletedProcess:
    return run(repo.path, "git", "commit", "-q", "-m", msg, *extra)


def push(repo: Repo) -> subprocess.CompletedProcess:
    return run(repo.path, "git", "push", "origin", "main")


def test_blocked_commit_baseline_command_lets_that_commit_through(hooked) -> None:  # type: ignore[no-untyped-def]
    repo, _ = hooked
    # An earlier baseline entry must survive the advice.
    old = mg_test()
    repo.write("fixtures/old.txt", old + "\n")
    git(repo.path, "add", "fixtures/old.txt")
    assert run(repo.path, KEYSWEEP, "baseline", "add", "--staged").returncode == 0
    assert commit(repo, "old fixture").returncode == 0
    # A fixture key the developer means to commit: the commit is blocked...
    repo.write("src/fixture.py", f"FAKE = '{mg_live()}'\n")
    git(repo.path, "add", "src/fixture.py")
    blocked = commit(repo, "add fixture")
    assert blocked.returncode != 0
    (command,) = [c for c in printed_commands(blocked.stderr.decode()) if "baseline" in c]
    assert command == "keysweep baseline add --staged"
    # ...the printed command, run from where the developer is (a subdirectory), ...
    done = sh(repo.path / "src", command)
    assert done.returncode == 0, done.stderr.decode()
    assert "1 finding(s)" in done.stderr.decode()
    # ...lets exactly that commit through, and the earlier entry is still honoured.
    assert commit(repo, "add fixture").returncode == 0
    assert run(repo.path, KEYSWEEP, "scan", "--format", "json").returncode == 0


def test_blocked_commit_without_pre_push_hook_says_how_to_add_it(tmp_path: Path) -> None:
    """Only the pre-commit hook installed: the message does not promise a pre-push check;
    the command it gives installs one, and a commit made with --no-verify is then stopped
    at push."""
    repo = Repo(tmp_path / "work")
    repo.write("README.md", "# project\n")
    repo.commit("init")
    repo.add_origin(tmp_path / "remote.git")
    git(repo.path, "push", "-q", "origin", "main")
    assert run(repo.path, KEYSWEEP, "install-hook").returncode == 0
    repo.write("app.py", f"KEY = '{mg_live()}'\n")
    git(repo.path, "add", "app.py")
    blocked = commit(repo, "leak")
    err = blocked.stderr.decode()
    assert blocked.returncode != 0 and "no keysweep pre-push hook is installed" in err
    (command,) = re.findall(r"`(keysweep [^`]*)`", err)
    assert command == "keysweep install-hook --pre-push"
    assert sh(repo.path, command).returncode == 0
    again = commit(repo, "leak")
    assert "the keysweep pre-push hook still checks the commit" in again.stderr.decode()
    assert commit(repo, "leak", "--no-verify").returncode == 0
    pushed = push(repo)
    assert pushed.returncode != 0 and "app.py:1" in pushed.stderr.decode()


def test_blocked_push_of_the_last_commit_amend_as_printed(hooked) -> None:  # type: ignore[no-untyped-def]
    repo, _ = hooked
    repo.write("src/app.py", f"import os\nKEY = '{mg_live()}'\n")
    git(repo.path, "add", "src/app.py")
    assert commit(repo, "add key", "--no-verify").returncode == 0
    blocked = push(repo)
    message = blocked.stderr.decode()
    assert blocked.returncode != 0 and "push blocked" in message
    assert "a new commit that removes it" in message and "git commit --amend" in message
    # A new commit that removes the key does not help: the earlier commit is pushed.
    repo.write("src/app.py", "import os\nKEY = os.environ['KEY']\n")
    git(repo.path, "add", "src/app.py")
    assert commit(repo, "remove key").returncode == 0
    assert push(repo).returncode != 0
    git(repo.path, "reset", "-q", "--hard", "HEAD~1")
    # Take the key out of the file, then the printed command, as printed.
    repo.write("src/app.py", "import os\nKEY = os.environ['KEY']\n")
    (amend,) = [c for c in printed_commands(message) if "--amend" in c]
    assert amend == "git add src/app.py && git commit --amend --no-edit"
    done = sh(repo.path, amend)
    assert done.returncode == 0, done.stderr.decode()
    ok = push(repo)
    assert ok.returncode == 0, ok.stderr.decode()


def _mark_edit(shas: list[str]) -> str:
    """What a person does in the rebase todo list: mark the named commits `edit`."""
    exprs = " ".join(f"-e 's/^pick {s[:7]}/edit {s[:7]}/'" for s in shas)
    return f"sed -i {exprs}"


@pytest.mark.parametrize("root", [False, True], ids=["earlier-commit", "root-commit"])
def test_blocked_push_of_an_earlier_commit_rebase_as_printed(tmp_path: Path, root: bool) -> None:
    repo = Repo(tmp_path / "work")
    remote = repo.add_origin(tmp_path / "remote.git")
    if not root:
        repo.write("README.md", "# project\n")
        repo.commit("init")
        git(repo.path, "push", "-q", "origin", "main")
    assert run(repo.path, KEYSWEEP, "install-hook", "--pre-push").returncode == 0
    repo.write("settings.py", f"DEBUG = True\nKEY = '{mg_live()}'\n")
    git(repo.path, "add", "-A")
    assert commit(repo, "settings", "--no-verify").returncode == 0
    leaky = git(repo.path, "rev-parse", "HEAD").strip()
    repo.write("other.py", "print('later work')\n")
    git(repo.path, "add", "-A")
    assert commit(repo, "later work").returncode == 0
    blocked = push(repo)
    message = blocked.stderr.decode()
    assert blocked.returncode != 0 and leaky[:12] in message
    commands = printed_commands(message)
    rebase = next(c for c in commands if c.startswith("git rebase -i"))
    assert rebase == ("git rebase -i --root" if root else f"git rebase -i {leaky[:12]}~1")
    go_on = next(c for c in commands if "rebase --continue" in c)
    # The rebase stops at the commit marked `edit`; take the key out; go on, as printed.
    started = sh(repo.path, rebase, GIT_SEQUENCE_EDITOR=_mark_edit([leaky]))
    assert started.returncode == 0, started.stderr.decode()
    repo.write("settings.py", "DEBUG = True\nKEY = None\n")
    done = sh(repo.path, go_on, GIT_EDITOR="true")
    assert done.returncode == 0, done.stderr.decode()
    ok = push(repo)
    assert ok.returncode == 0, ok.stderr.decode()
    assert "later work" in git(remote, "log", "--format=%s", "main")


def test_blocked_push_false_positive_baseline_as_printed(hooked) -> None:  # type: ignore[no-untyped-def]
    repo, _ = hooked
    repo.write("docs/example.md", f"Use a key like {mg_test()}\n")
    git(repo.path, "add", "docs/example.md")
    assert commit(repo, "docs", "--no-verify").returncode == 0
    blocked = push(repo)
    (command,) = [c for c in printed_commands(blocked.stderr.decode()) if "baseline" in c]
    head = git(repo.path, "rev-parse", "HEAD").strip()
    assert command == f"keysweep baseline add {head[:12]}"
    assert sh(repo.path, command).returncode == 0
    ok = push(repo)
    assert ok.returncode == 0, ok.stderr.decode()


def test_scan_notes_say_what_was_not_scanned_and_the_command_finds_it(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "fresh")
    key = mg_live()
    repo.write("app.py", f"KEY = '{key}'\n")
    git(repo.path, "add", "app.py")  # staged, never committed
    repo.write("notes.txt", f"{mg_test()}\n")  # untracked
    p = run(repo.path, KEYSWEEP, "scan")
    out = p.stdout.decode()
    assert p.returncode == 0 and "0 commits" in out and "no leaks found" in out
    assert "not scanned: 1 staged change(s)" in out
    staged_cmd = out.split("scan them with: ")[1].splitlines()[0]
    files_cmd = out.split("scan the files as they are with: ")[1].splitlines()[0]
    assert staged_cmd == "keysweep scan --staged"
    staged = sh(repo.path, staged_cmd)
    assert staged.returncode == 1 and "app.py:1" in staged.stdout.decode()
    files = sh(repo.path, files_cmd)
    assert files.returncode == 1 and "notes.txt:1" in files.stdout.decode()


def baseline_hint(p: subprocess.CompletedProcess) -> tuple[str, list[str]]:
    """The scan report's baseline advice: the command, and the options of "scan again"."""
    assert p.returncode == 1, p.stderr.decode()
    hint = p.stdout.decode().split("record it in a baseline: ")[1].splitlines()[0]
    command, again = hint.split(", then ")
    m = re.search(r"with (--baseline \S+)\.$", again)
    return command, shlex.split(m.group(1)) if m else []


def test_scan_report_baseline_hint_as_printed(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "r")
    repo.write("sub/a.py", f"K = '{mg_test()}'\n")
    repo.commit("fixture key")
    command, again = baseline_hint(run(repo.path / "sub", KEYSWEEP, "scan"))
    assert command == "keysweep baseline add" and again == []
    assert sh(repo.path / "sub", command).returncode == 0
    assert run(repo.path / "sub", KEYSWEEP, "scan").returncode == 0
    assert run(repo.path, KEYSWEEP, "scan").returncode == 0


def test_scan_report_baseline_hint_keeps_what_the_baseline_held(tmp_path: Path) -> None:
    """The advice after a scan of part of a repository adds to the baseline: the entries
    recorded for the rest of it stay (a `baseline create` there would drop them)."""
    repo = Repo(tmp_path / "r")
    repo.write("a/conf.py", f"K = '{mg_test()}'\n")
    repo.write("b/conf.py", f"K = '{mg_test()}'\n")
    repo.commit("fixture keys")
    assert run(repo.path, KEYSWEEP, "baseline", "create").returncode == 0
    repo.write("b/more.py", f"K = '{mg_test()}'\n")
    repo.commit("another fixture key")
    command, again = baseline_hint(run(repo.path / "b", KEYSWEEP, "scan"))
    assert sh(repo.path / "b", command).returncode == 0
    assert run(repo.path / "b", KEYSWEEP, "scan", *again).returncode == 0
    assert run(repo.path, KEYSWEEP, "scan").returncode == 0  # a/'s entry is still there


@pytest.mark.parametrize(
    "scope",
    [
        ["--no-history", "d"],  # a directory of the work tree, as it is
        ["--staged"],
        ["--log-opts=--since=2024-01-01 main"],
        ["HEAD~1..HEAD"],
        ["--since", "HEAD~1"],
        ["--confidence", "low"],
    ],
    ids=["no-history", "staged", "log-opts", "range", "since", "low-confidence"],
)
def test_scan_report_baseline_hint_records_what_that_scan_found(
    tmp_path: Path, scope: list[str]
) -> None:
    """Whatever the scan's scope, the printed command records what it reported, and the
    scan run again as the advice says reports nothing."""
    repo = Repo(tmp_path / "r")
    repo.write("README.md", "# project\n")
    repo.commit("init")
    key = mg_test()
    if scope == ["--confidence", "low"]:
        key += "Zq7Xw"  # 37 characters, no separator: a run only low confidence reports
    repo.write("conf.py", f"K = '{key}'\n")
    repo.commit("fixture key")
    repo.write("d/untracked.py", f"K = '{mg_test()}'\n")
    repo.write("staged.py", f"K = '{mg_test()}'\n")
    git(repo.path, "add", "staged.py")
    before = run(repo.path, KEYSWEEP, "scan", *scope)
    command, again = baseline_hint(before)
    assert sh(repo.path, command).returncode == 0
    after = run(repo.path, KEYSWEEP, "scan", *scope, *again)
    assert after.returncode == 0, after.stdout.decode()
    assert "in baseline" in after.stdout.decode()


def test_files_hook_baseline_as_printed(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "r")
    repo.write("conf/dev.env", f"KEY={mg_test()}\n")
    repo.commit("dev config")
    p = run(repo.path, KEYSWEEP, "hook", "files", "conf/dev.env")
    assert p.returncode == 1 and "conf/dev.env:1" in p.stderr.decode()
    (command,) = [c for c in printed_commands(p.stderr.decode()) if "baseline" in c]
    assert shlex.split(command) == ["keysweep", "baseline", "add", "--no-history", "conf/dev.env"]
    assert sh(repo.path, command).returncode == 0
    assert run(repo.path, KEYSWEEP, "hook", "files", "conf/dev.env").returncode == 0
