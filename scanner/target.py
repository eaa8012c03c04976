"""What ``keysweep scan TARGET`` means, decided the way git decides it.

* ``-``: standard input (a patch keeps its commit, path and line numbers).
* a URL: a bare clone of that repository.
* a path inside a git work tree (the top, a subdirectory or a file): that
  repository's history, limited to the path as ``git log --full-history -- PATH``
  would list it (no limit at the top); ``--no-history``: the files as they are;
  ``--staged``: what is staged (the index), as the pre-commit hook sees it.
* a bare repository: its history.
* any other existing path: the files.
* a revision or range of the repository here (``A..B``, ``A...B``, one commit):
  those commits (one commit alone: that commit only, as ``git show`` shows it).

``--log-opts`` (gitleaks' name) replaces ``--all`` with the given ``git
rev-list`` arguments.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from scanner.errors import KeysweepError

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_CONFIG_NOSYSTEM": "1"}
# rev-list options that write files or run programs have no place in a scan.
REFUSED_LOG_OPTS = ("--output", "--exec", "-o")


class TargetError(KeysweepError, ValueError):
    pass


@dataclass
class Target:
    kind: str  # "stdin" | "url" | "history" | "staged" | "files"
    given: str
    path: Path | None = None  # the path given (files), or the top of the work tree
    top: Path | None = None  # the work tree's top or the bare repository
    paths: list[str] = field(default_factory=list)  # pathspec, relative to top
    rev_args: list[str] | None = None  # None: every ref (``--all``)
    revision: str | None = None  # a range or commit given as the target
    work_tree: Path | None = None  # files inside a work tree (--no-history): its top

    @property
    def config_root(self) -> Path | None:
        """Where the config and the baseline are read: the repository's top, also for
        the files of one of its directories (--no-history), as the hooks read them."""
        return self.top or self.work_tree or self.path


def _git(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """git in ``cwd``, under ``env`` (default: this process's environment)."""
    return subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        check=False,
        env={**(os.environ if env is None else env), **GIT_ENV},
        timeout=60,
    )


# What git itself drops when it enters another repository (a submodule): the variables
# that say where a repository is (``git rev-parse --local-env-vars``; this list if git
# cannot say).
LOCAL_ENV_VARS = (
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
)


def _local_env_vars() -> list[str]:
    try:
        out = _git(Path("/"), "rev-parse", "--local-env-vars")
    except (OSError, subprocess.TimeoutExpired):
        return list(LOCAL_ENV_VARS)
    names = out.stdout.decode("ascii", "replace").split()
    return names if out.returncode == 0 and names else list(LOCAL_ENV_VARS)


def foreign_repository_variables(path: Path) -> list[str]:
    """The repository-local git variables set here (``GIT_DIR``, ``GIT_INDEX_FILE``…)
    when they point at another repository than the one that holds ``path``, as a git
    hook, ``git rebase --exec`` or ``git filter-branch`` of another repository leaves
    them. ``git -C PATH`` obeys them, so a scan of PATH would read that other history
    and say PATH is clean. Set for PATH's own repository (``keysweep scan --staged``
    in its pre-commit hook, on git's temporary index), they are kept."""
    if not any(k.startswith("GIT_") for k in os.environ):
        return []  # the usual case: no git to ask (a scan's start-up)
    names = [n for n in _local_env_vars() if n in os.environ]
    if not names:
        return []
    where = path if path.is_dir() else path.parent

    def git_dir(env: dict[str, str] | None) -> bytes | None:
        try:
            out = _git(where, "rev-parse", "--absolute-git-dir", env=env)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    own = git_dir({k: v for k, v in os.environ.items() if k not in names})
    return [] if own is not None and own == git_dir(None) else names


def work_tree_top(path: Path) -> Path | None:
    """The top of the git work tree that holds ``path``, if any."""
    where = path if path.is_dir() else path.parent
    try:
        out = _git(where, "rev-parse", "--show-toplevel")
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return Path(os.fsdecode(out.stdout.rstrip(b"\n")))


def is_bare_repository(path: Path) -> bool:
    if not (path.is_dir() and (path / "HEAD").is_file() and (path / "objects").is_dir()):
        return False
    out = _git(path, "rev-parse", "--is-bare-repository")
    return out.returncode == 0 and out.stdout.strip() == b"true"


def revision_target(given: str, cwd: Path) -> list[str] | None:
    """``git rev-list`` arguments for a revision or range, or None if it is not one."""
    if given.startswith("-"):
        return None
    top = work_tree_top(cwd)
    if top is None:
        return None
    out = _git(cwd, "rev-parse", "--revs-only", given, "--")
    if out.returncode != 0 or not out.stdout.strip():
        return None
    if ".." in given or given.endswith(("^!", "^@")) or "^-" in given:
        return [given]
    return [given, "--no-walk"]  # one commit: that commit, as `git show` shows it


def log_opts(text: str) -> list[str]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise TargetError(f"--log-opts: {exc}") from None
    for w in words:
        if w == "--":
            break
        if w.startswith(REFUSED_LOG_OPTS):
            raise TargetError(f"--log-opts: {w.split('=')[0]} is not allowed")
    return words


def resolve(
    given: str,
    *,
    history: bool = True,
    staged: bool = False,
    is_url: bool = False,
    cwd: Path | None = None,
) -> Target:
    cwd = cwd or Path.cwd()
    if given == "-":
        return Target("stdin", given)
    if is_url:
        return Target("url", given)
    path = Path(given)
    if not path.exists() and not path.is_symlink():
        revs = None if staged or not history else revision_target(given, cwd)
        if revs is not None:
            top = work_tree_top(cwd)
            return Target("history", given, top, top, rev_args=revs, revision=given)
        raise FileNotFoundError(
            f"{given}: no such file or directory"
            + ("" if work_tree_top(cwd) is None else ", and not a revision of this repository")
        )
    top = work_tree_top(path) if (history or staged) else None
    if top is not None:
        rel = os.path.relpath(path.resolve(), top.resolve())
        paths = [] if rel == "." else [rel]
        if rel.startswith(".." + os.sep) or rel == "..":
            paths = []
        return Target("staged" if staged else "history", given, top, top, paths)
    if staged:
        raise TargetError(f"{given}: --staged needs a git work tree")
    if history and is_bare_repository(path):
        return Target("history", given, path, path)
    return Target("files", given, path, work_tree=None if history else work_tree_top(path))


@dataclass
class Uncommitted:
    staged: int = 0
    changed: int = 0  # modified in the work tree, or untracked


def uncommitted(top: Path, paths: list[str]) -> Uncommitted:
    """What ``git status`` shows under ``paths``: changes a history scan cannot see."""
    out = _git(top, "status", "--porcelain=v1", "-z", "--untracked-files=normal", "--", *paths)
    result = Uncommitted()
    if out.returncode != 0:
        return result
    entries = out.stdout.split(b"\0")
    i = 0
    while i < len(entries):
        e = entries[i]
        i += 1
        if len(e) < 3:
            continue
        x, y = e[0:1], e[1:2]
        if x in (b"R", b"C"):
            i += 1  # a rename's original path follows
        if x not in (b" ", b"?"):
            result.staged += 1
        if y != b" ":
            result.changed += 1
    return result
