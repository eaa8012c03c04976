"""Untrusted text made safe to show: no control characters, always valid UTF-8.

Author names, commit subjects, file names and a repository's own rule
descriptions are chosen by whoever wrote the repository. Before any of them
reaches a terminal they pass through ``printable``: C0/C1 control characters
(ESC included), DEL and the bidirectional overrides that reorder what a reader
sees ("Trojan Source") are written as visible escapes (``\\x1b``, ``\\u202e``).
Rich markup is never interpreted: text reports build ``rich.text.Text`` objects,
never markup strings.

Text that came from bytes which were not UTF-8 (a file name on a Linux file
system, decoded with ``surrogateescape``) is made valid with ``valid_utf8``:
each undecodable byte becomes ``\\xNN``, so a JSON report or a file written
with ``--output`` is always well-formed.
"""

from __future__ import annotations

from typing import Any

# Unicode characters that reorder or hide text without being control characters.
_INVISIBLE = {
    0x200B,  # zero width space
    0x200E,  # left-to-right mark
    0x200F,  # right-to-left mark
    *range(0x202A, 0x202F),  # LRE RLE PDF LRO RLO
    *range(0x2066, 0x206A),  # LRI RLI FSI PDI
    0xFEFF,  # zero width no-break space
}


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def valid_utf8(text: str) -> str:
    """``text`` with any lone surrogate (an undecodable byte) written as ``\\xNN``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def printable(text: str | None, keep_newlines: bool = False) -> str:
    """One line of untrusted text, safe for a terminal: controls escaped, valid UTF-8."""
    if text is None:
        return ""
    text = valid_utf8(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if keep_newlines and ch == "\n":
            out.append(ch)
        elif code < 0x20 or 0x7F <= code < 0xA0 or code in _INVISIBLE or 0xD800 <= code <= 0xDFFF:
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def json_safe(value: Any) -> Any:
    """A JSON-ready structure whose strings are all valid UTF-8 (controls are left
    to the JSON encoder, which escapes them)."""
    if isinstance(value, str):
        return valid_utf8(value)
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
