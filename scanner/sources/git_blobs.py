"""Full git history, file version by file version (every ref, no range).

A full-history scan does not need diffs: every line a commit ever added is in
the version of the file (the blob) that commit wrote, and a blob with a key in
it was written first by one commit. So (as Kingfisher does):

1. one ``git log --all --raw`` pass (commit headers, messages and, per commit, the
   new blob id of every path it adds or changes; a merge against its first
   parent, which gives every version of every file reachable from a ref: each is
   either a commit's own change or already in its first parent) attributes each
   blob id to the oldest commit (in ``git rev-list`` order, as the diff path
   orders commits) that wrote it at each path;
2. one ``git cat-file --batch`` reads each blob once, as the log names it;
3. blobs are scanned whole, many small ones per engine call, by ``jobs``
   threads; a blob longer than ``MAX_CHUNK`` is scanned in overlapping windows,
   so memory stays bounded by the window size, whatever the blob's;
4. a match is reported at each path the blob was written to, at the oldest
   commit that wrote it there, with the blob's own line number (the new-file line
   number a diff would show), and ``FindingSet.add(per_path=True)`` keeps, per
   secret and path, the earliest version only: a key that sits in a file across
   fifty versions is one occurrence, where it was added.

Messages are scanned from the same ``git log`` output (``PatchChunk``, as the
diff path reads them). Archives are opened (``scanner.archives.expand``, the
same caps as files); a blob whose content is binary is not reported (as in the
diff path); ``.gitattributes`` plays no part (blobs are bytes). Scanning starts
while ``git log`` still runs: a match waits (``ready``) until every commit is
read, since only then is the oldest commit of a blob known.

What this cannot do is a range (``A..B``, ``--since``, a pre-push): a blob a
range writes may hold a key that was in the file before the range. Those, and
scans limited to paths, stay on ``git_history``'s diffs.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import queue
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from scanner.findings import Location
from scanner.sources import git_history
from scanner.sources.git_history import (
    COMMIT_FORMAT,
    GIT_ENV,
    SUBJECT_MAX,
    US,
    GitError,
    commit_location,
    unquote_path,
)

# Every commit reachable from a ref, newest first (``git rev-list --all`` order), its
# header and message as the diff path reads them, and the blobs it writes: a merge's
# against its first parent. Porcelain ``log`` honours a user's configuration, so every
# option that would change what it prints is set here.
LOG = (
    "log",
    "--all",
    "--raw",
    "-r",
    "--no-renames",
    "--no-abbrev",
    "--diff-merges=first-parent",
    "--root",
    "--no-mailmap",
    "--no-show-signature",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-notes",
    COMMIT_FORMAT,
)
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
# A raw line: ":old_mode new_mode old_id new_id status<TAB>path" (a path git quotes
# when it holds odd bytes), or a commit boundary.
RAW = re.compile(rb"\n\x1e|\n:[0-7]+ ([0-7]+) [0-9a-f]+ ([0-9a-f]+) [A-Z][0-9]*\t([^\n]*)")
GITLINK = b"160000"  # a submodule's commit, not a blob
BATCH = 1024 * 1024  # blobs joined per engine call (fewer calls, less per-call overhead)
SEP = b"\n\n"  # between two blobs of a batch (a NUL here would cost the decoder)
MAX_PATHS = 100  # paths remembered per blob (a finding keeps 100 locations)
NAME_MAX = 1024  # bytes of an author's name or email kept per commit
SNIFF = 8192


def _chars(raw: bytes) -> int:
    return len(raw.decode("utf-8", "replace"))


class _Segment:
    """One blob (or an archive member, or a window of a long blob) inside a batch."""

    __slots__ = ("blob", "col0", "end", "line0", "own_hi", "own_lo", "start", "suffix")

    def __init__(
        self,
        start: int,
        end: int,
        blob: bytes,
        suffix: str = "",
        line0: int = 1,
        col0: int = 0,
        own: tuple[int, int] | None = None,
    ) -> None:
        self.start, self.end, self.blob, self.suffix = start, end, blob, suffix
        self.line0, self.col0 = line0, col0  # line and column (characters) at ``start``
        self.own_lo, self.own_hi = own if own is not None else (start, end)


class BlobBatch:
    """Blobs joined by ``SEP``; a match is located at every path its blob was written
    to, at the oldest commit that wrote it there (``BlobHistory.places``)."""

    per_path = True  # FindingSet: the earliest version of a file that holds a secret

    def __init__(self, data: bytes, segments: list[_Segment], history: BlobHistory) -> None:
        from scanner.sources import LineCounter

        self.data = data
        self.segments = segments
        self._starts = [s.start for s in segments]
        self._history = history
        self._lines = LineCounter(data)
        self._base: dict[int, int] = {}

    def ready(self) -> None:
        self._history.attributed.wait()

    def clean_secret(self, secret: bytes) -> bytes:
        return secret

    def locate(self, offset: int) -> tuple[Location, Any] | None:
        places = self.locate_all(offset)
        return places[0] if places else None

    def locate_all(self, offset: int) -> list[tuple[Location, Any]]:
        i = bisect.bisect_right(self._starts, offset) - 1
        if i < 0:
            return []
        seg = self.segments[i]
        if not (seg.own_lo <= offset < seg.own_hi and offset < seg.end):
            return []  # a separator, or a neighbour window's
        base = self._base.get(i)
        if base is None:  # matches come in order: each count starts where the last ended
            base = self._base[i] = self._lines.line_of(seg.start)
        line = seg.line0 + self._lines.line_of(offset) - base
        nl = self.data.rfind(b"\n", seg.start, offset)
        if nl == -1:
            column = seg.col0 + _chars(self.data[seg.start : offset]) + 1
        else:
            column = _chars(self.data[nl + 1 : offset]) + 1
        return self._history.places(seg.blob, seg.suffix, line, column)


class BlobHistory:
    """Every blob reachable from a ref, each scanned once (see the module's docstring);
    ``units`` is the number of commits, ``progress(commits_done, commits_total)``."""

    mode = "git"

    def __init__(
        self,
        repo: Path,
        display: str,
        *,
        jobs: int = 2,
        progress: Callable[[int, int], None] | None = None,
        relocate: Callable[[Location], Location] | None = None,
        archives: bool = True,
        skipped: Any = None,
    ) -> None:
        from scanner.sources.files import SkipCounts

        self.repo, self.target = repo, display
        self.jobs, self.progress, self.relocate, self.archives = jobs, progress, relocate, archives
        self.skipped = skipped if skipped is not None else SkipCounts()
        self.units = 0
        self.errors: list[str] = []
        self.attributed = threading.Event()  # every commit read: ``_first`` is final
        # blob id -> (commit index, raw path) of the oldest commit that wrote it, or
        # {raw path: commit index} once it is known at several paths.
        self._first: dict[bytes, tuple[int, bytes] | dict[bytes, int]] = {}
        self._headers: list[bytes] = []  # per commit index: COMMIT_FORMAT header + subject
        self._lock = threading.Lock()

    # --- where a blob is --------------------------------------------------------------

    def places(
        self, blob: bytes, suffix: str, line: int, column: int
    ) -> list[tuple[Location, Any]]:
        entry = self._first.get(blob)
        if entry is None:
            return []
        pairs = entry.items() if isinstance(entry, dict) else [(entry[1], entry[0])]
        out = []
        for raw, index in pairs:
            path = unquote_path(raw) + suffix
            loc = commit_location(self.target, self._headers[index], path, line, column)
            if self.relocate is not None:
                loc = self.relocate(loc)
            out.append((loc, -index))
        return out

    def _seen(self, blob: bytes, index: int, path: bytes) -> bool:
        """Note that commit ``index`` writes ``blob`` at ``path`` (the log is newest
        first: each sighting is the oldest so far); True the first time ``blob`` is seen."""
        entry = self._first.get(blob)
        if entry is None:
            self._first[blob] = (index, path)
            return True
        if isinstance(entry, tuple):
            if entry[1] == path:
                self._first[blob] = (index, path)
                return False
            entry = self._first[blob] = {entry[1]: entry[0]}
        if path not in entry and len(entry) >= MAX_PATHS:
            del entry[next(iter(entry))]  # the path it was seen at first: the newest
        entry[path] = index
        return False

    def _header(self, data: bytes, c: int) -> bytes:
        """The commit header at boundary ``c`` (id, author, email, date) and its subject,
        names capped, as ``PatchChunk._commit`` reads them."""
        end = data.find(b"\n", c + 2)
        if end == -1:
            end = len(data)
        fields = data[c + 2 : end].split(US)
        header = US.join([fields[0], *(f[:NAME_MAX] for f in fields[1:])])
        if data[end + 1 : end + 2] == b" ":
            stop = data.find(b"\n", end + 1, end + 2 + SUBJECT_MAX)
            header += US + data[end + 2 : stop if stop != -1 else end + 2 + SUBJECT_MAX]
        return header

    # --- the scan ---------------------------------------------------------------------

    def feed(self, sink: Callable[[Any], None]) -> None:
        env = {**os.environ, **GIT_ENV}
        git = ["git", "-C", str(self.repo), *GIT_LIMITS]
        total = 0
        if self.progress is not None:
            count = git_history.run_git(self.repo, "rev-list", "--all", "--count")
            total = int(count.strip() or 0)
        try:
            cat = subprocess.Popen(
                [*git, "cat-file", "--batch"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            log = subprocess.Popen(
                [*git, *LOG],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except FileNotFoundError:
            raise GitError("git is not installed or not on PATH") from None
        wanted: queue.SimpleQueue[tuple[bytes, bytes, int] | None] = queue.SimpleQueue()
        asked: queue.SimpleQueue[tuple[bytes, bytes, int] | None] = queue.SimpleQueue()
        work: queue.Queue[BlobBatch | None] = queue.Queue(maxsize=2 * max(1, self.jobs))
        failures: list[BaseException] = []

        def guarded(fn: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                try:
                    fn()
                except BaseException as exc:  # surfaced in the caller's thread
                    failures.append(exc)
                    cat.kill()

            return run

        def ask() -> None:
            """Blob ids to ``git cat-file`` as the log names them (never blocks the log)."""
            try:
                while True:
                    item = wanted.get()
                    items = [item]
                    while item is not None and not wanted.empty():
                        item = wanted.get()
                        items.append(item)
                    ids = b"".join(i[0] + b"\n" for i in items if i is not None)
                    for i in items:
                        asked.put(i)
                    if ids:
                        cat.stdin.write(ids)
                        cat.stdin.flush()
                    if item is None:
                        return
            except (BrokenPipeError, ValueError, OSError):
                asked.put(None)
            finally:
                with contextlib.suppress(BrokenPipeError, OSError):
                    cat.stdin.close()

        def scanner() -> None:
            while True:
                batch = work.get()
                if batch is None:
                    return
                if not failures:
                    try:
                        sink(batch)
                    except BaseException as exc:
                        failures.append(exc)
                        self.attributed.set()

        threads = [threading.Thread(target=guarded(ask), daemon=True)]
        threads += [threading.Thread(target=scanner, daemon=True) for _ in range(self.jobs)]
        reader = threading.Thread(
            target=guarded(lambda: self._read(cat, asked, work, total)), daemon=True
        )
        for t in [*threads, reader]:
            t.start()
        try:
            self._read_log(log, sink, wanted)
        except BaseException:
            cat.kill()
            raise
        finally:
            wanted.put(None)
            self.attributed.set()
            reader.join()
            for _ in range(self.jobs):
                work.put(None)
            for t in threads:
                t.join()
            cat.kill()
            cat.wait()
            if cat.stdout is not None:
                cat.stdout.close()
        if failures:
            raise failures[0]
        if self.progress is not None:
            self.progress(self.units, max(total, self.units))

    def _read_log(
        self, log: Any, sink: Callable[[Any], None], wanted: queue.SimpleQueue[Any]
    ) -> None:
        """Each chunk of ``git log``: its raw lines noted, its messages to ``sink``."""
        from scanner.sources import Relocated

        index = -1
        for chunk in git_history.iter_stream_chunks(log, self.target, 0, self.errors, "git log"):
            data, lo, hi = chunk.data, chunk.own_lo, chunk.own_hi
            index = chunk.first_index - 1
            for m in RAW.finditer(data, max(lo - 1, 0)):
                at = m.start()  # the newline before the line
                if at + 1 >= hi:
                    break
                if at + 1 < lo:
                    continue  # a neighbour chunk's line
                blob = m.group(2)
                if blob is None:  # a commit boundary
                    index += 1
                    self._headers.append(self._header(data, at))
                elif m.group(1) != GITLINK and blob.strip(b"0"):
                    path = m.group(3)
                    if self._seen(blob, index, path):
                        wanted.put((blob, path, index))
            self.units = index + 1
            sink(Relocated(chunk, self.relocate) if self.relocate is not None else chunk)

    # --- reading blobs ----------------------------------------------------------------

    def _read(
        self,
        cat: Any,
        asked: queue.SimpleQueue[Any],
        work: queue.Queue[BlobBatch | None],
        total: int,
    ) -> None:
        """Each blob ``git cat-file`` gives, into batches for the scanners."""
        out = cat.stdout
        parts: list[bytes] = []
        segments: list[_Segment] = []
        size = 0
        done = 0

        def flush() -> None:
            nonlocal parts, segments, size
            if segments:
                work.put(BlobBatch(b"".join(parts), segments, self))
            parts, segments, size = [], [], 0

        def add(data: bytes, blob: bytes, suffix: str = "") -> None:
            nonlocal size
            if parts:
                parts.append(SEP)
                size += len(SEP)
            segments.append(_Segment(size, size + len(data), blob, suffix))
            parts.append(data)
            size += len(data)
            if size >= BATCH:
                flush()

        while True:
            item = asked.get()
            if item is None:
                break
            blob, path, index = item
            head = out.readline().split()
            if len(head) != 3 or head[1] != b"blob" or head[0] != blob:
                if not head:
                    raise GitError("git cat-file ended early")
                if len(head) == 3:  # not a blob (a damaged repository): skip its bytes
                    self._skip(out, int(head[2]) + 1)
                self.errors.append(f"{unquote_path(path)}: blob {blob.decode()} unreadable")
                continue
            n = int(head[2])
            name = unquote_path(path)
            if n > git_history.MAX_CHUNK:
                flush()
                self._large(out, n, blob, name, work)
            else:
                data = out.read(n)
                out.read(1)
                for text, suffix in self._contents(name, data):
                    add(text, blob, suffix)
            done += 1
            if self.progress is not None and done % 256 == 0:
                self.progress(min(index + 1, max(total, index + 1)), total)
        flush()

    def _contents(self, name: str, data: bytes) -> Iterator[tuple[bytes, str]]:
        """What to scan of one blob: itself, or an archive's text members (each with its
        ``!member`` suffix); binary content is not reported, as in the diff path."""
        from scanner.archives import SNIFF as ARCHIVE_SNIFF
        from scanner.archives import Member, expand, looks_like_archive
        from scanner.sources.files import is_binary

        if self.archives and looks_like_archive(name, data[:ARCHIVE_SNIFF]):
            for item in expand(name, data):
                if not isinstance(item, Member):
                    git_history._note(self.skipped, item)
                elif item.path == name:  # named like an archive, but not one
                    if not is_binary(item.data):
                        yield item.data, ""
                elif is_binary(item.data):
                    self.skipped.binary += 1
                else:
                    yield item.data, item.path[len(name) :]
            return
        if not is_binary(data):
            yield data, ""

    @staticmethod
    def _skip(out: Any, n: int) -> None:
        while n > 0:
            got = out.read(min(n, git_history.READ_BLOCK))
            if not got:
                return
            n -= len(got)

    def _large(
        self, out: Any, n: int, blob: bytes, name: str, work: queue.Queue[BlobBatch | None]
    ) -> None:
        """A blob longer than ``MAX_CHUNK``: an archive read whole (to ``ARCHIVE_BLOB_MAX``),
        text in overlapping windows, binary skipped; its bytes are read either way."""
        from scanner.archives import SNIFF as ARCHIVE_SNIFF
        from scanner.archives import Skipped, _magic, looks_like_archive
        from scanner.sources.files import is_binary

        step = git_history.MAX_CHUNK
        first = out.read(min(n, step))
        left = n - len(first)
        if self.archives and looks_like_archive(name, first[:ARCHIVE_SNIFF]):
            cap = git_history.ARCHIVE_BLOB_MAX
            if n <= cap:
                data = first + out.read(left)
                out.read(1)
                segments, parts, size = [], [], 0
                for text, suffix in self._contents(name, data):
                    if parts:
                        parts.append(SEP)
                        size += len(SEP)
                    segments.append(_Segment(size, size + len(text), blob, suffix))
                    parts.append(text)
                    size += len(text)
                    if size >= BATCH:
                        work.put(BlobBatch(b"".join(parts), segments, self))
                        segments, parts, size = [], [], 0
                if segments:
                    work.put(BlobBatch(b"".join(parts), segments, self))
                return
            if _magic(first[:ARCHIVE_SNIFF]) is not None:
                self._skip(out, left + 1)
                mib = cap // (1024 * 1024)
                git_history._note(self.skipped, Skipped(name, f"larger than {mib} MiB"))
                return
        if is_binary(first[:SNIFF]):
            self._skip(out, left + 1)
            return
        overlap = min(git_history.OVERLAP, step // 8)

        def take() -> bytes:
            nonlocal left
            if left <= 0:
                return b""
            got = out.read(min(step, left))
            if not got:
                raise GitError("git cat-file ended early")
            left -= len(got)
            return got

        before, cur, line0, col0 = b"", first, 1, 0
        while True:
            after = take()
            data = before + cur + after[:overlap]
            lo, hi = len(before), len(before) + len(cur)
            own = (lo, hi if after else len(data))
            work.put(BlobBatch(data, [_Segment(0, len(data), blob, "", line0, col0, own)], self))
            if not after:
                break
            start = max(hi - overlap, 0)
            gone = data[:start]
            nl = gone.rfind(b"\n")
            col0 = _chars(gone[nl + 1 :]) if nl != -1 else col0 + _chars(gone)
            line0 += gone.count(b"\n")
            before, cur = data[start:hi], after
        out.read(1)


def use_blobs(repo: Path) -> bool:
    """Whether a full-history scan of ``repo`` reads blobs (``BlobHistory``): yes unless
    the repository is so large that remembering each blob's first commit would not fit
    in the memory a scan is allowed (then the diff path, whose memory is flat)."""
    try:
        out = git_history.run_git(repo, "count-objects", "-v")
    except GitError:
        return False
    counts = dict(
        line.split(b": ", 1) for line in out.splitlines() if b": " in line
    )  # count, in-pack, ...
    objects = sum(int(counts.get(k, b"0")) for k in (b"count", b"in-pack"))
    return objects <= MAX_OBJECTS


MAX_OBJECTS = 3_000_000  # objects (blobs, trees, commits) above which the diff path is used
