"""Releases: one version everywhere, a git tag for it, and the README's pre-commit
snippet working as written against this repository at that tag."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from scanner import RELEASE_COMMIT, __version__
from scanner.cli import HOOK_EPILOG
from tests.conftest import ROOT
from tests.helpers import GIT_ENV, Repo, git, mg_live

README = (ROOT / "README.md").read_text()


def readme_snippet() -> str:
    m = re.search(r"```yaml\n(repos:\n.*?)```", README, re.S)
    assert m, "the README shows a .pre-commit-config.yaml"
    return m.group(1)


def test_one_version_everywhere() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert project == __version__
    pin = f"rev: {RELEASE_COMMIT}  # frozen: v{__version__}\n"
    assert pin in readme_snippet()
    assert pin in HOOK_EPILOG
    kustomize = (ROOT / "deploy/k8s/kustomization.yaml").read_text()
    assert f'newTag: "{__version__}"' in kustomize


def test_the_pinned_commit_is_this_release_in_this_history() -> None:
    def git_out(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)

    assert re.fullmatch(r"[0-9a-f]{40}", RELEASE_COMMIT)
    ancestor = git_out("merge-base", "--is-ancestor", RELEASE_COMMIT, "HEAD")
    assert ancestor.returncode == 0, (
        f"{RELEASE_COMMIT} is not in this history: pin the release commit (README: Releases)"
    )
    released = git_out("show", f"{RELEASE_COMMIT}:pyproject.toml").stdout
    assert f'version = "{__version__}"' in released


def test_readme_snippet_works_with_the_real_framework(tmp_path: Path) -> None:
    exe = shutil.which("pre-commit", path=os.path.dirname(sys.executable))
    assert exe, "pre-commit is in the [test] extra"
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(tmp_path / "home")}
    env["KEYSWEEP_CACHE_DIR"] = str(tmp_path / "cache")
    repo = Repo(tmp_path / "proj")
    config = re.sub(r"repo: \S+.*", f"repo: {ROOT}", readme_snippet(), count=1)
    repo.write(".pre-commit-config.yaml", config)
    repo.write("deploy/settings.env", f"API_KEY={mg_live()}\n")
    git(repo.path, "add", "-A")
    subprocess.run(
        ["git", "-C", str(repo.path), "commit", "-q", "--no-verify", "-m", "committed earlier"],
        env=env,
        check=True,
    )

    def pre_commit(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [exe, *args], cwd=repo.path, env=env, capture_output=True, timeout=600
        )

    # CI: the staged-changes hook has nothing to read; the files hook finds the key.
    staged_only = pre_commit("run", "keysweep", "--all-files")
    assert staged_only.returncode == 0, staged_only.stdout.decode()
    files = pre_commit("run", "keysweep-files", "--all-files")
    out = files.stdout.decode() + files.stderr.decode()
    assert files.returncode == 1 and "deploy/settings.env:1" in out, out
    everything = pre_commit("run", "--all-files", "--hook-stage", "pre-commit")
    assert everything.returncode == 1
