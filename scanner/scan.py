"""One scan, end to end inside this process: source -> engine -> findings.

The CLI, the hooks and the workers call these functions; they hold no I/O of
their own beyond what the chosen source reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from scanner.baseline import load_baseline
from scanner.config import Config
from scanner.engine import Allowlist, Engine
from scanner.findings import Finding, FindingSet, Location
from scanner.rules import Rule, load_rules
from scanner.sources import Fragment
from scanner.sources.files import SkipCounts, excluded, iter_files


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


def build_engine(
    config: Config, low_confidence: bool = False, rules: list[Rule] | None = None
) -> Engine:
    rules = (
        rules
        if rules is not None
        else load_rules(extra=config.rules, disabled=config.disabled_rules)
    )
    return Engine(
        rules,
        allowlist=Allowlist.from_strings(config.allowlist_regexes),
        low_confidence=low_confidence,
    )


class Collector:
    """Thread-safe: scans fragments and groups what they hold into findings."""

    def __init__(
        self,
        engine: Engine,
        exclude: list[str],
        decorate: Callable[[Location], Location] | None = None,
    ) -> None:
        self.engine = engine
        self.exclude = exclude
        self.decorate = decorate  # e.g. add the URL a person can open
        self.found = FindingSet(expired_before=time.time())
        self.lock = threading.Lock()
        self.bytes = 0

    def scan(self, fragment: Fragment) -> None:
        matches = self.engine.scan(fragment.data)
        with self.lock:
            self.bytes += len(fragment.data)
            for m in matches:
                located = fragment.locate(m.start)
                if located is None:
                    continue
                loc, order = located
                if self.decorate is not None:
                    loc = self.decorate(loc)
                clean = fragment.clean_secret(m.secret)
                if clean is not m.secret:
                    m = replace(m, secret=clean)
                if loc.path and self.exclude and excluded(loc.path, self.exclude):
                    continue
                self.found.add(m, loc, order)


def finish(
    result: ScanResult, collector: Collector, baseline: Path | None, started: float
) -> ScanResult:
    findings = collector.found.findings()
    if baseline is not None:
        known = load_baseline(baseline)
        kept = [f for f in findings if f.fingerprint not in known]
        result.baselined = len(findings) - len(kept)
        findings = kept
    result.findings = findings
    result.bytes_scanned = collector.bytes
    result.seconds = time.perf_counter() - started
    return result


def scan_fragments(
    fragments: Iterable[Fragment],
    engine: Engine,
    config: Config,
    opts: ScanOptions,
    target: str,
    mode: str,
    skipped: SkipCounts | None = None,
) -> ScanResult:
    started = time.perf_counter()
    collector = Collector(engine, config.exclude_paths)
    result = ScanResult([], target, mode, skipped=skipped or SkipCounts())
    for fragment in fragments:
        result.files += 1
        collector.scan(fragment)
    return finish(result, collector, opts.baseline, started)


def scan_path(path: Path, engine: Engine, config: Config, opts: ScanOptions) -> ScanResult:
    skips = SkipCounts()
    frags = iter_files(
        path,
        max_size=config.max_file_size,
        exclude=config.exclude_paths,
        include_binary=opts.include_binary,
        skips=skips,
    )
    result = scan_fragments(frags, engine, config, opts, str(path), "files", skips)
    result.errors.extend(skips.errors)
    return result


def scan_git(
    repo: Path,
    engine: Engine,
    config: Config,
    opts: ScanOptions,
    display: str | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    rev_args: list[str] | None = None,
    paths: list[str] | None = None,
    decorate: Callable[[Location], Location] | None = None,
) -> ScanResult:
    """Full history of ``repo`` (or the commits ``rev_args`` select), limited to
    ``paths`` when given. ``progress(commits_done, commits_total, bytes)``;
    ``decorate`` adds to each location (a link a person can open)."""
    from scanner.sources.git_history import scan_history

    started = time.perf_counter()
    collector = Collector(engine, config.exclude_paths, decorate)
    result = ScanResult([], display or str(repo), "git")
    totals = {"total": 0, "done": 0}

    def on_total(n: int) -> None:
        totals["total"] = n

    def on_chunk(chunk: object) -> None:
        collector.scan(chunk)  # type: ignore[arg-type]
        if progress is not None:
            with collector.lock:
                totals["done"] += chunk.data.count(b"\n\x1e")  # type: ignore[attr-defined]
                progress(totals["done"], totals["total"], collector.bytes)

    result.commits = scan_history(
        repo,
        display or str(repo),
        on_chunk,
        since=opts.since,
        rev_args=rev_args,
        jobs=opts.jobs,
        errors=result.errors,
        on_total=on_total,
        paths=paths,
    )
    return finish(result, collector, opts.baseline, started)


def scan_index(
    repo: Path,
    engine: Engine,
    config: Config,
    opts: ScanOptions,
    display: str | None = None,
    paths: list[str] | None = None,
) -> ScanResult:
    """What is staged in ``repo``'s index (added lines of ``git diff --cached``), as the
    pre-commit hook sees it."""
    from scanner.hook_cache import STAGED_DIFF
    from scanner.sources.git_history import PatchChunk, run_git

    started = time.perf_counter()
    collector = Collector(engine, config.exclude_paths)
    result = ScanResult([], display or str(repo), "staged")
    patch = run_git(repo, *STAGED_DIFF, *(["--", *paths] if paths else []))
    result.files = patch.count(b"\ndiff --git ") + patch.startswith(b"diff --git ")
    if patch:
        collector.scan(PatchChunk(b"\n" + patch, display or str(repo), 0, None))
    return finish(result, collector, opts.baseline, started)
