"""Test helpers: keys generated at run time (never committed), git repositories."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from scanner.examples import expand


def mg_live() -> str:
    return expand("mg_live_{b64url:32}")


def mg_test() -> str:
    return expand("mg_test_{b64url:32}")


def github_token() -> str:
    return expand("ghp_{base62:30}{checksum}", "crc32_base62")


GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada Tester",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Tester",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent-keysweep-home",
}


def git(repo: Path, *args: str, **kw: object) -> str:
    env = {**os.environ, **GIT_ENV}
    out = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, env=env, **kw
    )  # type: ignore[call-overload]
    return out.stdout.decode()


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        git(path, "init", "-q", "-b", "main")
        self.n = 0

    def write(self, rel: str, text: str | bytes) -> None:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text.encode() if isinstance(text, str) else text)

    def add_origin(self, remote: Path) -> Path:
        """A bare repository at ``remote`` (default branch main), added as ``origin``."""
        git(remote.parent, "init", "-q", "--bare", "-b", "main", str(remote))
        git(self.path, "remote", "add", "origin", str(remote))
        return remote

    def remove(self, rel: str) -> None:
        (self.path / rel).unlink()

    def commit(self, msg: str) -> str:
        self.n += 1
        date = f"2024-01-{self.n:02d}T12:00:00+00:00"
        git(self.path, "add", "-A")
        env = {**os.environ, **GIT_ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        subprocess.run(
            ["git", "-C", str(self.path), "commit", "-q", "--allow-empty", "-m", msg],
            check=True,
            env=env,
        )
        return git(self.path, "rev-parse", "HEAD").strip()


def warm_hook(tmp_path: Path) -> tuple[Repo, Callable[[], subprocess.CompletedProcess[bytes]]]:
    """A repository with one commit whose pre-commit hook has run once on a clean staged
    file (so its fast-path cache exists), and the hook to run again as git would."""
    from tests.conftest import KEYSWEEP

    env = {**os.environ, **GIT_ENV, "KEYSWEEP_CACHE_DIR": str(tmp_path / "cache")}
    r = Repo(tmp_path / "work")
    r.write("README.md", "# project\n")
    r.commit("init")

    def hook() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [KEYSWEEP, "hook", "pre-commit"], cwd=r.path, capture_output=True, env=env, timeout=120
        )

    r.write("notes.txt", "hello\n")
    git(r.path, "add", "notes.txt")
    assert hook().returncode == 0  # the full path: writes the fast path's cache
    assert list((tmp_path / "cache").iterdir())
    return r, hook


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive (deflated) holding ``members`` (name -> bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def load_bench(name: str) -> ModuleType:
    """A script under bench/ as a module (the suite runs the benchmarks' short versions)."""
    module_name = f"bench_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location(module_name, root / "bench" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
