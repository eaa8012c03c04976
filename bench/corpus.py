"""Build a real-history git repository for benchmarking keysweep history scans.

History scanners spend their time on ``git log -p`` output, so a useful benchmark needs a
repository whose history looks like real development: thousands of small commits touching
real source, tests, docs and translations.  Cloning a real repository is not possible here
(only package registries are reachable), so this script reconstructs a comparable history
from a PyPI package's released source distributions:

1. ``pip index versions NAME`` lists the released versions; they are committed in version
   order (oldest first), so ``--versions N`` always selects the same N releases.
2. Each release's sdist is fetched with ``pip download`` into a cache directory (default
   ``~/.cache/keysweep-bench/``), so rebuilding is fast and needs no network.
3. For each release, the files that changed since the previous release are committed in
   small groups of 1-5 neighbouring paths, the way real repositories accumulate many small
   commits, and the last commit of each release is tagged ``v<version>``.

Commits are streamed into ``git fast-import`` with fixed authors, e-mails, dates and
messages derived only from the release list and commit index, so the same arguments always
give the same commit hashes and the same benchmark figures.  The corpus is ordinary
open-source code, so it contains no real credentials.

``pip download`` normally builds each sdist's metadata, which runs the package's own
``setup.py`` and fails for old releases under current setuptools.  Instead, pip is run
without build isolation against a stub ``setuptools.build_meta`` that reports the requested
name and version without executing any code from the archive; releases that still cannot
be fetched that way fall back to a plain ``pip download`` and are skipped if that fails.

Usage::

    python bench/corpus.py --out /tmp/ks-bench/corpus-repo [--package celery] [--versions N]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

DEFAULT_PACKAGE = "celery"
DEFAULT_CACHE = Path("~/.cache/keysweep-bench")
MARKER_NAME = "keysweep-corpus.json"
FORMAT_VERSION = 1
BRANCH = "main"
BASE_TIMESTAMP = 1_230_768_000  # 2009-01-01T00:00:00Z
SECONDS_PER_COMMIT = 3_607  # a little over an hour, so times of day vary
GROUP_SIZES = (1, 2, 3, 4, 5)
GROUP_WEIGHTS = (35, 25, 18, 12, 10)
SDIST_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip", ".tar")
AUTHORS = (
    ("Ada Bench", "ada@bench.keysweep.invalid"),
    ("Brook Bench", "brook@bench.keysweep.invalid"),
    ("Cruz Bench", "cruz@bench.keysweep.invalid"),
    ("Dana Bench", "dana@bench.keysweep.invalid"),
    ("Eli Bench", "eli@bench.keysweep.invalid"),
)
COMMITTER = ("Keysweep Corpus", "corpus@bench.keysweep.invalid")

STUB_BACKEND = '''\
"""Stub PEP 517 backend written by keysweep bench/corpus.py.

It reports the name and version pip asked for and never runs code from the sdist.
"""
import os


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    name = os.environ["KEYSWEEP_STUB_NAME"]
    version = os.environ["KEYSWEEP_STUB_VERSION"]
    dist_info = "%s-%s.dist-info" % (name.replace("-", "_"), version)
    os.makedirs(os.path.join(metadata_directory, dist_info))
    with open(os.path.join(metadata_directory, dist_info, "METADATA"), "w") as fh:
        fh.write("Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n" % (name, version))
    return dist_info


class _Legacy:
    get_requires_for_build_wheel = staticmethod(get_requires_for_build_wheel)
    prepare_metadata_for_build_wheel = staticmethod(prepare_metadata_for_build_wheel)


__legacy__ = _Legacy()
'''

Tree = dict[str, tuple[bytes, bool]]  # path -> (content, executable)


@dataclass(frozen=True)
class Release:
    """One downloaded release of a package."""

    package: str
    version: str
    archive: Path


@dataclass(frozen=True)
class BuildResult:
    """What was committed into the corpus repository."""

    commits: int
    versions: list[str]
    head: str


def log(message: str) -> None:
    """Print a progress message to stderr."""
    print(f"[corpus] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- downloads


def list_versions(package: str) -> list[str]:
    """Return the package's released versions, oldest first, as pip's index reports them."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", package, "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("Available versions:"):
            versions = [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
            return list(reversed(versions))
    raise RuntimeError(f"pip index versions {package}: no version list in output")


def write_stub_backend(directory: Path) -> None:
    """Write a ``setuptools`` package whose ``build_meta`` only reports metadata."""
    package_dir = directory / "setuptools"
    package_dir.mkdir(parents=True, exist_ok=True)
    (package_dir / "__init__.py").write_text("", encoding="utf-8")
    (package_dir / "build_meta.py").write_text(STUB_BACKEND, encoding="utf-8")


def find_archive(directory: Path) -> Path | None:
    """Return the single sdist archive in ``directory``, if there is one."""
    if not directory.is_dir():
        return None
    archives = [p for p in directory.iterdir() if p.name.lower().endswith(SDIST_SUFFIXES)]
    return archives[0] if len(archives) == 1 else None


def pip_download(package: str, version: str, dest: Path, stub_dir: Path | None) -> bool:
    """Run ``pip download`` for one sdist into ``dest``; with ``stub_dir``, skip real builds."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-input"]
    cmd += ["--disable-pip-version-check", "--no-binary", ":all:", "-d", str(dest)]
    env = dict(os.environ)
    if stub_dir is not None:
        cmd += ["--no-build-isolation", "--use-pep517"]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(stub_dir), env.get("PYTHONPATH")]))
        env["KEYSWEEP_STUB_NAME"] = package
        env["KEYSWEEP_STUB_VERSION"] = version
    cmd.append(f"{package}=={version}")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    return proc.returncode == 0 and find_archive(dest) is not None


def fetch_release(package: str, version: str, cache: Path, stub_dir: Path) -> Release | None:
    """Return the cached sdist of one release, downloading it first if needed."""
    final = cache / "sdists" / package / version
    archive = find_archive(final)
    if archive is not None:
        return Release(package, version, archive)
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{version}-") as tmp:
        staging = Path(tmp) / "dl"
        if not pip_download(package, version, staging, stub_dir):
            shutil.rmtree(staging, ignore_errors=True)
            if not pip_download(package, version, staging, None):
                log(f"skipping {package} {version}: no sdist could be downloaded")
                return None
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    archive = find_archive(final)
    return Release(package, version, archive) if archive is not None else None


def fetch_releases(package: str, versions: list[str], cache: Path, jobs: int) -> list[Release]:
    """Download (or reuse) the sdists of ``versions`` in parallel, keeping their order."""
    with tempfile.TemporaryDirectory(prefix="keysweep-stub-") as stub:
        stub_dir = Path(stub)
        write_stub_backend(stub_dir)
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            found = list(pool.map(lambda v: fetch_release(package, v, cache, stub_dir), versions))
    return [release for release in found if release is not None]


# --------------------------------------------------------------------------- archives


def iter_tar(path: Path) -> Iterator[tuple[str, bytes, bool]]:
    """Yield (name, content, executable) for the regular files of a tar archive."""
    with tarfile.open(path) as archive:
        for member in archive:
            if not member.isfile():
                continue
            handle = archive.extractfile(member)
            if handle is not None:
                yield member.name, handle.read(), bool(member.mode & 0o111)


def iter_zip(path: Path) -> Iterator[tuple[str, bytes, bool]]:
    """Yield (name, content, executable) for the regular files of a zip archive."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            mode = info.external_attr >> 16
            yield info.filename, archive.read(info), bool(mode & 0o111)


def clean_path(name: str) -> str | None:
    """Normalise an archive member name; reject absolute or parent-escaping paths."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts or ".git" in parts:
        return None
    return "/".join(parts)


def read_tree(archive: Path) -> Tree:
    """Return the files of an sdist, with the common top-level directory stripped."""
    reader = iter_zip if archive.name.lower().endswith(".zip") else iter_tar
    files: Tree = {}
    for name, content, executable in reader(archive):
        path = clean_path(name)
        if path is not None:
            files[path] = (content, executable)
    tops = {path.split("/", 1)[0] for path in files}
    if len(tops) == 1 and all("/" in path for path in files):
        files = {path.split("/", 1)[1]: value for path, value in files.items()}
    return files


# --------------------------------------------------------------------------- commits


def changed_paths(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Return the sorted paths added, removed or modified between two digests maps."""
    return sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))


def digest_tree(tree: Tree) -> dict[str, str]:
    """Map each path to a digest of its content and mode."""
    return {
        path: hashlib.sha1(content + (b"x" if executable else b"-")).hexdigest()
        for path, (content, executable) in tree.items()
    }


def group_paths(paths: list[str], seed: str) -> list[list[str]]:
    """Split sorted paths into neighbouring groups of 1-5, reproducibly for ``seed``."""
    rng = random.Random(seed)
    groups: list[list[str]] = []
    index = 0
    while index < len(paths):
        size = rng.choices(GROUP_SIZES, GROUP_WEIGHTS)[0]
        groups.append(paths[index : index + size])
        index += size
    return groups


def quote_path(path: str) -> str:
    """Quote a path for fast-import when it contains characters that need it."""
    if path.startswith('"') or "\n" in path or "\\" in path:
        return json.dumps(path)
    return path


def write_data(stream: IO[bytes], payload: bytes) -> None:
    """Write a fast-import ``data`` block."""
    stream.write(b"data %d\n" % len(payload))
    stream.write(payload)
    stream.write(b"\n")


def commit_message(package: str, version: str, group: list[str], part: int, parts: int) -> str:
    """Build a deterministic, plausible commit message for one group of paths."""
    subject = f"{package} {version}: update {group[0]}"
    if len(group) > 1:
        subject += f" and {len(group) - 1} more"
    body = "\n".join(f"  {path}" for path in group)
    return f"{subject}\n\nPart {part} of {parts} of release {version}.\n\nFiles:\n{body}\n"


def write_commit(stream: IO[bytes], mark: int, message: str, tree: Tree, group: list[str]) -> None:
    """Emit one fast-import commit that brings ``group`` to its state in ``tree``."""
    name, email = AUTHORS[mark % len(AUTHORS)]
    when = BASE_TIMESTAMP + mark * SECONDS_PER_COMMIT
    stream.write(f"commit refs/heads/{BRANCH}\nmark :{mark}\n".encode())
    stream.write(f"author {name} <{email}> {when} +0000\n".encode())
    stream.write(f"committer {COMMITTER[0]} <{COMMITTER[1]}> {when} +0000\n".encode())
    write_data(stream, message.encode())
    for path in group:
        if path in tree:
            content, executable = tree[path]
            mode = "100755" if executable else "100644"
            stream.write(f"M {mode} inline {quote_path(path)}\n".encode())
            write_data(stream, content)
        else:
            stream.write(f"D {quote_path(path)}\n".encode())
    stream.write(b"\n")


def write_releases(stream: IO[bytes], releases: list[Release]) -> BuildResult:
    """Stream every release into fast-import as small commits plus one tag per release."""
    previous: dict[str, str] = {}
    mark = 0
    versions: list[str] = []
    for release in releases:
        tree = read_tree(release.archive)
        digests = digest_tree(tree)
        seed = f"{release.package}-{release.version}"
        groups = group_paths(changed_paths(previous, digests), seed)
        for part, group in enumerate(groups, start=1):
            mark += 1
            message = commit_message(release.package, release.version, group, part, len(groups))
            write_commit(stream, mark, message, tree, group)
        if groups:
            stream.write(f"reset refs/tags/v{release.version}\nfrom :{mark}\n\n".encode())
            versions.append(release.version)
        previous = digests
        log(f"{release.package} {release.version}: {len(groups)} commits (total {mark})")
    return BuildResult(commits=mark, versions=versions, head="")


def git(repo: Path, *args: str) -> str:
    """Run a git command in ``repo`` and return its stdout."""
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def build_repo(repo: Path, releases: list[Release]) -> BuildResult:
    """Create a fresh repository at ``repo`` holding the history of ``releases``."""
    subprocess.run(["git", "init", "-q", "-b", BRANCH, str(repo)], check=True)
    proc = subprocess.Popen(
        ["git", "-C", str(repo), "fast-import", "--quiet", "--done"], stdin=subprocess.PIPE
    )
    assert proc.stdin is not None
    try:
        result = write_releases(proc.stdin, releases)
        proc.stdin.write(b"done\n")
    finally:
        proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError("git fast-import failed")
    git(repo, "reset", "-q", "--hard", BRANCH)
    head = git(repo, "rev-parse", "HEAD")
    return BuildResult(commits=result.commits, versions=result.versions, head=head)


# --------------------------------------------------------------------------- reuse & stats


def read_marker(repo: Path) -> dict[str, object] | None:
    """Return the completion marker of a previously built corpus, if any."""
    try:
        marker = json.loads((repo / ".git" / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def result_from_marker(marker: dict[str, object]) -> BuildResult:
    """Rebuild the summary of a finished build from its marker."""
    versions = marker.get("versions")
    return BuildResult(
        commits=int(str(marker.get("commits"))),
        versions=[str(v) for v in versions] if isinstance(versions, list) else [],
        head=str(marker.get("head")),
    )


def marker_matches(marker: dict[str, object] | None, package: str, limit: int | None) -> bool:
    """Whether an existing corpus was built with the same package and version limit."""
    return (
        marker is not None
        and marker.get("format") == FORMAT_VERSION
        and marker.get("package") == package
        and marker.get("limit") == limit
    )


def write_marker(repo: Path, package: str, limit: int | None, result: BuildResult) -> None:
    """Record that the corpus at ``repo`` is complete and how it was built."""
    marker = {
        "format": FORMAT_VERSION,
        "package": package,
        "limit": limit,
        "versions": result.versions,
        "commits": result.commits,
        "head": result.head,
    }
    (repo / ".git" / MARKER_NAME).write_text(json.dumps(marker, indent=2), encoding="utf-8")


def measure_log(repo: Path) -> tuple[int, float]:
    """Return the byte size of ``git log -p -U0 --all --full-history`` and its wall time."""
    start = time.monotonic()
    cmd = ["git", "-C", str(repo), "log", "-p", "-U0", "--all", "--full-history"]
    total = 0
    with subprocess.Popen(cmd, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 20):
            total += len(chunk)
    if proc.returncode != 0:
        raise RuntimeError("git log failed")
    return total, time.monotonic() - start


def prepare_target(out: Path) -> None:
    """Remove a stale corpus at ``out``; refuse to clobber anything that is not one."""
    if not out.exists():
        return
    if read_marker(out) is None and any(out.iterdir()):
        raise SystemExit(f"{out} exists and is not a keysweep corpus; remove it first")
    shutil.rmtree(out)


def build(out: Path, package: str, limit: int | None, cache: Path, jobs: int) -> BuildResult:
    """Download the releases and build the corpus at ``out`` via a staging directory."""
    versions = list_versions(package)
    if limit is not None:
        versions = versions[:limit]
    log(f"{package}: {len(versions)} versions ({versions[0]} .. {versions[-1]})")
    releases = fetch_releases(package, versions, cache.expanduser(), jobs)
    log(f"{len(releases)} sdists available in {cache}")
    prepare_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(out.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    result = build_repo(staging, releases)
    write_marker(staging, package, limit, result)
    staging.rename(out)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="repository to build")
    parser.add_argument("--package", default=DEFAULT_PACKAGE, help="PyPI package to replay")
    parser.add_argument("--versions", type=int, default=None, help="use only the N oldest releases")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="sdist cache dir")
    parser.add_argument("--jobs", type=int, default=4, help="parallel pip downloads")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Build or reuse the corpus and print its size figures."""
    args = parse_args(argv)
    start = time.monotonic()
    out: Path = args.out.expanduser().resolve()
    marker = read_marker(out)
    if not args.force and marker_matches(marker, args.package, args.versions):
        assert marker is not None
        log(f"reusing complete corpus at {out}")
        result = result_from_marker(marker)
    else:
        result = build(out, args.package, args.versions, args.cache, args.jobs)
    elapsed = time.monotonic() - start
    size, log_seconds = measure_log(out)
    print(f"corpus:       {out}")
    print(f"package:      {args.package} ({len(result.versions)} versions)")
    print(f"commits:      {result.commits}")
    print(f"head:         {result.head}")
    print(f"git log size: {size / 1e6:.1f} MB (git log -p -U0 --all, {log_seconds:.1f} s)")
    print(f"build time:   {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
