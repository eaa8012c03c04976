"""Remote URLs: hostile ones are refused with one clear message; a real https
clone (dumb HTTP protocol over TLS on loopback) is scanned and cleaned up."""

from __future__ import annotations

import functools
import http.server
import json
import os
import ssl
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from scanner.sources.remote import UnsafeURLError, parse_remote
from tests.conftest import KEYSWEEP
from tests.helpers import Repo, git, mg_live

ALLOWED = ["github.com", "127.0.0.1"]


@pytest.mark.parametrize(
    "url,reason",
    [
        ("--upload-pack=touch /tmp/pwned", "cannot start with '-'"),
        ("ext::sh -c touch% /tmp/pwned", "spaces or control"),
        ("ext::sh", "transport helpers"),
        ("file:///etc", "only https:// and ssh://"),
        ("http://github.com/a/b", "only https:// and ssh://"),
        ("https://evil.example/a/b", "not allowed"),
        ("https://github.com/a/b\n-c", "spaces or control"),
        ("https://github.com/a/b?x=--upload-pack", "query or fragment"),
        ("https://github.com/../../etc", "not allowed"),
        ("ssh://-oProxyCommand=x@github.com/a", "user name"),
        ("git@evil.example:a/b.git", "not allowed"),
    ],
)
def test_hostile_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURLError, match=reason.replace("(", r"\(")):
        parse_remote(url, ALLOWED)


def test_allowed_urls() -> None:
    assert parse_remote("https://github.com/org/repo.git", ALLOWED).host == "github.com"
    assert parse_remote("git@github.com:org/repo.git", ALLOWED).host == "github.com"
    r = parse_remote("https://user:s3cret@github.com/org/repo", ALLOWED)
    assert "s3cret" not in r.display


def test_hostile_url_on_the_command_line_is_one_clear_error(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    p = subprocess.run([KEYSWEEP, "scan", f"ext::sh -c touch% {marker}"], capture_output=True)
    assert p.returncode == 2
    assert p.stderr.decode().count("\n") == 1 and "error:" in p.stderr.decode()
    assert not marker.exists()


@pytest.fixture
def https_repo(tmp_path: Path) -> Iterator[dict]:
    """A bare repository served over HTTPS (dumb protocol) on loopback."""
    r = Repo(tmp_path / "src")
    key = mg_live()
    r.write("a.txt", "hello\n")
    r.commit("one")
    git(r.path, "checkout", "-q", "-b", "side")
    r.write("side.py", f"X = 1\nKEY = '{key}'\n")
    sha = r.commit("leak on a side branch")
    git(r.path, "checkout", "-q", "main")
    served = tmp_path / "www"
    served.mkdir()
    git(tmp_path, "clone", "-q", "--bare", str(r.path), str(served / "repo.git"))
    git(served / "repo.git", "update-server-info")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    try:
        yield {
            "url": f"https://127.0.0.1:{server.server_address[1]}/repo.git",
            "key": key,
            "sha": sha,
            "ca": ca_file,
        }
    finally:
        server.shutdown()


def test_https_clone_is_scanned_on_every_branch_and_removed(
    https_repo: dict, tmp_path: Path
) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "GIT_SSL_CAINFO": str(https_repo["ca"]), "TMPDIR": str(tmpdir)}
    p = subprocess.run(
        [KEYSWEEP, "scan", https_repo["url"], "--allow-host", "127.0.0.1", "--format", "json"],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 1, p.stderr.decode()
    (f,) = json.loads(p.stdout)
    assert f["source"]["commit"] == https_repo["sha"]
    assert (f["source"]["path"], f["source"]["line"]) == ("side.py", 2)
    assert list(tmpdir.iterdir()) == []  # the clone is gone
    # Not in the allowed hosts: refused before any network traffic.
    p = subprocess.run([KEYSWEEP, "scan", https_repo["url"]], capture_output=True, env=env)
    assert p.returncode == 2 and "--allow-host 127.0.0.1" in p.stderr.decode()


def test_unreachable_remote_is_one_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": tempfile.gettempdir()}
    p = subprocess.run(
        [KEYSWEEP, "scan", "https://127.0.0.1:9/none.git", "--allow-host", "127.0.0.1"],
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 2
    assert "cannot clone https://127.0.0.1:9/none.git" in p.stderr.decode()
