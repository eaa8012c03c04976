"""GitHub REST client for the workers: a token pool, rate limits obeyed, ETags used.

It is the ``GitHubAPI`` the library's GitHub sources fetch through
(``scanner.sources.github``), and raises that module's transient and permanent errors.

* Tokens are used round-robin; each token's remaining budget, reset time and
  the time it may send again live in Redis, shared by every worker. A token is
  picked only when it may send now; when none may, the caller gets
  ``RateLimited`` with the wait, and nothing is sent.
* 403/429 with ``retry-after`` -> that token waits that long (a secondary limit:
  every token); ``x-ratelimit-remaining: 0`` -> the token rests until
  ``x-ratelimit-reset`` and another is tried; any other 429, or a 403 that says
  "rate limit" -> every token waits a minute.
* A token's budget is updated from every answer, unless a newer answer
  already did (a later reset, or more requests used in the same window).
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

# KEYS: rr counter, global block, token hash prefix. ARGV: now, token count.
# Picks the next token that may send now and reserves one request of its budget.
_PICK = """
local now, n = tonumber(ARGV[1]), tonumber(ARGV[2])
local all = tonumber(redis.call('get', KEYS[2]) or '0')
if all > now then return {-2, tostring(all)} end
local start = redis.call('incr', KEYS[1])
local soonest = nil
for i = 0, n - 1 do
  local idx = (start + i) % n
  local h = redis.call('hmget', KEYS[3] .. idx, 'remaining', 'reset', 'blocked_until')
  local remaining, reset, blocked = tonumber(h[1] or '1'), tonumber(h[2] or '0'),
                                    tonumber(h[3] or '0')
  local wait_until = blocked
  if remaining <= 0 and reset > now then wait_until = math.max(wait_until, reset) end
  if wait_until <= now then
    if h[1] then redis.call('hincrby', KEYS[3] .. idx, 'remaining', -1) end
    return {idx, '0'}
  end
  if soonest == nil or wait_until < soonest then soonest = wait_until end
end
return {-1, tostring(soonest)}
"""

# KEYS: token hash. ARGV: remaining, limit, reset, used, now.
# An answer updates the token only if it is not older than what is recorded: a later
# window (reset), or the same window with as many or more requests used.
_UPDATE = """
local h = redis.call('hmget', KEYS[1], 'reset', 'used')
local reset, used = tonumber(h[1] or '-1'), tonumber(h[2] or '-1')
local nreset, nused = tonumber(ARGV[3]), tonumber(ARGV[4])
if nreset > reset or (nreset == reset and nused >= used) then
  redis.call('hset', KEYS[1], 'remaining', ARGV[1], 'limit', ARGV[2], 'reset', ARGV[3],
             'used', ARGV[4], 'updated', ARGV[5])
  return 1
end
return 0
"""

# KEYS: a key holding a time. ARGV: until, ttl. Keeps the later of the two.
_LATER = """
local cur = tonumber(redis.call('get', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
return 1
"""

# KEYS: token hash. ARGV: until. blocked_until becomes the later of the two.
_REST = """
local cur = tonumber(redis.call('hget', KEYS[1], 'blocked_until') or '0')
if tonumber(ARGV[1]) > cur then redis.call('hset', KEYS[1], 'blocked_until', ARGV[1]) end
return 1
"""


class TokenPool:
    """The tokens' budgets and waits, shared by every worker through Redis.

    * Before each request a token is picked that may send now (one Lua script): a
      token resting after a ``retry-after`` or an exhausted budget is skipped, a
      secondary limit stops every token, and when none may send the caller gets
      ``RateLimited`` with the wait: nothing is sent before GitHub allows it.
    * Every answer updates its token, unless an answer that is newer already did.
    """

    def __init__(self, tokens: tuple[str, ...]) -> None:
        self.tokens = tokens

    def _key(self, idx: int) -> str:
        return state.key("github", "token", idx)

    def pick(self) -> tuple[int, str | None]:
        r = state.client()
        now = time.time()
        idx, until = r.eval(
            _PICK,
            3,
            state.key("github", "rr"),
            state.key("github", "all_blocked_until"),
            state.key("github", "token", ""),
            now,
            max(1, len(self.tokens)),
        )
        idx, until = int(idx), float(until)
        if idx == -2:
            raise RateLimited(max(0.5, until - now), "secondary rate limit: every token waits")
        if idx == -1:
            raise RateLimited(max(0.5, until - now), "every token is resting")
        if not self.tokens:
            return -1, None
        return idx, self.tokens[idx]

    def update(self, idx: int, headers: httpx.Headers) -> None:
        """Record the token's budget (if this answer is the newest) and count the request."""
        r = state.client()
        r.hincrby(state.key("stats"), "github_requests", 1)
        if idx < 0 or "x-ratelimit-remaining" not in headers:
            return
        remaining = headers.get("x-ratelimit-remaining", "0")
        limit = headers.get("x-ratelimit-limit", "0")
        used = headers.get("x-ratelimit-used")
        if used is None:
            used = str(max(0, int(limit or 0) - int(remaining or 0)))
        r.eval(
            _UPDATE,
            1,
            self._key(idx),
            remaining,
            limit,
            headers.get("x-ratelimit-reset", "0"),
            used,
            int(time.time()),
        )

    def rest(self, idx: int, until: float) -> None:
        """This token may not send before ``until`` (every worker sees it)."""
        if idx >= 0:
            state.client().eval(_REST, 1, self._key(idx), f"{until:.3f}")

    def rest_all(self, until: float) -> None:
        """A secondary limit: no token may send before ``until``."""
        state.client().eval(
            _LATER, 1, state.key("github", "all_blocked_until"), f"{until:.3f}", 3600
        )

    def budgets(self) -> list[dict[str, str]]:
        r = state.client()
        return [r.hgetall(self._key(i)) for i in range(len(self.tokens))]


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
            started = time.perf_counter()
            with state.github_slot():
                # Picked while holding the slot, right before sending: a wait that
                # another worker learnt of a moment ago is already obeyed.
                idx, token = self.pool.pick()
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                if etag:
                    headers["If-None-Match"] = etag
                try:
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
                limited = self._limited(idx, resp)
                if limited is None:
                    continue  # this token is spent; another may have budget left
                if limited is not False:
                    raise limited
            if resp.status_code >= 500:
                state.count("github_errors")
                metrics.GITHUB_ERRORS.labels("5xx").inc()
                raise GitHubUnavailable(f"GitHub {resp.status_code} for {url}")
            return resp
        self.pool.pick()  # raises RateLimited with the soonest time a token may send
        raise RateLimited(60.0, "no token with budget")

    def _limited(self, idx: int, resp: httpx.Response) -> RateLimited | bool | None:
        """What a 403/429 means: a RateLimited to raise (after recording the wait for
        every worker), None for a spent token (try another), False for a plain 403."""
        now = time.time()
        secondary = b"secondary rate limit" in resp.content.lower()
        retry_after = resp.headers.get("retry-after")
        if retry_after is not None:
            try:
                wait = max(0.0, float(retry_after))
            except ValueError:
                wait = 60.0
            state.count("github_rate_limited")
            if secondary:
                self.pool.rest_all(now + wait)
                metrics.GITHUB_ERRORS.labels("secondary").inc()
            else:
                self.pool.rest(idx, now + wait)
                metrics.GITHUB_ERRORS.labels("retry_after").inc()
            return RateLimited(wait, f"{resp.status_code} retry-after")
        if resp.headers.get("x-ratelimit-remaining") == "0":
            reset = float(resp.headers.get("x-ratelimit-reset") or now + 60)
            self.pool.rest(idx, reset)
            state.count("github_token_exhausted")
            metrics.GITHUB_ERRORS.labels("token_exhausted").inc()
            return None
        if resp.status_code == 429 or secondary or b"rate limit" in resp.content.lower():
            # A secondary limit without retry-after: GitHub asks for at least a minute.
            self.pool.rest_all(now + 60)
            state.count("github_rate_limited")
            metrics.GITHUB_ERRORS.labels("secondary").inc()
            return RateLimited(60.0, f"{resp.status_code} secondary rate limit")
        return False

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
