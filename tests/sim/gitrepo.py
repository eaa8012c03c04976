"""Real bare git repositories, written with ``git fast-import`` and served over
git's dumb HTTP protocol (plain static files after ``git update-server-info``)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
}


@dataclass
class GitCommit:
    message: str
    author_name: str
    author_email: str
    epoch: int
    changes: dict[str, bytes | None]  # path -> new content, or None to delete


def _git(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(
        ["git", *args], input=stdin, capture_output=True, env=env, cwd=cwd, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {args[0]} failed: {done.stderr.decode(errors='replace')}")
    return done.stdout


def create_bare_repo(path: Path, commits: list[GitCommit], branch: str = "main") -> list[str]:
    """Write ``commits`` (linear history on ``branch``) into a new bare repository at
    ``path``; returns the commit SHAs in order. The repository is ready for dumb HTTP."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _git("init", "--quiet", "--bare", f"--initial-branch={branch}", str(path))
    stream: list[bytes] = []
    mark = 0
    commit_marks: list[int] = []
    for c in commits:
        blob_marks: dict[str, int] = {}
        for p, data in c.changes.items():
            if data is None:
                continue
            mark += 1
            blob_marks[p] = mark
            stream.append(b"blob\nmark :%d\ndata %d\n" % (mark, len(data)) + data + b"\n")
        mark += 1
        commit_marks.append(mark)
        msg = c.message.encode()
        ident = f"{c.author_name} <{c.author_email}> {c.epoch} +0000".encode()
        lines = [
            f"commit refs/heads/{branch}".encode(),
            b"mark :%d" % mark,
            b"author " + ident,
            b"committer " + ident,
            b"data %d" % len(msg),
            msg,
        ]
        if len(commit_marks) > 1:
            lines.append(b"from :%d" % commit_marks[-2])
        for p, data in c.changes.items():
            if data is None:
                lines.append(b"D " + p.encode())
            else:
                lines.append(b"M 100644 :%d " % blob_marks[p] + p.encode())
        stream.append(b"\n".join(lines) + b"\n\n")
    marks_file = path / "sim-marks"
    _git(
        "--git-dir",
        str(path),
        "fast-import",
        "--quiet",
        f"--export-marks={marks_file}",
        stdin=b"".join(stream),
    )
    marks: dict[int, str] = {}
    for line in marks_file.read_text().splitlines():
        m, sha = line.split()
        marks[int(m[1:])] = sha
    marks_file.unlink()
    _git("--git-dir", str(path), "update-server-info")
    return [marks[m] for m in commit_marks]
