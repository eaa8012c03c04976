"""Expand example templates into concrete, freshly random test strings.

Rule examples and tests never store a string that looks like a real key: they
store templates such as ``mg_live_{b64url:32}`` or ``ghp_{base62:30}{checksum}``
and expand them at run time. Scanning this repository therefore finds nothing.

Placeholders:
    {b64url:N} {b64:N} {base62:N} {hex:N} {HEX:N} {upper:N} {upper32:N}
    {lower:N} {digits:N} {alnum_lower:N}   N random characters of that alphabet
    {bech32:N} {BECH32:N} {alnum_upper:N}
    {checksum}      the rule's checksum over what was generated so far
    {badchecksum}   the same, with one character changed (a near miss)
    {jwt} {jwt_expired}   a signed-looking JWT whose exp is in the future/past
    {uuid}          a random UUID (version 4)
    {pypi_macaroon} a PyPI token body: base64url of a v2 macaroon located at pypi.org
    {b64json}       base64url (unpadded) of a small JSON object with random values
    {basic_auth}    base64 of "user:password", both random
    {b64digits:N}   base64 (unpadded) of N random digits (a Discord bot token's user id)
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import string
import time
import uuid

import regex

from scanner.checksums import SCHEMES

ALPHABETS = {
    "b64url": string.ascii_letters + string.digits + "_-",
    "b64": string.ascii_letters + string.digits + "+/",
    "base62": string.digits + string.ascii_uppercase + string.ascii_lowercase,
    "hex": "0123456789abcdef",
    "HEX": "0123456789ABCDEF",
    "upper": string.ascii_uppercase,
    "upper32": string.ascii_uppercase + "234567",
    "lower": string.ascii_lowercase,
    "digits": string.digits,
    "alnum_lower": string.ascii_lowercase + string.digits,
    "alnum_upper": string.ascii_uppercase + string.digits,
    "bech32": "qpzry9x8gf2tvdw0s3jn54khce6mua7l",
    "BECH32": "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L",
}
FUNCTIONS = (
    "checksum",
    "badchecksum",
    "jwt_expired",
    "jwt",
    "uuid",
    "pypi_macaroon",
    "b64json",
    "basic_auth",
    "b64digits",
)

PLACEHOLDER = regex.compile(
    r"\{(" + "|".join(ALPHABETS) + "|" + "|".join(FUNCTIONS) + r")(?::(\d+))?\}"
)


def random_chars(alphabet: str, n: int) -> str:
    """Random characters that are not all alike (a real key never is): as varied as a
    typical draw, so an example never fails a rule's entropy floor by bad luck."""
    floor = 0.85 * math.log2(max(2, min(n, len(alphabet))))
    while True:
        s = "".join(secrets.choice(alphabet) for _ in range(n))
        if n < 4:
            return s
        if len(set(s)) > min(n // 4, len(alphabet) // 2) and _entropy(s) >= floor:
            return s


def _entropy(s: str) -> float:
    counts = [s.count(c) for c in set(s)]
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(exp: int, claims: dict[str, object] | None = None) -> str:
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = {"sub": "user_" + random_chars(ALPHABETS["digits"], 6), "iat": exp - 7200, "exp": exp}
    body.update(claims or {})
    payload = _b64url(json.dumps(body).encode())
    return f"{header}.{payload}.{_b64url(secrets.token_bytes(64))}"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(kind: int, data: bytes) -> bytes:
    return _varint(kind) + _varint(len(data)) + data


def make_pypi_macaroon() -> str:
    """A v2 macaroon as PyPI mints them: location pypi.org, a JSON identifier, one
    caveat, a 32-byte signature; base64url without padding (the part after pypi-)."""
    ident = json.dumps({"version": 1, "id": str(uuid.uuid4())}).encode()
    caveat = json.dumps({"version": 1, "permissions": "user"}).encode()
    raw = (
        b"\x02"
        + _field(1, b"pypi.org")
        + _field(2, ident)
        + b"\x00"
        + _field(2, caveat)
        + b"\x00"
        + b"\x00"
        + _field(6, secrets.token_bytes(32))
    )
    return _b64url(raw)


def make_b64json() -> str:
    """Compact JSON whose first key is "k" (so it starts eyJrIjoi, as Grafana keys do)."""
    body = {
        "k": random_chars(ALPHABETS["base62"], 24),
        "n": random_chars(ALPHABETS["lower"], 8),
        "iat": int(time.time()),
        "url": "https://" + random_chars(ALPHABETS["lower"], 8) + ".example.net",
    }
    return _b64url(json.dumps(body, separators=(",", ":")).encode())


def make_basic_auth() -> str:
    pair = random_chars(ALPHABETS["lower"], 8) + ":" + random_chars(ALPHABETS["base62"], 16)
    return base64.b64encode(pair.encode()).decode()


def expand(template: str, checksum: str | None = None) -> str:
    """Expand one template. ``checksum`` names the scheme for {checksum}."""
    out: list[str] = []
    pos = 0
    for m in PLACEHOLDER.finditer(template):
        out.append(template[pos : m.start()])
        pos = m.end()
        kind, n = m.group(1), int(m.group(2) or 0)
        if kind in ALPHABETS:
            out.append(random_chars(ALPHABETS[kind], n))
        elif kind in ("checksum", "badchecksum"):
            if checksum is None:
                raise ValueError(
                    f"template {template!r} uses {{{kind}}} but the rule has no checksum"
                )
            value = SCHEMES[checksum][1]("".join(out))
            if kind == "badchecksum":
                first = value[0]
                value = ("1" if first != "1" else "2") + value[1:]
            out.append(value)
        elif kind == "jwt":
            out.append(make_jwt(int(time.time()) + 86400))
        elif kind == "jwt_expired":
            out.append(make_jwt(int(time.time()) - 86400))
        elif kind == "uuid":
            out.append(str(uuid.uuid4()))
        elif kind == "pypi_macaroon":
            out.append(make_pypi_macaroon())
        elif kind == "b64json":
            out.append(make_b64json())
        elif kind == "basic_auth":
            out.append(make_basic_auth())
        else:  # b64digits
            digits = str(secrets.randbelow(9) + 1) + random_chars(string.digits, max(1, n - 1))
            out.append(_b64url(digits.encode()))
    out.append(template[pos:])
    return "".join(out)
