"""Offline checksum schemes that some token formats carry.

Each scheme is ``(verify(token) -> bool, compute(text_so_far) -> str)``: the
engine verifies a candidate; ``scanner.examples`` computes the checksum that
ends a generated example (``{checksum}``) from what was generated before it.

* ``crc32_base62``: GitHub (``ghp_`` and friends) and npm (``npm_``): the last
  six base62 characters are the CRC32 of the 30 random characters before them.
* ``gitlab_routable``: GitLab routable tokens
  ``<prefix><base64url payload>.<2-char version>.<2-char base36 payload
  length><7-char base36 CRC32>``; the CRC32 covers everything before it, the
  length field is the payload's length (GitLab's ``RoutableToken`` generator).
  A legacy token (no ``.``) carries no checksum and verifies trivially.
* ``crc32_le_hex``: Grafana service-account tokens ``glsa_<32>_<8 hex>``: the
  CRC32 of ``glsa_<32>``, its four bytes little-endian, in hex.
* ``crc32_hex``: Cloudflare's scannable credentials ``cf{k,ut,at}_<40><8 hex>``:
  the CRC32 of the 40 random characters, in hex.
* ``bech32``: age secret keys ``AGE-SECRET-KEY-1…``: a Bech32 string (BIP 173)
  whose six-character checksum covers the human-readable part and the data.

Every ``verify`` in ``SCHEMES`` is total: any string (any length, any character,
non-Latin-1 included) gets True or False, never an exception. ``compute`` is for
generating examples and may raise ``ValueError`` on text it cannot complete.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def base62(n: int, width: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(BASE62[r])
    return "".join(reversed(out)).rjust(width, "0")


def base36(n: int, width: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(BASE36[r])
    return "".join(reversed(out)).rjust(width, "0")


def _crc32(text: str) -> int:
    return zlib.crc32(text.encode("latin-1")) & 0xFFFFFFFF


# --- GitHub / npm ---------------------------------------------------------------


def _crc32_base62_body(token: str) -> tuple[str, str] | None:
    """Split ``prefix_BODY`` into (random part, checksum part)."""
    body = token.rsplit("_", 1)[-1]
    if len(body) < 7:
        return None
    return body[:-6], body[-6:]


def crc32_base62_compute(token_without_checksum: str) -> str:
    """The six checksum characters for ``prefix_RANDOM``."""
    random_part = token_without_checksum.rsplit("_", 1)[-1]
    return base62(_crc32(random_part), 6)


def crc32_base62_verify(token: str) -> bool:
    parts = _crc32_base62_body(token)
    if parts is None:
        return False
    random_part, check = parts
    return base62(_crc32(random_part), 6) == check


# --- GitLab routable tokens ---------------------------------------------------------

_GITLAB_PREFIX = re.compile(r"gl[a-z]{2,6}-(?:t[0-9]_)?")
_GITLAB_TAIL = re.compile(r"gl[a-z]{2,6}-[A-Za-z0-9_.-]*$")


def gitlab_routable_verify(token: str) -> bool:
    if "." not in token:
        return True  # a legacy token: no checksum in the format
    if len(token) < 10:
        return False
    crc, length = token[-7:], token[-9:-7]
    if base36(_crc32(token[:-7]), 7) != crc:
        return False
    head = token.split(".", 1)[0]
    m = _GITLAB_PREFIX.match(head)
    if m is None:
        return False
    # The payload starts after the prefix; a runner token's "t1_" may belong to either.
    candidates = {len(head) - len(m.group(0)), len(head) - len(m.group(0).split("-")[0]) - 1}
    try:
        want = int(length, 36)
    except ValueError:
        return False
    return want in candidates


def gitlab_routable_compute(text: str) -> str:
    """Length field and CRC for a token ending ``<prefix><payload>.[<version>.]``."""
    m = _GITLAB_TAIL.search(text)
    if m is None:
        raise ValueError("no GitLab token prefix before {checksum}")
    token = m.group(0)
    head = token.split(".", 1)[0]
    prefix = _GITLAB_PREFIX.match(head)
    assert prefix is not None
    length = base36(len(head) - len(prefix.group(0)), 2)
    return length + base36(_crc32(token + length), 7)


# --- Grafana, Cloudflare --------------------------------------------------------------


def crc32_le_hex_verify(token: str) -> bool:
    body, _, check = token.rpartition("_")
    return _crc32(body).to_bytes(4, "little").hex() == check.lower()


def crc32_le_hex_compute(text: str) -> str:
    m = re.search(r"[a-z]+_[A-Za-z0-9]+_$", text)
    if m is None:
        raise ValueError("no prefix_random_ before {checksum}")
    return _crc32(m.group(0)[:-1]).to_bytes(4, "little").hex()


def crc32_hex_verify(token: str) -> bool:
    body = token.split("_", 1)[-1]
    if len(body) <= 8:
        return False
    return f"{_crc32(body[:-8]):08x}" == body[-8:].lower()


def crc32_hex_compute(text: str) -> str:
    m = re.search(r"_([A-Za-z0-9]+)$", text)
    if m is None:
        raise ValueError("no prefix_random before {checksum}")
    return f"{_crc32(m.group(1)):08x}"


# --- Bech32 (age) ------------------------------------------------------------------

BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= _GEN[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def bech32_verify(token: str) -> bool:
    text = token.lower()
    hrp, sep, data = text.rpartition("1")
    if not sep or not hrp or len(data) < 6 or any(c not in BECH32 for c in data):
        return False
    return _polymod(_hrp_expand(hrp) + [BECH32.index(c) for c in data]) == 1


def bech32_compute(text: str) -> str:
    """The six checksum characters for a Bech32 string ending ``HRP1DATA`` (any case;
    the checksum comes back in the case of the text before it)."""
    m = re.search(r"[!-~]+$", text)
    if m is None:
        raise ValueError("no bech32 text before {checksum}")
    token = m.group(0)
    hrp, _, data = token.lower().rpartition("1")
    if not hrp or any(c not in BECH32 for c in data):
        raise ValueError(f"not a bech32 string before {{checksum}}: {token!r}")
    values = _hrp_expand(hrp) + [BECH32.index(c) for c in data]
    mod = _polymod([*values, 0, 0, 0, 0, 0, 0]) ^ 1
    out = "".join(BECH32[(mod >> 5 * (5 - i)) & 31] for i in range(6))
    return out.upper() if token.isupper() else out


def total(verify: Callable[[str], bool]) -> Callable[[str], bool]:
    """``verify`` that answers False instead of raising (a token it cannot read does
    not carry a valid checksum)."""

    def checked(token: str) -> bool:
        try:
            return bool(verify(token))
        except Exception:  # hostile input must not stop a scan
            return False

    checked.__name__ = checked.__qualname__ = verify.__name__
    checked.__doc__ = verify.__doc__
    return checked


# name -> (verify(token) -> bool, compute(text_before_checksum) -> checksum)
SCHEMES: dict[str, tuple[Callable[[str], bool], Callable[[str], str]]] = {
    "crc32_base62": (total(crc32_base62_verify), crc32_base62_compute),
    "gitlab_routable": (total(gitlab_routable_verify), gitlab_routable_compute),
    "crc32_le_hex": (total(crc32_le_hex_verify), crc32_le_hex_compute),
    "crc32_hex": (total(crc32_hex_verify), crc32_hex_compute),
    "bech32": (total(bech32_verify), bech32_compute),
}
