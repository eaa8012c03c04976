"""Full git history, file version by file version (every ref, no range, no path).

A full-history scan does not need diffs: every line a commit ever added is in
the version of the file (the blob) that commit wrote, and a blob with a key in
it was written first by one commit. So (as Kingfisher does):

1. one ``git log --all --reverse --raw`` pass (commit headers, messages and, per
   commit, the new blob id of every path it adds or changes; a merge against its
   first parent, which gives every version of every file reachable from a ref:
   each is either a commit's own change or already in its first parent)
   attributes each blob id, at each path, to the oldest commit (in ``git
   rev-list`` order, as the diff path orders commits) that wrote it there;
2. one ``git cat-file --batch`` reads each blob once, oldest first, as the log
   names it;
3. a new version of a file is scanned where it differs from the version of that
   path read before it (an older one), widened by ``MARGIN`` and to whole lines
   (``_changed``): what did not change was scanned in the older version and is
   reported there; a blob also written at another path is scanned again whole for
   that path (``_copies``);
4. blobs are scanned many small ones per engine call by ``jobs`` threads; a blob
   longer than ``MAX_CHUNK`` in overlapping windows, so memory stays bounded by
   the window size, whatever the blob's;
5. a match is reported at each path the blob was written to, at the oldest commit
   that wrote it there, with the blob's own line number (the new-file line number
   a diff would show), and ``FindingSet.add(per_path=True)`` keeps, per secret and
   path, the earliest version only: a key that sits in a file across fifty
   versions is one occurrence, where it was added.

Messages are scanned from the same ``git log`` output (``PatchChunk``, as the
diff path reads them). Archives are opened (``scanner.archives.expand``, the
same caps as files); a blob whose content is binary is not reported (as in the
diff path); ``.gitattributes`` plays no part (blobs are bytes). ``start`` runs git
while the caller builds its engine (before forked scanners, ``launch(ahead=True)``:
git log alone, into a temporary file, so it runs on meanwhile on an otherwise idle
core); scanning may begin before the log is read to
its end: a match waits (``ready``) until it is, since only then is every path of a
blob known.

A history git cannot read to its end (an object missing or damaged, git log or cat-file
ending early) raises ``GitError``: a scan that read part of it must not say it is clean.

What this cannot do is a range (``A..B``, ``--since``, a pre-push): a blob a
range writes may hold a key that was in the file before the range. Those, and
scans limited to paths, stay on ``git_history``'s diffs. Memory grows with the
number of blobs (an id, a path and a commit number each); ``use_blobs`` sends a
repository too large for that to the diff path.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import queue
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from scanner.archives import DEFAULT_ARCHIVE_DEPTH, Limits, looks_like_archive
from scanner.archives import SNIFF as ARCHIVE_SNIFF
from scanner.findings import Location
from scanner.sources import git_history
from scanner.sources.blob_procs import Scanners, taken
from scanner.sources.files import is_binary
from scanner.sources.git_history import (
    COMMIT_FORMAT,
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
    "--reverse",
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
    "--encoding=UTF-8",  # not the repository's i18n.logOutputEncoding (UTF-16: no RS to cut on)
    COMMIT_FORMAT,
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
# Said after an error that stops a whole-history read (a damaged repository).
DAMAGED = "; `--log-opts=--all` reads, commit by commit, what git can still read"
# A new version of a file is scanned where it differs from the version before it, and
# this far (bytes) around that, in whole lines: a rule's context, an allow comment, a
# PEM block around a changed line are still read whole.
MARGIN = 2048
GRAIN = 1024  # bytes: how finely the common prefix and suffix are measured
DELTA_CACHE = 24 * 1024 * 1024  # bytes of the latest version per path kept to compare
PREFETCH = 8  # batches (about 1 MB each) read ahead of the scanners, log chunks too
PIPE_SIZE = 1024 * 1024  # cat-file's pipe and our reads of it: fewer, larger copies


def _grow_pipe(stream: Any) -> None:
    """Ask Linux for a larger pipe (fewer wake-ups per MB); elsewhere, nothing."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
    except (ImportError, OSError, ValueError):
        pass


class _Following:
    """A file git is still writing, read as it grows: ``read`` returns what is there,
    waits while git runs and has written nothing new, and returns b"" once git has
    ended and everything it wrote was read. ``pread`` at our own offset: git's
    descriptor shares the file's position."""

    PAUSE = 0.001  # seconds between looks when the reader has caught up with git

    def __init__(self, file: Any, proc: subprocess.Popen[bytes]) -> None:
        self._file, self._proc, self._at = file, proc, 0

    def read(self, n: int) -> bytes:
        while True:
            ended = self._proc.poll() is not None  # before the read: nothing comes after
            block = os.pread(self._file.fileno(), n, self._at)
            if block or ended:
                self._at += len(block)
                return block
            time.sleep(self.PAUSE)

    def close(self) -> None:
        self._file.close()


def _chars(raw: bytes) -> int:
    return len(raw.decode("utf-8", "replace"))


class _OldestFirst:
    """A ``git log --reverse`` chunk (messages): its order says older is earlier, as the
    blobs' does (``PatchChunk`` numbers commits newest first)."""

    __slots__ = ("_chunk", "_move", "data")

    def __init__(self, chunk: Any, move: Callable[[Location], Location] | None) -> None:
        self._chunk, self._move, self.data = chunk, move, chunk.data

    def locate(self, offset: int) -> tuple[Location, Any] | None:
        found = self._chunk.locate(offset)
        if found is None:
            return None
        loc, order = found
        return (self._move(loc) if self._move is not None else loc), -order

    def clean_secret(self, secret: bytes) -> bytes:
        return self._chunk.clean_secret(secret)  # type: ignore[no-any-return]


class _Segment:
    """One blob (or an archive member, or a window of a long blob) inside a batch."""

    __slots__ = ("blob", "col0", "end", "exclude", "line0", "own_hi", "own_lo", "start", "suffix")

    def __init__(
        self,
        start: int,
        end: int,
        blob: bytes,
        suffix: str = "",
        line0: int = 1,
        col0: int = 0,
        own: tuple[int, int] | None = None,
        exclude: bytes | None = None,
    ) -> None:
        self.start, self.end, self.blob, self.suffix = start, end, blob, suffix
        self.exclude = exclude  # a path not to report it at (already reported there)
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
        spot = self.spot(offset)
        return self._history.places(*spot) if spot is not None else []

    def spot(self, offset: int) -> tuple[bytes, str, int, int, bytes | None] | None:
        """Where ``offset`` is in its blob: (blob id, archive member suffix, line, column,
        a path not to report it at), or None for a separator or a neighbour window's."""
        i = bisect.bisect_right(self._starts, offset) - 1
        if i < 0:
            return None
        seg = self.segments[i]
        if not (seg.own_lo <= offset < seg.own_hi and offset < seg.end):
            return None  # a separator, or a neighbour window's
        base = self._base.get(i)
        if base is None:  # matches come in order: each count starts where the last ended
            base = self._base[i] = self._lines.line_of(seg.start)
        line = seg.line0 + self._lines.line_of(offset) - base
        nl = self.data.rfind(b"\n", seg.start, offset)
        if nl == -1:
            column = seg.col0 + _chars(self.data[seg.start : offset]) + 1
        else:
            column = _chars(self.data[nl + 1 : offset]) + 1
        return seg.blob, seg.suffix, line, column, seg.exclude


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
        self.archive_depth = DEFAULT_ARCHIVE_DEPTH  # archives inside archives opened
        # Set by ``feed`` (or ``close``): ``archive_depth`` is final. Reading starts before
        # the configuration is read, so the reader waits for it at the first archive.
        self.configured = threading.Event()
        self.units = 0
        self.errors: list[str] = []
        self.attributed = threading.Event()  # every commit read: ``_first`` is final
        # blob id -> (commit index, raw path) of the oldest commit that wrote it, or
        # {raw path: commit index} once it is known at several paths.
        self._first: dict[bytes, tuple[int, bytes] | dict[bytes, int]] = {}
        self._headers: list[bytes] = []  # per commit index: COMMIT_FORMAT header + subject
        self._started = self._closed = False
        self._cat: Any = None
        self._log: Any = None
        self._procs: Scanners | None = None  # forked scanning processes (fork_scanners)
        self._collector: Any = None  # what takes the children's matches (fork_scanners)
        # blob ids the log names, for cat-file or the children (None: the end)
        self._wanted: queue.SimpleQueue[tuple[bytes, bytes, int] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._failures: list[BaseException] = []
        self._total = 0
        self._last: dict[bytes, bytes] = {}  # path -> the latest version read (capped)
        self._cached = 0
        # blob -> the path it was compared at, for blobs scanned where they changed only:
        # at any other path (a copy) they are scanned again whole, after the rest.
        self._partial: dict[bytes, bytes] = {}
        # Blob batches for the scanners; more than they need while the caller gets ready.
        self._work: queue.Queue[BlobBatch | None] = queue.Queue(maxsize=max(2 * jobs, PREFETCH))
        # ``git log`` chunks, for their messages (bounded: the log waits for the scan).
        self._messages: queue.Queue[Any] = queue.Queue(maxsize=PREFETCH)

    # --- where a blob is --------------------------------------------------------------

    def places(
        self, blob: bytes, suffix: str, line: int, column: int, exclude: bytes | None = None
    ) -> list[tuple[Location, Any]]:
        """Where a match in ``blob`` is: each path it was written to (but ``exclude``), at
        the oldest commit that wrote it there; the order is that commit's (oldest first)."""
        entry = self._first.get(blob)
        if entry is None:
            return []
        pairs = entry.items() if isinstance(entry, dict) else [(entry[1], entry[0])]
        # Scanned only where it changed: that holds at the path it was compared at; its
        # other paths get a scan of their own (``_copies``, which excludes this one).
        only = self._partial.get(blob) if exclude is None else None
        out = []
        for raw, index in pairs:
            if raw == exclude or (only is not None and raw != only):
                continue
            path = unquote_path(raw) + suffix
            loc = commit_location(self.target, self._headers[index], path, line, column)
            if self.relocate is not None:
                loc = self.relocate(loc)
            out.append((loc, index))
        return out

    def _seen(self, blob: bytes, index: int, path: bytes) -> bool:
        """Note that commit ``index`` writes ``blob`` at ``path`` (the log is oldest first:
        the first sighting at a path is the one kept); True the first time ``blob`` is seen."""
        entry = self._first.get(blob)
        if entry is None:
            self._first[blob] = (index, path)
            return True
        if isinstance(entry, tuple):
            if entry[1] == path:
                return False
            entry = self._first[blob] = {entry[1]: entry[0]}
        if path not in entry and len(entry) < MAX_PATHS:
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

    def launch(self, ahead: bool = False) -> None:
        """Start ``git log``: what may run before the scanning processes are forked
        (``fork_scanners``), which no thread may precede. ``ahead``: nothing will read
        the log until then, so git writes it to an unlinked temporary file (the log's
        size: celery's is 10 MB) and runs on while the caller builds its engine, where
        a pipe would stop it at 64 KB; the reader follows the file (``_Following``)."""
        if self._log is not None:
            return
        out = None
        if ahead:
            # closed by the reader (_Following.close); no temporary directory: a pipe
            with contextlib.suppress(OSError):
                out = tempfile.TemporaryFile(prefix="keysweep-log-")  # noqa: SIM115
        try:
            self._log = git_history.popen_git(
                self.repo,
                *LOG,
                stdin=subprocess.DEVNULL,
                stdout=out if out is not None else subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except BaseException:
            if out is not None:
                out.close()
            raise
        if out is not None:
            self._log.stdout = _Following(out, self._log)

    def _cat_file(self) -> Any:
        cat = git_history.popen_git(
            self.repo,
            "cat-file",
            "--batch",
            "--buffer",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=PIPE_SIZE,
        )
        _grow_pipe(cat.stdout)
        return cat

    def start(self) -> None:
        """Start reading: ``git log`` and ``git cat-file`` run, the log is parsed and the
        first blobs are read while the caller gets ready (builds its engine); ``feed``
        scans. Call ``close`` if ``feed`` is never called. With scanning processes
        (``fork_scanners``), each runs a ``git cat-file`` of its own instead."""
        if self._started:
            return
        procs = self._procs
        if procs is None:
            self._cat = self._cat_file()
        try:
            self.launch()
        except BaseException:
            if self._cat is not None:
                self._cat.kill()
                self._cat.wait()
            raise
        cat, log = self._cat, self._log
        self._started = True
        wanted = self._wanted
        asked: queue.SimpleQueue[tuple[bytes, bytes, int] | None] = queue.SimpleQueue()

        def ask() -> None:
            """Blob ids to ``git cat-file`` as the log names them (never blocks the log)."""
            try:
                while True:
                    items = taken(wanted)
                    ids = b"".join(i[0] + b"\n" for i in items if i is not None)
                    for i in items:
                        asked.put(i)
                    if ids:
                        cat.stdin.write(ids)
                        cat.stdin.flush()
                    if items[-1] is None:
                        return
            except (BrokenPipeError, ValueError, OSError):
                asked.put(None)
            finally:
                with contextlib.suppress(BrokenPipeError, OSError):
                    cat.stdin.close()

        def read_log() -> None:
            try:
                self._read_log(log, wanted)
            finally:
                wanted.put(None)
                self._messages.put(None)
                self.attributed.set()

        if procs is not None:
            progress = self.progress
            total = self._total

            def step(done: int) -> None:
                if progress is not None:
                    progress(done, max(total, done))

            self._threads = [
                threading.Thread(target=self._guarded(lambda: procs.dispatch(wanted)), daemon=True),
                threading.Thread(target=self._guarded(read_log), daemon=True),
                *(
                    threading.Thread(
                        target=self._guarded(lambda i=i: procs.collect(i, step)), daemon=True
                    )
                    for i in range(len(procs.children))
                ),
            ]
        else:
            self._threads = [
                threading.Thread(target=self._guarded(ask), daemon=True),
                threading.Thread(target=self._guarded(read_log), daemon=True),
                threading.Thread(
                    target=self._guarded(lambda: self._read(cat, asked, self._work)), daemon=True
                ),
            ]
        for t in self._threads:
            t.start()

    def _guarded(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # surfaced in the caller's thread
                self._failures.append(exc)
                self._stop()

        return run

    def _stop(self) -> None:
        """Stop reading (a failure, or ``close``): every thread then ends."""
        for proc in (self._cat, self._log):
            if proc is not None:
                with contextlib.suppress(OSError):
                    proc.kill()
        if self._procs is not None:
            self._procs.stop()

    def close(self) -> None:
        """End what ``start`` began (after ``feed``, or instead of it): the git processes
        are stopped, the queues drained so no thread stays blocked, every thread joined."""
        if not (self._started or self._log or self._procs) or self._closed:
            return
        self._closed = True
        self.configured.set()
        self._stop()
        self.attributed.set()
        # (``start`` interrupted: some threads not started, the log's maybe never to end)
        started = [t for t in self._threads if t.ident is not None]
        self._wanted.put(None)
        while any(t.is_alive() for t in started):
            for q in (self._work, self._messages):
                with contextlib.suppress(queue.Empty):
                    while True:
                        q.get_nowait()
            for t in started:
                t.join(timeout=0.02)
        for proc in (self._cat, self._log):
            if proc is None:
                continue
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        if self._procs is not None:
            self._procs.wait()

    def fork_scanners(self, n: int, collector: Any) -> bool:
        """Scan with ``n`` forked processes (``blob_procs``) instead of threads: each reads
        and scans the versions of its share of the paths. ``collector``
        (``scanner.scan.Collector``) gives the engine they are forked with and takes
        what they find. Only before anything else started a thread (a fork copies
        locks another thread may hold) and before ``start``; False when not done (the
        scan then uses threads)."""
        if (
            n < 2
            or self._started
            or self._procs is not None
            or not hasattr(os, "fork")
            or threading.active_count() != 1
        ):
            return False
        self.configured.set()
        collector.warm()
        engine = collector.engine
        self._procs = Scanners.fork(self, n, collector.blob_matches, engine.rules, engine.stats)
        self._collector = collector
        return True

    def feed(self, sink: Callable[[Any], None]) -> None:
        self.configured.set()
        if self.progress is not None:
            count = git_history.run_git(self.repo, "rev-list", "--all", "--count")
            self._total = int(count.strip() or 0)
        self.start()
        failures = self._failures
        procs = self._procs

        def scanner() -> None:
            while True:
                batch = self._work.get()
                if batch is None:
                    return
                if not failures:
                    try:
                        sink(batch)
                    except BaseException as exc:
                        failures.append(exc)
                        self._stop()
                        self.attributed.set()

        jobs = 0 if procs is not None else self.jobs
        scanners = [threading.Thread(target=scanner, daemon=True) for _ in range(jobs)]
        for t in scanners:
            t.start()
        done = False
        try:
            # Messages are scanned here, as the log is read; blobs by the scanners.
            while (chunk := self._messages.get()) is not None:
                if not failures:
                    sink(_OldestFirst(chunk, self.relocate))
            if procs is None:
                self._threads[-1].join()  # the reader: every blob is in the queue
                for batch in self._copy_batches():
                    self._work.put(batch)
            else:
                for t in self._threads:  # the log, the dispatcher, what each child sent
                    t.join()
                if not failures:
                    self._merge(procs)
                    for batch in self._copy_batches():
                        sink(batch)
            done = True
        finally:
            if not done:
                self.close()  # stop reading, free whatever waits on a queue
            for _ in scanners:
                self._work.put(None)
            for t in scanners:
                t.join()
            self.close()
        if failures:
            raise failures[0]
        if self.progress is not None:
            self.progress(self.units, max(self._total, self.units))

    def _merge(self, procs: Scanners) -> None:
        """What the children read and found, into this scan: the blobs each scanned where
        they changed, the counts of what it skipped, the engine's counters, the bytes
        scanned, and each match placed at every path of its blob."""
        self._partial.update(procs.partial)
        self.skipped.absorb(procs.skipped)
        collector = self._collector
        stats = collector.engine.stats
        for name, value in procs.stats.items():
            setattr(stats, name, getattr(stats, name) + value)
        # in the order one process meets them
        found = [(m, self.places(*spot)) for m, spot in procs.matches()]
        collector.add_found(found, procs.bytes)

    def _copy_batches(self) -> Iterator[BlobBatch]:
        """Blobs scanned only where they changed (``_changed``) that were also written at
        another path (a copy, a file added again under another name): read again and
        scanned whole for those other paths."""
        again = [
            (blob, path)
            for blob, path in self._partial.items()
            if isinstance(self._first.get(blob), dict)
        ]
        if not again:
            return
        parts: list[bytes] = []
        segments: list[_Segment] = []
        size = 0
        for blob, data, _why in git_history.cat_blobs(
            self.repo, [b.decode("ascii") for b, _ in again], git_history.MAX_CHUNK
        ):
            if data is None:
                continue
            key = blob.encode("ascii")
            if parts:
                parts.append(SEP)
                size += len(SEP)
            segments.append(_Segment(size, size + len(data), key, exclude=self._partial[key]))
            parts.append(data)
            size += len(data)
            if size >= BATCH:
                yield BlobBatch(b"".join(parts), segments, self)
                parts, segments, size = [], [], 0
        if segments:
            yield BlobBatch(b"".join(parts), segments, self)

    def _read_log(self, log: Any, wanted: queue.SimpleQueue[Any]) -> None:
        """Each chunk of ``git log``: its raw lines noted, then kept for ``feed`` to scan
        its messages."""
        index = -1
        paths: dict[bytes, bytes] = {}
        failed: list[str] = []  # git log's exit: a history it could not read to its end
        for chunk in git_history.iter_stream_chunks(log, self.target, 0, failed, "git log"):
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
                    path = paths.setdefault(m.group(3), m.group(3))  # one copy per path
                    if self._seen(blob, index, path):
                        wanted.put((blob, path, index))
            self.units = index + 1
            self._messages.put(chunk)
        if failed and not self._closed:
            raise GitError(f"{failed[0]} (the history was not read to its end){DAMAGED}")

    # --- reading blobs ----------------------------------------------------------------

    def _read(
        self, cat: Any, asked: queue.SimpleQueue[Any], work: queue.Queue[BlobBatch | None]
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

        def add(data: bytes | memoryview, blob: bytes, suffix: str = "", line0: int = 1) -> None:
            nonlocal size
            if parts:
                parts.append(SEP)
                size += len(SEP)
            segments.append(_Segment(size, size + len(data), blob, suffix, line0))
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
                # Missing or not a blob (a damaged or partial repository): what it holds
                # is unknown, so the scan cannot say the history is clean.
                raise GitError(f"{unquote_path(path)}: blob {blob.decode()} unreadable{DAMAGED}")
            n = int(head[2])
            name = unquote_path(path)
            if n > git_history.MAX_CHUNK:
                flush()
                self._large(out, n, blob, name, work)
            else:
                data = out.read(n)
                if len(data) < n or out.read(1) != b"\n":
                    raise GitError("git cat-file ended early")
                if self._plain(name, data):
                    lo, hi, line0 = self._changed(path, data)
                    if lo or hi < n:
                        self._partial[blob] = path
                    add(memoryview(data)[lo:hi] if lo or hi < n else data, blob, "", line0)
                else:
                    for text, suffix in self._contents(name, data):
                        add(text, blob, suffix)
            done += 1
            progress = self.progress
            if progress is not None and done % 256 == 0:
                progress(min(index + 1, max(self._total, index + 1)), self._total)
        flush()

    def _plain(self, name: str, data: bytes) -> bool:
        """Text that is not an archive (the usual blob)."""
        if self.archives and looks_like_archive(name, data[:ARCHIVE_SNIFF]):
            return False
        return not is_binary(data)

    def _changed(self, path: bytes, data: bytes) -> tuple[int, int, int]:
        """The part of this version of ``path`` that differs from the version read before
        it (an older one: blobs come oldest first), widened by ``MARGIN`` and to whole
        lines: (start, end, line number at start). What is the same as in the older
        version is reported there, at the same path: a newer version only repeats it."""
        last = self._last
        prev = last.pop(path, None)
        last[path] = data
        self._cached += len(data) - (len(prev) if prev is not None else 0)
        while self._cached > DELTA_CACHE and last:
            self._cached -= len(last.pop(next(iter(last))))
        n = len(data)
        if prev is None or n < 2 * MARGIN:
            return 0, n, 1
        # The common prefix and suffix to ``GRAIN`` bytes (the margin widens them anyway):
        # a binary search over blocks, each step one memcmp.
        view, common = memoryview(data), min(n, len(prev))
        lo, hi = 0, common // GRAIN
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if prev.startswith(view[: mid * GRAIN]):
                lo = mid
            else:
                hi = mid - 1
        prefix = lo * GRAIN
        lo, hi = 0, (common - prefix) // GRAIN
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if prev.endswith(view[n - mid * GRAIN :]):
                lo = mid
            else:
                hi = mid - 1
        suffix = lo * GRAIN
        start = max(0, prefix - MARGIN)
        start = data.rfind(b"\n", 0, start) + 1 if start else 0
        end = min(n, n - suffix + MARGIN)
        nl = data.find(b"\n", end)
        end = n if nl == -1 else nl + 1
        if end <= start:
            return 0, 0, 1
        return start, end, 1 + data.count(b"\n", 0, start)

    def _contents(self, name: str, data: bytes) -> Iterator[tuple[bytes, str]]:
        """What to scan of one blob: itself, or an archive's text members (each with its
        ``!member`` suffix); binary content is not reported, as in the diff path."""
        from scanner.archives import Member, expand

        if self.archives and looks_like_archive(name, data[:ARCHIVE_SNIFF]):
            self.configured.wait()
            if self._closed:
                return
            for item in expand(name, data, Limits(max_depth=self.archive_depth)):
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
                raise GitError("git cat-file ended early")
            n -= len(got)

    def _large(
        self, out: Any, n: int, blob: bytes, name: str, work: queue.Queue[BlobBatch | None]
    ) -> None:
        """A blob longer than ``MAX_CHUNK``: an archive read whole (to ``ARCHIVE_BLOB_MAX``),
        text in overlapping windows, binary skipped; its bytes are read either way."""
        from scanner.archives import Skipped, _magic

        step = git_history.MAX_CHUNK
        first = out.read(min(n, step))
        left = n - len(first)
        if self.archives and looks_like_archive(name, first[:ARCHIVE_SNIFF]):
            cap = git_history.ARCHIVE_BLOB_MAX
            if n <= cap:
                data = first + out.read(left)
                if len(data) < n or out.read(1) != b"\n":
                    raise GitError("git cat-file ended early")
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


# Objects (blobs, trees, commits) above which a whole history is read as diffs: what
# blob mode remembers per blob (celery, 165,000 objects: about 10 MB) would pass the
# memory a scan is allowed (150 MB).
MAX_OBJECTS = 500_000
