"""Stage-2 filters that confirm a candidate: entropy, JWT structure, placeholders."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from dataclasses import dataclass


def shannon_entropy(data: bytes) -> float:
    """Bits per character."""
    if not data:
        return 0.0
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())


PLACEHOLDER = re.compile(rb"(?i)example|x{8}|your_|<|(.)\1{9}")


def looks_like_placeholder(secret: bytes) -> bool:
    """Documentation examples and fillers that no issuer would hand out
    (EXAMPLE, xxxxxxxx, YOUR_..., <...>, or one character ten times in a row)."""
    return PLACEHOLDER.search(secret) is not None


@dataclass(frozen=True)
class JwtInfo:
    expires_at: int | None
    issuer: str | None


def _b64url_json(part: bytes) -> object:
    pad = b"=" * (-len(part) % 4)
    return json.loads(base64.urlsafe_b64decode(part + pad))


def decode_jwt(token: bytes) -> JwtInfo | None:
    """Header and claims decoded offline; None when it is not a JWT at all."""
    parts = token.split(b".")
    if len(parts) != 3:
        return None
    try:
        header = _b64url_json(parts[0])
        claims = _b64url_json(parts[1])
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or "alg" not in header or not isinstance(claims, dict):
        return None
    if str(header.get("alg", "")).lower() == "none":
        return None  # an unsigned token authenticates nothing
    exp = claims.get("exp")
    iss = claims.get("iss")
    return JwtInfo(
        expires_at=int(exp) if isinstance(exp, int | float) else None,
        issuer=str(iss)[:200] if isinstance(iss, str) else None,
    )
