"""Git hooks: stop a key before it is committed (pre-commit) or pushed (pre-push).

``keysweep hook pre-commit`` scans exactly what is staged: the added lines of
``git diff --cached`` (the index, not the working tree), with the paths and
line numbers of the staged files. ``keysweep hook pre-push`` scans every commit
about to be pushed, so a key committed with ``--no-verify`` is still stopped.

Exit codes: 0 pass, 1 block, 2 the hook itself failed (one line says why; a
broken hook never looks like a clean scan).

Start-up time is a feature here: this path imports no Celery, Redis, httpx,
GitPython or rich, and compiles a rule's full pattern only when the prefilter
hits its prefix.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from scanner.config import load_config, resolve_baseline
from scanner.findings import Finding
from scanner.hook_cache import STAGED_DIFF
from scanner.report.advice import next_step
from scanner.sources.git_history import run_git

ZERO = "0" * 40
EXIT_PASS, EXIT_BLOCK, EXIT_ERROR = 0, 1, 2


def repo_root() -> Path:
    cwd = Path.cwd()
    if (cwd / ".git").exists():
        return cwd  # git runs hooks from the top of the work tree: skip a process
    return Path(run_git(cwd, "rev-parse", "--show-toplevel").decode().strip())


# As `keysweep scan`: generic secrets too (a hard-coded password is what a hook must stop).
DEFAULT_CONFIDENCE = "medium"


def _engine_and_config(  # type: ignore[no-untyped-def]
    root: Path, config_path: Path | None, confidence: str = DEFAULT_CONFIDENCE
):
    from scanner.engine import Allowlist, Engine
    from scanner.rules import at_confidence
    from scanner.scan import rules_for

    config = load_config(config_path, root)
    rules = rules_for(config, validate_pack=False)
    engine = Engine(
        at_confidence(rules, confidence),
        allowlist=Allowlist.from_strings(config.allowlist_regexes)
        if config.allowlist_regexes
        else None,
        low_confidence=confidence == "low",
    )
    return engine, config


def _drop_baselined(findings: list[Finding], baseline: Path | None) -> list[Finding]:
    if baseline is None:
        return findings
    from scanner.baseline import load_baseline

    known = load_baseline(baseline)
    return [f for f in findings if f.fingerprint not in known]


def _save_fast_path(root: Path, engine) -> None:  # type: ignore[no-untyped-def]
    """Keep the compiled prefilter so the next clean commit needs nothing else. Not when
    a rule has no literal (an imported rule): then "no literal hit" proves nothing."""
    db = getattr(engine.prefilter, "db", None)
    if db is None or any(not r.prefixes for r in engine.rules):
        return
    import hyperscan

    from scanner import hook_cache

    hook_cache.save(str(root), hyperscan.dumpb(db), hyperscan.__version__)


def staged_patch(root: Path) -> bytes:
    """The added lines of what is staged, as ``git diff --cached -U0``."""
    return run_git(root, *STAGED_DIFF)


def scan_staged(
    root: Path,
    config_path: Path | None = None,
    baseline: Path | None = None,
    confidence: str = DEFAULT_CONFIDENCE,
) -> list[Finding]:
    patch = staged_patch(root)
    if not patch:
        return []
    from scanner.scan import Collector, gitleaks_keep
    from scanner.sources.git_history import PatchChunk

    engine, config = _engine_and_config(root, config_path, confidence)
    if config_path is None and confidence == DEFAULT_CONFIDENCE:
        _save_fast_path(root, engine)  # the fast path serves the option-less hook only
    collector = Collector(engine, config.exclude_paths, keep=gitleaks_keep(config))
    collector.scan(PatchChunk(b"\n" + patch, str(root), 0, None))
    return _drop_baselined(collector.found.findings(), resolve_baseline(baseline, config, root))


def push_ranges(lines: list[str], remote: str | None) -> list[str]:
    """``git rev-list`` arguments for the commits a push would publish.

    Each stdin line is ``<local ref> <local sha> <remote ref> <remote sha>``.
    An existing remote ref gives ``local ^remote``; a new branch gives the
    commits no remote-tracking ref already has.
    """
    tips: list[str] = []
    excludes: list[str] = []
    new_branch = False
    for line in lines:
        parts = line.split()
        if len(parts) != 4:
            continue
        _local_ref, local_sha, _remote_ref, remote_sha = parts
        if set(local_sha) == {"0"}:
            continue  # a deletion publishes nothing
        tips.append(local_sha)
        if set(remote_sha) == {"0"}:
            new_branch = True
        else:
            excludes.append(f"^{remote_sha}")
    if not tips:
        return []
    args = [*tips, *excludes]
    if new_branch:
        args += ["--not", f"--remotes={remote}" if remote else "--remotes"]
    return args


def _has_commit(root: Path, sha: str) -> bool:
    probe = subprocess.run(
        ["git", "cat-file", "-e", f"{sha}^{{commit}}"], cwd=root, capture_output=True, check=False
    )
    return probe.returncode == 0


def _known_commits(root: Path, args: list[str]) -> list[str]:
    """Drop ``^sha`` excludes git does not have (someone else pushed first); commits
    any remote-tracking ref already has are still left out."""
    kept = [a for a in args if not a.startswith("^") or _has_commit(root, a[1:])]
    if len(kept) < len(args) and "--not" not in kept:
        kept += ["--not", "--remotes"]
    return kept


def scan_push(
    root: Path,
    lines: list[str],
    remote: str | None,
    config_path: Path | None = None,
    baseline: Path | None = None,
    confidence: str = DEFAULT_CONFIDENCE,
) -> tuple[list[Finding], int]:
    args = push_ranges(lines, remote)
    if not args:
        return [], 0
    args = _known_commits(root, args)
    from scanner.scan import ScanOptions, scan_git

    engine, config = _engine_and_config(root, config_path, confidence)
    opts = ScanOptions(
        jobs=min(2, os.cpu_count() or 1), baseline=resolve_baseline(baseline, config, root)
    )
    result = scan_git(root, engine, config, opts, str(root), rev_args=args)
    return result.findings, result.commits


def pre_commit_framework_push_lines() -> list[str] | None:
    """pre-commit passes the push as PRE_COMMIT_FROM_REF/TO_REF, not on stdin."""
    to_ref = os.environ.get("PRE_COMMIT_TO_REF")
    if not to_ref:
        return None
    from_ref = os.environ.get("PRE_COMMIT_FROM_REF") or ZERO
    remote_branch = os.environ.get("PRE_COMMIT_REMOTE_BRANCH", "refs/heads/unknown")
    return [f"HEAD {to_ref} {remote_branch} {from_ref}"]


def block_message(findings: list[Finding], what: str, bypass: str) -> str:
    n = len(findings)
    lines = [f"keysweep: {what} blocked — {n} secret{'s' if n != 1 else ''} found", ""]
    for f in findings:
        loc = f.location
        where = f"{loc.path}:{loc.line}"
        if loc.commit:
            where += f" (commit {loc.commit[:12]})"
        lines.append(f"  {where}  {f.rule_id}  {f.redacted}")
        lines.append(f"      {next_step(f)}")
    lines += [
        "",
        "What to do:",
        "  - Take the key out of the change and load it from the environment or a secret store.",
        "  - False positive? Add a `keysweep:allow` comment on that line, or record it in the",
        "    baseline: keysweep baseline create --output .keysweep-baseline.json",
        f"  - Emergency only: {bypass}",
    ]
    return "\n".join(lines)


def run_pre_commit(
    config_path: Path | None, baseline: Path | None, confidence: str = DEFAULT_CONFIDENCE
) -> int:
    findings = scan_staged(repo_root(), config_path, baseline, confidence)
    if not findings:
        return EXIT_PASS
    print(
        block_message(
            findings,
            "commit",
            "`git commit --no-verify` skips this check; the keysweep pre-push hook still checks "
            "the commit before it leaves your machine.",
        ),
        file=sys.stderr,
    )
    return EXIT_BLOCK


def run_pre_push(
    remote: str | None,
    config_path: Path | None,
    baseline: Path | None,
    confidence: str = DEFAULT_CONFIDENCE,
) -> int:
    lines = pre_commit_framework_push_lines()
    if lines is None:
        lines = sys.stdin.read().splitlines() if not sys.stdin.isatty() else []
    remote = remote or os.environ.get("PRE_COMMIT_REMOTE_NAME")
    findings, _ = scan_push(repo_root(), lines, remote, config_path, baseline, confidence)
    if not findings:
        return EXIT_PASS
    print(
        block_message(
            findings,
            "push",
            "`git push --no-verify` skips this check. Once pushed, a key is public: rotate it.",
        ),
        file=sys.stderr,
    )
    return EXIT_BLOCK
