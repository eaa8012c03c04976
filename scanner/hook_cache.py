"""The pre-commit hook's fast path: a cached, compiled prefilter database.

Most commits hold no key. For those, the hook only has to show that none of
the rules' prefix literals occurs in the staged added lines, and the full
engine would find nothing either (stage 2 only ever looks where stage 1 hit).
This module does exactly that check with the hyperscan database that the full
path compiled and saved earlier, importing nothing but the standard library's
smallest modules, so a clean commit costs one git call and one scan.

The cache is keyed by everything that decides the literal set: the bytes of
every rule-pack file (``scanner/rules/*.toml``), the repository's
``.keysweep.toml``, ``pyproject.toml`` and ``.gitleaks.toml`` bytes (with the
files its ``[extend] path`` names), the operator's config file, the
``KEYSWEEP_RULES`` and ``KEYSWEEP_DISABLED_RULES`` variables, the hyperscan
version and this file format. It is written atomically (private
directory, temporary file, rename) and any problem reading it just means the
full path runs. A hit, or anything unusual, returns None: the full path
decides.
"""

from __future__ import annotations

import contextlib
import os
import sys

FORMAT = b"keysweep-hs-cache-v3\n"  # v3: with the encoded forms (scanner.decode)

# What is staged, added lines only: the pre-commit hook's one git call (shared with
# scanner.hook, which lives behind heavier imports). ``--text``: a file that
# ``.gitattributes`` marks ``-diff`` or ``binary`` is shown (and scanned) like any other.
STAGED_DIFF = (
    "-c",
    "core.quotepath=false",
    "diff",
    "--cached",
    "-p",
    "-U0",
    "--text",
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--no-renames",
    "--diff-filter=d",
    "--ignore-submodules",
)


def cache_dir() -> str:
    explicit = os.environ.get("KEYSWEEP_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "keysweep")


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def _operator_file() -> str:
    """The operator's config file, found as scanner.settings finds it."""
    explicit = os.environ.get("KEYSWEEP_CONFIG")
    if explicit:
        return os.path.expanduser(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "keysweep", "config.toml")


def _gitleaks_chain(root: str) -> list[bytes]:
    """``.gitleaks.toml`` and the files its ``[extend] path`` names, in order."""
    import re

    out: list[bytes] = []
    path = os.path.join(root, ".gitleaks.toml")
    for _ in range(4):  # the loader refuses chains deeper than this anyway
        data = _read(path)
        out.append(data)
        section = re.search(rb"(?ms)^\s*\[extend\][^\n]*\n(.*?)(?=^\s*\[|\Z)", data)
        target = section and re.search(rb"""(?m)^\s*path\s*=\s*["']([^"']+)["']""", section[1])
        if not target:
            break
        path = os.path.join(os.path.dirname(path), os.fsdecode(target[1]))
    return out


# Variables that change the rules themselves (and so the literal set).
RULE_VARIABLES = ("KEYSWEEP_RULES", "KEYSWEEP_DISABLED_RULES")


def cache_key(root: str, hyperscan_version: str) -> str:
    from hashlib import sha256

    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rules")
    try:
        pack = sorted(n for n in os.listdir(folder) if n.endswith(".toml"))
    except OSError:
        pack = []
    h = sha256(FORMAT)
    for part in (
        hyperscan_version.encode(),
        *(n.encode() + b"\0" + _read(os.path.join(folder, n)) for n in pack),
        _read(os.path.join(root, ".keysweep.toml")),
        _read(os.path.join(root, "pyproject.toml")),
        *_gitleaks_chain(root),
        # The operator's file and the variables may add rules too ([[rules]], KEYSWEEP_RULES).
        _read(_operator_file()),
        *(os.environ.get(name, "").encode() for name in RULE_VARIABLES),
    ):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:40]


def cache_path(root: str, hyperscan_version: str) -> str:
    return os.path.join(cache_dir(), f"prefilter-{cache_key(root, hyperscan_version)}.hsdb")


def save(root: str, database: bytes, hyperscan_version: str) -> None:
    """Best effort: a read-only home just means no fast path."""
    directory = cache_dir()
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        final = cache_path(root, hyperscan_version)
        tmp = f"{final}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(FORMAT + database)
        os.replace(tmp, final)
    except OSError:
        pass


def staged_is_clean(root: str) -> bool | None:
    """True when nothing staged can hold a key; None when the full path must decide."""
    try:
        import hyperscan
    except ImportError:
        return None
    blob = _read(cache_path(root, hyperscan.__version__))
    if not blob.startswith(FORMAT):
        return None
    import subprocess

    try:
        diff = subprocess.run(
            ["git", *STAGED_DIFF],
            cwd=root,
            capture_output=True,
            check=False,
        )
    except OSError:
        return None
    if diff.returncode != 0:
        return None  # the full path reports git's error
    if not diff.stdout:
        return True
    if b"\0" in diff.stdout:
        return None  # binary content (an archive to open, perhaps): the full path decides
    try:
        db = hyperscan.loadb(blob[len(FORMAT) :], hyperscan.HS_MODE_BLOCK)
        db.scratch = hyperscan.Scratch(db)
        hits: list[int] = []

        def on_match(*_args: object) -> bool:
            hits.append(1)
            return True  # stop at the first hit

        with contextlib.suppress(hyperscan.ScanTerminated):
            db.scan(diff.stdout, match_event_handler=on_match)
    except Exception:  # a stale or damaged cache is never trusted
        return None
    return not hits


def fast_pre_commit(argv: list[str]) -> int | None:
    """``keysweep hook pre-commit`` with no options, on a clean change: exit 0 at once."""
    if argv != ["hook", "pre-commit"] or not os.path.exists(".git"):
        return None  # options, or not at the top of a work tree: the full path
    clean = staged_is_clean(os.getcwd())
    if clean:
        sys.stdout.flush()
        return 0
    return None
