"""Client of the key provider's key service (contract v1, see ../shared/DESIGN.md).

Only hashes cross this boundary. The client reuses one connection pool, times
every request out, retries connect errors, timeouts, 5xx and 429 with
exponential backoff and full jitter (``Retry-After`` wins when the service
sends it), never retries another 4xx, and stops calling a failing service for a
while (circuit breaker) so that an outage does not become a request storm.

httpx is imported here only: the hook and a plain scan never load it.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from scanner import __version__
from scanner.errors import KeysweepError, PermanentError, TransientError

LOOKUP_BATCH = 1000
USER_AGENT = f"keysweep/{__version__}"


class KeyServiceError(KeysweepError):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KeyServiceUnavailable(KeyServiceError, TransientError):
    """Down, timing out, 5xx, throttling or answering garbage: try again later."""


class KeyServiceRefused(KeyServiceError, PermanentError):
    """A 4xx other than 429, or no URL/token configured: the same call fails again."""


class CircuitOpenError(KeyServiceUnavailable):
    pass


@dataclass(frozen=True)
class KeyRecord:
    sha256: str
    key_id: str
    display_prefix: str
    environment: str
    status: str
    revoked_at: str | None
    org_id: str | None
    project_id: str | None
    owner_name: str | None
    owner_email: str | None

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> KeyRecord:
        owner = d.get("owner") or {}
        return cls(
            sha256=str(d["sha256"]),
            key_id=str(d["key_id"]),
            display_prefix=str(d.get("display_prefix", "")),
            environment=str(d.get("environment", "")),
            status=str(d.get("status", "")),
            revoked_at=d.get("revoked_at"),
            org_id=d.get("org_id"),
            project_id=d.get("project_id"),
            owner_name=owner.get("name"),
            owner_email=owner.get("email"),
        )


@dataclass(frozen=True)
class RevokeResult:
    key_id: str
    status: str
    revoked_at: str | None
    already_revoked: bool


class CircuitBreaker:
    """Closed -> open after ``threshold`` consecutive failures; after ``reset_after``
    seconds one probe is let through (half-open): success closes, failure reopens."""

    def __init__(
        self,
        threshold: int = 5,
        reset_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.reset_after = reset_after
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self.state = "closed"

    def allow(self) -> bool:
        if self.state == "open":
            assert self.opened_at is not None
            if self.clock() - self.opened_at < self.reset_after:
                return False
            self.state = "half-open"
        return True

    def success(self) -> None:
        self.failures = 0
        self.state = "closed"
        self.opened_at = None

    def failure(self) -> None:
        self.failures += 1
        if self.state == "half-open" or self.failures >= self.threshold:
            self.state = "open"
            self.opened_at = self.clock()


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (a number or an HTTP date), capped at 5 minutes."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, min(seconds, 300.0))


RETRYABLE_ERRORS = (httpx.TransportError,)  # connect, read, write, pool errors, timeouts


class KeyServiceClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 20.0,
        breaker: CircuitBreaker | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url:
            raise KeyServiceRefused("no key service URL: set KEYSWEEP_KEYSERVICE_URL")
        if not token:
            raise KeyServiceRefused("no key service token: set KEYSWEEP_KEYSERVICE_TOKEN")
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.breaker = breaker or CircuitBreaker()
        self.sleep = sleep
        self.requests = 0
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KeyServiceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        last = "no attempt made"
        for attempt in range(self.retries + 1):
            if not self.breaker.allow():
                raise CircuitOpenError(
                    f"key service circuit open after repeated failures ({last}); "
                    f"retrying in {self.breaker.reset_after:.0f}s"
                )
            retry_after = None
            try:
                self.requests += 1
                resp = self._http.request(method, path, **kw)
            except RETRYABLE_ERRORS as exc:
                self.breaker.failure()
                last = f"{type(exc).__name__}: {exc}"
            else:
                code = resp.status_code
                if code == 429:
                    retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
                    last = "429 Too Many Requests"  # throttled, not broken: breaker untouched
                elif code >= 500:
                    self.breaker.failure()
                    retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
                    last = f"{code} {_error_text(resp)}"
                elif code >= 400:
                    self.breaker.success()
                    hint = " (check KEYSWEEP_KEYSERVICE_TOKEN)" if code == 401 else ""
                    raise KeyServiceRefused(
                        f"key service {method} {path}: {code} {_error_text(resp)}{hint}", code
                    )
                else:
                    self.breaker.success()
                    return resp
            if attempt < self.retries:
                self.sleep(self._delay(attempt, retry_after))
        raise KeyServiceUnavailable(
            f"key service {method} {path} failed after {self.retries + 1} attempts: {last}"
        )

    def _json(self, resp: httpx.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise KeyServiceUnavailable(
                f"key service answered {resp.request.url.path} with malformed JSON"
            ) from None

    def lookup(self, hashes: Iterable[str]) -> dict[str, KeyRecord]:
        """sha256 hex -> record, for the hashes the service knows (batches of 1000)."""
        unique = sorted(set(hashes))
        found: dict[str, KeyRecord] = {}
        for i in range(0, len(unique), LOOKUP_BATCH):
            batch = unique[i : i + LOOKUP_BATCH]
            body = self._json(self.request("POST", "/v1/keys/lookup", json={"hashes": batch}))
            try:
                for m in body["matches"]:
                    record = KeyRecord.from_json(m)
                    if record.sha256 in batch:
                        found[record.sha256] = record
            except (KeyError, TypeError) as exc:
                raise KeyServiceUnavailable(
                    f"key service lookup answer is malformed: {exc}"
                ) from None
        return found

    def revoke(
        self,
        key_id: str,
        *,
        idempotency_key: str,
        source_url: str | None,
        detected_at: str,
        reason: str = "leaked",
    ) -> RevokeResult:
        resp = self.request(
            "POST",
            f"/v1/keys/{key_id}/revoke",
            json={"reason": reason, "source_url": source_url, "detected_at": detected_at},
            headers={"Idempotency-Key": idempotency_key},
        )
        body = self._json(resp)
        return RevokeResult(
            key_id=str(body.get("key_id", key_id)),
            status=str(body.get("status", "")),
            revoked_at=body.get("revoked_at"),
            already_revoked=bool(body.get("already_revoked")),
        )

    def audit(self, event: dict[str, Any], idempotency_key: str) -> str:
        resp = self.request(
            "POST", "/v1/audit-events", json=event, headers={"Idempotency-Key": idempotency_key}
        )
        return str(self._json(resp).get("id", ""))

    def audit_events(
        self, target: str | None = None, action: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("target", target), ("action", action)) if v}
        return list(self._json(self.request("GET", "/v1/audit-events", params=params))["events"])

    def create_key(
        self, environment: str, org_id: str, project_id: str, owner: dict[str, str]
    ) -> dict[str, Any]:
        """Reference service only: mint a key (the cleartext is in the answer, once)."""
        body = {
            "org_id": org_id,
            "project_id": project_id,
            "environment": environment,
            "owner": owner,
        }
        return dict(self._json(self.request("POST", "/v1/keys", json=body)))


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        if isinstance(body, dict) and "error" in body:
            return str(body["error"])[:200]
    except ValueError:
        pass
    return resp.reason_phrase
