"""Sources turn places (files, stdin, git history, remote repositories) into
fragments: bytes plus a way to say where an offset in them came from. Sources
never decide what is a secret."""

from __future__ import annotations

from typing import Any, Protocol

from scanner.findings import Location


class Fragment(Protocol):
    data: bytes

    def locate(self, offset: int) -> tuple[Location, Any] | None:
        """Where ``offset`` came from and an order key (lower = earlier), or None
        when the bytes there are not content to report (e.g. a removed line)."""
        ...

    def clean_secret(self, secret: bytes) -> bytes:
        """The secret as it stands in the file (a patch prefixes each line with '+')."""
        ...


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
