"""``keysweep install-hook``: git hooks for teams without the pre-commit framework.

Writes ``pre-commit`` (or ``pre-push``) into the repository's hooks directory
(``core.hooksPath`` honoured). An existing hook that is not ours is kept: it is
renamed ``<hook>.local`` and run first, and its failure stops the commit as
before. Nothing is ever overwritten silently: a second foreign hook, or a
``.local`` already in the way, needs ``--force``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from scanner.errors import KeysweepError

MARKER = "# installed by keysweep install-hook"

TEMPLATE = """#!/bin/sh
{marker} ({hook}); `keysweep install-hook --force` rewrites it.
hookdir=$(dirname "$0")
{body}
"""

PRE_COMMIT_BODY = """if [ -x "$hookdir/pre-commit.local" ]; then
  "$hookdir/pre-commit.local" "$@" || exit $?
fi
exec {keysweep} hook pre-commit"""

# git gives pre-push its refs on stdin: both hooks must see them.
PRE_PUSH_BODY = """refs=$(cat)
if [ -x "$hookdir/pre-push.local" ]; then
  printf '%s\\n' "$refs" | "$hookdir/pre-push.local" "$@" || exit $?
fi
printf '%s\\n' "$refs" | exec {keysweep} hook pre-push "$@\""""


class InstallError(KeysweepError, RuntimeError):
    pass


def hooks_dir(repo: Path) -> Path:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--git-path", "hooks"],
            cwd=repo,
            capture_output=True,
            check=True,
            text=True,
        )
    except subprocess.CalledProcessError:
        raise InstallError(f"{repo} is not a git repository") from None
    path = Path(out.stdout.strip())
    return path if path.is_absolute() else (repo / path)


def keysweep_command() -> str:
    """The absolute path of this keysweep, so the hook works outside the venv too."""
    exe = shutil.which("keysweep", path=os.path.dirname(sys.executable)) or shutil.which("keysweep")
    return shlex.quote(exe) if exe else "keysweep"


def render(hook: str) -> str:
    body = PRE_COMMIT_BODY if hook == "pre-commit" else PRE_PUSH_BODY
    return TEMPLATE.format(marker=MARKER, hook=hook, body=body.format(keysweep=keysweep_command()))


def install(repo: Path, hook: str, force: bool = False) -> str:
    """Install one hook; returns what was done, in a sentence."""
    directory = hooks_dir(repo)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / hook
    local = directory / f"{hook}.local"
    kept = ""
    if target.exists() or target.is_symlink():
        current = target.read_text("utf-8", "replace") if target.is_file() else ""
        if MARKER in current:
            if not force:
                return f"keysweep {hook} hook already installed at {target}"
        elif local.exists() and not force:
            raise InstallError(
                f"{target} exists and {local.name} is taken too; move one of them away "
                "or rerun with --force to replace the first (the .local one is kept)"
            )
        elif not local.exists():
            target.rename(local)
            kept = f"; your existing hook was kept as {local.name} and runs first"
        elif force:
            kept = f"; the previous {hook} hook was replaced (--force), {local.name} still runs"
    target.write_text(render(hook), "utf-8")
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return f"installed keysweep {hook} hook at {target}{kept}"
