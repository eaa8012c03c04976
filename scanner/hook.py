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

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from scanner.config import load_config, resolve_baseline
from scanner.findings import Finding
from scanner.report.advice import next_step
from scanner.sources.git_history import run_git

ZERO = "0" * 40
EXIT_PASS, EXIT_BLOCK, EXIT_ERROR = 0, 1, 2


def repo_root() -> Path:
    cwd = Path.cwd()
    if (cwd / ".git").exists():
        return cwd  # git runs hooks from the top of the work tree: skip a process
    return Path(run_git(cwd, "rev-parse", "--show-toplevel").decode().strip())


_LOADED: dict[tuple[Path, Path | None, str], tuple[object, object]] = {}


# As `keysweep scan`: generic secrets too (a hard-coded password is what a hook must stop).
DEFAULT_CONFIDENCE = "medium"


def _engine_and_config(  # type: ignore[no-untyped-def]
    root: Path, config_path: Path | None, confidence: str = DEFAULT_CONFIDENCE
):
    """The engine and settings for this hook run (built once: the block message needs
    the rules again, and the settings' warnings are said once)."""
    key = (root, config_path, confidence)
    if key not in _LOADED:
        _LOADED[key] = _build_engine_and_config(root, config_path, confidence)
    return _LOADED[key]


def _build_engine_and_config(  # type: ignore[no-untyped-def]
    root: Path, config_path: Path | None, confidence: str
):
    from scanner.engine import Allowlist, Engine
    from scanner.rules import at_confidence
    from scanner.scan import rules_for

    config = load_config(config_path, root)
    for warning in config.warnings:
        print(f"keysweep: warning: {warning}", file=sys.stderr)
    rules = rules_for(config, validate_pack=False)
    engine = Engine(
        at_confidence(rules, confidence),
        allowlist=Allowlist.from_strings(config.allowlist_regexes)
        if config.allowlist_regexes
        else None,
        low_confidence=confidence == "low",
        prefilter=config.prefilter,
        regex_timeout=config.regex_timeout,
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
    from scanner.decode import fast_path_database

    path = hook_cache.cache_path(str(root), hyperscan.__version__)
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        if fh.read(len(hook_cache.FORMAT)) == hook_cache.FORMAT:
            return  # saved already (compiling it again costs a few tenths of a second)
    # The rules' literals and their encoded forms (a base64-encoded key has no plain one)
    hook_cache.save(str(root), fast_path_database(engine), hyperscan.__version__)


def scan_staged(
    root: Path,
    config_path: Path | None = None,
    baseline: Path | None = None,
    confidence: str = DEFAULT_CONFIDENCE,
) -> list[Finding]:
    from scanner.scan import Collector, IndexSource, gitleaks_keep

    engine, config = _engine_and_config(root, config_path, confidence)
    if config_path is None and confidence == DEFAULT_CONFIDENCE:
        _save_fast_path(root, engine)  # the fast path serves the option-less hook only
    collector = Collector(engine, config.exclude_paths, keep=gitleaks_keep(config))
    # the staged patch, then the files inside any staged archive
    IndexSource(root, archive_depth=config.archive_depth).feed(collector.scan)
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
    rev_args: list[str] | None = None,
    confidence: str = DEFAULT_CONFIDENCE,
) -> tuple[list[Finding], int]:
    """The commits a push publishes (``lines`` as git gives them on stdin), or the
    commits ``rev_args`` select."""
    args = rev_args if rev_args is not None else push_ranges(lines, remote)
    if not args:
        return [], 0
    if rev_args is None:
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


def unknown_push_args(root: Path, remote: str | None) -> list[str]:
    """What could be pushed when the hook is not told: every commit that no
    remote-tracking ref of ``remote`` has (of any remote, when it is not known).

    pre-commit says nothing but the local branch when a push includes the root
    commit (a repository's first push): then that branch's commits not on the remote.
    """
    not_pushed = ["--not", f"--remotes={remote}" if remote else "--remotes"]
    local = os.environ.get("PRE_COMMIT_LOCAL_BRANCH")
    if local and not local.startswith("-") and _has_commit(root, local):
        return [local, *not_pushed]
    return ["--branches", "--tags", *not_pushed]


def _safe(text: str | None) -> str:
    from scanner.report.safe_text import printable

    return printable(text)


def _finding_lines(
    findings: list[Finding], rules: dict[str, object], in_history: bool
) -> list[str]:
    lines = []
    for f in findings:
        loc = f.location
        where = f"{_safe(loc.path)}:{loc.line}"
        if loc.commit:
            subject = f' "{_safe(loc.subject)}"' if loc.subject else ""
            where += f" (commit {loc.commit[:12]}{subject})"
        lines.append(f"  {where}  {f.rule_id}  {_safe(f.redacted)}")
        lines.append(f"      {_safe(next_step(f, rules.get(f.rule_id), in_history=in_history))}")  # type: ignore[arg-type]
    return lines


def block_message(
    findings: list[Finding],
    what: str,
    bypass: str,
    rules: dict[str, object] | None = None,
    advice: list[str] | None = None,
) -> str:
    n = len(findings)
    lines = [f"keysweep: {what} blocked — {n} secret{'s' if n != 1 else ''} found", ""]
    lines += _finding_lines(findings, rules or {}, in_history=False)
    lines += ["", "What to do:"]
    lines += advice or [
        "  - Take the key out of the change and load it from the environment or a secret store.",
        "  - False positive? Add a `keysweep:allow` comment on that line, or record what is",
        "    staged in the baseline, then commit again:",
        "      keysweep baseline add --staged",
    ]
    lines.append(f"  - Emergency only: {bypass}")
    return "\n".join(lines)


def _commit_of(root: Path, rev: str) -> str | None:
    try:
        return (
            run_git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()
        )
    except Exception:
        return None


def push_advice(root: Path, findings: list[Finding]) -> list[str]:
    """How to get the key out of commits that are not pushed yet: a new commit that
    removes it is not enough, the commit that added it must be rewritten."""
    from scanner.sources.git_history import MESSAGE_PATH

    head = _commit_of(root, "HEAD")
    commits: list[str] = []
    paths: dict[str, list[str]] = {}
    in_message: list[str] = []
    for f in findings:
        for loc in f.locations:
            if loc.commit and loc.commit not in commits:
                commits.append(loc.commit)
            if loc.commit and loc.path == MESSAGE_PATH:
                if loc.commit not in in_message:
                    in_message.append(loc.commit)
            elif loc.commit and loc.path:
                path = loc.path.split("!", 1)[0]  # an archive's member: the archive
                paths.setdefault(loc.commit, [])
                if path not in paths[loc.commit]:
                    paths[loc.commit].append(path)
    lines = [
        "  The key is in a commit you are about to push; a new commit that removes it (or adds",
        "  `keysweep:allow`) still pushes the old one. Rewrite the commit, then push again:",
    ]
    import shlex

    def add_cmd(c: str) -> str:
        files = " ".join(shlex.quote(p) for p in paths.get(c, [])) or "-A"
        return f"git add {files}"

    if commits == [head] and not paths.get(head):  # only in the message
        lines += [
            f"  - It is in the message of your last commit ({head[:12]}): take it out with",
            "      git commit --amend",
        ]
        in_message = []
    elif commits == [head]:
        c = commits[0]
        lines += [
            f"  - It is in your last commit ({c[:12]}): take the key out of the file, then",
            f"      {add_cmd(c)} && git commit --amend --no-edit",
        ]
    else:
        # Oldest first: an ancestor has fewer commits behind it.
        def depth(c: str) -> int:
            return int(run_git(root, "rev-list", "--count", c).strip() or 0)

        ranked = sorted(commits, key=depth)
        oldest = ranked[0]
        is_root = _commit_of(root, f"{oldest}^") is None
        start = "--root" if is_root else f"{oldest[:12]}~1"
        marks = ", ".join(c[:12] for c in ranked)
        lines += [
            f"  - It is in commit(s) {marks}. Start an interactive rebase, mark each of them",
            "    `edit`, and at each stop take the key out of the file, then amend and go on:",
            f"      git rebase -i {start}",
            "      git add -A && git commit --amend --no-edit && git rebase --continue",
        ]
    if in_message:
        lines += [
            "  - The key is in the message of commit(s) "
            + ", ".join(c[:12] for c in in_message)
            + ": reword it (`git commit --amend` for the last",
            "    commit, `reword` in `git rebase -i` for an older one).",
        ]
    lines += [
        "  - False positive? Record it in the baseline, then push again:",
        "      keysweep baseline add " + " ".join(c[:12] for c in commits),
    ]
    return lines


def _rules_by_id(engine) -> dict[str, object]:  # type: ignore[no-untyped-def]
    return {r.id: r for r in engine.rules}


def pre_push_guarded(root: Path) -> bool:
    """Whether a pre-push hook runs keysweep here: ``keysweep install-hook --pre-push``'s,
    or the pre-commit framework's with the ``keysweep-pre-push`` hook configured."""
    try:
        hooks = Path(run_git(root, "rev-parse", "--git-path", "hooks").decode().strip())
        hook = (hooks if hooks.is_absolute() else root / hooks) / "pre-push"
        if not os.access(hook, os.X_OK):
            return False
        text = hook.read_text("utf-8", "replace")
        if "keysweep" in text:
            return True
        config = (root / ".pre-commit-config.yaml").read_text("utf-8", "replace")
    except Exception:
        return False
    return "pre-commit" in text and "keysweep-pre-push" in config


def run_pre_commit(
    config_path: Path | None, baseline: Path | None, confidence: str = DEFAULT_CONFIDENCE
) -> int:
    root = repo_root()
    findings = scan_staged(root, config_path, baseline, confidence)
    if not findings:
        return EXIT_PASS
    engine, _ = _engine_and_config(root, config_path, confidence)
    bypass = "`git commit --no-verify` skips this check; " + (
        "the keysweep pre-push hook still checks the commit before it leaves your machine."
        if pre_push_guarded(root)
        else "no keysweep pre-push hook is installed to check the commit before it is pushed "
        "(`keysweep install-hook --pre-push` adds one)."
    )
    print(
        block_message(findings, "commit", bypass, _rules_by_id(engine)),
        file=sys.stderr,
    )
    return EXIT_BLOCK


def run_pre_push(
    remote: str | None,
    config_path: Path | None,
    baseline: Path | None,
    confidence: str = DEFAULT_CONFIDENCE,
) -> int:
    root = repo_root()
    remote = remote or os.environ.get("PRE_COMMIT_REMOTE_NAME")
    lines = pre_commit_framework_push_lines()
    rev_args: list[str] | None = None
    if lines is None:
        lines = sys.stdin.read().splitlines() if not sys.stdin.isatty() else []
        if not any(line.strip() for line in lines):
            # Not told what is pushed (pre-commit on a first push, or run by hand): scan
            # every commit that could be, never pass blind.
            rev_args = unknown_push_args(root, remote)
    findings, _ = scan_push(
        root, lines, remote, config_path, baseline, rev_args=rev_args, confidence=confidence
    )
    if not findings:
        return EXIT_PASS
    engine, _ = _engine_and_config(root, config_path, confidence)
    print(
        block_message(
            findings,
            "push",
            "`git push --no-verify` skips this check. Once pushed, a key is public: rotate it.",
            _rules_by_id(engine),
            advice=push_advice(root, findings),
        ),
        file=sys.stderr,
    )
    return EXIT_BLOCK


def run_files(
    files: list[str],
    config_path: Path | None,
    baseline: Path | None,
    confidence: str = DEFAULT_CONFIDENCE,
) -> int:
    """``keysweep hook files FILE...`` (pre-commit's ``keysweep-files`` hook): the named
    files as they are, for CI (``pre-commit run keysweep-files --all-files``)."""
    root = repo_root()
    from scanner.archives import Limits
    from scanner.scan import Collector, gitleaks_keep
    from scanner.sources.files import SkipCounts, iter_files

    engine, config = _engine_and_config(root, config_path, confidence)
    collector = Collector(engine, config.exclude_paths, keep=gitleaks_keep(config))
    skips = SkipCounts()
    limits = Limits(max_depth=config.archive_depth)
    for name in files:
        path = Path(name)
        named = (len(skips.errors), len(skips.capped))
        for frag in iter_files(path, max_size=config.max_file_size, skips=skips, limits=limits):
            # As pre-commit named it (relative to the top of the repository); an archive's
            # members keep their "!member" after it.
            frag.path = name + (frag.path or "")[len(path.name) :]
            collector.scan(frag)
        for said, start in ((skips.errors, named[0]), (skips.capped, named[1])):
            said[start:] = [name + x[len(path.name) :] for x in said[start:]]
    found = _drop_baselined(collector.found.findings(), resolve_baseline(baseline, config, root))
    for err in skips.errors:
        print(f"keysweep: warning: {_safe(err)}", file=sys.stderr)
    for capped in skips.capped:  # not opened: said, never passed over in silence
        print(f"keysweep: warning: archive capped, not scanned: {_safe(capped)}", file=sys.stderr)
    if not found:
        return EXIT_PASS
    import shlex

    names = " ".join(shlex.quote(p) for p in dict.fromkeys(f.location.path or "" for f in found))
    print(
        block_message(
            found,
            "check",
            "none: these files are committed already; if the key was ever pushed, rotate it.",
            _rules_by_id(engine),
            advice=[
                "  - Take the key out of the file and load it from the environment or a secret",
                "    store; if the file was ever pushed, rotate the key (it stays in git history).",
                "  - False positive? Add a `keysweep:allow` comment on that line, or record it in",
                "    the baseline:",
                f"      keysweep baseline add --no-history {names}",
            ],
        ),
        file=sys.stderr,
    )
    return EXIT_BLOCK
