"""Files, directories and stdin.

Directories are walked without following symlinks (a link out of the tree is
never read), ``.git`` is skipped, files over the size limit and binary files
(a NUL byte in the first 8 KiB, as git decides) are skipped and counted.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.findings import Location
from scanner.report.safe_text import valid_utf8
from scanner.sources import LineCounter

BINARY_SNIFF = 8192
DEFAULT_MAX_FILE_SIZE = 25 * 1024 * 1024
SKIP_DIRS = {".git", ".hg", ".svn"}


@dataclass
class SkipCounts:
    binary: int = 0
    too_large: int = 0
    unreadable: int = 0
    excluded: int = 0
    symlinks: int = 0
    errors: list[str] = field(default_factory=list)


def is_binary(data: bytes) -> bool:
    return b"\0" in data[:BINARY_SNIFF]


class BufferFragment:
    """A whole file (or stdin) in memory."""

    def __init__(self, data: bytes, kind: str, path: str | None, repo: str | None = None) -> None:
        self.data = data
        self.kind = kind
        self.path = path
        self.repo = repo
        self._lines = LineCounter(data)

    def clean_secret(self, secret: bytes) -> bytes:
        return secret

    def locate(self, offset: int) -> tuple[Location, Any]:
        line = self._lines.line_of(offset)
        start = self.data.rfind(b"\n", 0, offset) + 1
        column = len(self.data[start:offset].decode("utf-8", "replace")) + 1
        loc = Location(kind=self.kind, path=self.path, line=line, repo=self.repo, column=column)
        return loc, (self.path or "", line)


def excluded(rel: str, patterns: list[str]) -> bool:
    return any(
        fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(rel, p.rstrip("/") + "/*") for p in patterns
    )


def iter_files(
    root: Path,
    *,
    max_size: int = DEFAULT_MAX_FILE_SIZE,
    exclude: list[str] | None = None,
    include_binary: bool = False,
    skips: SkipCounts | None = None,
    repo: str | None = None,
) -> Iterator[BufferFragment]:
    """Every regular file under ``root`` (or ``root`` itself) as a fragment; ``repo`` names
    where they are (an absolute path) in each finding."""
    skips = skips if skips is not None else SkipCounts()
    exclude = exclude or []
    root = root.resolve() if root.is_dir() else root
    if not root.is_dir():
        yield from _one_file(root, root.name, max_size, include_binary, skips, repo)
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        reldir = os.path.relpath(dirpath, root)
        reldir = "" if reldir == "." else reldir
        keep = []
        for d in sorted(dirnames):
            rel = os.path.join(reldir, d)
            if d in SKIP_DIRS or excluded(rel, exclude):
                skips.excluded += d not in SKIP_DIRS
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            rel = os.path.join(reldir, name)
            if excluded(rel, exclude):
                skips.excluded += 1
                continue
            yield from _one_file(Path(dirpath, name), rel, max_size, include_binary, skips, repo)


def _one_file(
    path: Path,
    rel: str,
    max_size: int,
    include_binary: bool,
    skips: SkipCounts,
    repo: str | None = None,
) -> Iterator[BufferFragment]:
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            skips.symlinks += 1
            return
        if not stat.S_ISREG(st.st_mode):
            return
        if st.st_size > max_size:
            skips.too_large += 1
            return
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        skips.unreadable += 1
        skips.errors.append(f"{valid_utf8(rel)}: {exc.strerror or exc}")
        return
    if not include_binary and is_binary(data):
        skips.binary += 1
        return
    # A file name that is not UTF-8 is shown with its odd bytes as \xNN: every report
    # stays well-formed.
    yield BufferFragment(data, "file", valid_utf8(rel), repo)


def read_stdin(stream: Any) -> BufferFragment:
    return BufferFragment(stream.read(), "stdin", None)


class FileSource:
    """A file or a directory tree, as it is on disk."""

    mode = "files"

    def __init__(
        self,
        root: Path,
        *,
        max_size: int = DEFAULT_MAX_FILE_SIZE,
        exclude: list[str] | None = None,
        include_binary: bool = False,
    ) -> None:
        self.root = root
        self.target = str(root)
        self.max_size, self.exclude, self.include_binary = max_size, exclude, include_binary
        self.skipped = SkipCounts()
        self.units = 0

    @property
    def errors(self) -> list[str]:
        return self.skipped.errors

    def feed(self, sink: Any) -> None:
        for fragment in iter_files(
            self.root,
            max_size=self.max_size,
            exclude=self.exclude,
            include_binary=self.include_binary,
            skips=self.skipped,
        ):
            self.units += 1
            sink(fragment)


class StdinSource:
    """Whatever is piped in."""

    mode = "stdin"
    target = "<stdin>"

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.skipped = SkipCounts()
        self.units = 0
        self.errors: list[str] = []

    def feed(self, sink: Any) -> None:
        self.units = 1
        sink(read_stdin(self.stream))
