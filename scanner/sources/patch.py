"""A patch on standard input (``git show``, ``git log -p``, ``git diff``,
``git format-patch``): findings keep the commit, file and line the patch names.

Every line is scanned, as for any other stdin, so nothing is dropped; only the
location is read from the patch: an added or context line gets its new-file
path and line number, a removed line its old-file path and line number, a line
outside any file diff its line number on stdin. The commit, author, date and
subject come from the nearest commit header above it.
"""

from __future__ import annotations

import re
from typing import Any

from scanner.findings import Location

# A hunk header; a merge's combined diff (``git log -p --cc``) has one column per parent.
HUNK = re.compile(rb"@@(@*) -(\d+)(?:,\d+)? (?:-\d+(?:,\d+)? )*\+(\d+)(?:,\d+)? @@")
HUNK_LINE = re.compile(rb"(?m)^@@@* -\d+(?:,\d+)? (?:-\d+(?:,\d+)? )*\+\d+(?:,\d+)? @@")
COMMIT = re.compile(rb"(?m)^(?:commit|From) ([0-9a-f]{40}|[0-9a-f]{64})\b")
SNIFF = 1 << 20


def looks_like_patch(data: bytes) -> bool:
    """A unified diff: a hunk header and a ``+++`` file header near the start."""
    head = data[:SNIFF]
    return HUNK_LINE.search(head) is not None and re.search(rb"(?m)^\+\+\+ ", head) is not None


def _path(raw: bytes) -> str | None:
    from scanner.sources.git_history import unquote_path

    raw = raw.rstrip(b"\r").split(b"\t", 1)[0]
    if raw == b"/dev/null":
        return None
    path = unquote_path(raw)
    return path[2:] if path[:2] in ("a/", "b/") else path


class PatchFragment:
    """Standard input that holds a patch."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def clean_secret(self, secret: bytes) -> bytes:
        return secret

    def _line_at(self, pos: int) -> bytes:
        end = self.data.find(b"\n", pos)
        return self.data[pos : end if end != -1 else len(self.data)]

    def _commit(self, before: int) -> tuple[int, dict[str, str | None]]:
        """Start of the nearest commit header above ``before`` and what it says."""
        data, start, pos = self.data, -1, before
        while pos > 0:
            c = max(data.rfind(b"\ncommit ", 0, pos), data.rfind(b"\nFrom ", 0, pos))
            if c == -1:
                break
            if COMMIT.match(data, c + 1):
                start = c + 1
                break
            pos = c
        if start == -1 and COMMIT.match(data, 0) and before > 0:
            start = 0
        if start == -1:
            return -1, {}
        info: dict[str, str | None] = {"commit": self._line_at(start).split()[1].decode()}
        pos = self.data.find(b"\n", start) + 1
        subject_next = False
        while 0 < pos < before:
            line = self._line_at(pos).decode("utf-8", "backslashreplace").rstrip("\r")
            if line.startswith(("diff --git ", "--- ", "commit ")):
                break
            if line.startswith(("Author: ", "From: ")):
                who = line.split(": ", 1)[1]
                name, _, email = who.partition(" <")
                info["author"], info["email"] = name.strip(), email.rstrip(">") or None
            elif line.startswith(("Date: ", "AuthorDate: ")):
                info["date"] = line.split(":", 1)[1].strip()
            elif line.startswith("Subject: "):
                info["subject"] = re.sub(r"^\[PATCH[^\]]*\]\s*", "", line[9:])
            elif line == "" and "subject" not in info:
                subject_next = True
            elif subject_next and line.strip():
                info["subject"] = line.strip()
                subject_next = False
            pos = self.data.find(b"\n", pos) + 1
        return start, info

    def locate(self, offset: int) -> tuple[Location, Any]:
        data = self.data
        ls = data.rfind(b"\n", 0, offset) + 1
        column = len(data[ls:offset].decode("utf-8", "replace")) + 1
        commit_at, info = self._commit(ls)
        path = None
        line = None
        diff = max(data.rfind(b"\ndiff --git ", 0, ls), data.rfind(b"\ndiff --cc ", 0, ls))
        if diff == -1:  # a plain unified diff: "--- old" right above "+++ new"
            pos = ls
            while (diff := data.rfind(b"\n--- ", 0, pos)) != -1:
                if data.startswith(b"+++ ", data.find(b"\n", diff + 1) + 1):
                    break
                pos = diff
        hunk = data.rfind(b"\n@@", 0, ls)
        if diff != -1 and diff > commit_at:
            old_path = new_path = None
            plus = data.find(b"\n+++ ", diff, ls)
            minus = data.find(b"\n--- ", diff, ls) if not data.startswith(b"\n--- ", diff) else diff
            if plus != -1:
                new_path = _path(self._line_at(plus + 5))
            if minus != -1:
                old_path = _path(self._line_at(minus + 5))
            m = HUNK.match(data, hunk + 1) if hunk > diff else None
            if m is not None:
                n = len(m.group(1)) + 1  # prefix columns: one per parent
                old, new = int(m.group(2)), int(m.group(3))
                pos = data.find(b"\n", hunk + 1) + 1
                while 0 < pos < ls:
                    c = data[pos : pos + n]
                    first = c[:1]
                    if b"-" in c:  # in a parent, not in the result
                        old += first == b"-"
                    elif first == b"+" or (n > 1 and b"+" in c):  # in the result
                        new += 1
                        old += first == b" "  # also in the first parent
                    elif first in (b" ", b"\n"):  # context
                        old += 1
                        new += 1
                    pos = data.find(b"\n", pos) + 1
                prefix = data[ls : ls + n]
                kind = b"-" if b"-" in prefix else b"+" if b"+" in prefix else prefix[:1]
                if kind == b"-":
                    path, line = old_path or new_path, old
                elif kind in (b"+", b" "):
                    path, line = new_path or old_path, new
                else:
                    path = new_path or old_path
            else:
                path = new_path or old_path
        if line is None and path is None:
            line = data.count(b"\n", 0, ls) + 1
        loc = Location(
            kind="stdin",
            path=path,
            line=line,
            commit=info.get("commit"),
            author=info.get("author"),
            email=info.get("email"),
            date=info.get("date"),
            subject=info.get("subject"),
            column=column,
        )
        return loc, (-commit_at, offset)


class StdinPatchSource:
    """Standard input: a patch keeps its places (``PatchFragment``); anything else is
    one buffer with line numbers."""

    mode = "stdin"
    target = "<stdin>"

    def __init__(self, stream: Any, archive_depth: int | None = None) -> None:
        from scanner.sources.files import SkipCounts

        self.stream = stream
        self.archive_depth = archive_depth
        self.skipped = SkipCounts()
        self.units = 0
        self.errors: list[str] = []
        self.scope = "stdin"

    def feed(self, sink: Any) -> None:
        from scanner.archives import Limits
        from scanner.sources.files import file_fragments

        data = self.stream.read()
        self.units = 1
        if looks_like_patch(data):
            self.scope = "stdin (a patch)"
            sink(PatchFragment(data))
        else:  # a file, an archive (members "stdin!name"), UTF-16 text: as files are
            depth = self.archive_depth
            limits = Limits() if depth is None else Limits(max_depth=depth)
            for fragment in file_fragments(
                data, "stdin", None, self.skipped, include_binary=True, limits=limits
            ):
                sink(fragment)
            self.errors.extend(self.skipped.errors)
