"""Offline checksum schemes that some token formats carry.

GitHub (``ghp_`` and friends) and npm (``npm_``) tokens end in six base62
characters: the CRC32 of the 30 random characters before them, base62-encoded
and left-padded with ``0``. Verifying it offline removes almost every false
positive without a network call.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n: int, width: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(BASE62[r])
    return "".join(reversed(out)).rjust(width, "0")


def _crc32_base62_body(token: str) -> tuple[str, str] | None:
    """Split ``prefix_BODY`` into (random part, checksum part)."""
    body = token.rsplit("_", 1)[-1]
    if len(body) < 7:
        return None
    return body[:-6], body[-6:]


def crc32_base62_compute(token_without_checksum: str) -> str:
    """The six checksum characters for ``prefix_RANDOM``."""
    random_part = token_without_checksum.rsplit("_", 1)[-1]
    return base62(zlib.crc32(random_part.encode()) & 0xFFFFFFFF, 6)


def crc32_base62_verify(token: str) -> bool:
    parts = _crc32_base62_body(token)
    if parts is None:
        return False
    random_part, check = parts
    return base62(zlib.crc32(random_part.encode()) & 0xFFFFFFFF, 6) == check


# name -> (verify(token) -> bool, compute(token_without_checksum) -> checksum)
SCHEMES: dict[str, tuple[Callable[[str], bool], Callable[[str], str]]] = {
    "crc32_base62": (crc32_base62_verify, crc32_base62_compute),
}
