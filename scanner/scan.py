"""One scan, end to end inside this process: source -> engine -> findings.

``scan_source`` is the one entry point: the CLI, the hooks, the workers and the
partner-alert service give it a source (files, stdin, git history, a GitHub
push, gist or repository) and get findings. These functions hold no I/O of
their own beyond what the chosen source reads.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from scanner.baseline import load_baseline
from scanner.config import Config
from scanner.decode import decoder_for
from scanner.engine import Allowlist, Engine, Match
from scanner.findings import Finding, FindingSet, Location
from scanner.rules import Rule, at_confidence, load_rules
from scanner.sources import Fragment, Source
from scanner.sources.files import DEFAULT_ARCHIVE_DEPTH, FileSource, SkipCounts, excluded
from scanner.sources.git_history import GitHistorySource


@dataclass
class ScanOptions:
    history: bool = True
    since: str | None = None
    jobs: int = 2
    low_confidence: bool = False
    baseline: Path | None = None
    include_binary: bool = False
    allow_hosts: list[str] = field(default_factory=list)


@dataclass
class ScanResult:
    findings: list[Finding]
    target: str
    mode: str  # "git" | "files" | "stdin"
    bytes_scanned: int = 0
    commits: int = 0
    files: int = 0
    seconds: float = 0.0
    skipped: SkipCounts = field(default_factory=SkipCounts)
    baselined: int = 0
    errors: list[str] = field(default_factory=list)
    regex_timeouts: int = 0  # stage-2 regex runs cut off by the timeout during this scan


def build_engine(
    config: Config,
    low_confidence: bool = False,
    rules: list[Rule] | None = None,
    confidence: str | None = None,
    honour_allow: bool = True,
    lookup_runs: bool = False,
) -> Engine:
    """The engine for a scan at ``confidence`` (``high`` when not given, ``low`` with
    ``low_confidence``): ``high`` runs the providers' rules, ``medium`` adds the
    generic ones, ``low`` also keeps tokens whose checksum fails. ``honour_allow=False``
    for public content (the workers, partner alerts): allow comments, the scanned
    repository's allowlists and baselines decide nothing (see ``Engine``).
    ``lookup_runs``: keep low-confidence mg_ runs for the key service to decide."""
    level = confidence or ("low" if low_confidence else "high")
    if rules is None:
        # The shipped pack's patterns compile on first use (this project's tests compile
        # every one); a user's rules are compiled now, so a broken one fails at once.
        rules = rules_for(config, validate_pack=False)
    return Engine(
        at_confidence(rules, level),
        allowlist=Allowlist.from_strings(config.allowlist_regexes),
        low_confidence=level == "low",
        prefilter=config.prefilter,
        honour_allow=honour_allow,
        lookup_runs=lookup_runs,
        regex_timeout=config.regex_timeout,
        store=DecodeCache(),
    )


def rules_for(config: Config, validate_pack: bool = True) -> list[Rule]:
    """The pack, the config's own rules, and a team's .gitleaks.toml rules, minus the
    rules either switches off."""
    gitleaks = getattr(config, "_gitleaks", None)
    imported = list(gitleaks.rules) if gitleaks is not None else []
    disabled = list(config.disabled_rules)
    if gitleaks is not None and gitleaks.disabled:
        known = {r.id for r in load_rules(validate_pack=False)}
        disabled += [d for d in gitleaks.pack_disabled(known) if d not in disabled]
    return load_rules(
        extra=config.rules, disabled=disabled, validate_pack=validate_pack, imported=imported
    )


def gitleaks_keep(config: Config, engine: Engine | None = None):  # type: ignore[no-untyped-def]
    """The .gitleaks.toml allowlists and .gitleaksignore, as a Collector filter. With
    ``engine``: its regex timeout and timeout count, and nothing at all when the engine
    does not honour allow markers (public content: a repository's own allowlists do not
    decide for it)."""
    gitleaks = getattr(config, "_gitleaks", None)
    if gitleaks is None:
        return None
    if engine is None:
        return partial(gitleaks.keep, timeout=config.regex_timeout)
    if not engine.honour_allow:
        return None
    return partial(gitleaks.keep, timeout=engine.regex_timeout, stats=engine.stats)


class DecodeCache:
    """Compiled trigger databases (``scanner.decode``) in the user's cache directory
    (``KEYSWEEP_CACHE_DIR``, as the hook's): a scan then loads in milliseconds what
    takes tenths of a second to compile. Best effort: any problem means a compile."""

    def _path(self, key: str) -> str:
        import os

        from scanner.hook_cache import cache_dir

        return os.path.join(cache_dir(), f"decode-{key}.hsdb")

    def load(self, key: str) -> bytes | None:
        try:
            with open(self._path(key), "rb") as fh:
                return fh.read()
        except OSError:
            return None

    def save(self, key: str, blob: bytes) -> None:
        import os

        final = self._path(key)
        tmp = f"{final}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            os.makedirs(os.path.dirname(final), mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, final)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


class Collector:
    """Thread-safe: scans fragments and groups what they hold into findings."""

    def __init__(
        self,
        engine: Engine,
        exclude: list[str],
        keep: Callable[[Match, Location, bytes, int], bool] | None = None,
    ) -> None:
        self.engine = engine
        self.decoder = decoder_for(engine, DecodeCache())
        self.exclude = exclude
        self.keep = keep  # False: the scanned repository's own tuning allows it (gitleaks)
        self.found = FindingSet(expired_before=time.time())
        self.lock = threading.Lock()
        self.bytes = 0

    def scan(self, fragment: Fragment) -> None:
        # The engine, and what encoded forms of the rules' prefixes hide (scanner.decode)
        # (a patch's added lines start with "+": its clean_secret drops it after a newline)
        matches = self.decoder.scan(fragment.data, patch=fragment.clean_secret(b"\n+") == b"\n")
        if matches:
            # A fragment that cannot say yet where its bytes are (git history by blobs:
            # until every commit is read) makes its matches wait, outside the lock.
            ready = getattr(fragment, "ready", None)
            if ready is not None:
                ready()
        # A fragment whose bytes are in several places (one file version at several
        # paths) gives them all; findings at one path keep its earliest version only.
        locate_all = getattr(fragment, "locate_all", None)
        per_path = bool(getattr(fragment, "per_path", False))
        with self.lock:
            self.bytes += len(fragment.data)
            for m in matches:
                if locate_all is not None:
                    places = locate_all(m.start)
                else:
                    located = fragment.locate(m.start)
                    places = [located] if located is not None else []
                if not places:
                    continue
                # (a decoded secret is not patch text: its "\n+" is the key's own)
                clean = m.secret if m.decoded else fragment.clean_secret(m.secret)
                if clean is not m.secret:
                    m = replace(m, secret=clean)
                outer = getattr(fragment, "decoded", None)  # the source's own (UTF-16)
                self._add(m, places, per_path, outer, fragment.data)

    def _add(
        self,
        m: Match,
        places: list[tuple[Location, Any]],
        per_path: bool,
        outer: str | None,
        data: bytes | None,
    ) -> None:
        for loc, order in places:
            if loc.path and self.exclude and excluded(loc.path, self.exclude):
                continue
            if self.keep is not None and not self.keep(m, loc, data, m.start):
                continue
            if m.decoded is not None or outer is not None:
                chain = ">".join(x for x in (outer, m.decoded) if x)
                loc = replace(loc, decoded=chain)
            self.found.add(m, loc, order, per_path=per_path)

    # --- a whole history scanned by forked processes (``git_blobs.fork_scanners``) ------

    def warm(self) -> None:
        """Build now what each forked process would otherwise build for itself on its
        first scan: the database of the engine's literals and the decoding triggers."""
        self.decoder.joint()

    def blob_matches(self, data: bytes) -> list[Match]:
        """The matches in file versions joined into one buffer (not a patch): what a
        forked scanning process sends back."""
        return self.decoder.scan(data)

    def add_found(
        self, found: list[tuple[Match, list[tuple[Location, Any]]]], scanned: int
    ) -> None:
        """What scanning processes found, each match at every place of its blob (a file
        version: findings at one path keep its earliest version), and the bytes they
        scanned."""
        with self.lock:
            self.bytes += scanned
            for m, places in found:
                self._add(m, places, True, None, None)


def scan_source(
    source: Source,
    engine: Engine,
    config: Config,
    opts: ScanOptions,
    collector: Collector | None = None,
) -> ScanResult:
    """The one scan entry point: any source's fragments -> findings (baseline applied).

    ``collector``: pass one to gather several sources into the same findings."""
    started = time.perf_counter()
    collector = (
        collector
        if collector is not None
        else Collector(engine, config.exclude_paths, keep=gitleaks_keep(config, engine))
    )
    result = ScanResult([], source.target, source.mode, skipped=source.skipped)
    timeouts_before = collector.engine.stats.regex_timeouts
    source.feed(collector.scan)
    result.regex_timeouts = collector.engine.stats.regex_timeouts - timeouts_before
    if source.mode == "git":
        result.commits = source.units
    else:
        result.files = source.units
    result.errors.extend(getattr(source, "errors", []))
    findings = collector.found.findings()
    if opts.baseline is not None and engine.honour_allow:  # public content: no baseline
        known = load_baseline(opts.baseline)
        kept = [f for f in findings if f.fingerprint not in known]
        result.baselined = len(findings) - len(kept)
        findings = kept
    result.findings = findings
    result.bytes_scanned = collector.bytes
    result.seconds = time.perf_counter() - started
    return result


def scan_path(path: Path, engine: Engine, config: Config, opts: ScanOptions) -> ScanResult:
    """The files under ``path`` (or the one file)."""
    source = FileSource(
        path,
        max_size=config.max_file_size,
        exclude=config.exclude_paths,
        include_binary=opts.include_binary,
        archive_depth=config.archive_depth,
    )
    return scan_source(source, engine, config, opts)


def scan_git(
    repo: Path,
    engine: Engine,
    config: Config,
    opts: ScanOptions,
    display: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    rev_args: list[str] | None = None,
    paths: list[str] | None = None,
    relocate: Callable[[Location], Location] | None = None,
) -> ScanResult:
    """Full history of ``repo`` (or the commits ``rev_args`` select), limited to
    ``paths`` when given; ``progress(commits_done, commits_total)``; ``relocate`` adds
    to each location (the link a person can open)."""
    source = GitHistorySource(
        repo,
        display,
        since=opts.since,
        rev_args=rev_args,
        jobs=opts.jobs,
        progress=progress,
        paths=paths,
        relocate=relocate,
        archive_depth=config.archive_depth,
    )
    return scan_source(source, engine, config, opts)


class IndexSource:
    """What is staged (the added lines of ``git diff --cached``), as the pre-commit hook
    sees it; ``units`` counts the files staged."""

    mode = "staged"

    def __init__(
        self,
        repo: Path,
        display: str | None = None,
        paths: list[str] | None = None,
        archive_depth: int = DEFAULT_ARCHIVE_DEPTH,
    ):
        from scanner.sources.files import SkipCounts

        self.repo, self.paths, self.archive_depth = repo, paths or [], archive_depth
        self.target = display or str(repo)
        self.skipped = SkipCounts()
        self.units = 0
        self.errors: list[str] = []

    def feed(self, sink: Callable[[Fragment], None]) -> None:
        from scanner.hook_cache import STAGED_DIFF
        from scanner.sources.git_history import PatchChunk, run_git

        patch = run_git(self.repo, *STAGED_DIFF, *(["--", *self.paths] if self.paths else []))
        self.units = patch.count(b"\ndiff --git ") + patch.startswith(b"diff --git ")
        if not patch:
            return
        chunk = PatchChunk(b"\n" + patch, self.target, 0, None)
        sink(chunk)
        if b"\0" in patch:  # an archive staged: the files inside it (path!member)
            from scanner.sources.git_history import archive_fragments

            found = chunk.archives()
            for fragment in archive_fragments(self.repo, found, self.skipped, self.archive_depth):
                sink(fragment)


def scan_index(
    repo: Path,
    engine: Engine,
    config: Config,
    opts: ScanOptions,
    display: str | None = None,
    paths: list[str] | None = None,
) -> ScanResult:
    """What is staged in ``repo``'s index."""
    source = IndexSource(repo, display, paths, archive_depth=config.archive_depth)
    return scan_source(source, engine, config, opts)
