"""Files, directories and stdin.

Directories are walked without following symlinks (a link out of the tree is
never read), ``.git`` is skipped, files over the size limit are skipped and
counted.

A file is one of three things (``file_fragments``), decided by its first bytes:

* an **archive** or compressed file (``scanner.archives``: gzip, bzip2, xz, zip
  and the zip-based ``.jar .whl .apk .docx .xlsx .nupkg``…, tar and compressed
  tar): each member is scanned as a file of its own, named
  ``dist/app.jar!config/app.properties``; members that hit a cap (bomb, size,
  depth) are skipped, counted in ``archives_capped`` and named in ``capped``;
  a damaged archive is counted unreadable and named in ``errors``;
* **UTF-16 text** (a byte-order mark, or a NUL in every other byte as ASCII
  text in UTF-16 has): transcoded to UTF-8 and scanned, so its lines and
  columns are those a person sees;
* otherwise **binary** when its first 8 KiB hold a NUL byte (as git decides)
  *and* more than 3% of them are control bytes (``\x00``-``\x08``,
  ``\x0e``-``\x1a``, ``\x1c``-``\x1f``, DEL; tab, newlines, form feed and ESC are
  text), at least two: images, executables, fonts, compiled files (random or
  compressed bytes run at about 10%). Binary files are skipped and counted
  (``--include-binary`` scans them too). A text file with a stray NUL byte is
  text and is scanned.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from scanner.archives import DEFAULT_ARCHIVE_DEPTH, Limits, Skipped, expand, looks_like_archive
from scanner.archives import SNIFF as ARCHIVE_SNIFF
from scanner.findings import Location
from scanner.report.safe_text import valid_utf8
from scanner.sources import LineCounter

BINARY_SNIFF = 8192
BINARY_RATIO = 0.03  # control bytes in the first 8 KiB above which a file is binary
CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
DEFAULT_MAX_FILE_SIZE = 25 * 1024 * 1024
SKIP_DIRS = {".git", ".hg", ".svn"}
MAX_NAMED = 20  # capped archives named in a summary (the count is always whole)
MAX_ERRORS = 100


@dataclass
class SkipCounts:
    binary: int = 0
    too_large: int = 0
    unreadable: int = 0
    excluded: int = 0
    symlinks: int = 0
    errors: list[str] = field(default_factory=list)
    archives_capped: int = 0  # archive members skipped by a cap (bomb, size, depth)
    capped: list[str] = field(default_factory=list)  # "path (reason)", the first 20

    def note(self, skipped: Skipped) -> None:
        """Count what an archive did not give (``scanner.archives.Skipped``)."""
        if skipped.capped:
            self.archives_capped += 1
            if len(self.capped) < MAX_NAMED:
                self.capped.append(f"{skipped.path} ({skipped.reason})")
        elif skipped.reason == "link":
            self.symlinks += 1
        else:
            self.unreadable += 1
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(f"{skipped.path}: {skipped.reason}")

    def absorb(self, others: list[SkipCounts]) -> None:
        """Add what other readers skipped (a history's scanning processes): every count
        whole; the names each kept, sorted, up to the same caps (which names past a cap
        are kept may differ from what one reader would have kept)."""
        for f in fields(self):
            mine = getattr(self, f.name)
            theirs = [getattr(o, f.name) for o in others]
            if isinstance(mine, int):
                setattr(self, f.name, mine + sum(theirs))
            else:
                cap = MAX_NAMED if f.name == "capped" else MAX_ERRORS
                names = sorted(n for t in theirs for n in t)
                mine.extend(names[: max(0, cap - len(mine))])


def utf16_codec(data: bytes) -> tuple[str, int] | None:
    """(codec, bytes of byte-order mark) when ``data`` is UTF-16 text: a BOM, or NUL
    bytes in (nearly) every other position and (nearly) none in the others."""
    if data[:2] == b"\xff\xfe" and data[:4] != b"\xff\xfe\x00\x00":  # not UTF-32
        return "utf-16-le", 2
    if data[:2] == b"\xfe\xff":
        return "utf-16-be", 2
    sample = data[: BINARY_SNIFF & ~1]
    pairs = len(sample) // 2
    if pairs < 4 or b"\0" not in sample:  # most files: one memchr and done
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd >= 0.7 * pairs and even <= 0.05 * pairs:
        return "utf-16-le", 0
    if even >= 0.7 * pairs and odd <= 0.05 * pairs:
        return "utf-16-be", 0
    return None


def is_binary(data: bytes) -> bool:
    """Not text: see the module's docstring (UTF-16 text and a stray NUL are text)."""
    if data.find(b"\0", 0, BINARY_SNIFF) == -1 or utf16_codec(data) is not None:
        return False  # (no copy of the head for the usual text file)
    sample = data[:BINARY_SNIFF]
    controls = len(sample) - len(sample.translate(None, CONTROL_BYTES))
    return controls >= 2 and controls > BINARY_RATIO * len(sample)


def as_text(data: bytes) -> bytes:
    """UTF-16 text as UTF-8 (what the engine reads); anything else as it is."""
    codec = utf16_codec(data)
    if codec is None:
        return data
    name, bom = codec
    return data[bom:].decode(name, "replace").encode("utf-8")


def file_fragments(
    data: bytes,
    kind: str,
    path: str | None,
    skips: SkipCounts,
    *,
    repo: str | None = None,
    include_binary: bool = False,
    limits: Limits | None = None,
) -> Iterator[BufferFragment]:
    """One file's bytes as fragments: itself, or each member of an archive (paths
    ``path!member``; stdin's members are ``stdin!member``), text or skipped as binary."""
    name = path if path is not None else kind
    if looks_like_archive(name, data[:ARCHIVE_SNIFF]):
        for item in expand(name, data, limits or Limits()):
            if isinstance(item, Skipped):
                skips.note(item)
            elif item.path == name:  # named like an archive, but not one
                yield from _plain(item.data, kind, path, repo, skips, include_binary)
            else:
                yield from _plain(item.data, kind, item.path, repo, skips, include_binary)
        return
    yield from _plain(data, kind, path, repo, skips, include_binary)


def _plain(
    data: bytes,
    kind: str,
    path: str | None,
    repo: str | None,
    skips: SkipCounts,
    include_binary: bool,
) -> Iterator[BufferFragment]:
    if not include_binary and is_binary(data):
        skips.binary += 1
        return
    text = as_text(data)
    fragment = BufferFragment(text, kind, path, repo)
    if text is not data:
        fragment.decoded = "utf16"  # transcoded here: findings say so, as decode.py's do
    yield fragment


class BufferFragment:
    """A whole file (or stdin) in memory."""

    decoded: str | None = None  # how the source decoded the whole file ("utf16")

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
    limits: Limits | None = None,
    prefix: str = "",
) -> Iterator[BufferFragment]:
    """Every regular file under ``root`` (or ``root`` itself) as fragments (an archive's
    members each one); ``repo`` names where they are (an absolute path) in each finding.
    ``prefix``: where ``root`` (a directory) is inside the repository that holds it, so
    paths are named (and matched against ``exclude``) from the repository's top."""
    skips = skips if skips is not None else SkipCounts()
    exclude = exclude or []
    root = root.resolve() if root.is_dir() else root
    if not root.is_dir():
        rel = os.path.join(prefix, root.name)
        if excluded(rel, exclude):
            skips.excluded += 1
            return
        yield from _one_file(root, rel, max_size, include_binary, skips, repo, limits)
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        reldir = os.path.relpath(dirpath, root)
        reldir = os.path.join(prefix, "" if reldir == "." else reldir)
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
            yield from _one_file(
                Path(dirpath, name), rel, max_size, include_binary, skips, repo, limits
            )


def _one_file(
    path: Path,
    rel: str,
    max_size: int,
    include_binary: bool,
    skips: SkipCounts,
    repo: str | None = None,
    limits: Limits | None = None,
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
    # A file name that is not UTF-8 is shown with its odd bytes as \xNN: every report
    # stays well-formed.
    yield from file_fragments(
        data,
        "file",
        valid_utf8(rel),
        skips,
        repo=repo,
        include_binary=include_binary,
        limits=limits,
    )


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
        archive_depth: int = DEFAULT_ARCHIVE_DEPTH,
        prefix: str = "",
    ) -> None:
        self.root = root
        self.target = str(root)
        self.prefix = prefix
        self.max_size, self.exclude, self.include_binary = max_size, exclude, include_binary
        self.limits = Limits(max_depth=archive_depth)
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
            limits=self.limits,
            prefix=self.prefix,
        ):
            self.units += 1
            sink(fragment)


class StdinSource:
    """Whatever is piped in."""

    mode = "stdin"
    target = "<stdin>"

    def __init__(self, stream: Any, archive_depth: int = DEFAULT_ARCHIVE_DEPTH) -> None:
        self.stream = stream
        self.skipped = SkipCounts()
        self.units = 0
        self.limits = Limits(max_depth=archive_depth)

    @property
    def errors(self) -> list[str]:
        return self.skipped.errors

    def feed(self, sink: Any) -> None:
        self.units = 1
        data = self.stream.read()
        for fragment in file_fragments(
            data, "stdin", None, self.skipped, include_binary=True, limits=self.limits
        ):
            sink(fragment)
