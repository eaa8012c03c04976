"""Remote repositories: validate the URL, clone safely into a temporary directory.

Only ``https://`` and ``ssh://`` (or scp-style ``git@host:path``) URLs to hosts
the user allows are cloned. The URL can never become a git option (it goes
after ``--`` and may not start with ``-``), transport helpers (``ext::``,
``fd::``) and local paths are refused, the clone is bare (no checkout, no
hooks, no submodules, no filters), and credentials in the URL are never printed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from scanner.errors import KeysweepError

DEFAULT_ALLOWED_HOSTS = ("github.com", "gitlab.com", "bitbucket.org", "codeberg.org")
SCP_LIKE = re.compile(r"^(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+):(?P<path>[^:\\]+)$")
SAFE_USER = re.compile(r"^[A-Za-z0-9._~%+][A-Za-z0-9._~%+:-]*$")
SAFE_PATH = re.compile(r"^[A-Za-z0-9._~/%+-]*$")


class UnsafeURLError(KeysweepError, ValueError):
    pass


class CloneError(KeysweepError, RuntimeError):
    pass


@dataclass(frozen=True)
class RemoteURL:
    url: str  # as given to git
    host: str  # host[:port]
    display: str  # with any credentials removed

    @property
    def plain_http(self) -> bool:
        return self.url.startswith("http://")


def looks_like_url(target: str) -> bool:
    return "://" in target or bool(SCP_LIKE.match(target))


def parse_remote(
    url: str,
    allowed_hosts: tuple[str, ...] | list[str],
    http_hosts: tuple[str, ...] | list[str] = (),
) -> RemoteURL:
    """Validate a URL to clone. ``http_hosts`` may use plain http (a local test server only)."""
    if not url or url.startswith("-"):
        raise UnsafeURLError("a repository URL cannot start with '-'")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise UnsafeURLError("the repository URL contains spaces or control characters")
    if "::" in url:
        raise UnsafeURLError("transport helpers such as ext:: are not allowed")
    allowed = {h.lower() for h in allowed_hosts}
    scp = SCP_LIKE.match(url)
    if scp:
        host, path, display = (
            scp["host"].lower(),
            scp["path"],
            f"{scp['user']}@{scp['host']}:{scp['path']}",
        )
    else:
        parts = urlsplit(url)
        plain_ok = parts.scheme == "http" and (
            f"{parts.hostname}:{parts.port}" in http_hosts or parts.hostname in http_hosts
        )
        if parts.scheme not in ("https", "ssh") and not plain_ok:
            raise UnsafeURLError(
                f"only https:// and ssh:// URLs are cloned, not {parts.scheme or 'a local path'}"
            )
        if not parts.hostname:
            raise UnsafeURLError("the URL has no host")
        if parts.username is not None and not SAFE_USER.match(parts.username):
            raise UnsafeURLError("the URL's user name has characters that are not allowed")
        host = parts.hostname.lower() + (f":{parts.port}" if parts.port else "")
        path = parts.path
        if parts.query or parts.fragment:
            raise UnsafeURLError("the URL must not carry a query or fragment")
        display = f"{parts.scheme}://{host}{path}"
    if not SAFE_PATH.match(path) or ".." in path.split("/"):
        raise UnsafeURLError("the repository path has characters that are not allowed")
    bare_host = host.split(":")[0]
    if host not in allowed and bare_host not in allowed:
        raise UnsafeURLError(
            f"host {host} is not allowed; allow it with --allow-host {bare_host} "
            "or allowed_hosts in .keysweep.toml"
        )
    return RemoteURL(url=url, host=host, display=display)


def clone_reason(stderr: bytes, remote: RemoteURL) -> str:
    """git's own reason, credentials removed: its ``fatal:`` lines (the last of them
    says what went wrong), else its last line."""
    from scanner.links import scrub
    from scanner.report.safe_text import printable

    lines = [x.strip() for x in stderr.decode("utf-8", "replace").splitlines() if x.strip()]
    fatal = [x.removeprefix("fatal: ") for x in lines if x.startswith(("fatal:", "error:"))]
    reason = (
        "; ".join(fatal[-2:]) if fatal else (lines[-1] if lines else "git exited with an error")
    )
    return printable(scrub(reason, remote.url))


@contextmanager
def cloned(remote: RemoteURL, timeout: float = 1800) -> Iterator[Path]:
    """A bare clone with every ref, removed afterwards whatever happens."""
    tmp = Path(tempfile.mkdtemp(prefix="keysweep-clone-"))
    dest = tmp / "repo.git"
    # Safety settings go through GIT_CONFIG_* (environment, never an argument a URL
    # could reach): no hooks, only https/ssh transports, no fsmonitor command.
    settings = {
        "core.hooksPath": os.devnull,
        "protocol.allow": "never",
        "protocol.https.allow": "always",
        "protocol.ssh.allow": "always",
        "core.fsmonitor": "false",
    }
    if remote.plain_http:
        settings["protocol.http.allow"] = "always"
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_PROTOCOL_FROM_USER": "0",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_LFS_SKIP_SMUDGE": "1",
        "GIT_CONFIG_COUNT": str(len(settings)),
    }
    for i, (key, value) in enumerate(settings.items()):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    try:
        try:
            # Plain git (no GitPython here): its own message is what the person needs.
            proc = subprocess.run(
                ["git", "clone", "--bare", "--quiet", "--", remote.url, str(dest)],
                capture_output=True,
                check=False,
                timeout=timeout,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise CloneError(
                f"cannot clone {remote.display}: timed out after {timeout:.0f}s"
            ) from None
        except FileNotFoundError:
            raise CloneError("git is not installed or not on PATH") from None
        if proc.returncode != 0:
            raise CloneError(f"cannot clone {remote.display}: {clone_reason(proc.stderr, remote)}")
        yield dest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
