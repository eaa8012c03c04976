"""The GitHub REST API simulator: a Starlette app.

GitHub-shaped endpoints (``/events``, ``/repos/...``, ``/gists/...``,
``/rate_limit``), raw file bytes (``/raw/...``, ``/gist-raw/...``), git's dumb
HTTP protocol (``/git/...``) and the test-only control API (``/_sim/...``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio.to_thread
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from tests.sim.builder import Builder, BuildSpec, Item
from tests.sim.config import KINDS, SimConfig
from tests.sim.content import Words
from tests.sim.gitrepo import GitCommit, create_bare_repo
from tests.sim.limits import Fault, Faults, RateLimiter, Stats, Waits, token_label
from tests.sim.model import Batch, Commit, Urls, parse_iso
from tests.sim.partner import Partner
from tests.sim.store import EVENTS_CAP, GISTS_CAP, Store, dumps

log = logging.getLogger("github-sim")

JSON_TYPE = "application/json; charset=utf-8"
DOCS = "https://docs.github.com/rest"
PAGINATION_LIMITED = (
    "In order to keep the API fast for everyone, pagination is limited for this resource."
)
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again. If you reach out to GitHub Support for help, please include the request ID {rid}."
)
BASE_HEADERS = {
    "x-github-api-version-selected": "2022-11-28",
    "x-github-media-type": "github.v3; format=json",
    "vary": "Accept, Authorization, Cookie, X-GitHub-OTP",
    "x-content-type-options": "nosniff",
}


@dataclass
class ApiResult:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, message: str, doc: str = DOCS) -> ApiResult:
    return ApiResult(
        status, dumps({"message": message, "documentation_url": doc, "status": str(status)})
    )


def parse_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    return None


def int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    try:
        value = int(request.query_params.get(name, default))
    except ValueError:
        value = default
    return max(lo, min(hi, value))


def etag_of(body: bytes) -> str:
    return 'W/"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'


def etag_matches(header: str, etag: str) -> bool:
    def norm(tag: str) -> str:
        tag = tag.strip()
        return tag[2:] if tag.startswith("W/") else tag

    wanted = norm(etag)
    return any(t.strip() == "*" or norm(t) == wanted for t in header.split(","))


def seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class Sim:
    """Everything one simulator process holds."""

    def __init__(
        self,
        config: SimConfig,
        urls: Urls,
        workdir: Path,
        seed: int | None = None,
        keyservice_url: str | None = None,
        keyservice_token: str | None = None,
    ) -> None:
        self.config = config
        self.urls = urls
        self.workdir = workdir
        self.seed = seed
        self.keyservice_url = keyservice_url.rstrip("/") if keyservice_url else None
        self.keyservice_token = keyservice_token
        self.store = Store(urls, config.retain_docs)
        self.limiter = RateLimiter()
        self.waits = Waits()
        self.faults = Faults()
        self.stats = Stats()
        self.builder = Builder(seed, urls, workdir)
        self.owner_words = Words(random.Random(None if seed is None else seed + 1))
        self.epoch = 0
        self.request_ids = itertools.count(1)
        self.gen_lock: asyncio.Lock | None = None
        self.git_locks: dict[str, asyncio.Lock] = {}
        self.http: httpx.AsyncClient | None = None
        self.background: asyncio.Task[None] | None = None
        self.plant_counter = 0
        self.partner = Partner(urls.html)

    # -- lifecycle ---------------------------------------------------------

    async def startup(self) -> None:
        self.gen_lock = asyncio.Lock()
        self.http = httpx.AsyncClient(timeout=10.0)
        self.background = asyncio.create_task(self.run_background())
        await self.partner.start()

    async def shutdown(self) -> None:
        await self.partner.stop()
        if self.background is not None:
            self.background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.background
        if self.http is not None:
            await self.http.aclose()

    # -- generation --------------------------------------------------------

    async def mint(self, kind: str) -> dict[str, Any]:
        assert self.http is not None and self.keyservice_url
        name, email = self.owner_words.person()
        body = {
            "org_id": f"org_{self.owner_words.noun()}",
            "project_id": f"proj_{self.owner_words.noun()}_{self.owner_words.rng.randrange(100)}",
            "environment": kind,
            "owner": {"name": name, "email": email},
        }
        headers = {"Authorization": f"Bearer {self.keyservice_token or ''}"}
        r = await self.http.post(f"{self.keyservice_url}/v1/keys", json=body, headers=headers)
        if r.status_code != 201:
            raise RuntimeError(f"key service answered {r.status_code} to POST /v1/keys")
        created: dict[str, Any] = r.json()
        created.setdefault("owner", body["owner"])
        created.setdefault("org_id", body["org_id"])
        created.setdefault("project_id", body["project_id"])
        return created

    async def materials(self, kinds: list[str]) -> list[Item]:
        sem = asyncio.Semaphore(8)

        async def one(kind: str) -> Item:
            if kind not in ("live", "test"):
                return (kind, None)
            async with sem:
                return (kind, await self.mint(kind))

        return list(await asyncio.gather(*(one(k) for k in kinds)))

    async def generate(self, spec: BuildSpec, kinds: list[str]) -> Batch:
        assert self.gen_lock is not None
        async with self.gen_lock:
            epoch = self.epoch
            spec.items = await self.materials(kinds)
            spec.max_patch_bytes = self.config.max_patch_bytes
            spec.gist_truncate_bytes = self.config.gist_truncate_bytes
            spec.gist_clone_bytes = self.config.gist_clone_bytes
            spec.new_branch_ratio = self.config.new_branch_ratio
            self.builder.planter.third_party_rules = list(self.config.third_party_rules)
            self.builder.planter.key_suffix = self.config.key_line_suffix
            batch = await anyio.to_thread.run_sync(self.builder.build, spec)
            if epoch == self.epoch:  # a reset in between drops the batch
                self.store.publish(batch)
                self.stats.generated_docs += batch.documents
                self.partner.on_published(batch.planted)
            return batch

    async def run_background(self) -> None:
        last = time.monotonic()
        owed = 0.0
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            rate = self.config.rate
            if rate <= 0:
                last, owed = now, 0.0
                continue
            owed = min(owed + (now - last) * rate, max(2.0 * rate, 1.0))
            last = now
            count = int(owed)
            if count <= 0:
                continue
            owed -= count
            try:
                spec, kinds = self.background_spec(count)
                await self.generate(spec, kinds)
            except Exception as exc:  # keep generating; report in /_sim/stats
                self.stats.generation_errors.append(repr(exc))
                if "key service" in str(exc) or isinstance(exc, httpx.HTTPError):
                    self.stats.mint_errors += 1
                log.warning("background generation failed: %r", exc)

    def background_spec(self, count: int) -> tuple[BuildSpec, list[str]]:
        cfg = self.config
        gists = sum(1 for _ in range(count) if random.random() < cfg.gist_ratio)
        spec = BuildSpec(pushes=count - gists, gists=gists)
        spec.noise = sum(1 for _ in range(count) if random.random() < cfg.noise_ratio)
        spec.public_repos = sum(1 for _ in range(count) if random.random() < cfg.public_repo_ratio)
        kinds: list[str] = []
        allowed = [k for k in cfg.plant_kinds if self.keyservice_url or k not in ("live", "test")]
        if cfg.plant_every > 0 and allowed:
            for _ in range(count):
                self.plant_counter += 1
                if self.plant_counter % cfg.plant_every == 0:
                    kinds.append(allowed[(self.plant_counter // cfg.plant_every) % len(allowed)])
        return spec, kinds

    # -- the API pipeline --------------------------------------------------

    def rate_headers(self, label: str, token: str | None) -> tuple[dict[str, str], int, int]:
        cfg = self.config
        bucket = self.limiter.bucket(label, cfg.rate_window)
        limit = cfg.rate_limit if token else cfg.unauth_rate_limit
        return (
            {
                "x-ratelimit-limit": str(limit),
                "x-ratelimit-remaining": str(max(0, limit - bucket.used)),
                "x-ratelimit-used": str(bucket.used),
                "x-ratelimit-reset": str(int(bucket.reset)),
                "x-ratelimit-resource": "core",
            },
            limit,
            bucket.used,
        )

    def common_headers(self, token: str | None) -> dict[str, str]:
        rid = next(self.request_ids)
        return {
            **BASE_HEADERS,
            "cache-control": ("private" if token else "public") + ", max-age=60, s-maxage=60",
            "x-github-request-id": f"{rid >> 16:04X}:{rid & 0xFFFF:04X}:{rid:06X}:SIM",
        }

    async def api(
        self,
        request: Request,
        endpoint: str,
        handler: Callable[[Request], Awaitable[ApiResult] | ApiResult],
        charge: bool = True,
        rate_limited: bool = True,
    ) -> Response:
        token = parse_token(request.headers.get("authorization"))
        ip = request.client.host if request.client else "127.0.0.1"
        label = token_label(token, ip)
        stats = self.stats
        stats.requests[endpoint] += 1
        stats.tokens[label] += 1
        self.waits.arrived(label, stats)
        n = stats.enter(label)
        try:
            response = await self._api(
                request, endpoint, handler, token, label, n, charge, rate_limited
            )
        finally:
            stats.leave(label)
        stats.statuses[endpoint][response.status_code] += 1
        if endpoint == "events":
            stats.events_requests.append(
                {
                    "t": time.time(),
                    "status": response.status_code,
                    "token": label,
                    "if_none_match": "if-none-match" in request.headers,
                    "page": request.query_params.get("page", "1"),
                }
            )
        return response

    async def _api(
        self,
        request: Request,
        endpoint: str,
        handler: Callable[[Request], Awaitable[ApiResult] | ApiResult],
        token: str | None,
        label: str,
        inflight: int,
        charge: bool,
        rate_limited: bool,
    ) -> Response:
        cfg = self.config
        fault = self.faults.take(request.url.path, request.url.query)
        if fault is not None:
            self.stats.fault_hits += 1
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return self.fault_response(fault, label, token)
        headers = self.common_headers(token)
        if not rate_limited:
            result = handler(request)
            if not isinstance(result, ApiResult):
                result = await result
            return Response(result.body, result.status, {**result.headers})
        if token and cfg.valid_tokens is not None and token not in cfg.valid_tokens:
            return self.respond(error(401, "Bad credentials"), headers)
        if inflight > cfg.max_concurrent or not self.limiter.charge_points(
            label, endpoint, cfg.points_per_minute
        ):
            self.stats.secondary_limited += 1
            return self.secondary(headers, label, token, 60)
        result = handler(request)
        if not isinstance(result, ApiResult):
            result = await result
        rate, limit, used = self.rate_headers(label, token)
        if result.status == 200:
            etag = etag_of(result.body)
            inm = request.headers.get("if-none-match")
            if inm is not None:
                self.stats.if_none_match += 1
                if etag_matches(inm, etag):  # a 304 costs nothing
                    self.stats.not_modified += 1
                    hdrs = {**headers, **rate, **result.headers, "etag": etag}
                    hdrs.pop("link", None)
                    return Response(None, 304, hdrs)
            result.headers["etag"] = etag
        if charge:
            if used >= limit:
                self.stats.rate_limited += 1
                who = f"user ID {abs(hash(label)) % 10**8}" if token else label.split(":", 1)[1]
                body = error(
                    403,
                    f"API rate limit exceeded for {who}.",
                    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                )
                rate["x-ratelimit-remaining"] = "0"
                self.waits.declare(label, float(rate["x-ratelimit-reset"]))
                return self.respond(body, {**headers, **rate})
            self.limiter.bucket(label, cfg.rate_window).used += 1
            rate, _, _ = self.rate_headers(label, token)
        return self.respond(result, {**headers, **rate})

    @staticmethod
    def respond(result: ApiResult, headers: dict[str, str]) -> Response:
        return Response(
            result.body, result.status, {**headers, **result.headers}, media_type=JSON_TYPE
        )

    def secondary(
        self, headers: dict[str, str], label: str, token: str | None, retry_after: float
    ) -> Response:
        self.waits.declare(None, time.time() + retry_after)
        rate, _, _ = self.rate_headers(label, token)
        body = error(
            403,
            SECONDARY_MESSAGE.format(rid=headers.get("x-github-request-id", "")),
            "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
            "#about-secondary-rate-limits",
        )
        return self.respond(body, {**headers, **rate, "retry-after": seconds(retry_after)})

    def fault_response(self, fault: Fault, label: str, token: str | None) -> Response:
        headers = self.common_headers(token)
        rate, limit, _ = self.rate_headers(label, token)
        status = fault.status or 500
        if fault.secondary:
            return self.secondary(headers, label, token, fault.retry_after or 60)
        extra: dict[str, str] = {}
        if fault.retry_after is not None:
            extra["retry-after"] = seconds(fault.retry_after)
            if status in (403, 429):
                self.waits.declare(label, time.time() + fault.retry_after)
        if status in (403, 429):
            message = fault.message or f"API rate limit exceeded for user ID {limit}."
            if status == 403:
                rate["x-ratelimit-remaining"] = "0"
                rate["x-ratelimit-used"] = str(limit)
                if fault.retry_after is not None:
                    rate["x-ratelimit-reset"] = str(int(time.time() + fault.retry_after))
            body = error(status, message, "https://docs.github.com/rest/overview/rate-limits")
        else:
            message = fault.message or {
                500: "Server Error",
                502: "Server Error",
                503: "Service Unavailable",
                504: "We couldn't respond to your request in time.",
            }.get(status, "Server Error")
            body = error(status, message)
        return self.respond(body, {**headers, **rate, **extra})

    # -- GitHub endpoints --------------------------------------------------

    def link_header(self, request: Request, page: int, last: int) -> dict[str, str]:
        if last <= 1 and page <= 1:
            return {}
        params = dict(request.query_params)
        base = f"{self.urls.api}{request.url.path}"

        def url(p: int) -> str:
            return f"{base}?{urlencode({**params, 'page': str(p)})}"

        rels = []
        if page < last:
            rels += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
        if page > 1:
            rels += [
                f'<{url(1)}>; rel="first"',
                f'<{url(min(page - 1, max(last, 1)))}>; rel="prev"',
            ]
        return {"link": ", ".join(rels)} if rels else {}

    def h_events(self, request: Request) -> ApiResult:
        per_page = int_param(request, "per_page", 30, 1, 100)
        page = int_param(request, "page", 1, 1, 10**6)
        offset = (page - 1) * per_page
        if offset >= EVENTS_CAP:
            return error(422, PAGINATION_LIMITED)
        body, total = self.store.event_page(offset, per_page)
        headers = {"x-poll-interval": seconds(self.config.poll_interval)}
        headers.update(
            self.link_header(request, page, math.ceil(min(total, EVENTS_CAP) / per_page))
        )
        return ApiResult(200, body, headers)

    def h_repo(self, request: Request) -> ApiResult:
        full = f"{request.path_params['owner']}/{request.path_params['repo']}"
        repo = self.store.repos.get(full)
        if repo is None:
            return error(404, "Not Found")
        return ApiResult(200, dumps(repo.json(self.urls)))

    def base_commit_json(self, full: str, sha: str) -> dict[str, Any]:
        c = self.store.commit(full, sha)
        if c is not None:
            return c.core_json(self.urls)
        repo = self.store.repos[full]
        ghost = Commit(
            sha=sha,
            repo=full,
            parents=[],
            author=repo.owner,
            author_name=repo.owner.login,
            author_email=f"{repo.owner.login}@users.noreply.github.com",
            epoch=repo.created_at,
            message="Earlier work",
            files=[],
            tree_sha=hashlib.sha1(sha.encode(), usedforsecurity=False).hexdigest(),
        )
        return ghost.core_json(self.urls)

    def file_entries(self, files: list[Any], full: str, ref: str, parent: str | None) -> list[Any]:
        limit = self.config.max_patch_bytes
        out = []
        for f in files:
            entry = f.json(self.urls, full, ref, parent)
            if f.patch is not None and f.patch_size <= limit:
                entry["patch"] = f.patch
            out.append(entry)
        return out

    def h_compare(self, request: Request) -> ApiResult:
        owner, name = request.path_params["owner"], request.path_params["repo"]
        full = f"{owner}/{name}"
        basehead: str = request.path_params["basehead"]
        if full not in self.store.repos or "..." not in basehead:
            return error(404, "Not Found")
        base, head = basehead.split("...", 1)
        chain = self.store.chain(full, base, head)
        if chain is None:
            return error(404, "Not Found")
        files: dict[str, Any] = {}
        for c in chain:
            for f in c.files:
                files[f.path] = f
        ordered = [files[p] for p in sorted(files)]
        cfg = self.config
        if cfg.compare_error_over_files and len(ordered) > cfg.compare_error_over_files:
            return error(cfg.compare_error_status, "Server Error")
        html = f"{self.urls.html}/{full}"
        api = f"{self.urls.api}/repos/{full}"
        base_json = self.base_commit_json(full, base)
        body = {
            "url": f"{api}/compare/{base}...{head}",
            "html_url": f"{html}/compare/{base}...{head}",
            "permalink_url": f"{html}/compare/{owner}:{base[:7]}...{owner}:{head[:7]}",
            "diff_url": f"{html}/compare/{base}...{head}.diff",
            "patch_url": f"{html}/compare/{base}...{head}.patch",
            "base_commit": base_json,
            "merge_base_commit": base_json,
            "status": "ahead" if chain else "identical",
            "ahead_by": len(chain),
            "behind_by": 0,
            "total_commits": len(chain),
            "commits": [c.core_json(self.urls) for c in chain[:250]],
            "files": self.file_entries(ordered[: cfg.compare_max_files], full, head, base),
        }
        return ApiResult(200, dumps(body))

    def h_commit(self, request: Request) -> ApiResult:
        full = f"{request.path_params['owner']}/{request.path_params['repo']}"
        ref = request.path_params["ref"]
        if full not in self.store.repos:
            return error(404, "Not Found")
        c = self.store.commit(full, ref)
        if c is None:
            return error(422, f"No commit found for SHA: {ref}")
        per_page = int_param(request, "per_page", 300, 1, 300)
        page = int_param(request, "page", 1, 1, 10**6)
        visible = c.files[: self.config.commit_max_files]
        chunk = visible[(page - 1) * per_page : page * per_page]
        body = c.core_json(self.urls)
        adds = sum(f.additions for f in c.files)
        dels = sum(f.deletions for f in c.files)
        body["stats"] = {"total": adds + dels, "additions": adds, "deletions": dels}
        parent = c.parents[0] if c.parents else None
        body["files"] = self.file_entries(chunk, full, c.sha, parent)
        last = max(1, math.ceil(len(visible) / per_page))
        return ApiResult(200, dumps(body), self.link_header(request, page, last))

    def h_contents(self, request: Request) -> ApiResult:
        owner, name = request.path_params["owner"], request.path_params["repo"]
        full, path = f"{owner}/{name}", request.path_params["path"]
        ref = request.query_params.get("ref", "")
        data = self.store.content_at(full, ref, path) if full in self.store.repos else None
        if data is None:
            return error(404, "Not Found")
        big = len(data) > (1 << 20)
        sha = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
        encoded = "" if big else base64.encodebytes(data).decode()
        body = {
            "type": "file",
            "encoding": "none" if big else "base64",
            "size": len(data),
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "content": encoded,
            "sha": sha,
            "url": f"{self.urls.api}/repos/{full}/contents/{path}?ref={ref}",
            "git_url": f"{self.urls.api}/repos/{full}/git/blobs/{sha}",
            "html_url": f"{self.urls.html}/{full}/blob/{ref}/{path}",
            "download_url": f"{self.urls.api}/raw/{full}/{ref}/{path}",
        }
        return ApiResult(200, dumps(body))

    def h_gists_public(self, request: Request) -> ApiResult:
        per_page = int_param(request, "per_page", 30, 1, 100)
        page = int_param(request, "page", 1, 1, 10**6)
        offset = (page - 1) * per_page
        if offset >= GISTS_CAP:
            return error(422, PAGINATION_LIMITED)
        since_text = request.query_params.get("since")
        since: float | None = None
        if since_text:
            try:
                since = parse_iso(since_text)
            except ValueError:
                return error(422, "Invalid request.\n\nInvalid value for since.")
        body, total = self.store.gist_page(since, offset, per_page)
        return ApiResult(200, body, self.link_header(request, page, math.ceil(total / per_page)))

    def h_gist(self, request: Request) -> ApiResult:
        g = self.store.gists.get(request.path_params["gist_id"])
        if g is None:
            return error(404, "Not Found")
        return ApiResult(200, dumps(g.detail_json(self.urls, self.config.gist_truncate_bytes)))

    def h_rate_limit(self, request: Request) -> ApiResult:
        token = parse_token(request.headers.get("authorization"))
        ip = request.client.host if request.client else "127.0.0.1"
        rate, limit, used = self.rate_headers(token_label(token, ip), token)
        core = {
            "limit": limit,
            "remaining": max(0, limit - used),
            "reset": int(rate["x-ratelimit-reset"]),
            "used": used,
            "resource": "core",
        }
        search = {**core, "limit": 30, "remaining": 30, "used": 0, "resource": "search"}
        graphql = {**core, "limit": limit, "remaining": limit, "used": 0, "resource": "graphql"}
        body = {"resources": {"core": core, "search": search, "graphql": graphql}, "rate": core}
        return ApiResult(200, dumps(body))

    # -- raw bytes and git -------------------------------------------------

    def h_raw(self, request: Request) -> ApiResult:
        p = request.path_params
        full = f"{p['owner']}/{p['repo']}"
        data = self.store.content_at(full, p["sha"], p["path"])
        if data is None:
            return ApiResult(404, b"404: Not Found", {"content-type": "text/plain; charset=utf-8"})
        kind = "application/octet-stream" if b"\0" in data[:8000] else "text/plain; charset=utf-8"
        return ApiResult(200, data, {"content-type": kind})

    def h_gist_raw(self, request: Request) -> ApiResult:
        p = request.path_params
        g = self.store.gists.get(p["gist_id"])
        f = None if g is None else next((x for x in g.files if x.filename == p["filename"]), None)
        if f is None:
            return ApiResult(404, b"404: Not Found", {"content-type": "text/plain; charset=utf-8"})
        return ApiResult(200, f.content, {"content-type": "text/plain; charset=utf-8"})

    async def git_file(self, request: Request) -> Response:
        p = request.path_params
        owner, name, rel = p["owner"], p["name"], p["path"]
        root = (self.workdir / "git").resolve()
        repo_dir = (root / owner / f"{name}.git").resolve()
        if not repo_dir.is_relative_to(root):
            return Response(b"Not Found", 404)
        if owner == "gists" and not repo_dir.exists():
            await self.build_gist_repo(name, repo_dir)
        target = (repo_dir / rel).resolve()
        if not target.is_relative_to(repo_dir) or not target.is_file():
            return Response(b"Not Found", 404)
        kind = "text/plain" if rel in ("info/refs", "HEAD", "objects/info/packs") else None
        return FileResponse(target, media_type=kind or "application/octet-stream")

    async def build_gist_repo(self, gist_id: str, repo_dir: Path) -> None:
        g = self.store.gists.get(gist_id)
        if g is None:
            return
        lock = self.git_locks.setdefault(gist_id, asyncio.Lock())
        async with lock:
            if repo_dir.exists():
                return
            commit = GitCommit(
                "",
                g.owner.login,
                f"{g.owner.login}@users.noreply.github.com",
                int(g.created_at),
                {f.filename: f.content for f in g.files},
            )
            await anyio.to_thread.run_sync(create_bare_repo, repo_dir, [commit], "main")

    # -- control API -------------------------------------------------------

    async def c_generate(self, request: Request) -> Response:
        data = await json_body(request)
        if not isinstance(data, dict):
            return JSONResponse({"error": "body must be an object"}, 400)
        plant = data.get("plant") or {}
        try:
            counts = {k: int(plant.get(k, 0)) for k in KINDS}
            wide = [int(n) for n in data.get("wide_pushes", [])]
            spec = BuildSpec(
                pushes=int(data.get("pushes", 0)),
                gists=int(data.get("gists", 0)),
                public_repos=int(data.get("public_repos", 0)),
                large_files=int(data.get("large_files", 0)),
                binary_files=int(data.get("binary_files", 0)),
                wide_pushes=wide,
                large_gists=int(data.get("large_gists", 0)),
                huge_gists=int(data.get("huge_gists", 0)),
            )
            noise = data.get("noise")
            spec.noise = int(noise) if noise is not None else spec.pushes // 3
        except (TypeError, ValueError) as exc:
            return JSONResponse({"error": f"bad generate body: {exc}"}, 400)
        if min(counts.values()) < 0 or any(n > 5000 for n in wide):
            return JSONResponse({"error": "counts must be >= 0; wide pushes <= 5000 files"}, 400)
        skipped = {}
        if not self.keyservice_url:
            skipped = {k: counts[k] for k in ("live", "test") if counts[k]}
            counts["live"] = counts["test"] = 0
        kinds = [k for k in KINDS for _ in range(counts[k])]
        try:
            batch = await self.generate(spec, kinds)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        except (RuntimeError, httpx.HTTPError) as exc:
            return JSONResponse({"error": f"generation failed: {exc}"}, 502)
        return JSONResponse(
            {
                "events": [e["id"] for e in batch.events],
                "push_events": [e["id"] for e in batch.events if e["type"] == "PushEvent"],
                "public_events": [e["id"] for e in batch.events if e["type"] == "PublicEvent"],
                "gists": [g.id for g in batch.gists],
                "repos": sorted({r.full_name for r in batch.repos}),
                "commits": len(batch.commits),
                "documents": batch.documents,
                "planted": len(batch.planted),
                "skipped": skipped,
            }
        )

    async def c_rate(self, request: Request) -> Response:
        data = await json_body(request)
        if not isinstance(data, dict):
            return JSONResponse({"error": "body must be an object"}, 400)
        allowed = (
            "rate",
            "plant_every",
            "plant_kinds",
            "gist_ratio",
            "noise_ratio",
            "public_repo_ratio",
        )
        try:
            self.config.update({k: v for k, v in data.items() if k in allowed})
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return JSONResponse({k: getattr(self.config, k) for k in allowed})

    async def c_planted(self, request: Request) -> Response:
        items = self.store.planted
        kind = request.query_params.get("kind")
        since = request.query_params.get("since")
        if kind:
            items = [p for p in items if p["kind"] == kind]
        if since:
            try:
                t = float(since)
            except ValueError:
                return JSONResponse({"error": "since is epoch seconds"}, 400)
            items = [p for p in items if p["published_at"] >= t]
        return JSONResponse(items)

    async def c_faults(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse([f.json() for f in self.faults.items])
        if request.method == "DELETE":
            self.faults.clear()
            return JSONResponse([])
        data = await json_body(request)
        specs = data if isinstance(data, list) else [data]
        added = []
        try:
            for s in specs:
                status = s.get("status")
                fault = Fault(
                    path_prefix=str(s.get("path_prefix", "/")),
                    query=str(s.get("query") or ""),
                    status=int(status) if status is not None else None,
                    count=int(s.get("count", 1)),
                    retry_after=float(s["retry_after"])
                    if s.get("retry_after") is not None
                    else None,
                    delay=float(s.get("delay", 0)),
                    secondary=bool(s.get("secondary", False)),
                    message=s.get("message"),
                )
                added.append(fault)
        except (TypeError, ValueError, AttributeError) as exc:
            return JSONResponse({"error": f"bad fault: {exc}"}, 400)
        for f in added:
            self.faults.add(f)
        return JSONResponse([f.json() for f in added])

    async def c_duplicate(self, request: Request) -> Response:
        data = await json_body(request)
        event_id = data.get("event_id") if isinstance(data, dict) else None
        got = self.store.duplicate(str(event_id) if event_id is not None else None)
        if got is None:
            return JSONResponse({"error": "no such event"}, 404)
        return JSONResponse({"event_id": got})

    async def c_stats(self, request: Request) -> Response:
        out = self.stats.json()
        out["published"] = dict(self.store.published)
        out["retained"] = {
            "events": len(self.store.events),
            "commits": len(self.store.commits),
            "gists": len(self.store.gists),
            "repos": len(self.store.repos),
        }
        out["planted"] = len(self.store.planted)
        out["faults_pending"] = sum(f.count for f in self.faults.items)
        out["fault_hits_total"] = self.faults.hits
        out["rate"] = self.config.rate
        return JSONResponse(out)

    async def c_reset(self, request: Request) -> Response:
        data = await json_body(request)
        data = data if isinstance(data, dict) else {}
        self.stats = Stats()
        self.limiter.reset()
        self.waits = Waits()
        self.faults.clear()
        if not data.get("stats_only"):
            self.epoch += 1
            self.partner.reset()
            self.store.reset()
            self.config.rate = float(data.get("rate", 0.0))
        return JSONResponse({"ok": True, "rate": self.config.rate})

    async def c_config(self, request: Request) -> Response:
        if request.method == "POST":
            data = await json_body(request)
            if not isinstance(data, dict):
                return JSONResponse({"error": "body must be an object"}, 400)
            try:
                self.config.update(data)
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, 400)
            self.store.retain_docs = self.config.retain_docs
        out = self.config.json()
        out["keyservice"] = bool(self.keyservice_url)
        out["base_url"] = self.urls.api
        return JSONResponse(out)

    # -- partner program, credential revocation, GitLab ------------------

    def h_meta_keys(self, request: Request) -> ApiResult:
        return ApiResult(200, dumps(self.partner.keys_json()))

    async def credentials_revoke(self, request: Request) -> Response:
        self.stats.requests["credentials_revoke"] += 1
        fault = self.faults.take(request.url.path)
        if fault is not None:  # GitHub failing part-way: a 5xx, or slow
            self.stats.fault_hits += 1
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                self.stats.statuses["credentials_revoke"][fault.status] += 1
                return JSONResponse(
                    {"message": "Server Error"}, fault.status, headers=self.common_headers(None)
                )
        ip = request.client.host if request.client else "127.0.0.1"
        body = await json_body(request)
        status, answer = self.partner.revoke_credentials(
            ip, request.headers.get("authorization"), body
        )
        self.stats.statuses["credentials_revoke"][status] += 1
        return JSONResponse(answer, status, headers=self.common_headers(None))

    async def c_partner_config(self, request: Request) -> Response:
        cfg = self.partner.config
        if request.method == "POST":
            data = await json_body(request)
            if not isinstance(data, dict) or set(data) - set(vars(cfg)):
                return JSONResponse({"error": f"settings are {sorted(vars(cfg))}"}, 400)
            for k, v in data.items():
                setattr(cfg, k, v)
        return JSONResponse(dict(vars(cfg)))

    async def c_partner_keys(self, request: Request) -> Response:
        if request.method == "POST":
            data = await json_body(request) or {}
            return JSONResponse(self.partner.rotate(bool(data.get("keep_old", True))))
        return JSONResponse(self.partner.keys_json())

    async def c_partner_send(self, request: Request) -> Response:
        data = await json_body(request) or {}
        try:
            result = await self.partner.send_once(
                list(data["items"]), str(data.get("mode", "valid"))
            )
        except (KeyError, TypeError, httpx.HTTPError) as exc:
            return JSONResponse({"error": repr(exc)}, 400)
        return JSONResponse(result)

    async def c_partner_deliveries(self, request: Request) -> Response:
        p = self.partner
        if request.query_params.get("summary"):
            return JSONResponse(
                {
                    "sent": sum(d["tokens"] for d in p.deliveries if d["attempt"] == 1),
                    "pending": len(p.pending),
                    "inflight": len(p.inflight),
                }
            )
        return JSONResponse(
            {
                "deliveries": p.deliveries,
                "first_sent": p.first_sent,
                "reported": p.reported,
                "pending": len(p.pending),
                "inflight": len(p.inflight),
            }
        )

    async def c_partner_stream(self, request: Request) -> Response:
        """Mint ``rate * seconds / real_every`` keys, mix them with unissued tokens of our
        format, and deliver them all at ``rate`` tokens per second."""
        data = await json_body(request) or {}
        rate, seconds = float(data.get("rate", 100)), float(data.get("seconds", 10))
        real_every = max(1, int(data.get("real_every", 10)))
        total = int(rate * seconds)
        kinds = [k for k in ("live", "test") if k in (data.get("kinds") or ["live", "test"])]
        if not self.keyservice_url:
            return JSONResponse({"error": "no key service: cannot mint"}, 400)
        minted = await self.materials([kinds[i % len(kinds)] for i in range(total // real_every)])
        real = [
            {
                "kind": kind,
                "key": m["key"],
                "sha256": hashlib.sha256(m["key"].encode()).hexdigest(),
                "key_id": m["key_id"],
                "display_prefix": m["display_prefix"],
            }
            for kind, m in minted
            if m is not None
        ]
        tokens: list[dict[str, Any]] = []
        it = iter(real)
        for i in range(total):
            r = next(it, None) if i % real_every == 0 else None
            kind = r["kind"] if r else kinds[i % len(kinds)]
            token = r["key"] if r else self.partner.filler(kind)
            tokens.append(
                {
                    "token": token,
                    "type": f"mg_{kind}",
                    "url": f"{self.urls.html}/bench/intake/blob/{i:040x}/conf/{i}.env",
                    "source": "commit",
                }
            )
        dup = self.partner.config.duplicate_ratio
        for tok in [t for t in tokens if random.random() < dup]:  # reported again, later
            tokens.insert(random.randrange(len(tokens) // 2, len(tokens) + 1), tok)
        self.partner.stream_task = asyncio.create_task(self.partner.stream(rate, seconds, tokens))
        return JSONResponse({"tokens": len(tokens), "real": real})

    async def c_credentials(self, request: Request) -> Response:
        p = self.partner
        if request.method == "POST":
            data = await json_body(request) or {}
            p.cred_per_hour = int(data.get("per_hour", p.cred_per_hour))
            p.cred_max = int(data.get("max", p.cred_max))
        return JSONResponse(
            {
                "requests": p.credentials,
                "revoked": p.revoked,
                "per_hour": p.cred_per_hour,
                "max": p.cred_max,
            }
        )

    async def c_gitlab_revoke(self, request: Request) -> Response:
        data = await json_body(request) or {}
        try:
            out = await self.partner.gitlab_revoke(
                str(data["url"]), str(data["token"]), list(data["keys"])
            )
        except (KeyError, TypeError, httpx.HTTPError) as exc:
            return JSONResponse({"error": repr(exc)}, 400)
        return JSONResponse(out)


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    import json

    try:
        return json.loads(raw)
    except ValueError:
        return None


def create_app(sim: Sim) -> Starlette:
    def api(
        endpoint: str,
        handler: Callable[[Request], ApiResult],
        charge: bool = True,
        rate_limited: bool = True,
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint_fn(request: Request) -> Response:
            return await sim.api(request, endpoint, handler, charge, rate_limited)

        return endpoint_fn

    async def git_file(request: Request) -> Response:
        sim.stats.requests["git"] += 1
        fault = sim.faults.take(request.url.path)
        if fault is not None:
            sim.stats.fault_hits += 1
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return Response(b"error", fault.status)
        return await sim.git_file(request)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/events", api("events", sim.h_events)),
        Route("/repos/{owner}/{repo}", api("repo", sim.h_repo)),
        Route("/repos/{owner}/{repo}/compare/{basehead}", api("compare", sim.h_compare)),
        Route("/repos/{owner}/{repo}/commits/{ref}", api("commit", sim.h_commit)),
        Route("/repos/{owner}/{repo}/contents/{path:path}", api("contents", sim.h_contents)),
        Route("/gists/public", api("gists_public", sim.h_gists_public)),
        Route("/gists/{gist_id}", api("gist", sim.h_gist)),
        Route("/rate_limit", api("rate_limit", sim.h_rate_limit, charge=False)),
        Route("/raw/{owner}/{repo}/{sha}/{path:path}", api("raw", sim.h_raw, rate_limited=False)),
        Route(
            "/gist-raw/{owner}/{gist_id}/raw/{version}/{filename}",
            api("gist_raw", sim.h_gist_raw, rate_limited=False),
        ),
        Route("/git/{owner}/{name}.git/{path:path}", git_file),
        Route(
            "/meta/public_keys/secret_scanning",
            api("meta_keys", sim.h_meta_keys, charge=True),
        ),
        Route("/credentials/revoke", sim.credentials_revoke, methods=["POST"]),
        Route("/_sim/partner/config", sim.c_partner_config, methods=["GET", "POST"]),
        Route("/_sim/partner/keys", sim.c_partner_keys, methods=["GET", "POST"]),
        Route("/_sim/partner/send", sim.c_partner_send, methods=["POST"]),
        Route("/_sim/partner/deliveries", sim.c_partner_deliveries),
        Route("/_sim/partner/stream", sim.c_partner_stream, methods=["POST"]),
        Route("/_sim/credentials", sim.c_credentials, methods=["GET", "POST"]),
        Route("/_sim/gitlab/revoke", sim.c_gitlab_revoke, methods=["POST"]),
        Route("/_sim/healthz", healthz),
        Route("/_sim/generate", sim.c_generate, methods=["POST"]),
        Route("/_sim/rate", sim.c_rate, methods=["POST"]),
        Route("/_sim/planted", sim.c_planted),
        Route("/_sim/faults", sim.c_faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sim/duplicate", sim.c_duplicate, methods=["POST"]),
        Route("/_sim/stats", sim.c_stats),
        Route("/_sim/reset", sim.c_reset, methods=["POST"]),
        Route("/_sim/config", sim.c_config, methods=["GET", "POST"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await sim.startup()
        try:
            yield
        finally:
            await sim.shutdown()

    return Starlette(routes=routes, lifespan=lifespan)
