"""Expand example templates into concrete, freshly random test strings.

Rule examples and tests never store a string that looks like a real key: they
store templates such as ``mg_live_{b64url:32}`` or ``ghp_{base62:30}{checksum}``
and expand them at run time. Scanning this repository therefore finds nothing.

Placeholders:
    {b64url:N} {b64:N} {base62:N} {hex:N} {HEX:N} {upper:N} {upper32:N}
    {lower:N} {digits:N} {alnum_lower:N}   N random characters of that alphabet
    {checksum}      the rule's checksum over what was generated so far
    {badchecksum}   the same, with one character changed (a near miss)
    {jwt} {jwt_expired}   a signed-looking JWT whose exp is in the future/past
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import time

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
}

PLACEHOLDER = regex.compile(
    r"\{(" + "|".join(ALPHABETS) + r"|checksum|badchecksum|jwt|jwt_expired)(?::(\d+))?\}"
)


def random_chars(alphabet: str, n: int) -> str:
    """Random characters that are not all alike (a real key never is)."""
    while True:
        s = "".join(secrets.choice(alphabet) for _ in range(n))
        if n < 4 or len(set(s)) > min(n // 4, len(alphabet) // 2):
            return s


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(exp: int, claims: dict[str, object] | None = None) -> str:
    header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = {"sub": "user_" + random_chars(ALPHABETS["digits"], 6), "iat": exp - 7200, "exp": exp}
    body.update(claims or {})
    payload = _b64url(json.dumps(body).encode())
    return f"{header}.{payload}.{_b64url(secrets.token_bytes(64))}"


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
        else:
            out.append(make_jwt(int(time.time()) - 86400))
    out.append(template[pos:])
    return "".join(out)
