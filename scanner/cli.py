"""``keysweep``: the command line. Thin: parse, call the library, print, exit.

Exit codes follow gitleaks: 0 nothing found, 1 findings (``--exit-code``
changes it), 2 usage or runtime error.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from scanner import RELEASE_COMMIT, __version__
from scanner.errors import KeysweepError

EXIT_CLEAN, EXIT_FOUND, EXIT_ERROR = 0, 1, 2

CONFIDENCE_LEVELS = ("high", "medium", "low")
# Scans and hooks report generic secrets by default: a hard-coded password is exactly
# what a person auditing a repository (or stopping a commit) wants to see, gitleaks and
# detect-secrets report them by default too, and the value filters keep false positives
# down (bench/corpora.py). The workers scan public content at "high" only.
DEFAULT_CONFIDENCE = "medium"
CONFIDENCE_HELP = (
    "what to report: high = providers' keys only (prefix, checksum or format); medium = "
    "also generic secrets, a secret-ish name assigned a secret-looking value (password = "
    f"..., api_key: ...); low = also tokens whose checksum fails (default: {DEFAULT_CONFIDENCE})"
)
log = logging.getLogger("keysweep")

SCAN_EPILOG = """\
what is scanned (as git decides it):
  PATH in a git work tree        that repository's history: every commit's added
                                 lines on every ref; below the top, limited to PATH
                                 (as `git log --full-history -- PATH`)
  --staged                       what is staged (the index), as the pre-commit hook
  --no-history                   the files as they are (binary files and files over
                                 max_file_size are skipped and counted)
  A..B, A...B, COMMIT            those commits of the repository here (one commit:
                                 that commit only); --log-opts for any git rev-list
                                 arguments
  https://host/owner/repo        a bare clone of every branch and tag, removed
                                 afterwards (hosts: github.com, gitlab.com,
                                 bitbucket.org, codeberg.org, plus --allow-host)
  -                              standard input; a patch (git show, git log -p,
                                 git diff) keeps its commit, path and line numbers

examples:
  keysweep scan                          # this repository, full history
  keysweep scan src/                     # history of what is under src/
  keysweep scan --staged                 # what the next commit would add
  keysweep scan origin/main..HEAD        # commits not yet on origin/main
  keysweep scan --log-opts="--since=2024-01-01 main"
  keysweep scan https://github.com/org/repo --format sarif -o ks.sarif
  git show HEAD | keysweep scan -        # a patch from stdin
  keysweep baseline create               # record today's findings, then scan again

false positives: put `keysweep:allow` (or gitleaks:allow, `pragma: allowlist
secret`, trufflehog:ignore) in a comment on the line, add a baseline, or set
allowlist_regexes / exclude_paths / disabled_rules in .keysweep.toml.

exit codes: 0 nothing found, 1 findings (see --exit-code), 2 error.
"""


HOOK_EPILOG = f"""\
with the pre-commit framework (.pre-commit-config.yaml):
  - repo: https://github.com/keysweep/keysweep
    rev: {RELEASE_COMMIT}  # frozen: v{__version__}
    hooks:
      - id: keysweep              # at commit: what is staged
      - id: keysweep-pre-push     # at push: every commit being pushed
      - id: keysweep-files        # in CI: pre-commit run keysweep-files --all-files
then: pre-commit install --hook-type pre-commit --hook-type pre-push

without it: keysweep install-hook --pre-push

The hooks honour .keysweep.toml, the baseline and `keysweep:allow` comments,
as `keysweep scan` does.
"""


class Parser(argparse.ArgumentParser):
    """argparse with no silent abbreviations, and a suggestion for a mistyped word."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.argv: list[str] = []

    def _options(self) -> set[str]:
        found: set[str] = set()
        parsers: list[argparse.ArgumentParser] = [self]
        words = set(self.argv)
        while parsers:
            p = parsers.pop()
            for action in p._actions:
                found.update(o for o in action.option_strings if o.startswith("--"))
                if isinstance(action, argparse._SubParsersAction):
                    parsers.extend(sub for name, sub in action.choices.items() if name in words)
        return found

    def error(self, message: str) -> None:  # type: ignore[override]
        import difflib
        import re

        hint = ""
        m = re.match(r"unrecognized arguments: (.*)", message)
        if m:
            for word in m.group(1).split():
                if word.startswith("--"):
                    close = difflib.get_close_matches(word.split("=")[0], self._options(), 1)
                    if close:
                        hint = f" (did you mean {close[0]}?)"
                        break
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            choices = re.findall(r"'([^']*)'", m.group(2)) or m.group(2).split(", ")
            close = difflib.get_close_matches(m.group(1), choices, 1)
            if close:
                hint = f" (did you mean {close[0]}?)"
        super().error(message + hint)


def _common() -> argparse.ArgumentParser:
    """Options every command takes: how much keysweep says about itself on stderr."""
    p = Parser(add_help=False)
    p.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=None,
        help="how much keysweep logs on stderr (default: warning)",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="log what is scanned (--log-level info)"
    )
    return p


def _add_scan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target",
        nargs="?",
        default=".",
        metavar="PATH|RANGE|URL|-",
        help="what to scan (default: the current directory); see below",
    )
    p.add_argument(
        "--no-history", action="store_true", help="scan the files as they are, not the git history"
    )
    p.add_argument(
        "--staged",
        action="store_true",
        help="scan what is staged (the index), as the pre-commit hook does",
    )
    p.add_argument(
        "--since", metavar="REV", help="only commits not reachable from REV (e.g. origin/main)"
    )
    p.add_argument(
        "--log-opts",
        metavar="ARGS",
        help='git rev-list arguments that choose the commits, e.g. "--since=2024-01-01 main" '
        "(default: --all)",
    )
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="config file (default: .keysweep.toml or [tool.keysweep] in pyproject.toml)",
    )
    p.add_argument(
        "--baseline", type=Path, metavar="FILE", help="leave out findings recorded in this baseline"
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 2,
        metavar="N",
        help="processes that read and scan a whole history side by side (default: CPU "
        "count; 1: this process alone)",
    )
    p.add_argument(
        "--confidence",
        choices=CONFIDENCE_LEVELS,
        default=DEFAULT_CONFIDENCE,
        help=CONFIDENCE_HELP,
    )
    p.add_argument(
        "--low-confidence",
        action="store_true",
        help="the same as --confidence low",
    )
    p.add_argument("--include-binary", action="store_true", help="scan binary files too")
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="also allow cloning from HOST (repeatable)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _redact_percent(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 0 to 100") from None
    if not 0 <= n <= 100:
        raise argparse.ArgumentTypeError(f"{n} is not a number from 0 to 100")
    return n


def _add_rule_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--filter",
        metavar="TEXT",
        help="only rules whose id, provider, description, tags or pack file contain TEXT "
        "(case-insensitive)",
    )
    p.add_argument("--tag", metavar="TAG", help="only rules with this tag (cloud, vcs, ai, …)")
    p.add_argument("--owner", choices=("keyservice", "third_party"))
    p.add_argument("--confidence", choices=CONFIDENCE_LEVELS, help="only rules of this confidence")


def select_rules(rules: list, args: argparse.Namespace) -> list:  # type: ignore[type-arg]
    """The rules ``rules list/test`` show, per --filter, --tag, --owner, --confidence."""
    text = (args.filter or "").lower()
    out = []
    for r in rules:
        hay = " ".join((r.id, r.provider, r.description, " ".join(r.tags), r.origin)).lower()
        if text and text not in hay:
            continue
        if args.tag and args.tag not in r.tags:
            continue
        if args.owner and r.owner != args.owner:
            continue
        if args.confidence and r.confidence != args.confidence:
            continue
        out.append(r)
    return out


def build_parser() -> Parser:
    common = _common()
    parser = Parser(
        prog="keysweep",
        description="Find leaked API keys in git history, files and stdin.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Start with `keysweep scan` in a repository. `keysweep COMMAND --help` for more.\n\n"
        "service commands (keysweep[workers]): worker, beat, status, enqueue",
    )
    parser.add_argument("--version", action="version", version=f"keysweep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    scan = sub.add_parser(
        "scan",
        parents=[common],
        help="scan a repository's history, a directory, a URL or stdin",
        description="Scan for leaked keys and say what to do about each one.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=SCAN_EPILOG,
    )
    _add_scan_args(scan)
    scan.add_argument(
        "--format",
        choices=("text", "json", "jsonl", "sarif"),
        default="text",
        help="report format (default: text)",
    )
    scan.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write the report here instead of stdout (`-` is stdout); written whole or not at all",
    )
    secrets = scan.add_mutually_exclusive_group()
    secrets.add_argument(
        "--show-secrets",
        action="store_true",
        help="print cleartext secrets (never do this in CI logs)",
    )
    secrets.add_argument(
        "--redact",
        nargs="?",
        const=100,
        type=_redact_percent,
        metavar="N",
        help="hide more of each secret: N%% of what follows its prefix (--redact alone: "
        "100, the prefix only; default: the prefix and at most 8 characters)",
    )
    scan.add_argument(
        "--exit-code",
        type=int,
        default=EXIT_FOUND,
        metavar="N",
        help="exit code when something is found (default: 1)",
    )
    scan.add_argument(
        "--revoke",
        action="store_true",
        help="revoke our leaked mg_ keys through the key service and audit it (needs "
        "KEYSWEEP_KEYSERVICE_URL and KEYSWEEP_KEYSERVICE_TOKEN); without it, a configured key "
        "service is only asked who owns each key",
    )
    scan.add_argument(
        "--dry-run", action="store_true", help="show what --revoke would do, change nothing"
    )
    notify = scan.add_mutually_exclusive_group()
    notify.add_argument(
        "--notify",
        action="store_true",
        help="send what was found to the alert channels configured in KEYSWEEP_NOTIFY_* / "
        "KEYSWEEP_SMTP_URL (no key service needed; --revoke sends them by default)",
    )
    notify.add_argument(
        "--no-notify",
        action="store_true",
        help="with --revoke: send no alerts",
    )

    rules = sub.add_parser(
        "rules", parents=[common], help="list the rules or test them against their examples"
    )
    rules_sub = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    rl = rules_sub.add_parser(
        "list",
        parents=[common],
        help="show the rules (id, owner, severity, literals) and how many there are",
        description="Show the rule pack (every scanner/rules/*.toml file) plus your own "
        "rules, with the count. Filters combine: keysweep rules list --filter aws "
        "--confidence high",
    )
    rl.add_argument("--format", choices=("text", "json"), default="text")
    rl.add_argument("--config", type=Path, metavar="FILE")
    _add_rule_filters(rl)
    rt = rules_sub.add_parser(
        "test", parents=[common], help="run every rule's positive and negative examples"
    )
    rt.add_argument("--config", type=Path, metavar="FILE")
    _add_rule_filters(rt)

    base = sub.add_parser(
        "baseline",
        parents=[common],
        help="record today's findings so later scans report only new ones",
    )
    base_sub = base.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    for name, text in (
        ("create", "scan and write a baseline file (no secrets in it), replacing it"),
        ("add", "scan and add what is found to the baseline file (its entries are kept)"),
    ):
        bc = base_sub.add_parser(name, parents=[common], help=text, description=text + ".")
        _add_scan_args(bc)
        bc.add_argument(
            "--output",
            "-o",
            type=Path,
            default=None,
            metavar="FILE",
            help="the baseline file (default: .keysweep-baseline.json at the top of the "
            "repository, where scans and hooks look for it)",
        )

    hook = sub.add_parser(
        "hook",
        parents=[common],
        help="run as a git hook: pre-commit (staged changes), pre-push (commits to push), "
        "files (the files named)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stop a key before it leaves the laptop. Exit 0 pass, 1 block, 2 hook error.",
        epilog=HOOK_EPILOG,
    )
    hook.add_argument(
        "hook_name",
        choices=("pre-commit", "pre-push", "files"),
        metavar="pre-commit|pre-push|files",
    )
    hook.add_argument(
        "hook_args",
        nargs="*",
        metavar="ARG",
        help="pre-push: the remote's name and URL, as git passes them; files: the files",
    )
    hook.add_argument("--config", type=Path, metavar="FILE")
    hook.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="default: .keysweep-baseline.json at the top of the repository, if any",
    )
    hook.add_argument(
        "--confidence", choices=CONFIDENCE_LEVELS, default=DEFAULT_CONFIDENCE, help=CONFIDENCE_HELP
    )

    keys = sub.add_parser(
        "keys",
        parents=[common],
        help="the reference key service: mint a key for demos and tests",
    )
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    kc = keys_sub.add_parser(
        "create",
        parents=[common],
        help="mint a key (printed once, on stdout)",
        description="Mint an mg_ key through the key service (POST /v1/keys, reference service "
        "only). The cleartext is printed once on stdout; keep it out of logs.",
    )
    kc.add_argument(
        "--env",
        choices=("live", "test"),
        default="test",
        help="mg_live_ (production) or mg_test_ key (default: test)",
    )
    kc.add_argument("--org", default="org_demo", help="organisation id (default: org_demo)")
    kc.add_argument("--project", default="proj_demo", help="project id (default: proj_demo)")
    kc.add_argument(
        "--owner-name", default="Demo Owner", help="owner the alerts name (default: Demo Owner)"
    )
    kc.add_argument(
        "--owner-email",
        default="owner@example.com",
        help="where the owner's alert goes (default: owner@example.com)",
    )
    kc.add_argument("--config", type=Path, metavar="FILE")

    inst = sub.add_parser(
        "install-hook",
        parents=[common],
        help="install keysweep as this repository's git pre-commit (and pre-push) hook",
        description="Write .git/hooks/pre-commit (and pre-push) that run keysweep. An existing "
        "hook is kept as <hook>.local and runs first; nothing is overwritten silently.",
    )
    inst.add_argument("--pre-push", action="store_true", help="also install the pre-push hook")
    inst.add_argument("--force", action="store_true", help="replace a hook that is in the way")

    sub.add_parser("version", parents=[common], help="print keysweep's version")
    comp = sub.add_parser(
        "completion",
        parents=[common],
        help="print a shell completion script (bash, zsh or fish)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print a completion script for your shell.",
        epilog="install:\n"
        "  bash: keysweep completion bash > ~/.local/share/bash-completion/completions/keysweep\n"
        "  zsh:  keysweep completion zsh > ~/.zfunc/_keysweep   (with fpath+=~/.zfunc)\n"
        "  fish: keysweep completion fish > ~/.config/fish/completions/keysweep.fish",
    )
    comp.add_argument("shell", choices=("bash", "zsh", "fish"))
    return parser


def _error(msg: str) -> int:
    from scanner.report.safe_text import printable

    print(f"keysweep: error: {printable(msg)}", file=sys.stderr)
    return EXIT_ERROR


def _setup_logging(args: argparse.Namespace) -> None:
    level = getattr(args, "log_level", None) or (
        "info" if getattr(args, "verbose", False) else None
    )
    if level is None:
        level = "warning"
    logging.basicConfig(
        level=level.upper(), format="keysweep: %(levelname)s: %(message)s", stream=sys.stderr
    )


def _progress(enabled: bool):  # type: ignore[no-untyped-def]
    """A rich progress bar on stderr (commits done / total, MB/s), or None."""
    if not enabled or not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]history[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("commits"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        transient=True,
        console=__import__("rich.console").console.Console(stderr=True),
    )


@dataclass
class ScanRun:
    """A scan's result with what the report should say about its scope."""

    result: Any  # ScanResult
    rules: list[Any]
    config: Any  # Config
    scope: str  # what was scanned, in words
    notes: list[str] = field(default_factory=list)  # what was not scanned, and how to
    baseline_root: Path | None = None  # where the default baseline lives
    baseline_read: Path | None = None  # the baseline file a scan of this target reads by default


def counted(n: int, noun: str) -> str:
    """``1 commit``, ``2 commits``, ``0 files``."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _q(word: str) -> str:
    return shlex.quote(word)


def _again(args: argparse.Namespace, *options: str) -> str:
    """The scan command for the same target with other options, as a person would type it."""
    target = "" if args.target == "." else f" {_q(args.target)}"
    return "keysweep scan" + "".join(f" {o}" for o in options) + target


def run_scan(args: argparse.Namespace) -> ScanRun:
    """Scan per the arguments, or raise a keysweep error."""
    from scanner import target as targets
    from scanner.links import repository_name
    from scanner.sources.git_history import GitHistorySource
    from scanner.sources.remote import looks_like_url

    given: str = args.target
    if args.staged and args.no_history:
        raise KeysweepError("--staged and --no-history: choose one")
    is_url = given != "-" and looks_like_url(given)
    if not is_url and given != "-" and os.path.lexists(given):
        foreign = targets.foreign_repository_variables(Path(given))
        if foreign:  # a hook of another repository: scan the one named, not the hook's
            for name in foreign:
                del os.environ[name]
            print(
                f"keysweep: note: {', '.join(foreign)} pointed at another repository than "
                f"{given}; scanning {given}'s own (those variables are ignored)",
                file=sys.stderr,
            )
    tgt = targets.resolve(given, history=not args.no_history, staged=args.staged, is_url=is_url)
    log.info("target %s: %s", given, tgt.kind + (f" of {tgt.top}" if tgt.top else ""))
    # A whole history (every ref, no range, no paths): git starts reading while the
    # configuration is read and the engine built (``GitHistorySource.prepare``).
    early = None
    if (
        tgt.kind == "history"
        and tgt.top is not None
        and not tgt.paths
        and tgt.rev_args is None
        and not args.log_opts
        and not args.since
    ):
        early = GitHistorySource(
            tgt.top, repository_name(tgt.top), jobs=max(1, args.jobs), relocate=_link
        )
        early.prepare()
    try:
        return _run_scan(args, tgt, early)
    finally:
        if early is not None:
            early.close()


def _link(loc):  # type: ignore[no-untyped-def]
    """The location with the link a person can open (GitHub, GitLab, Bitbucket)."""
    from dataclasses import replace

    from scanner.links import browse_url

    return (
        loc if loc.url else replace(loc, url=browse_url(loc.repo, loc.commit, loc.path, loc.line))
    )


def _run_scan(args: argparse.Namespace, tgt: Any, early: Any) -> ScanRun:
    import time
    from dataclasses import replace

    from scanner import target as targets
    from scanner.config import DEFAULT_BASELINE, load_config, resolve_baseline
    from scanner.links import repository_name
    from scanner.scan import (
        Collector,
        ScanOptions,
        build_engine,
        gitleaks_keep,
        scan_index,
        scan_source,
    )
    from scanner.sources.files import FileSource
    from scanner.sources.git_history import GitHistorySource
    from scanner.sources.remote import DEFAULT_ALLOWED_HOSTS, cloned, parse_remote

    given: str = args.target
    root = tgt.config_root
    config = load_config(args.config, root if root is not None else Path.cwd())
    for warning in config.warnings:
        print(f"keysweep: warning: {warning}", file=sys.stderr)
    if config.origin:
        log.info("config: %s", config.origin)
    confidence = "low" if args.low_confidence else args.confidence
    # With a key service to ask, a low-confidence mg_ run is looked up anyway (a hash
    # lookup costs nothing); cmd_scan shows it only when the service knows it.
    url, token = config.keyservice()
    engine = build_engine(config, confidence=confidence, lookup_runs=bool(url and token))
    baseline = (
        None
        if getattr(args, "no_baseline", False)
        else resolve_baseline(getattr(args, "baseline", None), config, root)
    )
    if baseline is not None:
        log.info("baseline: %s", baseline)
    read_at = None
    if root is not None:
        read_at = (root if root.is_dir() else root.parent) / (config.baseline or DEFAULT_BASELINE)
    rev_args = tgt.rev_args
    if args.log_opts:
        rev_args = [*(rev_args or []), *targets.log_opts(args.log_opts)]
        if args.since:
            rev_args.append(f"^{args.since}")
    opts = ScanOptions(
        history=not args.no_history,
        since=args.since,
        jobs=max(1, args.jobs),
        low_confidence=confidence == "low",
        baseline=baseline,
        include_binary=args.include_binary,
    )
    if tgt.kind == "stdin":
        from scanner.sources.patch import StdinPatchSource

        stdin = StdinPatchSource(sys.stdin.buffer, archive_depth=config.archive_depth)
        result = scan_source(stdin, engine, config, opts)
        return ScanRun(result, engine.rules, config, stdin.scope, baseline_read=read_at)

    progress = _progress(not args.no_progress)
    collector = Collector(engine, config.exclude_paths, keep=gitleaks_keep(config, engine))
    link = _link

    def history(repo: Path, display: str, paths: list[str], revs: list[str] | None):  # type: ignore[no-untyped-def]
        log.info(
            "history of %s: git rev-list %s%s",
            display,
            " ".join(revs)
            if revs is not None
            else ("--all" + (f" ^{args.since}" if args.since else "")),
            f" -- {' '.join(paths)}" if paths else "",
        )
        source = early or GitHistorySource(
            repo,
            display,
            since=opts.since,
            rev_args=revs,
            jobs=opts.jobs,
            paths=paths or None,
            relocate=link,
        )
        source.archive_depth = config.archive_depth  # `early` started before it was read
        # forked scanning processes, before the progress display starts a thread
        if source.fork_scanners(collector):
            log.info("history of %s: read and scanned by %d processes", display, opts.jobs)
        if progress is None:
            return scan_source(source, engine, config, opts, collector)
        started = time.perf_counter()
        with progress:
            task = progress.add_task("history", total=None, rate="")

            def update(done: int, total: int) -> None:
                mbs = collector.bytes / 1e6 / max(time.perf_counter() - started, 1e-6)
                progress.update(task, completed=done, total=total or None, rate=f"{mbs:,.0f} MB/s")

            source.progress = update
            return scan_source(source, engine, config, opts, collector)

    if tgt.kind == "url":
        remote = parse_remote(
            given, [*DEFAULT_ALLOWED_HOSTS, *config.allowed_hosts, *args.allow_host]
        )
        with cloned(remote) as repo:
            result = history(repo, remote.display, [], rev_args)
        return ScanRun(
            result,
            engine.rules,
            config,
            f"{counted(result.commits, 'commit')} of {remote.display}",
            baseline_read=read_at,
        )
    if tgt.kind == "files":
        assert tgt.path is not None
        where = tgt.path.resolve()
        home = where if where.is_dir() else where.parent
        prefix = ""
        if tgt.work_tree is not None:
            # A directory of a repository, as it is: named from the repository's top, as
            # its config, baseline and a history scan name them.
            home = tgt.work_tree.resolve()
            prefix = os.path.relpath(where if where.is_dir() else where.parent, home)
            prefix = "" if prefix == "." else prefix
        files = FileSource(
            tgt.path,
            max_size=config.max_file_size,
            exclude=config.exclude_paths,
            include_binary=opts.include_binary,
            archive_depth=config.archive_depth,
            prefix=prefix,
        )
        result = scan_source(files, engine, config, opts)
        for f in result.findings:
            f.location = replace(f.location, repo=str(home))
            f.locations = [replace(x, repo=f.location.repo) for x in f.locations]
        scope = f"{counted(result.files, 'file')} under {where}"
        return ScanRun(result, engine.rules, config, scope, baseline_read=read_at)
    assert tgt.top is not None
    display = repository_name(tgt.top)
    pathspec = " ".join(tgt.paths)
    if tgt.kind == "staged":
        result = scan_index(tgt.top, engine, config, opts, display, tgt.paths or None)
        for f in result.findings:
            f.locations = [replace(x, repo=display) for x in f.locations]
        limit = f" under {pathspec}" if pathspec else ""
        scope = f"staged changes in {counted(result.files, 'file')}{limit} of {display}"
        return ScanRun(
            result, engine.rules, config, scope, baseline_root=tgt.top, baseline_read=read_at
        )
    result = history(tgt.top, display, tgt.paths, rev_args)
    if tgt.revision:
        scope = f"{counted(result.commits, 'commit')} ({tgt.revision}) of {display}"
    elif pathspec:
        scope = (
            f"{counted(result.commits, 'commit')} of {display} touching {pathspec} "
            f"(as git log --full-history -- {pathspec})"
        )
    else:
        scope = f"{counted(result.commits, 'commit')} of {display}"
    run = ScanRun(
        result, engine.rules, config, scope, baseline_root=tgt.top, baseline_read=read_at
    )
    if not tgt.revision and not args.log_opts and (tgt.top / ".git").exists():
        pending = targets.uncommitted(tgt.top, tgt.paths)
        if pending.staged:
            run.notes.append(
                f"not scanned: {pending.staged} staged change(s), not committed yet; "
                f"scan them with: {_again(args, '--staged')}"
            )
        if pending.changed:
            run.notes.append(
                f"not scanned: {pending.changed} changed or untracked file(s) in the work tree; "
                f"scan the files as they are with: {_again(args, '--no-history')}"
            )
    return run


def _summary(run: ScanRun) -> str:
    result = run.result
    n = len(result.findings)
    mb = result.bytes_scanned / 1e6
    parts = [
        f"{n} finding{'s' if n != 1 else ''}" if n else "no leaks found",
        f"{run.scope}, {mb:,.1f} MB in {result.seconds:.2f}s",
    ]
    from scanner.report.summary import phrases

    parts += phrases(result.skipped, result.regex_timeouts)
    if result.baselined:
        parts.append(f"{result.baselined} in baseline")
    return "keysweep: " + "; ".join(parts)


@contextmanager
def _output(path: str | None, binary_safe: bool) -> Iterator[TextIO]:
    """Standard output (no path, or `-`), else a file written whole or not at all: a
    temporary file beside it, renamed into place when the report is complete. JSON and
    SARIF are always UTF-8, whatever the locale."""
    import io

    if path is None or path == "-":
        if not binary_safe:
            yield sys.stdout
            return
        sys.stdout.flush()
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
        try:
            yield out
        finally:
            out.flush()
            out.detach()
        return
    import stat
    import tempfile

    target = Path(path)
    try:
        special = not stat.S_ISREG(target.stat().st_mode)
    except OSError:
        special = False  # not there yet: a new regular file
    if special:
        # /dev/null, /dev/stdout, a FIFO: written in place. A rename over it would put a
        # regular file where the device or pipe was (as root: /dev/null for everyone).
        with open(target, "w", encoding="utf-8", newline="\n") as fh:
            yield fh
        return
    try:
        fd, tmp = tempfile.mkstemp(prefix=".keysweep-", suffix=".tmp", dir=target.parent or ".")
    except OSError as exc:
        raise KeysweepError(f"--output {path}: cannot write: {exc.strerror or exc}") from None
    try:
        with open(fd, "w", encoding="utf-8", newline="\n") as fh:
            yield fh
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _apply_redaction(findings: list, rules: list, percent: int) -> None:  # type: ignore[type-arg]
    from scanner.findings import redact

    prefixes = {r.id: r.prefixes for r in rules}
    for f in findings:
        if f.secret is not None:
            f.redacted = redact(f.secret, prefixes.get(f.rule_id, ()), percent)


def pipeline_context(config, args: argparse.Namespace, ours: bool):  # type: ignore[no-untyped-def]
    """The pipeline's context for this scan: the key service (when configured, to ask who
    owns our keys; with --revoke, to revoke them) and the alert channels (--notify, or
    --revoke unless --no-notify)."""
    from scanner.act import Policy
    from scanner.pipeline import Context
    from scanner.resolve import MemoryNegativeCache

    wanted = args.revoke or args.dry_run
    url, token = config.keyservice()
    client = None
    if url and token:
        from scanner.keyservice import KeyServiceClient

        client = KeyServiceClient(url, token)
    elif wanted and ours:
        raise KeysweepError(
            "--revoke and --dry-run need the key service: set "
            "KEYSWEEP_KEYSERVICE_URL and KEYSWEEP_KEYSERVICE_TOKEN"
        )
    notifier = None
    if args.notify or (args.revoke and not args.dry_run and not args.no_notify):
        from scanner.notify.dedup import SqliteDedup, default_state_dir
        from scanner.notify.dispatch import Notifier, NotifySettings

        channels = NotifySettings.from_settings(config).channels()
        if channels:
            dedup = SqliteDedup(default_state_dir(config.state_dir) / "notified.sqlite3")
            notifier = Notifier(channels, dedup, audit=client)
        elif args.notify:
            raise KeysweepError(
                "--notify: no alert channel is configured; set KEYSWEEP_NOTIFY_WEBHOOK_URL "
                "(with KEYSWEEP_NOTIFY_WEBHOOK_SECRET), KEYSWEEP_NOTIFY_SLACK_URL or "
                "KEYSWEEP_SMTP_URL"
            )
    return Context(
        keyservice=client,
        policy=Policy(*config.policy()),
        negative_cache=MemoryNegativeCache(),
        notifier=notifier,
        revoke=args.revoke,
        dry_run=args.dry_run,
    )


def resolve_act_notify(findings: list, config, args: argparse.Namespace) -> tuple[list[str], dict]:  # type: ignore[no-untyped-def,type-arg]
    """The one pipeline, for this scan; returns (problems, outcomes by fingerprint)."""
    from scanner import pipeline

    ours = [f for f in findings if f.owner == "keyservice"]
    ctx = pipeline_context(config, args, bool(ours))
    problems: list[str] = []
    try:
        try:
            outcomes = pipeline.act(findings, ctx)
        except KeysweepError as exc:
            if args.revoke and not args.dry_run:
                problems.append(f"{exc}; {len(ours)} key(s) NOT revoked")
            else:
                problems.append(f"key service lookup failed, owners not shown: {exc}")
            outcomes = {}
        problems += [
            f"{o.redacted}: NOT revoked: {o.error}"
            for o in outcomes.values()
            if o.action == "failed"
        ]
        if ctx.notifier is not None and findings:
            report = pipeline.notify(pipeline.alerts(findings, outcomes, ctx), ctx)
            if report is not None:
                sent = ", ".join(f"{k} {v}" for k, v in sorted(report.sent.items())) or "none"
                print(
                    f"keysweep: alerts sent: {sent}; already sent before: {report.skipped}",
                    file=sys.stderr,
                )
                problems += [f"alert not delivered: {e}" for e in report.errors]
                if report.busy:
                    from scanner.notify.dedup import PENDING_TTL

                    problems.append(
                        f"alert not delivered: {report.busy} alert(s) held by another keysweep"
                        " run (sending now, or stopped while sending less than"
                        f" {PENDING_TTL:.0f} s ago); run this scan again after that to send"
                        " what it did not"
                    )
    finally:
        if ctx.keyservice is not None:
            ctx.keyservice.close()
    return problems, outcomes


def _shown(f, outcomes: dict) -> bool:  # type: ignore[no-untyped-def,type-arg]
    """Low confidence not asked for: a low-confidence finding here is an mg_ run kept
    only to be looked up; it is shown when the key service knows it."""
    if f.confidence != "low":
        return True
    o = outcomes.get(f.fingerprint)
    return o is not None and o.action != "unknown"


def _baseline_advice(run: ScanRun, args: argparse.Namespace) -> tuple[str, str]:
    """The command that records this scan's findings in the baseline (the same target and
    scope, added to what the baseline holds), and how to scan again so it is read."""
    words = ["keysweep", "baseline", "add"]
    if args.staged:
        words.append("--staged")
    if args.no_history:
        words.append("--no-history")
    if args.log_opts:
        words.append(f"--log-opts={args.log_opts}")
    if args.since:
        words += ["--since", args.since]
    if args.config:
        words += ["--config", str(args.config)]
    if args.low_confidence or args.confidence == "low":
        words += ["--confidence", "low"]
    if args.include_binary:
        words.append("--include-binary")
    for host in args.allow_host:
        words += ["--allow-host", host]
    if args.baseline:
        words += ["--output", str(args.baseline)]
    if args.target != ".":
        words.append(args.target)
    command = " ".join(_q(w) for w in words)
    if args.target == "-":
        command += " (given the same input)"
    written = args.baseline or _default_baseline(run, args)
    if args.baseline or (
        run.baseline_read is not None and Path(written).resolve() == run.baseline_read.resolve()
    ):
        where = " (the baseline is read from the top of the repository)"
        return command, "scan again" + (where if run.baseline_root and not args.baseline else "")
    shown = os.path.relpath(Path(written).resolve())
    if shown.startswith(".." + os.sep):
        shown = str(Path(written).resolve())
    return command, f"scan again with --baseline {_q(shown)}"


def cmd_scan(args: argparse.Namespace) -> int:
    run = run_scan(args)
    result, rules, config = run.result, run.rules, run.config
    if args.redact is not None:
        _apply_redaction(result.findings, rules, args.redact)
    problems, outcomes = resolve_act_notify(result.findings, config, args)
    if not (args.low_confidence or args.confidence == "low"):
        result.findings = [f for f in result.findings if _shown(f, outcomes)]
    report_outcomes = {fp: o.as_dict() for fp, o in outcomes.items()}
    if args.format == "text" and not (args.revoke or args.dry_run):
        # A plain scan only asked who owns each key: not a dry run the person asked for.
        for o in report_outcomes.values():
            if o.get("action") == "would_revoke":
                o["action"] = "looked_up"
    to_stdout = args.output in (None, "-")
    with _output(args.output, binary_safe=args.format != "text") as out:
        if args.format == "json":
            from scanner.report.json_report import write_json

            write_json(result.findings, out, args.show_secrets, report_outcomes)
        elif args.format == "jsonl":
            from scanner.report.json_report import write_jsonl

            write_jsonl(result.findings, out, args.show_secrets, report_outcomes)
        elif args.format == "sarif":
            from scanner.report.sarif import write_sarif

            write_sarif(
                result.findings, rules, out, report_outcomes, result.skipped, result.regex_timeouts
            )
        else:
            from scanner.report.advice import allow_hint
            from scanner.report.text import write_text

            hint = allow_hint(*_baseline_advice(run, args))
            write_text(
                result.findings,
                out,
                _summary(run),
                args.show_secrets,
                None if to_stdout else False,
                report_outcomes,
                rules=rules,
                hint=hint,
                notes=run.notes,
            )
    from scanner.report.safe_text import printable

    for err in result.errors:
        print(f"keysweep: warning: {printable(err)}", file=sys.stderr)
    for problem in problems:
        print(f"keysweep: error: {printable(problem)}", file=sys.stderr)
    if problems and ((args.revoke and not args.dry_run) or args.notify):
        return EXIT_ERROR  # the report above still lists every finding
    if args.format != "text" or not to_stdout:
        print(printable(_summary(run)), file=sys.stderr)
        for note in run.notes:
            print(f"keysweep: {printable(note)}", file=sys.stderr)
    return args.exit_code if result.findings else EXIT_CLEAN


def cmd_rules(args: argparse.Namespace) -> int:
    import json

    from scanner.config import load_config
    from scanner.scan import rules_for

    config = load_config(args.config, Path.cwd())
    every = rules_for(config)
    rules = select_rules(every, args)
    count = (
        f"{len(rules)} of {len(every)} rules"
        if len(rules) != len(every)
        else (f"{len(every)} rules")
    )
    if args.rules_command == "list":
        if args.format == "json":
            print(
                json.dumps(
                    [
                        {
                            "id": r.id,
                            "provider": r.provider,
                            "description": r.description,
                            "owner": r.owner,
                            "severity": r.severity,
                            "confidence": r.confidence,
                            "tags": list(r.tags),
                            "prefixes": list(r.prefixes),
                            "checksum": r.checksum,
                            "validator": r.validator,
                            "pattern": r.source,
                            "remediation": r.remediation,
                            "rotate_url": r.rotate_url,
                            "file": r.origin,
                        }
                        for r in rules
                    ],
                    indent=2,
                )
            )
            print(f"keysweep: {count}", file=sys.stderr)
            return EXIT_CLEAN
        from scanner.report.rules_table import print_rules

        print_rules(rules, sys.stdout, count=count)
        return EXIT_CLEAN
    from scanner.engine import Engine
    from scanner.ruletest import run_rule_examples

    results = run_rule_examples(rules, Engine(every))
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"FAIL {r.rule_id} {r.kind} {r.template!r}: {r.detail}")
    print(f"rules test: {len(results) - len(failed)} passed, {len(failed)} failed ({count})")
    return EXIT_FOUND if failed else EXIT_CLEAN


def _default_baseline(run: ScanRun, args: argparse.Namespace) -> Path:
    """Where scans and hooks look for the baseline: the config's ``baseline``, else
    .keysweep-baseline.json at the top of the repository (or the scanned directory)."""
    from scanner.config import DEFAULT_BASELINE
    from scanner.target import work_tree_top

    base = run.baseline_root
    if base is None and args.target not in ("-",) and Path(args.target).exists():
        p = Path(args.target)
        base = work_tree_top(p) or (p if p.is_dir() else p.parent)
    base = base or Path.cwd()
    return base / (run.config.baseline or DEFAULT_BASELINE)


def cmd_baseline(args: argparse.Namespace) -> int:
    from scanner.baseline import load_entries, write_baseline

    args.no_baseline = True  # a new baseline records everything found today
    run = run_scan(args)
    output = args.output or _default_baseline(run, args)
    findings = run.result.findings
    kept = 0
    if args.baseline_command == "add" and output.exists():
        kept = len(load_entries(output))
        write_baseline(output, findings, keep=load_entries(output))
    else:
        write_baseline(output, findings)
    verb = "added" if args.baseline_command == "add" else "wrote"
    also = f" (beside {kept} already there)" if kept else ""
    print(
        f"keysweep: {verb} {len(findings)} finding(s) to {output}{also}; scans and hooks "
        "in this repository leave them out"
        if run.baseline_root is not None
        else f"keysweep: {verb} {len(findings)} finding(s) to {output}{also}; "
        f"scan with --baseline {output} to leave them out",
        file=sys.stderr,
    )
    return EXIT_CLEAN


def cmd_hook(args: argparse.Namespace) -> int:
    from scanner import hook

    if args.hook_name == "pre-commit":
        return hook.run_pre_commit(args.config, args.baseline, args.confidence)
    if args.hook_name == "files":
        return hook.run_files(args.hook_args, args.config, args.baseline, args.confidence)
    remote = args.hook_args[0] if args.hook_args else None
    return hook.run_pre_push(remote, args.config, args.baseline, args.confidence)


def cmd_keys(args: argparse.Namespace) -> int:
    from scanner.config import load_config
    from scanner.keyservice import KeyServiceClient

    url, token = load_config(args.config, Path.cwd()).keyservice()
    with KeyServiceClient(url or "", token or "") as client:
        key = client.create_key(
            args.env, args.org, args.project, {"name": args.owner_name, "email": args.owner_email}
        )
    print(key["key"])
    print(
        f"keysweep: minted {key['key_id']} ({key['display_prefix']}…, {args.env}); "
        "the key above is shown once",
        file=sys.stderr,
    )
    return EXIT_CLEAN


def cmd_install_hook(args: argparse.Namespace) -> int:
    from scanner.install_hook import install

    for name in ("pre-commit", "pre-push") if args.pre_push else ("pre-commit",):
        print(f"keysweep: {install(Path.cwd(), name, args.force)}")
    return EXIT_CLEAN


def cmd_version(args: argparse.Namespace) -> int:
    print(f"keysweep {__version__}")
    if args.verbose or args.log_level in ("info", "debug"):
        from importlib.util import find_spec

        prefilter = os.environ.get("KEYSWEEP_PREFILTER", "auto")
        if prefilter == "auto":
            prefilter = "hyperscan" if find_spec("hyperscan") else "python"
        print(f"python {sys.version.split()[0]}; prefilter {prefilter}")
    return EXIT_CLEAN


def cmd_completion(args: argparse.Namespace) -> int:
    from scanner.completion import script

    sys.stdout.write(script(build_parser(), args.shell))
    return EXIT_CLEAN


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    parser.argv = words
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sp in action.choices.values():
                sp.argv = words  # type: ignore[attr-defined]
    args, extra = parser.parse_known_args(words)
    if extra and args.command == "hook" and not any(w.startswith("-") for w in extra):
        # pre-commit puts a hook's `args:` before the file names it passes:
        # `keysweep hook files --confidence high a.py b.py`. The names are the files.
        args.hook_args += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    _setup_logging(args)
    handlers = {
        "scan": cmd_scan,
        "rules": cmd_rules,
        "baseline": cmd_baseline,
        "hook": cmd_hook,
        "install-hook": cmd_install_hook,
        "keys": cmd_keys,
        "version": cmd_version,
        "completion": cmd_completion,
    }
    try:
        return handlers[args.command](args)
    except (KeysweepError, FileNotFoundError) as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        return _error("interrupted")
    except BrokenPipeError:
        return EXIT_CLEAN if args.command != "scan" else EXIT_ERROR
    except Exception as exc:  # a crash must never look like "findings" (1) or "clean" (0)
        return _error(f"internal error: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
