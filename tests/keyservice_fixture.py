"""Run the reference key service (deploy/keyservice) as a real subprocess on loopback.

    from tests.keyservice_fixture import start_keyservice

    with start_keyservice(tmp_path) as ks:
        created = ks.mint(env="live")          # {"key": <cleartext>, "key_id", ...}
        with ks.client() as http:              # httpx.Client with base_url and token
            http.post("/v1/keys/lookup", json={"hashes": [...]})

or use the function-scoped pytest fixture ``keyservice``: import it into the test
module (``from tests.keyservice_fixture import keyservice  # noqa: F401``) or list
this module in ``pytest_plugins`` of the root conftest.

The server's stdout and stderr go to ``ks.log_path`` so tests can grep them.
Keys exist only at run time: minted by the service, never written by a test.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.procs import ServiceProcess, spawn, wait_until_healthy

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "deploy" / "keyservice" / "server.py"
DEFAULT_TOKEN = "keysweep-test-token"
DEFAULT_OWNER = {"name": "Ada Tester", "email": "ada@example.com"}
START_TIMEOUT = 20.0

ResponseHook = Callable[[httpx.Response], None]


class KeyServiceError(RuntimeError):
    pass


class KeyService(ServiceProcess):
    """A running key service: ``url``, ``token``, ``db_path``, ``log_path``."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        url: str,
        token: str | None,
        db_path: Path,
        log_path: Path,
    ) -> None:
        super().__init__(proc, url, log_path)
        self.token = token
        self.db_path = db_path
        # Called with every response of clients made by client() (and so by mint()).
        self.response_hooks: list[ResponseHook] = []

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self, *, auth: bool = True, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers=self.headers() if auth else {},
            timeout=timeout,
            event_hooks={"response": list(self.response_hooks)},
        )

    def mint(
        self,
        env: str = "live",
        org_id: str = "org_test",
        project_id: str = "proj_test",
        owner: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Create a key; the answer holds the cleartext ``key`` (shown this once)."""
        body = {
            "org_id": org_id,
            "project_id": project_id,
            "environment": env,
            "owner": owner or DEFAULT_OWNER,
        }
        with self.client() as http:
            response = http.post("/v1/keys", json=body)
        if response.status_code != 201:
            raise KeyServiceError(f"mint failed: {response.status_code} {response.text}")
        created: dict[str, Any] = response.json()
        return created


@contextlib.contextmanager
def start_keyservice(
    tmp_path: Path,
    token: str | None = DEFAULT_TOKEN,
    *,
    name: str = "keyservice",
    extra_args: list[str] | None = None,
) -> Iterator[KeyService]:
    """Start ``server.py --port 0 --port-file`` and wait for /healthz.

    ``token=None`` starts the service with no token configured (every /v1 call
    answers 503). Files land in ``tmp_path``: ``<name>.sqlite3``, ``<name>.log``.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    db_path = tmp_path / f"{name}.sqlite3"
    log_path = tmp_path / f"{name}.log"
    port_file = tmp_path / f"{name}.url"
    port_file.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "KEYSERVICE_TOKEN"}
    if token is not None:
        env["KEYSERVICE_TOKEN"] = token
    env["PYTHONUNBUFFERED"] = "1"
    cmd = [
        sys.executable,
        str(SERVER),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--db",
        str(db_path),
        "--port-file",
        str(port_file),
        *(extra_args or []),
    ]
    proc = spawn(cmd, env, log_path)
    service: KeyService | None = None
    try:
        url = wait_until_healthy(
            proc,
            port_file,
            log_path,
            health="/healthz",
            name="key service",
            error=KeyServiceError,
            timeout=START_TIMEOUT,
        )
        service = KeyService(proc, url, token, db_path, log_path)
        yield service
    finally:
        if service is not None:
            service.stop()
        elif proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def keyservice(tmp_path: Path) -> Iterator[KeyService]:
    """A fresh key service (own database) for one test."""
    with start_keyservice(tmp_path / "keyservice") as service:
        yield service
