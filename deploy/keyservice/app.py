"""Reference key service: the v1 key-service contract on Starlette + SQLite.

The production key service belongs to the key provider; this is a small, real
implementation of the same contract (see DESIGN.md, "Key service contract (v1)"
and ``openapi.json`` next to this file) for the local stack and the tests.

Keys are stored only as the SHA-256 hex of the whole key plus a display prefix
(``mg_live_`` / ``mg_test_`` and the first 8 body characters). The cleartext is
returned once by ``POST /v1/keys`` and is never stored or logged. Anything that
would be stored (audit events, revocation details) is refused with 400 when it
contains something shaped like a full key.

Storage: one SQLite connection per database call (opened in a worker thread),
WAL journal, ``BEGIN IMMEDIATE`` write transactions serialised by a process-wide
lock, so concurrent requests under uvicorn's single process are safe and
idempotency checks cannot race.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

OPENAPI_PATH = Path(__file__).resolve().parent / "openapi.json"

MAX_BODY_BYTES = 1 << 20
MAX_LOOKUP_HASHES = 1000
SQL_CHUNK = 500

AUDIT_ACTIONS = ("api_key.leak_detected", "api_key.revoked", "api_key.leak_notified")
REVOKE_REASONS = ("leaked",)
ENVIRONMENTS = ("live", "test")

SHA256_RE = re.compile(r"[0-9a-f]{64}")
KEY_ID_RE = re.compile(r"key_[0-9a-f]{16}")
DISPLAY_PREFIX_RE = re.compile(r"mg_(live|test)_[A-Za-z0-9_-]{0,8}")
IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")
# Something shaped like a full mg_ key (prefix plus more than a display prefix's
# 8 body characters). Used to refuse storing it and to redact it from logs.
FULL_KEY_RE = re.compile(r"(mg_(?:live|test)_[A-Za-z0-9_-]{8})[A-Za-z0-9_-]{9,}")

MAX_TEXT = 2048

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id          TEXT PRIMARY KEY,
    sha256          TEXT NOT NULL UNIQUE,
    display_prefix  TEXT NOT NULL,
    environment     TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    org_id          TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    owner_name      TEXT NOT NULL,
    owner_email     TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at      TEXT NOT NULL,
    revoked_at      TEXT,
    revoke_reason   TEXT,
    revoke_source_url TEXT,
    revoke_detected_at TEXT
);
CREATE TABLE IF NOT EXISTS revoke_requests (
    key_id          TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    response        TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (key_id, idempotency_key)
);
CREATE TABLE IF NOT EXISTS audit_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    idempotency_key TEXT UNIQUE,
    action          TEXT NOT NULL,
    actor           TEXT NOT NULL,
    target          TEXT NOT NULL,
    timestamp       TEXT NOT NULL,
    ip              TEXT,
    user_agent      TEXT,
    org_id          TEXT,
    metadata        TEXT NOT NULL,
    created_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_target ON audit_events (target, seq);
"""


# --------------------------------------------------------------------------- helpers


def utc_now() -> str:
    return format_ts(datetime.now(UTC))


def format_ts(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_key(environment: str) -> str:
    body = base64.urlsafe_b64encode(secrets.token_bytes(24)).rstrip(b"=").decode("ascii")
    return f"mg_{environment}_{body}"


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    env_prefix = key[:8]  # "mg_live_" / "mg_test_"
    return env_prefix + key[8:16]


def redact_keys(text: str) -> str:
    """Cut anything shaped like a full key down to its display prefix."""
    return FULL_KEY_RE.sub(r"\1...", text)


def contains_full_key(value: Any) -> bool:
    if isinstance(value, str):
        return FULL_KEY_RE.search(value) is not None
    if isinstance(value, dict):
        return any(contains_full_key(k) or contains_full_key(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_full_key(v) for v in value)
    return False


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class BadRequest(Exception):
    """A 4xx answer raised from validation code; becomes ``{"error": message}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


async def read_json_object(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(f"request body larger than {MAX_BODY_BYTES} bytes", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadRequest(f"request body larger than {MAX_BODY_BYTES} bytes", 413)
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def text_field(
    body: dict[str, Any], name: str, *, required: bool = True, max_len: int = MAX_TEXT
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise BadRequest(f"{name} must be a non-empty string of at most {max_len} characters")
    return value


def timestamp_field(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = text_field(body, name, required=required, max_len=64)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        raise BadRequest(f"{name} must carry a time zone (e.g. a trailing Z)")
    return format_ts(parsed)


def idempotency_key(request: Request, *, required: bool) -> str | None:
    value = request.headers.get("idempotency-key")
    if value is None:
        if required:
            raise BadRequest("Idempotency-Key header is required")
        return None
    if not IDEMPOTENCY_KEY_RE.fullmatch(value):
        raise BadRequest("Idempotency-Key must be 1-255 printable ASCII characters")
    return value


# --------------------------------------------------------------------------- storage


class Store:
    """SQLite storage; every call opens its own connection (call from worker threads)."""

    def __init__(self, db_path: str) -> None:
        if db_path == ":memory:" or not db_path:
            raise ValueError("the key service needs a database file path, not :memory:")
        self.db_path = db_path
        self._write_lock = threading.Lock()
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
        # Held open for the store's life: when the last connection to a WAL database
        # closes, SQLite checkpoints and deletes the WAL, an fsync on every request
        # (~13 ms each here). With this one open, closing a request's connection is cheap
        # and checkpoints happen as SQLite schedules them (every 1,000 pages).
        self._keeper = sqlite3.connect(db_path, check_same_thread=False)
        self._keeper.execute("SELECT count(*) FROM sqlite_master").fetchall()  # joins the WAL

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.db_path, timeout=10.0, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock, self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # keys ---------------------------------------------------------------

    def create_key(
        self, environment: str, org_id: str, project_id: str, owner: dict[str, str]
    ) -> dict[str, Any]:
        key = new_key(environment)
        record = {
            "key_id": "key_" + secrets.token_hex(8),
            "display_prefix": display_prefix(key),
            "environment": environment,
            "org_id": org_id,
            "project_id": project_id,
            "owner": {"name": owner["name"], "email": owner["email"]},
            "status": "active",
            "created_at": utc_now(),
        }
        with self._write() as conn:
            conn.execute(
                "INSERT INTO api_keys (key_id, sha256, display_prefix, environment, org_id,"
                " project_id, owner_name, owner_email, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?)",
                (
                    record["key_id"],
                    sha256_hex(key),
                    record["display_prefix"],
                    environment,
                    org_id,
                    project_id,
                    owner["name"],
                    owner["email"],
                    record["created_at"],
                ),
            )
        return {"key": key, **record}

    def lookup(self, hashes: list[str]) -> list[dict[str, Any]]:
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, dict[str, Any]] = {}
        with self._connect() as conn:
            for start in range(0, len(wanted), SQL_CHUNK):
                chunk = wanted[start : start + SQL_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT * FROM api_keys WHERE sha256 IN ({marks})", chunk
                ).fetchall()
                for row in rows:
                    found[row["sha256"]] = {
                        "sha256": row["sha256"],
                        "key_id": row["key_id"],
                        "display_prefix": row["display_prefix"],
                        "environment": row["environment"],
                        "status": row["status"],
                        "revoked_at": row["revoked_at"],
                        "org_id": row["org_id"],
                        "project_id": row["project_id"],
                        "owner": {"name": row["owner_name"], "email": row["owner_email"]},
                    }
        return [found[h] for h in wanted if h in found]

    def revoke(
        self,
        key_id: str,
        idem_key: str,
        reason: str,
        source_url: str | None,
        detected_at: str | None,
    ) -> tuple[dict[str, Any] | None, bool]:
        """Return (response, replayed); response None means unknown key."""
        with self._write() as conn:
            stored = conn.execute(
                "SELECT response FROM revoke_requests WHERE key_id = ? AND idempotency_key = ?",
                (key_id, idem_key),
            ).fetchone()
            if stored is not None:
                return json.loads(stored["response"]), True
            row = conn.execute(
                "SELECT status, revoked_at FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
            if row is None:
                return None, False
            if row["status"] == "revoked":
                response = {
                    "key_id": key_id,
                    "status": "revoked",
                    "revoked_at": row["revoked_at"],
                    "already_revoked": True,
                }
            else:
                now = utc_now()
                conn.execute(
                    "UPDATE api_keys SET status = 'revoked', revoked_at = ?, revoke_reason = ?,"
                    " revoke_source_url = ?, revoke_detected_at = ? WHERE key_id = ?",
                    (now, reason, source_url, detected_at, key_id),
                )
                response = {
                    "key_id": key_id,
                    "status": "revoked",
                    "revoked_at": now,
                    "already_revoked": False,
                }
            conn.execute(
                "INSERT INTO revoke_requests (key_id, idempotency_key, response, created_at)"
                " VALUES (?, ?, ?, ?)",
                (key_id, idem_key, json.dumps(response), utc_now()),
            )
            return response, False

    # audit events ---------------------------------------------------------

    def add_event(self, event: dict[str, Any], idem_key: str | None) -> tuple[str, bool]:
        """Return (event id, replayed)."""
        with self._write() as conn:
            if idem_key is not None:
                row = conn.execute(
                    "SELECT id FROM audit_events WHERE idempotency_key = ?", (idem_key,)
                ).fetchone()
                if row is not None:
                    return str(row["id"]), True
            event_id = "evt_" + secrets.token_hex(12)
            conn.execute(
                "INSERT INTO audit_events (id, idempotency_key, action, actor, target, timestamp,"
                " ip, user_agent, org_id, metadata, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event_id,
                    idem_key,
                    event["action"],
                    event["actor"],
                    event["target"],
                    event["timestamp"],
                    event["ip"],
                    event["user_agent"],
                    event["org_id"],
                    json.dumps(event["metadata"], separators=(",", ":")),
                    utc_now(),
                ),
            )
            return event_id, False

    def events(self, target: str | None, action: str | None) -> list[dict[str, Any]]:
        where: list[str] = []
        params: list[str] = []
        if target is not None:
            where.append("target = ?")
            params.append(target)
        if action is not None:
            where.append("action = ?")
            params.append(action)
        sql = "SELECT * FROM audit_events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        with self._connect() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [
            {
                "id": row["id"],
                "action": row["action"],
                "actor": row["actor"],
                "target": row["target"],
                "timestamp": row["timestamp"],
                "ip": row["ip"],
                "user_agent": row["user_agent"],
                "org_id": row["org_id"],
                "metadata": json.loads(row["metadata"]),
                "created_at": row["created_at"],
            }
            for row in rows
        ]


# --------------------------------------------------------------------------- auth


class TokenAuthMiddleware:
    """Bearer / X-API-Key auth for every ``/v1`` path (constant-time comparison)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode("utf-8") if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        if self.token is None:
            response: Response = error(503, "service has no token configured")
        elif self._authorized(scope):
            await self.app(scope, receive, send)
            return
        else:
            response = error(
                401, "missing or invalid token", {"WWW-Authenticate": 'Bearer realm="keyservice"'}
            )
        await response(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        assert self.token is not None
        supplied: list[bytes] = []
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, credential = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    supplied.append(credential.strip())
            elif name == b"x-api-key":
                supplied.append(value.strip())
        ok = False
        for credential in supplied:
            # Evaluate every credential so timing does not depend on which one matched.
            ok = hmac.compare_digest(credential, self.token) | ok
        return ok


# --------------------------------------------------------------------------- endpoints


def create_app(db_path: str, token: str | None) -> Starlette:
    """Build the reference key service storing into the SQLite file ``db_path``.

    ``token`` is the shared secret every ``/v1`` request must present; ``None`` or
    an empty string makes every ``/v1`` request answer 503.
    """
    store = Store(db_path)
    openapi_doc = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))

    def endpoint(
        fn: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        """Turn a BadRequest raised by validation into its JSON error answer."""

        async def wrapper(request: Request) -> Response:
            try:
                response: Response = await fn(request)
            except BadRequest as exc:
                return error(exc.status, exc.message)
            return response

        wrapper.__name__ = fn.__name__
        return wrapper

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_doc)

    @endpoint
    async def create_key(request: Request) -> Response:
        body = await read_json_object(request)
        org_id = text_field(body, "org_id", max_len=128)
        project_id = text_field(body, "project_id", max_len=128)
        environment = body.get("environment")
        if environment not in ENVIRONMENTS:
            raise BadRequest("environment must be 'live' or 'test'")
        owner = body.get("owner")
        if not isinstance(owner, dict):
            raise BadRequest("owner must be an object with name and email")
        name = text_field(owner, "name", max_len=256)
        email = text_field(owner, "email", max_len=256)
        assert org_id and project_id and name and email
        if "@" not in email:
            raise BadRequest("owner.email must be an email address")
        if contains_full_key([org_id, project_id, name, email]):
            raise BadRequest("request contains what looks like a full API key")
        created = await run_in_threadpool(
            store.create_key, environment, org_id, project_id, {"name": name, "email": email}
        )
        return JSONResponse(created, status_code=201, headers={"Cache-Control": "no-store"})

    @endpoint
    async def lookup(request: Request) -> Response:
        body = await read_json_object(request)
        hashes = body.get("hashes")
        if not isinstance(hashes, list) or not hashes:
            raise BadRequest("hashes must be a non-empty array of SHA-256 hex strings")
        if len(hashes) > MAX_LOOKUP_HASHES:
            raise BadRequest(f"at most {MAX_LOOKUP_HASHES} hashes per request", 413)
        for h in hashes:
            if not isinstance(h, str) or not SHA256_RE.fullmatch(h):
                raise BadRequest("every hash must be 64 lowercase hexadecimal characters")
        matches = await run_in_threadpool(store.lookup, hashes)
        return JSONResponse({"matches": matches})

    @endpoint
    async def revoke(request: Request) -> Response:
        key_id: str = request.path_params["key_id"]
        body = await read_json_object(request)
        reason = body.get("reason")
        if reason not in REVOKE_REASONS:
            raise BadRequest("reason must be 'leaked'")
        source_url = text_field(body, "source_url", required=False)
        detected_at = timestamp_field(body, "detected_at", required=False)
        if contains_full_key(source_url):
            raise BadRequest("source_url contains what looks like a full API key")
        idem = idempotency_key(request, required=True)
        assert idem is not None
        if not KEY_ID_RE.fullmatch(key_id):
            return error(404, "unknown key")
        response, replayed = await run_in_threadpool(
            store.revoke, key_id, idem, str(reason), source_url, detected_at
        )
        if response is None:
            return error(404, "unknown key")
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JSONResponse(response, headers=headers)

    @endpoint
    async def add_event(request: Request) -> Response:
        body = await read_json_object(request)
        action = body.get("action")
        if action not in AUDIT_ACTIONS:
            raise BadRequest("action must be one of " + ", ".join(AUDIT_ACTIONS))
        actor = text_field(body, "actor", max_len=128)
        target = body.get("target")
        if not isinstance(target, str) or not DISPLAY_PREFIX_RE.fullmatch(target):
            raise BadRequest(
                "target must be a display prefix (mg_live_/mg_test_ and at most 8 characters)"
            )
        timestamp = timestamp_field(body, "timestamp", required=True)
        ip = text_field(body, "ip", required=False, max_len=64)
        user_agent = text_field(body, "user_agent", required=False, max_len=512)
        org_id = text_field(body, "org_id", required=False, max_len=128)
        metadata = body.get("metadata", {})
        if not isinstance(metadata, dict):
            raise BadRequest("metadata must be an object")
        if len(json.dumps(metadata)) > 16 * 1024:
            raise BadRequest("metadata larger than 16 KiB")
        if contains_full_key([actor, ip, user_agent, org_id, metadata]):
            raise BadRequest("audit event contains what looks like a full API key")
        idem = idempotency_key(request, required=False)
        event = {
            "action": action,
            "actor": actor,
            "target": target,
            "timestamp": timestamp,
            "ip": ip if ip is not None else (request.client.host if request.client else None),
            "user_agent": user_agent
            if user_agent is not None
            else redact_keys(request.headers.get("user-agent", ""))[:512] or None,
            "org_id": org_id,
            "metadata": metadata,
        }
        event_id, replayed = await run_in_threadpool(store.add_event, event, idem)
        headers = {"Idempotent-Replayed": "true"} if replayed else None
        return JSONResponse({"id": event_id}, status_code=201, headers=headers)

    @endpoint
    async def list_events(request: Request) -> Response:
        target = request.query_params.get("target")
        action = request.query_params.get("action")
        if target is not None and not DISPLAY_PREFIX_RE.fullmatch(target):
            raise BadRequest("target must be a display prefix")
        if action is not None and action not in AUDIT_ACTIONS:
            raise BadRequest("action must be one of " + ", ".join(AUDIT_ACTIONS))
        events = await run_in_threadpool(store.events, target, action)
        return JSONResponse({"events": events})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception) -> Response:
        return error(500, "internal error")

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/v1/keys", create_key, methods=["POST"]),
        Route("/v1/keys/lookup", lookup, methods=["POST"]),
        Route("/v1/keys/{key_id}/revoke", revoke, methods=["POST"]),
        Route("/v1/audit-events", add_event, methods=["POST"]),
        Route("/v1/audit-events", list_events, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(TokenAuthMiddleware, token=token)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
