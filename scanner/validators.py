"""Stage-2 filters that confirm a candidate: entropy, placeholders, and the
structure a token format carries (JWT, PyPI macaroon, base64 JSON bodies,
``user:password`` pairs), decoded offline. ``run_validator`` is the one entry
the engine calls for a rule's ``validator``.

Every function here is total: whatever bytes a leak holds (a JWT whose ``exp`` is
``NaN`` or ``1e999``, JSON nested a million deep, a varint that never ends), it
answers and never raises. One bad candidate must not stop a scan and lose every
other key in its input. ``run_validator`` also guards the validators it calls:
should one of them raise anyway, the candidate is kept (``Verdict()``), because a
validator that cannot judge a candidate has not shown it is not a key."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import regex


def shannon_entropy(data: bytes | str) -> float:
    """Bits per character."""
    if not data:
        return 0.0
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())


PLACEHOLDER = re.compile(
    rb"(?i)example|x{8}|your_|<|(.)\1{9}|abcdefghijkl|0123456789|123456789012|qwertyuiop"
)


def looks_like_placeholder(secret: bytes) -> bool:
    """Documentation examples and fillers that no issuer would hand out
    (EXAMPLE, xxxxxxxx, YOUR_..., <...>, one character ten times in a row, or a run
    of the alphabet, the digits or the keyboard)."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8", "surrogatepass")
    return PLACEHOLDER.search(secret) is not None


@dataclass(frozen=True)
class JwtInfo:
    expires_at: int | None
    issuer: str | None


# What a JSON number can be as a date: datetime's own range (years 1 to 9999).
MIN_TIMESTAMP = -62_135_596_800
MAX_TIMESTAMP = 253_402_300_799


def _b64url_json(part: bytes) -> object:
    pad = b"=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(part + pad))


def as_timestamp(value: object) -> int | None:
    """A claim's number of seconds as an int, or None for anything that is not a date
    (a string, a bool, ``NaN``, ``1e999``, a year past 9999)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not MIN_TIMESTAMP <= value <= MAX_TIMESTAMP:
        return None
    return int(value)


def decode_jwt(token: bytes) -> JwtInfo | None:
    """Header and claims decoded offline; None when it is not a JWT at all."""
    parts = token.split(b".")
    if len(parts) != 3:
        return None
    try:
        header = _b64url_json(parts[0])
        claims = _b64url_json(parts[1])
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError, MemoryError):
        return None
    if not isinstance(header, dict) or "alg" not in header or not isinstance(claims, dict):
        return None
    alg = header.get("alg")
    if isinstance(alg, str) and alg.lower() == "none":
        return None  # an unsigned token authenticates nothing
    iss = claims.get("iss")
    return JwtInfo(
        # A non-finite or absurd exp is no expiry at all: the token is reported as live.
        expires_at=as_timestamp(claims.get("exp")),
        issuer=iss[:200] if isinstance(iss, str) else None,
    )


@dataclass(frozen=True)
class Verdict:
    """A candidate the validator accepts, with what it learnt from decoding it."""

    expires_at: int | None = None
    entropy: float | None = None


def _jwt(secret: bytes) -> Verdict | None:
    info = decode_jwt(secret)
    return None if info is None else Verdict(info.expires_at)


def _github_jwt(secret: bytes) -> Verdict | None:
    """``ghs_<app id>_<JWT>``: GitHub's stateless installation token (April 2026).
    The JWT is signed by GitHub and opaque to clients; its structure is checked."""
    _, _, rest = secret.partition(b"_")
    app_id, _, jwt = rest.partition(b"_")
    if not app_id.isdigit():
        return None
    return _jwt(jwt)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def parse_macaroon_v2(raw: bytes) -> dict[str, Any]:
    """The binary macaroon format v2 (libmacaroons doc/format.txt): a version byte 2,
    then fields ``<type varint><length varint><bytes>``, EOS (a zero byte) closing
    the header, each caveat and the caveat list, then the 32-byte signature (type 6).
    Raises ValueError on anything else."""
    if not raw or raw[0] != 2:
        raise ValueError("not a v2 macaroon")
    pos = 1

    def section() -> dict[int, bytes]:
        nonlocal pos
        fields: dict[int, bytes] = {}
        while True:
            kind, pos = _varint(raw, pos)
            if kind == 0:
                return fields
            size, pos = _varint(raw, pos)
            if kind not in (1, 2, 4, 6) or kind in fields or pos + size > len(raw):
                raise ValueError("bad field")
            fields[kind] = raw[pos : pos + size]
            pos += size
            if kind == 6:
                return fields

    header = section()
    if 2 not in header or 6 in header:
        raise ValueError("no identifier")
    caveats = []
    while True:
        if pos >= len(raw):
            raise ValueError("truncated")
        if raw[pos] == 0:  # end of the caveat list
            pos += 1
            break
        caveat = section()
        if 2 not in caveat or 6 in caveat:
            raise ValueError("bad caveat")
        caveats.append(caveat)
    tail = section()
    if set(tail) != {6} or len(tail[6]) != 32 or pos != len(raw):
        raise ValueError("bad signature")
    return {"location": header.get(1, b""), "identifier": header[2], "caveats": caveats}


def _pypi_macaroon(secret: bytes) -> Verdict | None:
    """``pypi-`` + base64url (unpadded) of a v2 macaroon whose location is PyPI's."""
    body = secret.split(b"-", 1)[1]
    try:
        raw = base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4))
        mac = parse_macaroon_v2(raw)
    except (binascii.Error, ValueError, IndexError):
        return None
    if mac["location"] not in (b"pypi.org", b"test.pypi.org"):
        return None
    return Verdict()


def _b64_any(text: bytes) -> bytes:
    text = text.rstrip(b"=")
    pad = b"=" * (-len(text) % 4)
    alt = b"-_" if (b"-" in text or b"_" in text) else b"+/"
    return base64.b64decode(text + pad, altchars=alt, validate=True)


def _base64_json(secret: bytes) -> Verdict | None:
    """A token whose body is base64 of a JSON object (Sentry org tokens, Grafana
    Cloud tokens, 1Password service accounts, Mapbox secret tokens)."""
    for part in re.split(rb"[._]", secret):
        if len(part) < 16:
            continue
        try:
            obj = json.loads(_b64_any(part))
        except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError, MemoryError):
            continue
        if isinstance(obj, dict) and obj:
            return Verdict()
    return None


def _basic_auth(secret: bytes) -> Verdict | None:
    """base64 of ``user:password`` with printable text on both sides."""
    try:
        raw = _b64_any(secret)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or len(password) < 4 or not text.isprintable():
        return None
    if looks_like_placeholder(password.encode()):
        return None
    return Verdict()


def _discord_bot(secret: bytes) -> Verdict | None:
    """A Discord bot token's first part is base64 of the bot's numeric user id."""
    first = secret.split(b".", 1)[0]
    try:
        user_id = _b64_any(first)
    except (binascii.Error, ValueError):
        return None
    return Verdict() if 15 <= len(user_id) <= 21 and user_id.isdigit() else None


# Passwords no one would leak on purpose: a development default, or the user's name.
DEV_PASSWORDS = frozenset(
    b"postgres mysql mariadb root admin administrator password passwd pass secret guest "
    b"test tests testing example changeme change_me redis rabbitmq mongo mongodb dev "
    b"development local localhost default user username pw pwd qwerty letmein toor "
    b"sa docker demo sample dummy masterkey".split()
)


def _literal_value(secret: bytes) -> Verdict | None:
    """A literal value, not a reference or a template (``${X}``, ``{{x}}``, ``%(x)s``,
    ``$X``, ``<password>``) and not a documentation filler."""
    from scanner.generic import is_placeholder, is_reference

    value = secret.decode("utf-8", "replace")
    if is_reference(value) or is_placeholder(value, "") or value.startswith("$"):
        return None
    return Verdict()


def _url_password(secret: bytes, m: regex.Match[bytes]) -> Verdict | None:
    """The password of ``scheme://user:password@host`` (or a .netrc entry): a literal,
    longer than 3 characters, not a development default and not the user's name."""
    from scanner.generic import unleet

    user = (m.groupdict().get("user") or b"").lower()
    low = secret.lower()
    plain = unleet(secret.decode("latin-1")).encode("latin-1")
    if len(secret) < 4 or low in DEV_PASSWORDS or plain in DEV_PASSWORDS or low == user:
        return None
    if re.fullmatch(rb"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+", secret):
        return None  # SAS_KEY, DB_PASSWORD: a template's name for the value
    return _literal_value(secret)


def _generic(secret: bytes, data: bytes, m: regex.Match[bytes]) -> Verdict | None:
    from scanner.generic import judge

    verdict = judge(secret, data, m, why=False)  # whether a filter rejects it, not which
    return None if verdict.rejected_by else Verdict(entropy=verdict.entropy)


def run_validator(name: str, secret: bytes, data: bytes, m: regex.Match[bytes]) -> Verdict | None:
    """The rule's validator on a candidate: a Verdict to keep it, None to drop it.
    Total: a validator that raises keeps the candidate (it could not show it is not a
    key), so one odd token never stops a scan or hides the keys beside it."""
    try:
        if name == "generic":
            return _generic(secret, data, m)
        if name == "url_password":
            return _url_password(secret, m)
        return _SIMPLE[name](secret)
    except Exception:  # a validator's bug must not cost the scan
        return Verdict()


_SIMPLE = {
    "jwt": _jwt,
    "github_jwt": _github_jwt,
    "pypi_macaroon": _pypi_macaroon,
    "base64_json": _base64_json,
    "basic_auth": _basic_auth,
    "discord_bot": _discord_bot,
    "literal_value": _literal_value,
}
