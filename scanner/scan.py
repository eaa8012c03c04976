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
from scanner.engine import Allowlist, Engine, Match
from scanner.findings import Finding, FindingSet, Location
from scanner.rules import Rule, at_confidence, load_rules
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
    config: Config,
    low_confidence: bool = False,
    rules: list[Rule] | None = None,
    confidence: str | None = None,
) -> Engine:
    """The engine for a scan at ``confidence`` (``high`` when not given, ``low`` with
    ``low_confidence``): ``high`` runs the providers' rules, ``medium`` adds the
    generic ones, ``low`` also keeps tokens whose checksum fails."""
    level = confidence or ("low" if low_confidence else "high")
    if rules is None:
        rules = rules_for(config)
    return Engine(
        at_confidence(rules, level),
        allowlist=Allowlist.from_strings(config.allowlist_regexes),
        low_confidence=level == "low",
    )


def rules_for(config: Config, validate_pack: bool = True) -> list[Rule]:
    """The pack, the config's own rules, and a team's .gitleaks.toml rules, minus the
    rules either switches off."""
    gitleaks = getattr(config, "gitleaks", None)
    imported = list(gitleaks.rules) if gitleaks is not None else []
    disabled = list(config.disabled_rules)
    if gitleaks is not None and gitleaks.disabled:
        known = {r.id for r in load_rules(validate_pack=False)}
        disabled += [d for d in gitleaks.pack_disabled(known) if d not in disabled]
    return load_rules(
        extra=config.rules, disabled=disabled, validate_pack=validate_pack, imported=imported
    )


def gitleaks_keep(config: Config):  # type: ignore[no-untyped-def]
    """The .gitleaks.toml allowlists and .gitleaksignore, as a Collector filter."""
    gitleaks = getattr(config, "gitleaks", None)
    return gitleaks.keep if gitleaks is not None else None


class Collector:
    """Thread-safe: scans fragments and groups what they hold into findings."""

    def __init__(
        self,
        engine: Engine,
        exclude: list[str],
        decorate: Callable[[Location], Location] | None = None,
        keep: Callable[[Match, Location, bytes, int], bool] | None = None,
    ) -> None:
        self.engine = engine
        self.exclude = exclude
        self.decorate = decorate  # e.g. add the URL a person can open
        self.keep = keep  # False: the scanned repository's own tuning allows it (gitleaks)
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
                if self.keep is not None and not self.keep(m, loc, fragment.data, m.start):
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
    collector = Collector(engine, config.exclude_paths, keep=gitleaks_keep(config))
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
) -> ScanResult:
    """Full history of ``repo`` (or the commits ``rev_args`` select).
    ``progress(commits_done, commits_total, bytes)``."""
    from scanner.sources.git_history import scan_history

    started = time.perf_counter()
    collector = Collector(engine, config.exclude_paths, keep=gitleaks_keep(config))
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
    )
    return finish(result, collector, opts.baseline, started)
