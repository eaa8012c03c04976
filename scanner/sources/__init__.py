"""Sources turn places (files, stdin, git history, remote repositories, GitHub
pushes and gists) into fragments: bytes plus a way to say where an offset in
them came from. Sources never decide what is a secret.

Every source has one shape (``Source``): it *feeds* its fragments to a sink,
which may be called from several threads (git history runs parallel
pipelines), and says what it skipped. ``scanner.scan.scan_source`` is the one
entry point that turns any source into findings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from scanner.findings import Location

if TYPE_CHECKING:
    from scanner.sources.files import SkipCounts


class Fragment(Protocol):
    data: bytes

    def locate(self, offset: int) -> tuple[Location, Any] | None:
        """Where ``offset`` came from and an order key (lower = earlier), or None
        when the bytes there are not content to report (e.g. a removed line)."""
        ...

    def clean_secret(self, secret: bytes) -> bytes:
        """The secret as it stands in the file (a patch prefixes each line with '+')."""
        ...

    # Optional (``scanner.sources.git_blobs.BlobBatch``): ``ready()`` blocks until the
    # fragment can say where its bytes are; ``locate_all(offset)`` gives every place
    # (one file version written at several paths); ``per_path = True`` asks the
    # findings to keep, per secret and path, only the earliest place.


Sink = Callable[[Fragment], None]


class Source(Protocol):
    target: str  # what a person calls it: a path, a URL, "owner/repo", "gist:ID"
    mode: str  # "git" | "files" | "stdin" | "push" | "gist"
    skipped: SkipCounts  # what was passed over, counted and named
    units: int  # commits, files or documents read (the summary's count)

    def feed(self, sink: Sink) -> None:
        """Give every fragment to ``sink`` (possibly from several threads)."""
        ...


class Relocated:
    """A fragment whose locations are rewritten (e.g. to the URL a person can open)."""

    __slots__ = ("_inner", "_move", "data")

    def __init__(self, inner: Fragment, move: Callable[[Location], Location]) -> None:
        self._inner = inner
        self._move = move
        self.data = inner.data

    def locate(self, offset: int) -> tuple[Location, Any] | None:
        found = self._inner.locate(offset)
        if found is None:
            return None
        loc, order = found
        return self._move(loc), order

    def clean_secret(self, secret: bytes) -> bytes:
        return self._inner.clean_secret(secret)


class LineCounter:
    """Offset -> 1-based line number, cheap for increasing offsets."""

    __slots__ = ("data", "first_line", "line", "pos")

    def __init__(self, data: bytes, first_line: int = 1) -> None:
        self.data = data
        self.first_line = first_line
        self.pos = 0
        self.line = first_line

    def line_of(self, offset: int) -> int:
        if offset < self.pos:
            self.pos, self.line = 0, self.first_line
        self.line += self.data.count(b"\n", self.pos, offset)
        self.pos = offset
        return self.line
