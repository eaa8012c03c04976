"""Full git history: every commit's added lines, streamed, in parallel.

``git rev-list --all`` is cut into slices; each slice is piped into
``git diff-tree --stdin -p -U0`` (the same added-lines view as ``git log -p
-U0``), ``jobs`` pipelines at a time. Their output is read in blocks and cut on
commit boundaries into ``PatchChunk`` fragments that the engine scans whole.
Only a chunk with a hit is ever parsed: ``PatchChunk.locate`` walks back from
the hit to its commit header, file header and hunk header to give the commit,
author, date, path and new-file line number, and drops hits on lines that were
not added. Memory stays bounded by the block size, whatever the history size.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner.archives import DEFAULT_ARCHIVE_DEPTH, Limits
from scanner.errors import KeysweepError
from scanner.findings import Location

# Paths as bytes, and git's own memory bounded whatever the repository's size
# (measured on celery: 152 MB -> 49 MB RSS per diff-tree, about 8% slower).
GIT_LIMITS = (
    "-c",
    "core.quotepath=false",
    "-c",
    "core.deltaBaseCacheLimit=16m",
    "-c",
    "core.packedGitWindowSize=8m",
    "-c",
    "core.packedGitLimit=32m",
)
RS, US = b"\x1e", b"\x1f"
# The commit header (one line: id, author, email, date), then the whole message with
# every line indented by one space (``%w(0,1,1)``): no message line can pass for a diff,
# hunk or commit header, and each is scanned once. A location's subject is the
# message's first line.
COMMIT_FORMAT = "--format=%x1e%H%x1f%an%x1f%ae%x1f%aI%n%w(0,1,1)%B"
SUBJECT_MAX = 400  # bytes of a message's first line kept as a location's subject
MESSAGE_PATH = "<commit message>"  # a finding's path when the key is in a commit message
READ_BLOCK = 1024 * 1024
MAX_CHUNK = 8 * 1024 * 1024  # a commit larger than this is cut between files or lines
# Where a chunk must be cut inside a line (a line longer than a chunk) or between lines
# of one hunk, the next chunk starts this far before the cut and each hit belongs to the
# chunk where it starts: no key, nor the context a rule reads around it, is ever cut.
OVERLAP = 64 * 1024
HUNK = re.compile(rb"@@(@*) (?:-\d+(?:,\d+)? )+\+(\d+)(?:,\d+)? @@")
# A repository's replace refs (``git replace``) and grafts (``info/grafts``) would show
# other objects, or other parents, in place of what a clone gets (a commit with a key
# hidden): the history is read as its objects are. (A shallow clone's boundary stays.)
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_GRAFT_FILE": "/dev/null/none",  # a file that cannot exist: no grafts
}
BINARY_SNIFF = 8192  # bytes of a file's patch whose control bytes decide it is binary
# A long unbroken token in a commit subject is cut in a location's ``subject``: a key
# written in the subject is reported redacted, never whole beside another finding.
_TOKEN_RUN = re.compile(r"[^\s\"'`<>()\[\]{},;]{17,}")


class GitError(KeysweepError, RuntimeError):
    pass


@dataclass(frozen=True)
class Partial:
    """The line a chunk starts in the middle of (a line longer than a chunk)."""

    line: int | None  # its number; None when it is not an added line or message line
    column: int  # characters of it before the chunk's first byte
    strip: bytes  # what git put before each line of its kind ("+", " " in a message)


@dataclass(frozen=True)
class Carry:
    """Where a chunk that does not start at a commit boundary is, at its start."""

    header: bytes | None  # the commit header line (without RS)
    path: str | None
    next_line: int | None  # number of the next new-file (or message) line in the chunk
    section: str = "patch"  # "patch" (in a hunk) | "message" | "head" (between them)
    parents: int = 1  # prefix columns of the hunk's lines (a merge's combined diff: one each)
    binary: bool = False
    blob: str | None = None  # the file's new blob id (abbreviated, from its "index" line)
    partial: Partial | None = None  # the chunk starts inside this line


@dataclass(frozen=True)
class _Line:
    header: bytes | None
    index: int
    section: str
    path: str | None
    parents: int
    binary: bool
    blob: str | None
    line: int | None  # the line's number (new file or message); None outside both
    prefix: bytes  # the line's first ``parents`` bytes


def unquote_path(raw: bytes) -> str:
    """Undo git's C-style quoting of unusual paths."""
    if not raw.startswith(b'"'):
        return raw.decode("utf-8", "backslashreplace")
    body = raw[1:-1] if raw.endswith(b'"') else raw[1:]
    out = bytearray()
    i = 0
    escapes = {
        ord("n"): 10,
        ord("t"): 9,
        ord('"'): 34,
        ord("\\"): 92,
        ord("a"): 7,
        ord("b"): 8,
        ord("f"): 12,
        ord("r"): 13,
        ord("v"): 11,
    }
    while i < len(body):
        c = body[i]
        if c == 92 and i + 1 < len(body):
            nxt = body[i + 1]
            if 48 <= nxt <= 55 and i + 3 < len(body) + 1:
                out.append(int(body[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            out.append(escapes.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return out.decode("utf-8", "backslashreplace")


def new_lines(data: bytes, lo: int, hi: int) -> int:
    """Lines of the new file that start in ``data[lo:hi]`` inside one hunk: added lines
    and context lines (GitHub's patches carry three of them; ``-U0`` none), not removed
    lines nor git's "\\ No newline at end of file"."""
    return data.count(b"\n", lo, hi) - data.count(b"\n-", lo, hi) - data.count(b"\n\\", lo, hi)


def result_lines(data: bytes, lo: int, hi: int, parents: int) -> int:
    """``new_lines`` for a hunk whose lines carry ``parents`` prefix columns (a merge's
    combined diff): a line is in the merge's file unless a column says removed."""
    if parents <= 1:
        return new_lines(data, lo, hi)
    n = 0
    p = data.find(b"\n", lo, hi)
    while p != -1:
        prefix = data[p + 1 : p + 1 + parents]
        if b"-" not in prefix and not prefix.startswith(b"\\"):
            n += 1
        p = data.find(b"\n", p + 1, hi)
    return n


def safe_subject(subject: str | None) -> str | None:
    """The subject with each long unbroken run (a key, a URL with a token) cut to 12
    characters: it is shown beside every finding of its commit."""
    if not subject:
        return subject
    return _TOKEN_RUN.sub(lambda m: m.group(0)[:12] + "…", subject)


def _chars(raw: bytes) -> int:
    return len(raw.decode("utf-8", "replace"))


_ISO_DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)")


def commit_location(
    repo: str, header: bytes | None, path: str | None, line: int | None, column: int | None
) -> Location:
    """A location in a commit whose ``header`` is its id, author, email, date and
    subject (``US``-separated, as ``COMMIT_FORMAT`` writes them)."""
    sha = name = email = date = subject = None
    if header:
        parts = header.decode("utf-8", "replace").split("\x1f")
        sha, name, email, date, subject = (parts + [None] * 5)[:5]
        if len(parts) > 5 or (date is not None and not _ISO_DATE.fullmatch(date)):
            # A name or email holding the separator (a hand-made commit): the date git
            # wrote (``%aI``, always well formed) splits what the author wrote from the
            # subject; never a field of the author's text taken for the date.
            at = next((i for i in range(3, len(parts)) if _ISO_DATE.fullmatch(parts[i])), None)
            if at is None:
                name, email, date, subject = "\x1f".join(parts[1:]), None, None, None
            else:
                name, email = "\x1f".join(parts[1 : at - 1]), parts[at - 1]
                date, subject = parts[at], "\x1f".join(parts[at + 1 :]) or None
    return Location(
        kind="git",
        path=path,
        line=line,
        repo=repo,
        commit=sha,
        author=name,
        email=email,
        date=date,
        column=column,
        subject=safe_subject(subject.rstrip() if subject else subject),
    )


class PatchChunk:
    """A run of ``git diff-tree -p -U0 --cc`` output (commit headers and messages
    included); ``data`` starts with a newline, or inside a line a previous chunk began
    (``carry.partial``). Hits at offsets outside ``own`` belong to a neighbour chunk."""

    def __init__(
        self,
        data: bytes,
        repo: str,
        first_index: int,
        carry: Carry | None,
        own: tuple[int, int] | None = None,
    ) -> None:
        self.data = data
        self.repo = repo
        self.first_index = first_index  # global rev-list index of the first commit header
        self.carry = carry
        self.own_lo, self.own_hi = own if own is not None else (0, len(data))
        self._binary: dict[int, bool] = {}
        self._strip = b"+"  # the prefix of the line last located (see clean_secret)

    # --- what a file section says ---------------------------------------------------

    def _commit(self, before: int) -> tuple[bytes | None, int]:
        """The header of the commit ``before`` is in (id, author, email, date and the
        message's first line, ``US``-separated) and its rev-list index."""
        data = self.data
        c = data.rfind(b"\n" + RS, 0, before)
        if c == -1:
            return (self.carry.header if self.carry else None), self.first_index - 1
        end = data.find(b"\n", c + 2)
        index = self.first_index + data.count(b"\n" + RS, 0, c)
        header = data[c + 2 : end]
        if data[end + 1 : end + 2] == b" ":  # the message's first line
            stop = data.find(b"\n", end + 1, end + 2 + SUBJECT_MAX)
            header += US + data[end + 2 : stop if stop != -1 else end + 2 + SUBJECT_MAX]
        return header, index

    def _path(self, d: int, limit: int) -> str | None:
        data = self.data
        plus = data.find(b"\n+++ ", d, limit)
        if plus != -1:
            end = data.find(b"\n", plus + 1)
            raw = data[plus + 5 : end].rstrip(b"\t")  # git ends a path with spaces with a tab
            if raw == b"/dev/null":
                return None
            path = unquote_path(raw)
            return path[2:] if path.startswith("b/") else path
        line_end = data.find(b"\n", d + 1)
        if data.startswith(b"\ndiff --cc ", d):  # a merge's file: its one path
            return unquote_path(data[d + 11 : line_end])
        line = data[d + 12 : line_end]  # after "\ndiff --git "
        half = (len(line) - 1) // 2
        return unquote_path(line[half + 1 :])[2:]

    def _section_end(self, pos: int) -> int:
        """Where the file section holding ``pos`` ends: the next file or commit header."""
        data = self.data
        nd = data.find(b"\ndiff --", pos + 1)
        limit = nd if nd != -1 else len(data)
        nc = data.find(b"\n" + RS, pos + 1, limit)
        return nc if nc != -1 else limit

    def _hunk_in(self, d: int, end: int) -> int:
        return self.data.find(b"\n@@", d + 1, end)

    def _blob(self, d: int) -> str | None:
        """The new blob id on the file's ``index a..b`` (``index a,b..c`` in a merge) line."""
        data = self.data
        end = self._hunk_in(d, self._section_end(d))
        i = data.find(b"\nindex ", d + 1, end if end != -1 else len(data))
        if i == -1:
            return None
        line = data[i + 7 : data.find(b"\n", i + 1)]
        new = line.split(b"..", 1)[-1].split(b" ", 1)[0]
        if not new or not new.isalnum() or set(new) == {ord("0")}:
            return None
        return new.decode("ascii")

    def _is_binary(self, d: int) -> bool:
        """Whether the file at ``d`` is binary by its content (control bytes, as files are
        judged), whatever ``.gitattributes`` says: git shows it with ``--text``."""
        known = self._binary.get(d)
        if known is None:
            from scanner.sources.files import is_binary

            end = self._section_end(d)
            h = self._hunk_in(d, end)
            if h == -1:
                known = False
            else:
                body = self.data.find(b"\n", h + 1) + 1
                known = is_binary(self.data[body : min(end, body + BINARY_SNIFF)])
            self._binary[d] = known
        return known

    def _head(self, d: int, end: int) -> bytes:
        """The first bytes of the file at ``d`` as they stand in the blob (``-U0`` shows
        a new file's first line first), for an archive's magic bytes."""
        h = self._hunk_in(d, end)
        if h == -1:
            return b""
        body = self.data.find(b"\n", h + 1) + 1
        m = HUNK.match(self.data, h + 1)
        n = len(m.group(1)) + 1 if m else 1
        raw = self.data[body : min(end, body + 1024)]
        return raw[n:].replace(b"\n" + b"+" * n, b"\n")

    # --- where a line is ------------------------------------------------------------

    def _info(self, ls: int) -> _Line:
        """What the line starting at ``ls`` (just after a newline) is."""
        data, carry = self.data, self.carry
        header, index = self._commit(ls)
        c = data.rfind(b"\n" + RS, 0, ls)
        lo = max(c, 0)
        d = data.rfind(b"\ndiff --", lo, ls)
        h = data.rfind(b"\n@@", max(d, lo), ls)
        if d == -1 and h == -1:
            if c != -1:  # the commit's header line, its message, the blank lines after
                header_end = data.find(b"\n", c + 2)
                if ls <= header_end:
                    return _Line(header, index, "head", None, 1, False, None, None, b"")
                line = data.count(b"\n", header_end, ls)
                prefix = data[ls : ls + 1]  # " " on a message line (see COMMIT_FORMAT)
                return _Line(header, index, "message", MESSAGE_PATH, 1, False, None, line, prefix)
            if carry is None:
                return _Line(header, index, "head", None, 1, False, None, None, b"")
            first_nl = data.find(b"\n")
            line = None
            if carry.next_line is not None and carry.section in ("message", "patch"):
                line = carry.next_line + result_lines(data, first_nl, ls - 1, carry.parents)
            # A message line starts with " "; anything else after it (a ``--raw`` line of
            # ``git log``, a blank line) is not the message.
            prefix = data[ls : ls + (1 if carry.section == "message" else carry.parents)]
            path = MESSAGE_PATH if carry.section == "message" else carry.path
            return _Line(
                header, index, carry.section, path, carry.parents, carry.binary, carry.blob,
                line, prefix,
            )  # fmt: skip
        if d != -1:
            end = self._section_end(d)
            path, binary, blob = self._path(d, h + 1 if h > d else end), self._is_binary(d), None
            blob = self._blob(d)
        elif c == -1 and carry is not None:
            path, binary, blob = carry.path, carry.binary, carry.blob
        else:
            path, binary, blob = None, False, None
        if d > h:  # in a file's header block ("+++ b/path")
            return _Line(header, index, "head", path, 1, binary, blob, None, b"")
        hunk_end = data.find(b"\n", h + 1)
        m = HUNK.match(data, h + 1, hunk_end)
        if m is None:
            return _Line(header, index, "head", path, 1, binary, blob, None, b"")
        parents = len(m.group(1)) + 1
        line = int(m.group(2)) + result_lines(data, hunk_end, ls - 1, parents)
        prefix = data[ls : ls + parents]
        return _Line(header, index, "patch", path, parents, binary, blob, line, prefix)

    def locate(self, offset: int) -> tuple[Location, Any] | None:
        if not self.own_lo <= offset < self.own_hi:
            return None  # a neighbour chunk reports it (they overlap around a cut)
        data = self.data
        ls = data.rfind(b"\n", 0, offset) + 1
        if ls == 0 and data[:1] != b"\n":  # on the line the chunk starts inside
            carry = self.carry
            partial = carry.partial if carry is not None else None
            if carry is None or partial is None or partial.line is None or carry.binary:
                return None
            header, index = carry.header, self.first_index - 1
            path = MESSAGE_PATH if carry.section == "message" else carry.path
            line, column = partial.line, partial.column + _chars(data[:offset]) + 1
            self._strip = partial.strip
        else:
            info = self._info(ls)
            if info.line is None or info.binary:
                return None
            if info.section == "message":
                if info.prefix != b" ":
                    return None
            elif info.section != "patch" or info.prefix != b"+" * info.parents:
                return None  # added relative to every parent, or it was published before
            header, index, path, line = info.header, info.index, info.path, info.line
            column = _chars(data[ls + len(info.prefix) : offset]) + 1
            self._strip = info.prefix
        return self._location(header, path, line, column), -index

    def _location(
        self, header: bytes | None, path: str | None, line: int | None, column: int | None
    ) -> Location:
        return commit_location(self.repo, header, path, line, column)

    def clean_secret(self, secret: bytes) -> bytes:
        """A multi-line secret (a PEM block) without what git put before each line ('+',
        one per parent in a merge; ' ' in a message). Called right after ``locate``."""
        mark = b"\n" + self._strip
        return secret.replace(mark, b"\n") if mark in secret else secret

    # --- cutting ----------------------------------------------------------------------

    def carry_at(self, q: int) -> Carry:
        """The state a chunk that starts at ``data[q:]`` starts in (at a newline, or
        inside a line)."""
        data = self.data
        ls = data.rfind(b"\n", 0, q) + 1
        if ls == 0 and data[:1] != b"\n":  # still on the line this chunk starts inside
            carry = self.carry
            assert carry is not None
            partial = carry.partial
            column = (partial.column if partial else 0) + _chars(data[:q])
            part = Partial(
                partial.line if partial else None, column, partial.strip if partial else b"+"
            )
            return Carry(
                carry.header, carry.path, carry.next_line, carry.section, carry.parents,
                carry.binary, carry.blob, part,
            )  # fmt: skip
        info = self._info(ls)
        header = info.header
        if info.section == "head":
            return Carry(header, info.path, None, "head", 1, info.binary, info.blob)
        if info.section == "message":
            reportable = info.prefix == b" "
        else:
            reportable = info.prefix == b"+" * info.parents
        in_result = info.section == "message" or (
            b"-" not in info.prefix and not info.prefix.startswith(b"\\")
        )
        nxt = None if info.line is None else info.line + (1 if in_result else 0)
        partial = None
        if data[q : q + 1] != b"\n":  # the next chunk starts inside this line
            strip = info.prefix if info.section == "patch" else b" "
            column = _chars(data[ls + len(info.prefix) : q]) if q - ls >= len(info.prefix) else 0
            partial = Partial(info.line if reportable else None, column, strip)
        return Carry(
            header, info.path, nxt, info.section, info.parents, info.binary, info.blob, partial
        )

    def carry_at_end(self) -> Carry:
        """The state a chunk continuing this one starts in."""
        return self.carry_at(len(self.data))

    # --- archives ---------------------------------------------------------------------

    def archives(self) -> list[tuple[Location, Any, str]]:
        """Archive-looking files this chunk adds or changes, as (location of the file,
        order, blob id). Only files with a NUL byte (every real archive has one near
        its start) are looked at, by name or first bytes."""
        from scanner.archives import looks_like_archive

        data = self.data
        out: list[tuple[Location, Any, str]] = []
        pos = data.find(b"\0", self.own_lo, self.own_hi)
        while pos != -1:
            end = self._section_end(pos)
            d = data.rfind(b"\ndiff --", 0, pos)
            if data.find(b"\n" + RS, max(d, 0), pos) == -1:  # not in a commit's message
                path = blob = None
                head = b""
                if d != -1:
                    h = self._hunk_in(d, end)
                    path = self._path(d, h + 1 if h != -1 else end)
                    blob = self._blob(d)
                    head = self._head(d, end)
                elif self.carry is not None and self.carry.section in ("patch", "head"):
                    path, blob = self.carry.path, self.carry.blob
                if path and blob and looks_like_archive(path, head):
                    header, index = self._commit(pos)
                    out.append((self._location(header, path, None, None), -index, blob))
            pos = data.find(b"\0", end, self.own_hi) if end < self.own_hi else -1
        return out


class BlobMemberFragment:
    """A file inside an archive a commit added: ``path!member``, at that commit."""

    def __init__(self, data: bytes, where: Location, order: Any) -> None:
        from scanner.sources import LineCounter

        self.data = data
        self.where = where
        self.order = order
        self._lines = LineCounter(data)

    def clean_secret(self, secret: bytes) -> bytes:
        return secret

    def locate(self, offset: int) -> tuple[Location, Any]:
        from dataclasses import replace

        line = self._lines.line_of(offset)
        start = self.data.rfind(b"\n", 0, offset) + 1
        loc = replace(self.where, line=line, column=_chars(self.data[start:offset]) + 1)
        return loc, self.order


def _subcommand(args: tuple[str, ...]) -> str:
    """The git command's name in ``args`` (past ``-c name=value`` options)."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in ("-c", "-C") else 1
    return args[i] if i < len(args) else "command"


def run_git(repo: Path, *args: str) -> bytes:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args],
            capture_output=True,
            check=False,
            env={**os.environ, **GIT_ENV},
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if out.returncode != 0:
        msg = out.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {_subcommand(args)} failed: {msg[-1] if msg else out.returncode}")
    return out.stdout


def popen_git(repo: Path, *args: str, **kw: Any) -> subprocess.Popen[bytes]:
    """``git -C repo`` with the scan's limits (``GIT_LIMITS``) and environment, started;
    ``kw`` as for ``subprocess.Popen`` (its streams)."""
    try:
        return subprocess.Popen(
            ["git", "-C", str(repo), *GIT_LIMITS, *args], env={**os.environ, **GIT_ENV}, **kw
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None


def open_repository(path: Path) -> Path:
    """The repository's git directory root, or a GitError that says what is wrong."""
    import git  # GitPython: only the history path pays for its import

    try:
        repo = git.Repo(path, search_parent_directories=False)
    except git.InvalidGitRepositoryError:
        raise GitError(f"{path} is not a git repository (use --no-history to scan files)") from None
    except git.NoSuchPathError:
        raise GitError(f"{path} does not exist") from None
    return Path(repo.working_tree_dir or repo.git_dir)


def revision_args(since: str | None) -> list[str]:
    if since is None:
        return ["--all"]
    if since.startswith("-"):
        raise GitError(f"--since {since!r}: a revision cannot start with '-'")
    return ["--all", f"^{since}"]


def list_commits(repo: Path, revs: list[str], paths: list[str] | None = None) -> bytes:
    """Every commit to scan, newest first, one hex id and a newline each. With ``paths``,
    only commits that touch them, as ``git log --full-history -- PATH`` lists them."""
    if paths:
        return run_git(repo, "rev-list", "--full-history", *revs, "--", *paths)
    return run_git(repo, "rev-list", *revs)


# Every commit's own change: a merge's as a dense combined diff (``--cc``: only what it
# adds beyond all of its parents, not what it brought in), every file as text whatever
# ``.gitattributes`` says (``--text``: a ``-diff`` or ``binary`` file is diffed too; a
# file with binary content is then judged by its bytes, see ``PatchChunk._is_binary``),
# and every commit's header and message even when it changes nothing (``--always``).
DIFF_TREE = (
    "diff-tree",
    "--stdin",
    "-r",
    "--cc",
    "-U0",
    "--text",
    "--always",
    "--root",
    "--no-renames",
    "--diff-filter=d",
    "--no-ext-diff",
    "--no-textconv",
    "--ignore-submodules",
    COMMIT_FORMAT,
)
ARCHIVE_BLOB_MAX = 64 * 1024 * 1024  # an archive blob larger than this is skipped, named


def _pipeline(repo: Path, shas: bytes, paths: list[str] | None = None) -> Any:
    """``git diff-tree --stdin`` fed ``shas`` from a writer thread."""
    diff = popen_git(
        repo,
        *DIFF_TREE,
        *(["--", *paths] if paths else []),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def feed() -> None:
        try:
            diff.stdin.write(shas)
            diff.stdin.close()
        except (BrokenPipeError, ValueError):
            pass  # diff-tree ended early; its exit status says why

    threading.Thread(target=feed, daemon=True).start()
    return diff


def _split(buf: bytes) -> tuple[int, int]:
    """Where to cut an oversized buffer that holds no commit boundary: (end of what this
    chunk owns, start of the next chunk). Between files or hunks (or ``git log --raw``
    lines) nothing spans the cut; elsewhere (between lines of one hunk, or inside a line
    longer than a chunk) the next chunk starts ``OVERLAP`` earlier, at a line start when
    that line is short."""
    floor = len(buf) // 2
    for marker in (b"\ndiff --", b"\n@@", b"\n:"):
        cut = buf.rfind(marker, floor)
        if cut > 0:
            return cut, cut
    overlap = min(OVERLAP, MAX_CHUNK // 8)
    own = len(buf) - overlap
    start = own - overlap
    nl = buf.rfind(b"\n", 0, start + 1)
    if nl > 0 and start - nl < overlap:
        start = nl  # a whole line: its header (a hunk's, a file's) stays readable
    return own, start


def iter_slice_chunks(
    repo: Path,
    repo_name: str,
    shas: bytes,
    skip: int,
    errors: list[str],
    paths: list[str] | None = None,
) -> Iterator[PatchChunk]:
    """Chunks of the patches of ``shas``, whose first is commit number ``skip``."""
    yield from iter_stream_chunks(_pipeline(repo, shas, paths), repo_name, skip, errors)


def iter_stream_chunks(
    diff: Any, repo_name: str, skip: int, errors: list[str], what: str = "git diff-tree"
) -> Iterator[PatchChunk]:
    """Chunks of what the git process ``diff`` writes (commits in ``COMMIT_FORMAT``, the
    first numbered ``skip``), cut on commit boundaries; its exit status, if not 0, is
    added to ``errors`` as ``what`` exited."""
    stderr_lines: list[bytes] = []
    drain = threading.Thread(target=lambda: stderr_lines.extend(diff.stderr), daemon=True)
    drain.start()
    index = skip - 1  # index of the last commit header emitted so far
    carry: Carry | None = None
    own_lo = 0  # where what the next chunk owns starts (after an overlapping cut)
    boundary = b"\n" + RS
    # ``parts`` joined start with a newline (or inside a line, after a cut in one), so
    # every marker is "\n" + marker, and hold no commit boundary but one at offset 0:
    # only new bytes are searched.
    parts: list[bytes] = [b"\n"]
    size = 1
    try:
        while True:
            block = diff.stdout.read(READ_BLOCK)
            if block:
                seam = parts[-1][-1:] + block
                found = seam.rfind(boundary)
                parts.append(block)
                size += len(block)
                if found == -1 and size < MAX_CHUNK:
                    continue
                pending = b"".join(parts)
                if found != -1:
                    cut = nxt = size - len(seam) + found
                else:
                    cut, nxt = _split(pending)
            else:
                pending = b"".join(parts)
                cut = nxt = size if size > 1 or own_lo else 0
            if cut > 0 and cut > own_lo:
                data = pending if nxt < cut else pending[:cut]
                chunk = PatchChunk(data, repo_name, index + 1, carry, (own_lo, cut))
                index += pending.count(boundary, 0, nxt)
                rest = pending[nxt:]
                # A chunk that starts at a commit boundary needs no carried state.
                carry = None if rest.startswith(boundary) or not rest else chunk.carry_at(nxt)
                own_lo = cut - nxt
                parts, size = [rest], len(rest)
                yield chunk
            else:
                parts, size = [pending], len(pending)
            if not block:
                break
    finally:
        diff.stdout.close()
        diff.wait()
        drain.join(timeout=5)
    if diff.returncode not in (0, None):
        tail = b"".join(stderr_lines).decode("utf-8", "replace").strip().splitlines()
        errors.append(f"{what} exited {diff.returncode}: {tail[-1] if tail else ''}")


def cat_blobs(
    repo: Path, ids: list[str], max_size: int = ARCHIVE_BLOB_MAX
) -> Iterator[tuple[str, bytes | None, str]]:
    """(id, bytes or None, why not) for each blob id, from one ``git cat-file --batch``."""
    if not ids:
        return
    proc = subprocess.Popen(
        ["git", "-C", str(repo), "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **GIT_ENV},
    )
    request = "".join(f"{i}\n" for i in ids).encode("ascii")

    def feed() -> None:
        try:
            proc.stdin.write(request)
            proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass

    threading.Thread(target=feed, daemon=True).start()
    try:
        for blob in ids:
            parts = proc.stdout.readline().split()
            if len(parts) != 3 or parts[1] != b"blob":
                why = parts[-1].decode("ascii", "replace") if parts else "git cat-file ended"
                yield blob, None, why
                if not parts:
                    return
                continue
            size = int(parts[2])
            if size > max_size:
                left = size + 1
                while left > 0:  # read past it, a block at a time
                    got = proc.stdout.read(min(left, READ_BLOCK))
                    if not got:
                        return
                    left -= len(got)
                yield blob, None, f"larger than {max_size // (1024 * 1024)} MiB"
                continue
            data = proc.stdout.read(size)
            proc.stdout.read(1)
            yield blob, data, ""
    finally:
        proc.stdout.close()
        proc.kill()
        proc.wait()


def _note(skipped: Any, item: Any) -> None:
    """Count what an archive did not give (``SkipCounts.note`` where it exists)."""
    note = getattr(skipped, "note", None)
    if note is not None:
        note(item)
        return
    skipped.unreadable += 1
    if len(skipped.errors) < 100:
        skipped.errors.append(f"{item.path}: {item.reason}")


def archive_fragments(
    repo: Path,
    found: list[tuple[Location, Any, str]],
    skipped: Any,
    archive_depth: int = DEFAULT_ARCHIVE_DEPTH,
) -> Iterator[BlobMemberFragment]:
    """The files inside the archives ``PatchChunk.archives`` found, each blob read and
    opened once (``scanner.archives.expand``), located at its oldest commit as
    ``path!member``. Binary members are skipped and counted, as files are."""
    from dataclasses import replace

    from scanner.archives import Member, Skipped, expand
    from scanner.sources.files import is_binary

    first: dict[str, tuple[Location, Any]] = {}
    for loc, order, blob in found:
        if blob not in first or order < first[blob][1]:
            first[blob] = (loc, order)
    for blob, data, why in cat_blobs(repo, list(first)):
        loc, order = first[blob]
        name = loc.path or blob
        if data is None:
            _note(skipped, Skipped(name, why))
            continue
        for item in expand(name, data, Limits(max_depth=archive_depth)):
            if isinstance(item, Member):
                if item.path == name:
                    continue  # not an archive after all: its text is in the patch
                if is_binary(item.data):
                    skipped.binary += 1
                    continue
                yield BlobMemberFragment(item.data, replace(loc, path=item.path), order)
            else:
                _note(skipped, item)


def plan_slices(total: int, jobs: int) -> list[tuple[int, int]]:
    """Slices small enough to balance ``jobs`` pipelines, large enough to amortise start-up."""
    if total <= 0:
        return []
    size = max(100, -(-total // (jobs * 8)))
    return [(s, min(size, total - s)) for s in range(0, total, size)]


def scan_history(
    repo: Path,
    repo_name: str,
    on_chunk: Callable[[PatchChunk], None],
    *,
    since: str | None = None,
    rev_args: list[str] | None = None,
    jobs: int = 2,
    errors: list[str] | None = None,
    on_total: Callable[[int], None] | None = None,
    paths: list[str] | None = None,
) -> int:
    """Feed every chunk of history to ``on_chunk`` from ``jobs`` threads; returns the commit count.

    The commits are ``git rev-list --all`` (``^since`` excluded), or ``rev_args``
    when given (the pre-push hook's ranges), limited to ``paths`` (relative to the top of
    the work tree) when given. ``on_chunk`` is called concurrently
    and must be thread-safe.
    """
    errors = errors if errors is not None else []
    revs = list_commits(repo, rev_args if rev_args is not None else revision_args(since), paths)
    width = revs.find(b"\n") + 1  # every id has the same length (SHA-1 or SHA-256)
    total = len(revs) // width if width else 0
    if on_total:
        on_total(total)
    slices = plan_slices(total, max(1, jobs))
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                if not slices or failures:
                    return
                skip, count = slices.pop(0)
            try:
                shas = revs[skip * width : (skip + count) * width]
                for chunk in iter_slice_chunks(repo, repo_name, shas, skip, errors, paths):
                    on_chunk(chunk)
            except BaseException as exc:  # surfaced in the caller's thread
                with lock:
                    failures.append(exc)
                return

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    return total


class GitHistorySource:
    """Everything each commit publishes (``--since`` or ``rev_args`` narrow the commits):
    its added lines, a merge's own change, its message, and the files inside archives it
    adds; fed from ``jobs`` parallel pipelines; ``progress(commits_done, commits_total)``."""

    mode = "git"

    def __init__(
        self,
        repo: Path,
        display: str | None = None,
        *,
        since: str | None = None,
        rev_args: list[str] | None = None,
        jobs: int = 2,
        progress: Callable[[int, int], None] | None = None,
        paths: list[str] | None = None,
        relocate: Callable[[Location], Location] | None = None,
        archives: bool = True,
        by_blobs: bool | None = None,
        archive_depth: int = DEFAULT_ARCHIVE_DEPTH,
    ) -> None:
        from scanner.sources.files import SkipCounts

        self.repo = repo
        self.target = display or str(repo)
        self.since, self.rev_args, self.jobs, self.progress = since, rev_args, jobs, progress
        self.paths = paths  # pathspec relative to the top: `git log --full-history -- PATH`
        self.relocate = relocate  # e.g. add the link a person can open
        self.archives = archives  # open archives the commits add (zip, jar, tgz, gz, ...)
        # archives inside archives opened (the ``archive_depth`` setting); may be set
        # after ``prepare`` (the configuration is read while git starts), before ``feed``
        self.archive_depth = archive_depth
        # Every ref's whole history (no range, no paths) is read blob by blob
        # (``git_blobs``); None: unless the repository is too large for it.
        self.by_blobs = by_blobs
        self._blobs: Any = None  # the BlobHistory reading this history, once prepared
        self.skipped = SkipCounts()
        self.units = 0
        self.errors: list[str] = []

    def full_history(self) -> bool:
        """Whether this scan is every commit of every ref, whole (not a range, not paths)."""
        return self.since is None and self.rev_args is None and not self.paths

    def prepare(self) -> None:
        """Start reading git now (a whole history: ``git_blobs.BlobHistory.start``), while
        the caller builds its engine; ``feed`` scans, ``close`` ends it if ``feed`` is not
        called. Nothing to do for diffs."""
        if self._blobs is not None or not self.full_history() or self.by_blobs is False:
            return
        from scanner.sources.git_blobs import BlobHistory, use_blobs

        if self.by_blobs or use_blobs(self.repo):
            self._blobs = BlobHistory(
                self.repo,
                self.target,
                jobs=max(1, self.jobs),
                relocate=self.relocate,
                archives=self.archives,
                skipped=self.skipped,
            )
            if self.jobs >= 2 and hasattr(os, "fork"):
                # git log only: scanning processes may be forked (``fork_scanners``),
                # which no thread may precede; ``feed`` starts the rest.
                self._blobs.launch(ahead=True)
            else:
                self._blobs.start()

    def fork_scanners(self, collector: Any) -> bool:
        """A whole history read by blobs is scanned by ``jobs`` forked processes rather
        than threads (``git_blobs.BlobHistory.fork_scanners``), when this process has no
        other thread yet and nothing but the engine decides what is kept (a
        ``.gitleaks.toml`` allowlist reads the scanned bytes: threads then). True when
        forked."""
        self.prepare()
        if self._blobs is None or collector.keep is not None:
            return False
        self._blobs.archive_depth = self.archive_depth
        return bool(self._blobs.fork_scanners(self.jobs, collector))

    def close(self) -> None:
        if self._blobs is not None:
            self._blobs.close()

    def feed(self, sink: Callable[[PatchChunk], None]) -> None:
        self.prepare()
        if self._blobs is not None:
            blobs = self._blobs
            blobs.progress = self.progress
            blobs.archive_depth = self.archive_depth
            try:
                blobs.feed(sink)
            finally:
                self.units = blobs.units
                self.errors.extend(blobs.errors)
            return
        totals = {"total": 0, "done": 0}
        lock = threading.Lock()

        def on_total(n: int) -> None:
            totals["total"] = n

        archives: list[tuple[Location, Any, str]] = []

        def on_chunk(chunk: PatchChunk) -> None:
            if self.archives and b"\0" in chunk.data:
                found = chunk.archives()
                if found:
                    with lock:
                        archives.extend(found)
            if self.relocate is not None:
                from scanner.sources import Relocated

                sink(Relocated(chunk, self.relocate))  # type: ignore[arg-type]
            else:
                sink(chunk)
            if self.progress is not None:
                with lock:
                    totals["done"] += chunk.data.count(b"\n" + RS)
                    self.progress(totals["done"], totals["total"])

        self.units = scan_history(
            self.repo,
            self.target,
            on_chunk,
            since=self.since,
            rev_args=self.rev_args,
            jobs=self.jobs,
            errors=self.errors,
            on_total=on_total,
            paths=self.paths,
        )
        for fragment in archive_fragments(self.repo, archives, self.skipped, self.archive_depth):
            if self.relocate is not None:
                from scanner.sources import Relocated

                sink(Relocated(fragment, self.relocate))  # type: ignore[arg-type]
            else:
                sink(fragment)  # type: ignore[arg-type]
