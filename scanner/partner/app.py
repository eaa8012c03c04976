"""``keysweep serve``: the provider's side of GitHub secret scanning and GitLab's
Token Revocation API, as one Starlette app (run on uvicorn, like the reference
key service).

Endpoints:

* ``POST /github/secret-scanning``: GitHub's partner alerts. The signature is
  checked over the raw body before anything is parsed; each token is hashed
  here and only findings (hashes, redacted forms, locations) are queued; the
  answer is GitHub's false-positive feedback.
* ``GET /v1/revocable_token_types``, ``POST /v1/revoke_tokens``: GitLab's Token
  Revocation API, authenticated with a pre-shared token in ``Authorization``.
* ``GET /healthz`` (the process answers), ``GET /readyz`` (Redis and the broker
  answer), ``GET /metrics`` (Prometheus).

As a public endpoint it caps the body size and the tokens per request, bounds
each request's time, rate-limits each client address, and answers nothing about
a key beyond GitHub's feedback label. TLS is the ingress's job.

Queueing is injected (``submit``): this package never imports Celery or Redis.
``submit(findings, origin)`` must be ``workers.submit.submit_findings`` or
behave like it; it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scanner import __version__
from scanner.engine import Engine
from scanner.partner.intake import BadRequest, Intake, Report, github_reports, gitlab_reports
from scanner.partner.lookup import KeyServiceLookup
from scanner.partner.metrics import ServeMetrics
from scanner.partner.settings import ServeSettings
from scanner.partner.signature import KEY_ID_HEADER, SIGNATURE_HEADER, KeyRing

log = logging.getLogger("keysweep.serve")

Submit = Callable[[list[dict[str, Any]], dict[str, Any]], None]
Lookup = Callable[[list[str], float], Awaitable[dict[str, bool]]]
Ready = Callable[[], dict[str, bool]]
FetchKeys = Callable[[], Awaitable[Any]]

GITHUB_PATH = "/github/secret-scanning"
UNTHROTTLED = ("/healthz", "/readyz", "/metrics")
SUBMIT_CHUNK = 500  # findings per queued batch: an act task stays short
QUEUE_WAIT = 0.25  # how long queueing waits to leave out tokens the key service does not know


class TooLarge(Exception):
    pass


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class RequestTimeout:
    """Every request, body upload included, is done within ``seconds`` or answered 408."""

    def __init__(self, app: ASGIApp, seconds: float, metrics: ServeMetrics) -> None:
        self.app, self.seconds, self.metrics = app, seconds, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        with anyio.move_on_after(self.seconds) as scope_cm:
            await self.app(scope, receive, tracked)
        if scope_cm.cancelled_caught:
            self.metrics.refused.labels("timeout").inc()
            if not started:
                await error(408, "request took too long")(scope, receive, send)


class ClientRateLimit:
    """A moving-window limit per client address (the ``limits`` library, in memory)."""

    def __init__(self, app: ASGIApp, rate: str, metrics: ServeMetrics) -> None:
        from limits import parse, storage, strategies

        self.app, self.metrics = app, metrics
        self.item = parse(rate)
        self.limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNTHROTTLED:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        if self.limiter.hit(self.item, "client", client):
            await self.app(scope, receive, send)
            return
        self.metrics.refused.labels("rate_limited").inc()
        reset = self.limiter.get_window_stats(self.item, "client", client).reset_time
        wait = max(1, int(reset - time.time() + 0.999))
        await error(429, "too many requests", {"Retry-After": str(wait)})(scope, receive, send)


def label_of(report: Report, known: dict[str, bool]) -> str | None:
    """true_positive: the key service knows one of the token's candidates;
    false_positive: it answered and knows none; None: it did not answer in time."""
    hashes = report.hashes
    if any(known.get(h) for h in hashes):
        return "true_positive"
    if hashes and all(h in known for h in hashes):
        return "false_positive"
    if not hashes:
        return "false_positive"  # not shaped like any key of ours
    return None


def create_app(
    settings: ServeSettings,
    *,
    submit: Submit,
    engine: Engine,
    lookup: Lookup | None = None,
    ready: Ready | None = None,
    fetch_keys: FetchKeys | None = None,
) -> Starlette:
    metrics = ServeMetrics()
    intake = Intake(engine)
    http: dict[str, httpx.AsyncClient] = {}
    etag: dict[str, Any] = {}

    async def github_keys() -> Any:
        client = http["github"]
        headers = {"Accept": "application/vnd.github+json", "User-Agent": f"keysweep/{__version__}"}
        if settings.github_token:
            headers["Authorization"] = f"Bearer {settings.github_token}"
        if etag.get("tag"):
            headers["If-None-Match"] = etag["tag"]
        r = await client.get(settings.keys_url, headers=headers)
        if r.status_code == 304 and "body" in etag:
            return etag["body"]
        r.raise_for_status()
        body = r.json()
        etag.update(tag=r.headers.get("etag"), body=body)
        return body

    fetcher = fetch_keys or github_keys

    async def counted_fetch() -> Any:
        try:
            body = await fetcher()
        except Exception:
            metrics.key_fetches.labels("failed").inc()
            raise
        metrics.key_fetches.labels("ok").inc()
        return body

    keyring = KeyRing(counted_fetch, min_refetch=settings.serve_keys_refetch)
    lookups: dict[str, Lookup] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        http["github"] = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
        ks: KeyServiceLookup | None = None
        if lookup is not None:
            lookups["ks"] = lookup
        else:
            ks_url, ks_token = settings.keyservice()
            if ks_url and ks_token:
                ks = KeyServiceLookup(ks_url, ks_token)
                lookups["ks"] = ks
        await keyring.refresh(force=True)  # a failure here is retried on the first alert
        try:
            yield
        finally:
            await http["github"].aclose()
            if ks is not None:
                await ks.aclose()

    def instrumented(
        name: str, fn: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await fn(request)
            except TooLarge:
                metrics.refused.labels("too_large").inc()
                response = error(413, f"request body larger than {settings.serve_max_body} bytes")
            except BadRequest as exc:
                response = error(400, str(exc))
            metrics.requests.labels(name, str(response.status_code)).inc()
            metrics.seconds.labels(name).observe(time.perf_counter() - started)
            return response

        endpoint.__name__ = fn.__name__
        return endpoint

    async def queue(reports: list[Report], received: float, origin: str = "github_partner") -> None:
        seen: set[tuple[str, str | None]] = set()
        findings: list[dict[str, Any]] = []
        for rep in reports:
            for f in rep.findings:
                ident = (f.fingerprint, f.location.url)
                if ident in seen:
                    continue
                seen.add(ident)
                metrics.findings.labels(f.rule_id).inc()
                findings.append({**f.to_dict(), "fetched_at": received})
        for i in range(0, len(findings), SUBMIT_CHUNK):
            await anyio.to_thread.run_sync(
                submit, findings[i : i + SUBMIT_CHUNK], {"source": origin}
            )

    async def labels(reports: list[Report]) -> dict[str, bool]:
        ask = sorted({h for r in reports for h in r.hashes})
        fn = lookups.get("ks")
        if not ask or fn is None:
            return {}
        started = time.perf_counter()
        try:
            known = await fn(ask, settings.serve_label_wait)
        except Exception:  # labels are best effort; revocation is already queued
            known = {}
        metrics.lookup_seconds.observe(time.perf_counter() - started)
        return known

    async def github_alert(request: Request) -> Response:
        received = time.time()
        body = await read_body(request, settings.serve_max_body)
        verdict = await keyring.verify(
            body, request.headers.get(KEY_ID_HEADER), request.headers.get(SIGNATURE_HEADER)
        )
        if not verdict.ok:
            metrics.refused.labels(verdict.reason).inc()
            message = {
                "missing": "Github-Public-Key-Identifier and Github-Public-Key-Signature required",
                "malformed": "malformed signature headers",
                "unknown_key": "unknown public key identifier",
                "keys_unavailable": "GitHub's public keys are unavailable; retry later",
                "bad_signature": "signature does not match the body",
            }[verdict.reason]
            return error(503 if verdict.reason == "keys_unavailable" else 401, message)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("body must be a JSON array") from None
        reports = github_reports(intake, data, settings.serve_max_tokens)
        for rep in reports:
            metrics.tokens.labels("github", rep.source).inc()
        # Ask the key service (for the labels) while deciding what to queue: when it
        # answers within QUEUE_WAIT, a token it does not know is not ours and is not
        # queued (the act path would only ask again); when it is slower, everything is
        # queued at once so revocation never waits for it. Either way nothing that may be
        # ours is dropped: what is undecided is decided later and revoked all the same.
        asking = asyncio.ensure_future(labels(reports))
        await asyncio.wait({asking}, timeout=QUEUE_WAIT)
        early = asking.result() if asking.done() else None
        try:
            if early is not None:
                mine = [rep for rep in reports if label_of(rep, early) != "false_positive"]
                await queue(mine, received)
            else:
                await queue(reports, received)
        except Exception as exc:
            asking.cancel()
            metrics.submit_failures.inc()
            log.error("could not queue %d reported tokens: %s", len(reports), type(exc).__name__)
            return error(503, "could not queue the alert; retry later")
        known = await asking
        decided = [(rep, label_of(rep, known)) for rep in reports]
        answer = []
        for rep, label in decided:
            metrics.labels.labels(label or "undecided").inc()
            if label is not None:
                answer.append(
                    {"token_hash": rep.token_hash, "token_type": rep.token_type, "label": label}
                )
        return JSONResponse(answer)

    gitlab_token = settings.gitlab_secret()

    def gitlab_auth(request: Request) -> Response | None:
        if not gitlab_token:
            metrics.refused.labels("gitlab_unconfigured").inc()
            return error(503, "no GitLab token configured (KEYSWEEP_GITLAB_TOKEN)")
        supplied = request.headers.get("authorization", "").strip()
        scheme, _, rest = supplied.partition(" ")
        if scheme.lower() in ("bearer", "token") and rest:
            supplied = rest.strip()
        if not hmac.compare_digest(supplied.encode(), gitlab_token.encode()):
            metrics.refused.labels("gitlab_auth").inc()
            return error(401, "missing or invalid token")
        return None

    async def gitlab_types(request: Request) -> Response:
        refused = gitlab_auth(request)
        if refused is not None:
            return refused
        return JSONResponse({"types": list(settings.gitlab_token_types)})

    async def gitlab_revoke(request: Request) -> Response:
        received = time.time()
        refused = gitlab_auth(request)
        if refused is not None:
            return refused
        body = await read_body(request, settings.serve_max_body)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("body must be a JSON array") from None
        reports = gitlab_reports(
            intake, data, settings.serve_max_tokens, settings.gitlab_token_types
        )
        for _ in reports:
            metrics.tokens.labels("gitlab", "gitlab").inc()
        try:
            await queue(reports, received, "gitlab_revocation")
        except Exception as exc:
            metrics.submit_failures.inc()
            log.error("could not queue %d reported tokens: %s", len(reports), type(exc).__name__)
            return error(500, "could not queue the tokens; retry later")
        return Response(status_code=204)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        checks: dict[str, bool] = {}
        if ready is not None:
            with anyio.move_on_after(5):
                checks = await anyio.to_thread.run_sync(ready)
        ok = bool(checks) and all(checks.values()) if ready is not None else True
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    async def prometheus(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route(GITHUB_PATH, instrumented("github", github_alert), methods=["POST"]),
        Route(
            "/v1/revocable_token_types",
            instrumented("gitlab_types", gitlab_types),
            methods=["GET"],
        ),
        Route("/v1/revoke_tokens", instrumented("gitlab_revoke", gitlab_revoke), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(ClientRateLimit, rate=settings.serve_rate_limit, metrics=metrics)
    app.add_middleware(RequestTimeout, seconds=settings.serve_timeout, metrics=metrics)
    app.state.metrics = metrics
    app.state.keyring = keyring
    return app
