"""GitHub REST client for the workers: a token pool, rate limits obeyed, ETags used.

It is the ``GitHubAPI`` the library's GitHub sources fetch through
(``scanner.sources.github``), and raises that module's transient and permanent errors.

* Tokens are used round-robin; each token's remaining budget and reset time
  live in Redis (``x-ratelimit-remaining`` / ``-reset``), and a token with no
  budget rests until its reset.
* 403/429 with ``retry-after`` -> wait that long; ``x-ratelimit-remaining: 0``
  -> wait until ``x-ratelimit-reset``; any other 403/429 -> at least a minute,
  then longer (the caller's retry doubles it).
* Every request holds one slot of a global in-flight cap (``github_slot``).
* Conditional requests send ``If-None-Match``; a 304 costs no budget.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

import httpx

from scanner import __version__
from scanner.sources.github import GitHubRefused, GitHubUnavailable, RateLimited
from workers import metrics, state
from workers.settings import settings


class TokenPool:
    def __init__(self, tokens: tuple[str, ...]) -> None:
        self.tokens = tokens

    def pick(self) -> tuple[int, str | None]:
        if not self.tokens:
            return -1, None
        r = state.client()
        now = time.time()
        pipe = r.pipeline(transaction=False)  # one round trip: the turn and every budget
        pipe.incr(state.key("github", "rr"))
        for i in range(len(self.tokens)):
            pipe.hmget(state.key("github", "token", i), "remaining", "reset")
        start, *budgets = pipe.execute()
        soonest = None
        for i in range(len(self.tokens)):
            idx = (int(start) + i) % len(self.tokens)
            remaining, reset = budgets[idx]
            if int(remaining or 1) > 0 or float(reset or 0) <= now:
                return idx, self.tokens[idx]
            soonest = float(reset) if soonest is None else min(soonest, float(reset))
        raise RateLimited(max(1.0, (soonest or now + 60) - now), "every token is exhausted")

    def update(self, idx: int, headers: httpx.Headers) -> None:
        """Record the token's budget and count the request, in one round trip."""
        pipe = state.client().pipeline(transaction=False)
        pipe.hincrby(state.key("stats"), "github_requests", 1)
        if idx >= 0 and "x-ratelimit-remaining" in headers:
            budget = {
                "remaining": headers.get("x-ratelimit-remaining", "0"),
                "limit": headers.get("x-ratelimit-limit", "0"),
                "reset": headers.get("x-ratelimit-reset", "0"),
                "updated": str(int(time.time())),
            }
            pipe.hset(state.key("github", "token", idx), mapping=budget)
        pipe.execute()

    def rest(self, idx: int, until: float) -> None:
        if idx >= 0:
            state.client().hset(
                state.key("github", "token", idx), mapping={"remaining": "0", "reset": str(until)}
            )

    def budgets(self) -> list[dict[str, str]]:
        r = state.client()
        return [r.hgetall(state.key("github", "token", i)) for i in range(len(self.tokens))]


class GitHub:
    def __init__(self, base_url: str, tokens: tuple[str, ...], timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.pool = TokenPool(tokens)
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10.0),
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": f"keysweep/{__version__}",
            },
            follow_redirects=True,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )

    def get(
        self, url: str, *, params: dict[str, Any] | None = None, etag: str | None = None
    ) -> httpx.Response:
        full = url if url.startswith("http") else self.base_url + url
        for _ in range(max(1, len(self.pool.tokens))):
            idx, token = self.pool.pick()
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            if etag:
                headers["If-None-Match"] = etag
            started = time.perf_counter()
            try:
                with state.github_slot():
                    resp = self._http.get(full, params=params, headers=headers)
            except httpx.TransportError as exc:
                state.count("github_errors")
                metrics.GITHUB_ERRORS.labels("transport").inc()
                raise GitHubUnavailable(f"GitHub {type(exc).__name__}") from None
            metrics.GITHUB_SECONDS.labels(str(resp.status_code)).observe(
                time.perf_counter() - started
            )
            if idx >= 0 and "x-ratelimit-remaining" in resp.headers:
                metrics.GITHUB_BUDGET.labels(str(idx)).set(
                    float(resp.headers["x-ratelimit-remaining"])
                )
            self.pool.update(idx, resp.headers)
            if resp.status_code in (403, 429):
                retry_after = resp.headers.get("retry-after")
                if retry_after is not None:
                    state.count("github_rate_limited")
                    metrics.GITHUB_ERRORS.labels("retry_after").inc()
                    raise RateLimited(float(retry_after), f"{resp.status_code} retry-after")
                if resp.headers.get("x-ratelimit-remaining") == "0":
                    reset = float(resp.headers.get("x-ratelimit-reset", time.time() + 60))
                    self.pool.rest(idx, reset)
                    state.count("github_token_exhausted")
                    metrics.GITHUB_ERRORS.labels("token_exhausted").inc()
                    continue  # another token may have budget left
                if resp.status_code == 429 or b"rate limit" in resp.content.lower():
                    state.count("github_rate_limited")
                    raise RateLimited(60.0, f"{resp.status_code} secondary rate limit")
            if resp.status_code >= 500:
                state.count("github_errors")
                metrics.GITHUB_ERRORS.labels("5xx").inc()
                raise GitHubUnavailable(f"GitHub {resp.status_code} for {url}")
            return resp
        idx, _ = self.pool.pick()  # raises RateLimited with the soonest reset
        raise RateLimited(60.0, "no token with budget")

    def get_json(self, url: str, **kw: Any) -> Any:
        resp = self.get(url, **kw)
        if resp.status_code == 404:
            return None
        if resp.status_code >= 400:
            raise GitHubRefused(f"GitHub {resp.status_code} for {url}")
        try:
            return resp.json()
        except ValueError:
            state.count("github_malformed")
            raise GitHubUnavailable(f"GitHub answered {url} with malformed JSON") from None

    def get_bytes(self, url: str, limit: int) -> bytes | None:
        """A raw file, or None when it is larger than ``limit`` (recorded as skipped)."""
        resp = self.get(url)
        if resp.status_code >= 400:
            return None
        return resp.content if len(resp.content) <= limit else None


@cache
def github() -> GitHub:
    s = settings()
    return GitHub(s.github_api_url, s.github_tokens)
