"""Third-party GitHub tokens reported to GitHub's ``POST /credentials/revoke``.

GitHub's REST API accepts exposed tokens from anyone, unauthenticated (an
authenticated request gets 403), at most 1,000 per request and 60 requests an
hour, answers 202 Accepted, or 422 "Validation failed, or the endpoint has been
spammed", and notifies each token's owner. Accepted prefixes: ``ghp_`` (classic
PAT), ``github_pat_`` (fine-grained PAT), ``gho_`` (OAuth app), ``ghu_`` (GitHub
App user-to-server), ``ghr_`` (GitHub App refresh). ``ghs_`` installation tokens
are not accepted and expire within an hour anyway.

This is the one place where a cleartext key leaves the process that found it,
to its issuer alone. The hook for the fetch path is ``revocable_github_tokens``:
*the matches of rule github-* with their cleartext, inside the fetch process*.
What it returns is sealed at once (``Sealer``: a libsodium sealed box to the
reporter's X25519 public key, PyNaCl), so only the reporter, holding the private
key, can open it; the reporter opens a batch in memory, sends it and deletes it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass

from scanner.findings import Finding

REVOCABLE_PREFIXES = ("ghp_", "github_pat_", "gho_", "ghu_", "ghr_")
MAX_PER_REQUEST = 1000  # GitHub's documented cap per request
PER_HOUR = 60  # GitHub's documented cap of unauthenticated requests an hour


def revocable_github_tokens(findings: Iterable[Finding]) -> list[bytes]:
    """The cleartext of every GitHub token GitHub's revocation API accepts, once each.

    Call it where the findings still hold their secret (inside the fetch process,
    before ``to_dict()``); what it returns must be sealed before it goes anywhere.
    """
    out: dict[bytes, None] = {}
    for f in findings:
        secret = f.secret
        if (
            secret is None
            or not f.rule_id.startswith("github")
            or f.confidence != "high"
            or f.expired
        ):
            continue
        if secret.decode("ascii", "replace").startswith(REVOCABLE_PREFIXES):
            out[secret] = None
    return list(out)


def generate_keypair() -> tuple[str, str]:
    """(private, public): a new X25519 key pair, base64 (the reporter keeps the private one)."""
    from nacl.public import PrivateKey

    sk = PrivateKey.generate()
    return (
        base64.b64encode(bytes(sk)).decode("ascii"),
        base64.b64encode(bytes(sk.public_key)).decode("ascii"),
    )


def _key_bytes(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (ValueError, TypeError):
        raise ValueError(f"{what} must be base64 of 32 bytes") from None
    if len(raw) != 32:
        raise ValueError(f"{what} must be base64 of 32 bytes")
    return raw


class Sealer:
    """Seals tokens for the reporter alone (anyone with the public key can seal)."""

    def __init__(self, public_key: str) -> None:
        from nacl.public import PublicKey, SealedBox

        self._box = SealedBox(PublicKey(_key_bytes(public_key, "the reporter's public key")))

    def seal(self, token: bytes) -> str:
        return base64.b64encode(self._box.encrypt(token)).decode("ascii")


class Opener:
    """Opens what a ``Sealer`` sealed (the reporter's private key)."""

    def __init__(self, private_key: str) -> None:
        from nacl.public import PrivateKey, SealedBox

        self._box = SealedBox(PrivateKey(_key_bytes(private_key, "the reporter's private key")))

    def open(self, sealed: str) -> bytes:
        """The token; raises ValueError for anything not sealed to this key."""
        from nacl.exceptions import CryptoError

        try:
            return bytes(self._box.decrypt(base64.b64decode(sealed, validate=True)))
        except (CryptoError, ValueError, TypeError):
            raise ValueError("not sealed for this reporter") from None


@dataclass(frozen=True)
class RevokeAnswer:
    status: int | None  # None: no answer (network error)
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.status == 202


def post_credentials(url: str, tokens: list[bytes], *, timeout: float = 30.0) -> RevokeAnswer:
    """One ``POST /credentials/revoke`` with up to 1,000 tokens, unauthenticated."""
    import httpx

    if not tokens or len(tokens) > MAX_PER_REQUEST:
        raise ValueError(f"1 to {MAX_PER_REQUEST} tokens per request")
    body = {"credentials": [t.decode("ascii") for t in tokens]}
    headers = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "keysweep",
    }
    try:
        r = httpx.post(url, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return RevokeAnswer(None, type(exc).__name__)
    detail = ""
    if r.status_code != 202:
        try:
            detail = str(r.json().get("message", ""))[:200]
        except (ValueError, AttributeError):
            detail = r.reason_phrase
    return RevokeAnswer(r.status_code, detail)
