"""GitHub secret scanning partner alerts: verify the signature before reading.

GitHub signs the raw request body with ECDSA on NIST P-256 over SHA-256 and
sends ``Github-Public-Key-Identifier`` (which published key) and
``Github-Public-Key-Signature`` (base64 of the DER signature). The public keys
are published at ``GET /meta/public_keys/secret_scanning`` as
``{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}``.

``KeyRing`` caches the published keys. An identifier it does not know triggers
a refetch, at most once per ``min_refetch`` seconds (default 60) whatever the
number of requests, so a flood of made-up identifiers costs GitHub one request
a minute. The whole set is also refreshed when older than ``max_age`` (a key
GitHub withdraws stops being accepted).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_ID_HEADER = "github-public-key-identifier"
SIGNATURE_HEADER = "github-public-key-signature"
MAX_HEADER = 512  # a key identifier is 64 hex characters, a P-256 DER signature < 80 bytes

Fetch = Callable[[], Awaitable[Any]]


class KeysUnavailable(Exception):
    """GitHub's key list could not be fetched (and no cached key matched)."""


def parse_public_keys(body: Any) -> dict[str, ec.EllipticCurvePublicKey]:
    """``key_identifier -> key`` for every P-256 key in GitHub's answer; others are skipped."""
    keys: dict[str, ec.EllipticCurvePublicKey] = {}
    entries = body.get("public_keys") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        raise ValueError("answer has no public_keys list")
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        ident, pem = entry.get("key_identifier"), entry.get("key")
        if not isinstance(ident, str) or not isinstance(pem, str) or len(ident) > MAX_HEADER:
            continue
        try:
            key = serialization.load_pem_public_key(pem.encode("ascii"))
        except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError):
            continue
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            keys[ident] = key
    return keys


@dataclass(frozen=True)
class Verdict:
    ok: bool
    # "ok" | "missing" | "malformed" | "unknown_key" | "bad_signature" | "keys_unavailable"
    reason: str


class KeyRing:
    """GitHub's published signing keys, cached; refetched on an unknown identifier."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        min_refetch: float = 60.0,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.min_refetch = min_refetch
        self.max_age = max_age
        self.clock = clock
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._tried_at: float | None = None  # last attempt, successful or not
        self._lock = asyncio.Lock()
        self.fetches = 0
        self.failures = 0

    @property
    def identifiers(self) -> list[str]:
        return sorted(self._keys)

    def _may_fetch(self) -> bool:
        return self._tried_at is None or self.clock() - self._tried_at >= self.min_refetch

    async def refresh(self, *, force: bool = False) -> bool:
        """Fetch the key list now (single flight; at most once per ``min_refetch``)."""
        async with self._lock:
            if not force and not self._may_fetch():
                return False
            self._tried_at = self.clock()
            self.fetches += 1
            try:
                keys = parse_public_keys(await self._fetch())
            except Exception:  # network, status, JSON: keep what we had
                self.failures += 1
                return False
            self._keys = keys
            self._fetched_at = self.clock()
            return True

    async def get(self, ident: str) -> ec.EllipticCurvePublicKey | None:
        stale = self._fetched_at is None or self.clock() - self._fetched_at >= self.max_age
        key = self._keys.get(ident)
        if (key is None or stale) and self._may_fetch():
            await self.refresh()
            key = self._keys.get(ident)
        return key

    async def verify(self, body: bytes, ident: str | None, signature: str | None) -> Verdict:
        """Check ``signature`` (base64 DER) over the raw ``body`` with key ``ident``."""
        if not ident or not signature:
            return Verdict(False, "missing")
        if len(ident) > MAX_HEADER or len(signature) > MAX_HEADER:
            return Verdict(False, "malformed")
        try:
            der = base64.b64decode(signature.strip(), validate=True)
        except (binascii.Error, ValueError):
            return Verdict(False, "malformed")
        key = await self.get(ident.strip())
        if key is None:
            return Verdict(False, "unknown_key" if self._fetched_at else "keys_unavailable")
        try:
            key.verify(der, body, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return Verdict(False, "bad_signature")
        return Verdict(True, "ok")
