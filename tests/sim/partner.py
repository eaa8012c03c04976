"""The simulator plays GitHub's and GitLab's side of leak reporting.

* **GitHub secret scanning partner alerts**: a P-256 signing key (rotatable)
  published at ``GET /meta/public_keys/secret_scanning`` in GitHub's shape; after
  each planted ``mg_`` key is published, an alert is POSTed to the configured
  partner URL (after ``delay`` seconds, in batches, with duplicates and retries
  on demand), signed over the raw body (``Github-Public-Key-Identifier``,
  ``Github-Public-Key-Signature``: base64 DER ECDSA-SHA256). GitHub retries a
  delivery that failed; so does the simulator (``max_attempts``).
* **``POST /credentials/revoke``** with GitHub's limits: unauthenticated only (an
  ``Authorization`` header gets 403), at most 1,000 credentials per request and
  60 requests an hour per client address (422 when exceeded); what it accepted is
  recorded.
* **GitLab**: ``POST /_sim/gitlab/revoke`` calls a Token Revocation API as a
  GitLab instance's TokenRevocationService does (GET the types, keep the keys of
  those types, POST them, ``Authorization: <token>``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from scanner.examples import expand

TYPES = {"live": "mg_live", "test": "mg_test"}


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def identifier(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def pem(key: ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign(key: ec.EllipticCurvePrivateKey, body: bytes) -> str:
    return base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


@dataclass
class PartnerConfig:
    url: str | None = None  # the partner's alert endpoint; None: alerts off
    delay: float = 0.0  # seconds after a planted push before its alert
    batch: int = 50  # tokens per request at most
    duplicate_ratio: float = 0.0  # chance that a token is reported once more, later
    retry_ratio: float = 0.0  # chance that a delivered batch is delivered once more (lost answer)
    max_attempts: int = 5  # a failed delivery is retried with backoff up to this many times
    kinds: list[str] = field(default_factory=lambda: ["live", "test"])


class Partner:
    def __init__(self, html_base: str) -> None:
        self.html = html_base.rstrip("/")
        self.config = PartnerConfig()
        self.keys: list[tuple[ec.EllipticCurvePrivateKey, bool]] = [(new_key(), True)]
        self.pending: list[tuple[float, dict[str, Any]]] = []
        self.deliveries: list[dict[str, Any]] = []
        self.first_sent: dict[str, float] = {}  # sha256 of token -> first delivery time
        self.reported: dict[str, int] = {}  # sha256 of token -> times sent
        self.credentials: list[dict[str, Any]] = []  # /credentials/revoke requests
        self.revoked: list[str] = []  # credentials accepted (cleartext, test code only)
        self.cred_windows: dict[str, list[float]] = {}
        self.cred_per_hour = 60
        self.cred_max = 1000
        self.http: httpx.AsyncClient | None = None
        # Alerts go out through several small pools, as from several GitHub machines:
        # httpcore looks through every connection of a pool for each request and each
        # answer, so one pool of hundreds of connections made the simulator, not the
        # partner, the busiest process under load.
        self.senders: list[httpx.AsyncClient] = []
        self.next_sender = 0
        self.task: asyncio.Task[None] | None = None
        self.inflight: set[asyncio.Task[None]] = set()
        self.stream_task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self.http = httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_connections=32))
        self.senders = [
            httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(max_connections=32))
            for _ in range(8)
        ]
        self.task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        for t in [self.task, self.stream_task, *self.inflight]:
            if t is not None:
                t.cancel()
        for client in [self.http, *self.senders]:
            if client is not None:
                await client.aclose()

    def reset(self) -> None:
        self.pending.clear()
        self.deliveries.clear()
        self.first_sent.clear()
        self.reported.clear()
        self.credentials.clear()
        self.revoked.clear()
        self.cred_windows.clear()

    # -- keys --------------------------------------------------------------

    @property
    def current(self) -> ec.EllipticCurvePrivateKey:
        return next(k for k, cur in self.keys if cur)

    def keys_json(self) -> dict[str, Any]:
        return {
            "public_keys": [
                {"key_identifier": identifier(k), "key": pem(k), "is_current": cur}
                for k, cur in self.keys
            ]
        }

    def rotate(self, keep_old: bool = True) -> dict[str, Any]:
        old = [(k, False) for k, _ in self.keys] if keep_old else []
        self.keys = [*old, (new_key(), True)]
        return {"current": identifier(self.current), "published": len(self.keys)}

    # -- alerts ------------------------------------------------------------

    def alert_item(self, p: dict[str, Any]) -> dict[str, Any]:
        doc = p.get("doc") or {}
        if doc.get("type") == "gist":
            url, source = f"https://gist.github.com/{doc.get('gist_id')}", "gist_content"
        else:
            url = f"{self.html}/{doc.get('repo')}/blob/{doc.get('sha')}/{doc.get('path')}"
            source = "commit"
        return {"token": p["key"], "type": TYPES[p["kind"]], "url": url, "source": source}

    def on_published(self, planted: list[dict[str, Any]]) -> None:
        cfg = self.config
        if not cfg.url:
            return
        due = time.time() + cfg.delay
        for p in planted:
            if p["kind"] in cfg.kinds and p["kind"] in TYPES:
                item = self.alert_item(p)
                self.pending.append((due, item))
                if random.random() < cfg.duplicate_ratio:
                    self.pending.append((due + random.uniform(0.05, 1.0), item))

    def headers(self, body: bytes, mode: str = "valid") -> dict[str, str]:
        key = self.current
        ident = identifier(key)
        if mode == "unknown_key":
            key = new_key()
            ident = identifier(key)
        elif mode == "wrong_key":  # a published identifier, another key's signature
            other = new_key()
            return {
                "Content-Type": "application/json",
                "Github-Public-Key-Identifier": ident,
                "Github-Public-Key-Signature": sign(other, body),
            }
        signature = sign(key, body)
        if mode == "bad_signature":
            signature = sign(key, body + b" ")
        headers = {
            "Content-Type": "application/json",
            "Github-Public-Key-Identifier": ident,
            "Github-Public-Key-Signature": signature,
        }
        if mode == "no_headers":
            headers = {"Content-Type": "application/json"}
        return headers

    def sender(self) -> httpx.AsyncClient:
        self.next_sender = (self.next_sender + 1) % len(self.senders)
        return self.senders[self.next_sender]

    async def deliver(self, items: list[dict[str, Any]], *, attempt: int = 1) -> dict[str, Any]:
        assert self.senders and self.config.url
        body = json.dumps(items, separators=(",", ":")).encode()
        headers = self.headers(body)
        now = time.time()
        for it in items:
            h = hashlib.sha256(it["token"].encode()).hexdigest()
            self.first_sent.setdefault(h, now)
            self.reported[h] = self.reported.get(h, 0) + 1
        record: dict[str, Any] = {"t": now, "tokens": len(items), "attempt": attempt}
        try:
            r = await self.sender().post(self.config.url, content=body, headers=headers)
            record.update(status=r.status_code, seconds=time.time() - now)
            if r.status_code == 200:
                labels: dict[str, int] = {}
                for entry in r.json():
                    name = str(entry.get("label")) if isinstance(entry, dict) else "malformed"
                    labels[name] = labels.get(name, 0) + 1
                record["labels"] = labels
        except httpx.HTTPError as exc:
            record.update(status=None, error=type(exc).__name__, seconds=time.time() - now)
        self.deliveries.append(record)
        ok = record.get("status") == 200
        if not ok and attempt < self.config.max_attempts:
            await asyncio.sleep(min(30.0, 0.2 * 2**attempt))
            await self.deliver(items, attempt=attempt + 1)
        elif ok and attempt == 1 and random.random() < self.config.retry_ratio:
            await self.deliver(items, attempt=attempt + 1)  # as if the answer had been lost
        return record

    def spawn(self, items: list[dict[str, Any]]) -> None:
        t = asyncio.create_task(self.deliver(items))
        self.inflight.add(t)
        t.add_done_callback(self.inflight.discard)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            if not self.pending or not self.config.url:
                continue
            now = time.time()
            due = [it for t, it in self.pending if t <= now]
            if not due:
                continue
            self.pending = [(t, it) for t, it in self.pending if t > now]
            size = max(1, self.config.batch)
            for i in range(0, len(due), size):
                self.spawn(due[i : i + size])

    async def send_once(self, items: list[dict[str, Any]], mode: str) -> dict[str, Any]:
        """One signed delivery of ``items`` now, with a fault on demand:
        valid | bad_signature | wrong_key | unknown_key | no_headers | tamper | replay."""
        assert self.http is not None and self.config.url
        body = json.dumps(items, separators=(",", ":")).encode()
        headers = self.headers(body, mode if mode not in ("tamper", "replay") else "valid")
        if mode == "tamper":  # the signed body, one character changed on the way
            body = body.replace(b'"type":"', b'"type":"x', 1)
        elif mode == "replay":  # a genuine signature of another body, replayed on this one
            other = json.dumps(items[:-1] or [{"token": "x", "type": "y"}]).encode()
            headers = self.headers(other)
        r = await self.http.post(self.config.url, content=body, headers=headers)
        try:
            answer: Any = r.json()
        except ValueError:
            answer = r.text
        return {"status": r.status_code, "body": answer}

    async def stream(self, rate: float, seconds: float, tokens: list[dict[str, Any]]) -> None:
        """Deliver ``tokens`` at ``rate`` per second in batches of ``config.batch`` (the
        benchmark's load): a batch leaves once that many tokens are due (the last one
        with what is left), as GitHub batches what its scanning found; a token's clock
        starts when its batch is sent."""
        start = time.monotonic()
        sent = 0
        size = max(1, self.config.batch)
        while sent < len(tokens):
            await asyncio.sleep(0.01)
            due = min(len(tokens), int((time.monotonic() - start) * rate))
            owed = due - sent
            while owed >= size or (owed > 0 and due == len(tokens)):
                n = min(size, owed)
                self.spawn(tokens[sent : sent + n])
                sent += n
                owed -= n
            if time.monotonic() - start > seconds * 3:
                break

    @staticmethod
    def filler(kind: str) -> str:
        """A well-formed token of our format that no key service issued (a false positive)."""
        return expand(f"mg_{kind}_{{b64url:32}}")

    # -- GitHub's credential revocation API --------------------------------

    def revoke_credentials(self, client: str, auth: str | None, body: Any) -> tuple[int, Any]:
        now = time.time()
        record: dict[str, Any] = {"t": now, "client": client}
        self.credentials.append(record)
        if auth:
            record["status"] = 403
            return 403, {"message": "Authenticated requests are not allowed for this endpoint"}
        window = [t for t in self.cred_windows.get(client, []) if now - t < 3600]
        self.cred_windows[client] = window
        creds = body.get("credentials") if isinstance(body, dict) else None
        if not isinstance(creds, list) or not creds or not all(isinstance(c, str) for c in creds):
            record["status"] = 422
            return 422, {"message": "Validation Failed", "status": "422"}
        record["count"] = len(creds)
        if len(creds) > self.cred_max:
            record["status"] = 422
            return 422, {"message": f"At most {self.cred_max} credentials", "status": "422"}
        if len(window) >= self.cred_per_hour:
            record["status"] = 422
            return 422, {"message": "Too many requests", "status": "422"}
        window.append(now)
        self.revoked.extend(creds)
        record["status"] = 202
        return 202, {}

    # -- GitLab ------------------------------------------------------------

    async def gitlab_revoke(
        self, url: str, token: str, keys: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """What GitLab's TokenRevocationService does with a pipeline's leaked keys."""
        assert self.http is not None
        headers = {"Content-Type": "application/json", "Authorization": token}
        base = url.rstrip("/")
        types = await self.http.get(f"{base}/v1/revocable_token_types", headers=headers)
        out: dict[str, Any] = {"types_status": types.status_code}
        if types.status_code != 200:
            return out
        wanted = set(types.json().get("types") or [])
        out["types"] = sorted(wanted)
        keep = [k for k in keys if k.get("type") in wanted]
        out["sent"] = len(keep)
        if not keep:
            return out
        r = await self.http.post(
            f"{base}/v1/revoke_tokens", content=json.dumps(keep), headers=headers
        )
        out["revoke_status"] = r.status_code
        return out
