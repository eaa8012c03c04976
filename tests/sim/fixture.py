"""Run the GitHub simulator (``python -m tests.sim``) as a real subprocess on loopback.

    from tests.sim.fixture import start_sim

    with start_keyservice(tmp_path) as ks, start_sim(tmp_path, ks, poll_interval=1) as sim:
        sim.generate(pushes=20, gists=10, plant={"live": 3, "third_party": 2})
        with sim.client(token="worker-1") as gh:      # httpx.Client: base_url + auth
            events = gh.get("/events", params={"per_page": 100}).json()
        truth = sim.planted()                          # ground truth, cleartext keys

or the function-scoped pytest fixtures ``github_sim`` (with a fresh key service,
so ``mg_`` keys are planted) and ``github_sim_nokeys`` (third-party keys and
near misses only). Import them into a test module
(``from tests.sim.fixture import github_sim  # noqa: F401``) or list this module
in ``pytest_plugins``.

``start_sim(..., **opts)`` turns keyword options into flags: ``poll_interval=1``
is ``--poll-interval 1``, ``access_log=True`` is ``--access-log``. The process's
stdout and stderr go to ``sim.log_path``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from tests.procs import ServiceProcess, spawn, wait_until_healthy
from tests.sim.limits import token_label

START_TIMEOUT = 30.0


class SimError(RuntimeError):
    pass


class KeyServiceLike(Protocol):
    url: str
    token: str | None


class GitHubSim(ServiceProcess):
    """A running simulator: ``url``, ``log_path``, ``workdir`` and control helpers."""

    def __init__(
        self, proc: subprocess.Popen[bytes], url: str, log_path: Path, workdir: Path
    ) -> None:
        super().__init__(proc, url, log_path)
        self.workdir = workdir

    # -- clients -----------------------------------------------------------

    def client(self, token: str | None = None, *, timeout: float = 30.0) -> httpx.Client:
        """An httpx client for the GitHub endpoints, as ``Authorization: token X``."""
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if token:
            headers["Authorization"] = f"token {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    @staticmethod
    def token_label(token: str | None) -> str:
        """How ``stats()["tokens"]`` names a token (a hash; never the token)."""
        return token_label(token)

    # -- control API -------------------------------------------------------

    def control(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """Call ``/_sim/<path>``; raises SimError on a non-2xx answer."""
        with httpx.Client(base_url=self.url, timeout=120.0) as http:
            r = http.request(method, f"/_sim/{path.lstrip('/')}", json=body, params=params or None)
        if r.status_code >= 300:
            raise SimError(f"{method} /_sim/{path}: {r.status_code} {r.text}")
        return r.json()

    def generate(self, **spec: Any) -> dict[str, Any]:
        """``POST /_sim/generate``: pushes, gists, public_repos, plant={...}, large_files,
        binary_files, wide_pushes=[N, ...], large_gists, huge_gists, noise."""
        result: dict[str, Any] = self.control("POST", "generate", spec)
        return result

    def planted(self, kind: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {}
        if kind:
            params["kind"] = kind
        if since is not None:
            params["since"] = since
        items: list[dict[str, Any]] = self.control("GET", "planted", **params)
        return items

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.control("GET", "stats")
        return result

    def fault(
        self,
        path_prefix: str,
        status: int | None = None,
        *,
        count: int = 1,
        retry_after: float | None = None,
        delay: float = 0.0,
        secondary: bool = False,
    ) -> list[dict[str, Any]]:
        body = {
            "path_prefix": path_prefix,
            "status": status,
            "count": count,
            "retry_after": retry_after,
            "delay": delay,
            "secondary": secondary,
        }
        result: list[dict[str, Any]] = self.control("POST", "faults", body)
        return result

    def clear_faults(self) -> None:
        self.control("DELETE", "faults")

    def duplicate(self, event_id: str | None = None) -> str:
        body = {"event_id": event_id} if event_id is not None else {}
        return str(self.control("POST", "duplicate", body)["event_id"])

    def set_rate(self, rate: float, plant_every: int | None = None, **more: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"rate": rate, **more}
        if plant_every is not None:
            body["plant_every"] = plant_every
        result: dict[str, Any] = self.control("POST", "rate", body)
        return result

    def config(self, **settings: Any) -> dict[str, Any]:
        """Read (no arguments) or change runtime settings (``POST /_sim/config``)."""
        result: dict[str, Any] = (
            self.control("POST", "config", settings) if settings else self.control("GET", "config")
        )
        return result

    def reset(self, *, stats_only: bool = False, rate: float = 0.0) -> None:
        self.control("POST", "reset", {"stats_only": stats_only, "rate": rate})

    # -- partner program, credential revocation, GitLab ---------------------

    def partner_config(self, **settings: Any) -> dict[str, Any]:
        """Read or change where and how alerts go: url, delay, batch, duplicate_ratio,
        retry_ratio, max_attempts, kinds."""
        if settings:
            return dict(self.control("POST", "partner/config", settings))
        return dict(self.control("GET", "partner/config"))

    def partner_keys(self) -> dict[str, Any]:
        return dict(self.control("GET", "partner/keys"))

    def rotate_partner_key(self, keep_old: bool = True) -> dict[str, Any]:
        return dict(self.control("POST", "partner/keys", {"keep_old": keep_old}))

    def partner_send(self, items: list[dict[str, Any]], mode: str = "valid") -> dict[str, Any]:
        """One signed alert now; mode: valid | bad_signature | wrong_key | unknown_key |
        no_headers | tamper | replay. Returns the partner's ``status`` and ``body``."""
        return dict(self.control("POST", "partner/send", {"items": items, "mode": mode}))

    def deliveries(self, summary: bool = False) -> dict[str, Any]:
        """Every delivery (time, tokens, attempt, status, seconds, label counts), and per
        token hash when it was first sent and how often; ``summary``: counts only."""
        if summary:
            return dict(self.control("GET", "partner/deliveries", summary=1))
        return dict(self.control("GET", "partner/deliveries"))

    def partner_stream(self, rate: float, seconds: float, real_every: int) -> dict[str, Any]:
        body = {"rate": rate, "seconds": seconds, "real_every": real_every}
        return dict(self.control("POST", "partner/stream", body))

    def credentials(self, **limits: int) -> dict[str, Any]:
        """What ``/credentials/revoke`` received; ``per_hour=``/``max=`` change its limits."""
        if limits:
            return dict(self.control("POST", "credentials", limits))
        return dict(self.control("GET", "credentials"))

    def gitlab_revoke(self, url: str, token: str, keys: list[dict[str, Any]]) -> dict[str, Any]:
        body = {"url": url, "token": token, "keys": keys}
        return dict(self.control("POST", "gitlab/revoke", body))

    # -- process -----------------------------------------------------------


def _flags(opts: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for name, value in opts.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is False or value is None:
            continue
        else:
            out += [flag, str(value)]
    return out


@contextlib.contextmanager
def start_sim(
    tmp_path: Path,
    keyservice: KeyServiceLike | None = None,
    *,
    name: str = "github-sim",
    **opts: Any,
) -> Iterator[GitHubSim]:
    """Start ``python -m tests.sim --port 0 --port-file`` and wait for ``/_sim/healthz``.

    ``keyservice`` (anything with ``url`` and ``token``, e.g. the ``keyservice``
    fixture) lets the simulator mint and plant ``mg_`` keys. Files land in
    ``tmp_path``: ``<name>.log``, ``<name>.url`` and the ``<name>-work`` directory.
    """
    tmp_path.mkdir(parents=True, exist_ok=True)
    log_path = tmp_path / f"{name}.log"
    port_file = tmp_path / f"{name}.url"
    workdir = tmp_path / f"{name}-work"
    port_file.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "tests.sim",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--workdir",
        str(workdir),
    ]
    env = {k: v for k, v in os.environ.items() if k != "KEYSERVICE_TOKEN"}
    env["PYTHONUNBUFFERED"] = "1"
    if keyservice is not None:
        cmd += ["--keyservice-url", keyservice.url]
        if keyservice.token:
            env["KEYSERVICE_TOKEN"] = keyservice.token  # not on the command line
    cmd += _flags(opts)
    proc = spawn(cmd, env, log_path)
    sim: GitHubSim | None = None
    try:
        url = wait_until_healthy(
            proc,
            port_file,
            log_path,
            health="/_sim/healthz",
            name="github-sim",
            error=SimError,
            timeout=START_TIMEOUT,
        )
        sim = GitHubSim(proc, url, log_path, workdir)
        yield sim
    finally:
        if sim is not None:
            sim.stop()
        elif proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def github_sim(tmp_path: Path, keyservice: KeyServiceLike) -> Iterator[GitHubSim]:
    """A fresh simulator wired to a fresh key service (``mg_`` keys get planted)."""
    with start_sim(tmp_path / "github-sim", keyservice, poll_interval=1) as sim:
        yield sim


@pytest.fixture
def github_sim_nokeys(tmp_path: Path) -> Iterator[GitHubSim]:
    """A fresh simulator without a key service: third-party keys and near misses only."""
    with start_sim(tmp_path / "github-sim", poll_interval=1) as sim:
        yield sim
