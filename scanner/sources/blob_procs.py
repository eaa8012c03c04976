"""A whole-history scan on several cores: forked processes that each read and scan a
share of the file versions (``git_blobs.BlobHistory.fork_scanners``).

Threads of one Python process share one interpreter lock, and reading 500 MB of file
versions out of ``git cat-file`` and scanning them is Python work: with threads, a
history scan used about 1.3 of this machine's 2 cores. So the parent reads ``git log``
(which commit wrote which blob at which path, and the messages) and hands each new
blob id to one of ``n`` children, always the same child for the same path (a version
is compared with the version of its path read before it, ``BlobHistory._changed``);
each child runs a ``git cat-file`` of its own, reads and scans its blobs with the
engine it was forked with, and sends back what it found with where it is in the blob
(``BlobBatch.spot``). The parent places those once every commit is read (a blob's
paths and oldest commits are known then) and adds them to its findings.

What crosses the pipes: blob ids and paths to the children; matches (a secret among
them, as ``git cat-file`` sends them to us) back to the parent that forked them. The
children are this scan's own processes, forked from it, and nothing they send leaves
it; nothing is written anywhere but those pipes.

The children are forked before any thread of the parent starts (a fork copies locks
that another thread may hold). A child that fails says why (``("error", ...)``); one
that ends without saying ``done`` (killed) fails the scan: a history part of which was
not read is not clean. Standard library only: ``multiprocessing`` would pickle the
engine into each child, or fork with its own threads already running.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import signal
import struct
import threading
from collections.abc import Callable
from dataclasses import fields
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn

from scanner.sources.git_history import GitError

if TYPE_CHECKING:
    from scanner.engine import Match, Rule
    from scanner.sources.git_blobs import BlobHistory

HEAD = struct.Struct("<I")
END = b".\n"  # the parent's last command: a pipe that ends without it, the parent died


@cache
def match_fields() -> tuple[str, ...]:
    """A match's fields as sent back, after its rule's index in the engine's list."""
    from scanner.engine import Match

    return tuple(f.name for f in fields(Match) if f.name != "rule")


def taken(q: queue.SimpleQueue[Any]) -> list[Any]:
    """The next item of ``q`` (waiting for it) and every item already behind it, up to
    an end (None), which ends the list."""
    items = [q.get()]
    while items[-1] is not None and not q.empty():
        items.append(q.get())
    return items


def _send(fd: int, obj: Any, lock: threading.Lock) -> None:
    data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    with lock:
        view = memoryview(HEAD.pack(len(data)) + data)
        while view:
            view = view[os.write(fd, view) :]


def _recv(fh: Any) -> Any:
    """The next message, or None at the end of the pipe (a half message is the end)."""
    head = fh.read(HEAD.size)
    if len(head) < HEAD.size:
        return None
    (n,) = HEAD.unpack(head)
    data = fh.read(n)
    if len(data) < n:
        return None
    return pickle.loads(data)


class Child:
    __slots__ = ("commands", "done", "pid", "results")

    def __init__(self, pid: int, commands: Any, results: Any) -> None:
        self.pid, self.commands, self.results = pid, commands, results
        self.done = False


class Scanners:
    """The parent's side: ``n`` forked children, the pipes to them and what they found."""

    def __init__(self, children: list[Child], rules: list[Rule]) -> None:
        self.children = children
        self.rules = rules
        self.rows: list[tuple[Any, ...]] = []
        self.partial: dict[bytes, bytes] = {}
        self.stats: dict[str, int] = {}
        self.bytes = 0
        self.skipped: list[Any] = [None] * len(children)  # per child, in child order
        self.seq: dict[bytes, int] = {}  # blob -> its place in the log's order
        self.read = [0] * len(children)  # per child: the commit index of its latest blob
        self.lock = threading.Lock()

    @classmethod
    def fork(
        cls,
        history: BlobHistory,
        n: int,
        scan: Callable[[bytes], list[Match]],
        rules: list[Rule],
        stats: Any,
    ) -> Scanners:
        """Fork ``n`` children, each with ``scan`` (the engine, built) and ``history`` (as
        configured). The caller has no other thread."""
        children: list[Child] = []
        parent = os.getpid()
        # Ctrl-C waits while forking: a child must not take it for the parent's (and run
        # the parent's code), nor the parent lose track of a child it just forked.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            for _ in range(n):
                cmd_r, cmd_w = os.pipe()
                res_r, res_w = os.pipe()
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the child's coverage is not collected
                    try:
                        _die_with(parent)
                        signal.signal(signal.SIGINT, signal.SIG_DFL)  # the parent says it
                        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
                        _child(history, scan, rules, stats, cmd_r, res_w)
                    finally:
                        os._exit(1)
                os.close(cmd_r)
                os.close(res_w)
                children.append(
                    Child(pid, os.fdopen(cmd_w, "wb", buffering=65536), os.fdopen(res_r, "rb"))
                )
        except BaseException:
            cls(children, rules).kill()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        return cls(children, rules)

    # --- to the children --------------------------------------------------------------

    def dispatch(self, wanted: queue.SimpleQueue[Any]) -> None:
        """Each blob the log names to the child of its path; the end to all of them."""
        children = self.children
        # Each path's versions go to one child, in order (each is compared with the one
        # before it); paths are spread so each child gets as many versions.
        owner: dict[bytes, int] = {}
        assigned = [0] * len(children)
        try:
            while True:
                items = taken(wanted)
                for i in items:
                    if i is not None:
                        blob, path, index = i
                        k = owner.get(path)
                        if k is None:  # a new path: to the child given the fewest versions
                            k = owner[path] = assigned.index(min(assigned))
                        assigned[k] += 1
                        self.seq[blob] = len(self.seq)
                        children[k].commands.write(b"%s %d %s\n" % (blob, index, path))
                end = items[-1] is None
                for child in children:
                    if end:
                        child.commands.write(END)  # (a pipe that just ends: the parent died)
                    child.commands.flush()
                if end:
                    return
        except (BrokenPipeError, ValueError, OSError):
            pass  # a child that ended: its reader says why
        finally:
            for child in children:
                with contextlib.suppress(BrokenPipeError, ValueError, OSError):
                    child.commands.close()

    # --- from the children ------------------------------------------------------------

    def collect(self, i: int, progress: Callable[[int], None] | None) -> None:
        """What child ``i`` sends, to its end; a child that ends without ``done`` fails."""
        child = self.children[i]
        while True:
            msg = _recv(child.results)
            if msg is None:
                break
            kind = msg[0]
            if kind == "found":
                with self.lock:
                    self.rows.extend(msg[1])
            elif kind == "progress":
                self.read[i] = msg[1]
                if progress is not None:
                    progress(min(self.read))
            elif kind == "done":
                _, partial, stats, scanned, skipped = msg
                with self.lock:
                    self.partial.update(partial)
                    for name, value in stats.items():
                        self.stats[name] = self.stats.get(name, 0) + value
                    self.bytes += scanned
                    self.skipped[i] = skipped
                child.done = True
            elif kind == "error":
                _, git, text = msg
                raise GitError(text) if git else RuntimeError(f"a scanning process: {text}")
        if not child.done:
            raise GitError(
                "a scanning process ended before its share of the history was read "
                "(the history was not read to its end)"
            )

    def matches(self) -> list[tuple[Match, tuple[bytes, str, int, int, bytes | None]]]:
        """What the children found: (match, where in which blob)."""
        from scanner.engine import Match

        names = match_fields()
        k = 1 + len(names)
        out = []
        for row in self.rows:
            rule, values, spot = row[0], row[1:k], row[k:]
            m = Match(self.rules[rule], **dict(zip(names, values, strict=True)))
            out.append((m, spot))
        # In the log's order of their blobs, as one process scans them, whatever the
        # children's pace (a blob's matches come from one child, in its order: kept).
        seq = self.seq
        out.sort(key=lambda x: seq.get(x[1][0], -1))
        return out

    # --- the end ----------------------------------------------------------------------

    def stop(self) -> None:
        """SIGKILL every child not yet waited for."""
        for child in self.children:
            if child.pid > 0:  # (0 once waited for: kill(0) would be our own group)
                with contextlib.suppress(OSError):
                    os.kill(child.pid, signal.SIGKILL)

    def kill(self) -> None:
        self.stop()
        self.wait()

    def wait(self) -> None:
        for child in self.children:
            if child.pid:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(child.pid, 0)
                child.pid = 0
            for fh in (child.commands, child.results):
                with contextlib.suppress(OSError):
                    fh.close()


def _die_with(parent: int) -> None:  # pragma: no cover - runs in the forked child
    """End this child when ``parent`` ends, however it ends (SIGKILL included): Linux's
    parent-death signal; elsewhere the scan loop's own check (``os.getppid``)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before that was set
        os._exit(3)


def _child(
    history: BlobHistory,
    scan: Callable[[bytes], list[Match]],
    rules: list[Rule],
    stats: Any,
    cmd_r: int,
    res_w: int,
) -> NoReturn:  # pragma: no cover - runs in the forked child
    """A child's whole life: read the blobs the parent names, scan them, say what was
    found; ``os._exit`` always (the parent's cleanup, buffers and handlers are its own)."""
    code = 0
    lock = threading.Lock()
    try:
        devnull = os.open(os.devnull, os.O_RDWR)  # the caller's terminal or pipe: not ours
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        keep = sorted((cmd_r, res_w))
        os.closerange(3, keep[0])
        os.closerange(keep[0] + 1, keep[1])
        os.closerange(keep[1] + 1, 1 << 20)
        before = {f.name: getattr(stats, f.name) for f in fields(stats)}
        scanned = _child_scan(history, scan, rules, cmd_r, res_w, lock)
        after = {f.name: getattr(stats, f.name) - before[f.name] for f in fields(stats)}
        _send(res_w, ("done", history._partial, after, scanned, history.skipped), lock)
    except BaseException as exc:
        code = 1
        with contextlib.suppress(BaseException):
            _send(res_w, ("error", isinstance(exc, GitError), str(exc) or repr(exc)), lock)
    os._exit(code)


def _child_scan(
    history: BlobHistory,
    scan: Callable[[bytes], list[Match]],
    rules: list[Rule],
    cmd_r: int,
    res_w: int,
    lock: threading.Lock,
) -> int:  # pragma: no cover - runs in the forked child
    """Read the named blobs through a ``git cat-file`` of this child's, scan each batch;
    the number of bytes scanned."""
    index_of = {id(r): i for i, r in enumerate(rules)}
    cat = history._cat_file()
    asked: queue.SimpleQueue[tuple[bytes, bytes, int] | None] = queue.SimpleQueue()
    work: queue.Queue[Any] = queue.Queue(maxsize=4)
    failures: list[BaseException] = []

    ids: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    ended = threading.Event()

    def take() -> None:
        """The parent's commands, all taken as they come (a child behind never holds up
        the parent's dispatch to the others)."""
        rest = b""
        try:
            while chunk := os.read(cmd_r, 1 << 16):
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                batch = []
                for line in lines:
                    if line + b"\n" == END:
                        ended.set()
                        continue
                    blob, index, path = line.split(b" ", 2)
                    asked.put((blob, path, int(index)))
                    batch.append(blob + b"\n")
                if batch:
                    ids.put(b"".join(batch))
            if not ended.is_set():  # the parent died (SIGKILL, SIGTERM): stop now
                os._exit(3)
        finally:
            asked.put(None)
            ids.put(None)

    def ask() -> None:
        """Blob ids to ``git cat-file``, as many as are waiting at once."""
        try:
            end = False
            while not end:
                chunk = taken(ids)
                end = chunk[-1] is None
                cat.stdin.write(b"".join(c for c in chunk if c is not None))
                cat.stdin.flush()
        finally:
            with contextlib.suppress(BrokenPipeError, OSError):
                cat.stdin.close()

    def read() -> None:
        try:
            history._read(cat, asked, work)
        finally:
            work.put(None)

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                failures.append(exc)
                with contextlib.suppress(OSError):
                    cat.kill()

        return run

    def progress(done: int, _total: int) -> None:
        _send(res_w, ("progress", done), lock)

    history.progress = progress
    history._total = 0
    threads = [threading.Thread(target=guarded(f), daemon=True) for f in (take, ask, read)]
    for t in threads:
        t.start()
    names = match_fields()
    scanned = 0
    parent = os.getppid()
    while (batch := work.get()) is not None:
        if os.getppid() != parent:  # the parent died (where there is no death signal)
            os._exit(3)
        if failures:
            continue
        scanned += len(batch.data)
        rows = []
        for m in scan(batch.data):
            spot = batch.spot(m.start)
            if spot is not None:
                values = tuple(getattr(m, f) for f in names)
                rows.append((index_of[id(m.rule)], *values, *spot))
        if rows:
            _send(res_w, ("found", rows), lock)
    for t in threads:
        t.join()
    cat.wait()
    if failures:
        raise failures[0]
    return scanned
