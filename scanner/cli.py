"""``keysweep``: the command line. Thin: parse, call the library, print, exit.

Exit codes follow gitleaks: 0 nothing found, 1 findings (``--exit-code``
changes it), 2 usage or runtime error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from scanner import __version__
from scanner.errors import KeysweepError

if TYPE_CHECKING:
    import argparse

EXIT_CLEAN, EXIT_FOUND, EXIT_ERROR = 0, 1, 2

SCAN_EPILOG = """\
what is scanned:
  PATH that is a git repository  every commit's added lines on every ref (use
                                 --no-history for the working tree only)
  PATH that is a file/directory  the files (binary files and files over
                                 max_file_size are skipped and counted)
  https://host/owner/repo        a bare clone of every branch and tag, removed
                                 afterwards (hosts: github.com, gitlab.com,
                                 bitbucket.org, codeberg.org, plus --allow-host)
  -                              standard input

examples:
  keysweep scan                          # this repository, full history
  keysweep scan --since origin/main      # only commits not yet on origin/main
  keysweep scan https://github.com/org/repo --format sarif --output ks.sarif
  git diff | keysweep scan -             # whatever is piped in
  keysweep baseline create --output .keysweep-baseline.json
  keysweep scan --baseline .keysweep-baseline.json

false positives: put `keysweep:allow` (or gitleaks:allow, `pragma: allowlist
secret`, trufflehog:ignore) in a comment on the line, add a baseline, or set
allowlist_regexes / exclude_paths / disabled_rules in .keysweep.toml.

exit codes: 0 nothing found, 1 findings (see --exit-code), 2 error.
"""


HOOK_EPILOG = """\
with the pre-commit framework (.pre-commit-config.yaml):
  - repo: https://github.com/keysweep/keysweep
    rev: v0.1.0
    hooks:
      - id: keysweep              # pre-commit: what is staged
      - id: keysweep-pre-push     # pre-push: every commit being pushed
then: pre-commit install --hook-type pre-commit --hook-type pre-push

without it: keysweep install-hook --pre-push

The hooks honour .keysweep.toml, the baseline and `keysweep:allow` comments,
as `keysweep scan` does.
"""


def _add_scan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target",
        nargs="?",
        default=".",
        metavar="PATH|URL|-",
        help="what to scan (default: the current directory)",
    )
    p.add_argument(
        "--no-history", action="store_true", help="scan the files as they are, not the git history"
    )
    p.add_argument(
        "--since", metavar="REV", help="only commits not reachable from REV (e.g. origin/main)"
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
        help="parallel git processes for history scans (default: CPU count)",
    )
    p.add_argument(
        "--low-confidence",
        action="store_true",
        help="also report tokens whose checksum does not verify, as low confidence",
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


def build_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="keysweep",
        description="Find leaked API keys in git history, files and stdin.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Start with `keysweep scan` in a repository. `keysweep COMMAND --help` for more.\n\n"
        "service commands (keysweep[workers]): worker, beat, status, enqueue",
    )
    parser.add_argument("--version", action="version", version=f"keysweep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    scan = sub.add_parser(
        "scan",
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
        "--output", "-o", type=Path, metavar="FILE", help="write the report here instead of stdout"
    )
    scan.add_argument(
        "--show-secrets",
        action="store_true",
        help="print cleartext secrets (never do this in CI logs)",
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
    scan.add_argument(
        "--no-notify",
        action="store_true",
        help="with --revoke: send no alerts (by default owners and the security team are told "
        "through the channels configured in KEYSWEEP_NOTIFY_* / KEYSWEEP_SMTP_URL)",
    )

    rules = sub.add_parser("rules", help="list the rules or test them against their examples")
    rules_sub = rules.add_subparsers(dest="rules_command", metavar="ACTION", required=True)
    rl = rules_sub.add_parser("list", help="show every rule: id, owner, severity, prefixes")
    rl.add_argument("--format", choices=("text", "json"), default="text")
    rl.add_argument("--config", type=Path, metavar="FILE")
    rt = rules_sub.add_parser("test", help="run every rule's positive and negative examples")
    rt.add_argument("--config", type=Path, metavar="FILE")

    base = sub.add_parser(
        "baseline",
        help="record today's findings so later scans report only new ones",
    )
    base_sub = base.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    bc = base_sub.add_parser("create", help="scan and write a baseline file (no secrets in it)")
    _add_scan_args(bc)
    bc.add_argument(
        "--output",
        "-o",
        type=Path,
        default=Path(".keysweep-baseline.json"),
        metavar="FILE",
        help="where to write it (default: .keysweep-baseline.json)",
    )

    hook = sub.add_parser(
        "hook",
        help="run as a git hook: pre-commit (staged changes) or pre-push (commits to push)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stop a key before it leaves the laptop. Exit 0 pass, 1 block, 2 hook error.",
        epilog=HOOK_EPILOG,
    )
    hook.add_argument(
        "hook_name", choices=("pre-commit", "pre-push"), metavar="pre-commit|pre-push"
    )
    hook.add_argument("remote", nargs="?", help="(pre-push) the remote's name, as git passes it")
    hook.add_argument("url", nargs="?", help="(pre-push) the remote's URL, as git passes it")
    hook.add_argument("--config", type=Path, metavar="FILE")
    hook.add_argument(
        "--baseline",
        type=Path,
        metavar="FILE",
        help="default: .keysweep-baseline.json at the top of the repository, if any",
    )

    keys = sub.add_parser("keys", help="the reference key service: mint a key for demos and tests")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    kc = keys_sub.add_parser(
        "create",
        help="mint a key (printed once, on stdout)",
        description="Mint an mg_ key through the key service (POST /v1/keys, reference service "
        "only). The cleartext is printed once on stdout; keep it out of logs.",
    )
    kc.add_argument("--env", choices=("live", "test"), default="test")
    kc.add_argument("--org", default="org_demo")
    kc.add_argument("--project", default="proj_demo")
    kc.add_argument("--owner-name", default="Demo Owner")
    kc.add_argument("--owner-email", default="owner@example.com")
    kc.add_argument("--config", type=Path, metavar="FILE")

    inst = sub.add_parser(
        "install-hook",
        help="install keysweep as this repository's git pre-commit (and pre-push) hook",
        description="Write .git/hooks/pre-commit (and pre-push) that run keysweep. An existing "
        "hook is kept as <hook>.local and runs first; nothing is overwritten silently.",
    )
    inst.add_argument("--pre-push", action="store_true", help="also install the pre-push hook")
    inst.add_argument("--force", action="store_true", help="replace a hook that is in the way")
    return parser


def _error(msg: str) -> int:
    print(f"keysweep: error: {msg}", file=sys.stderr)
    return EXIT_ERROR


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


def run_scan(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """Scan per the arguments; returns (ScanResult, rules, settings) or raises a keysweep error."""
    import time

    from scanner.config import load_config, resolve_baseline
    from scanner.scan import Collector, ScanOptions, build_engine, scan_source
    from scanner.sources.files import FileSource, StdinSource
    from scanner.sources.git_history import GitHistorySource
    from scanner.sources.remote import DEFAULT_ALLOWED_HOSTS, cloned, looks_like_url, parse_remote

    target: str = args.target
    is_url = target != "-" and looks_like_url(target)
    root = None if (target == "-" or is_url) else Path(target)
    if root is not None and not root.exists():
        raise FileNotFoundError(f"{target}: no such file or directory")
    config = load_config(args.config, root if root is not None else Path.cwd())
    for warning in config.warnings:
        print(f"keysweep: warning: {warning}", file=sys.stderr)
    engine = build_engine(config, args.low_confidence)
    opts = ScanOptions(
        history=not args.no_history,
        since=args.since,
        jobs=max(1, args.jobs),
        low_confidence=args.low_confidence,
        baseline=(
            None
            if getattr(args, "no_baseline", False)
            else resolve_baseline(getattr(args, "baseline", None), config, root)
        ),
        include_binary=args.include_binary,
    )
    if target == "-":
        stdin = StdinSource(sys.stdin.buffer)
        return scan_source(stdin, engine, config, opts), engine.rules, config

    progress = _progress(not args.no_progress)
    collector = Collector(engine, config.exclude_paths)

    def history(repo: Path, display: str):  # type: ignore[no-untyped-def]
        source = GitHistorySource(repo, display, since=opts.since, jobs=opts.jobs)
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

    if is_url:
        remote = parse_remote(
            target, [*DEFAULT_ALLOWED_HOSTS, *config.allowed_hosts, *args.allow_host]
        )
        with cloned(remote) as repo:
            return history(repo, remote.display), engine.rules, config
    assert root is not None
    if opts.history and (root / ".git").exists():
        from scanner.sources.git_history import open_repository

        return history(open_repository(root), str(root)), engine.rules, config
    if opts.history and root.is_dir() and (root / "HEAD").is_file() and (root / "objects").is_dir():
        return history(root, str(root)), engine.rules, config  # a bare repository
    files = FileSource(
        root,
        max_size=config.max_file_size,
        exclude=config.exclude_paths,
        include_binary=opts.include_binary,
    )
    return scan_source(files, engine, config, opts), engine.rules, config


def _summary(result) -> str:  # type: ignore[no-untyped-def]
    n = len(result.findings)
    what = f"{result.commits} commits" if result.mode == "git" else f"{result.files} files"
    if result.mode == "stdin":
        what = "stdin"
    mb = result.bytes_scanned / 1e6
    parts = [
        f"{n} finding{'s' if n != 1 else ''}" if n else "no leaks found",
        f"{what}, {mb:,.1f} MB in {result.seconds:.2f}s",
    ]
    sk = result.skipped
    skipped = [
        f"{v} {k}"
        for k, v in (
            ("binary", sk.binary),
            ("too large", sk.too_large),
            ("unreadable", sk.unreadable),
        )
        if v
    ]
    if skipped:
        parts.append("skipped: " + ", ".join(skipped))
    if result.baselined:
        parts.append(f"{result.baselined} in baseline")
    return "keysweep: " + "; ".join(parts)


def _open_output(path: Path | None) -> TextIO:
    if path is None:
        return sys.stdout
    return open(path, "w", encoding="utf-8")


def pipeline_context(config, args: argparse.Namespace, ours: bool):  # type: ignore[no-untyped-def]
    """The pipeline's context for this scan: the key service (when configured, to ask who
    owns our keys; with --revoke, to revoke them) and the alert channels (--revoke sends
    alerts unless --no-notify)."""
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
    if args.revoke and not args.dry_run and not args.no_notify:
        from scanner.notify.dedup import SqliteDedup, default_state_dir
        from scanner.notify.dispatch import Notifier, NotifySettings

        channels = NotifySettings.from_settings(config).channels()
        if channels:
            dedup = SqliteDedup(default_state_dir(config.state_dir) / "notified.sqlite3")
            notifier = Notifier(channels, dedup, audit=client)
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
    finally:
        if ctx.keyservice is not None:
            ctx.keyservice.close()
    return problems, outcomes


def cmd_scan(args: argparse.Namespace) -> int:
    result, rules, config = run_scan(args)
    problems, outcomes = resolve_act_notify(result.findings, config, args)
    report_outcomes = {fp: o.as_dict() for fp, o in outcomes.items()}
    out = _open_output(args.output)
    try:
        if args.format == "json":
            from scanner.report.json_report import write_json

            write_json(result.findings, out, args.show_secrets, report_outcomes)
        elif args.format == "jsonl":
            from scanner.report.json_report import write_jsonl

            write_jsonl(result.findings, out, args.show_secrets, report_outcomes)
        elif args.format == "sarif":
            from scanner.report.sarif import write_sarif

            write_sarif(result.findings, rules, out, report_outcomes)
        else:
            from scanner.report.text import write_text

            color = None if args.output is None else False
            write_text(
                result.findings, out, _summary(result), args.show_secrets, color, report_outcomes
            )
    finally:
        if out is not sys.stdout:
            out.close()
    for err in result.errors:
        print(f"keysweep: warning: {err}", file=sys.stderr)
    for problem in problems:
        print(f"keysweep: error: {problem}", file=sys.stderr)
    if problems and args.revoke and not args.dry_run:
        return EXIT_ERROR  # the report above still lists every finding
    if args.format != "text" or args.output is not None:
        print(_summary(result), file=sys.stderr)
    return args.exit_code if result.findings else EXIT_CLEAN


def cmd_rules(args: argparse.Namespace) -> int:
    import json

    from scanner.config import load_config
    from scanner.rules import load_rules

    config = load_config(args.config, Path.cwd())
    rules = load_rules(extra=config.rules, disabled=config.disabled_rules)
    if args.rules_command == "list":
        if args.format == "json":
            print(
                json.dumps(
                    [
                        {
                            "id": r.id,
                            "description": r.description,
                            "owner": r.owner,
                            "severity": r.severity,
                            "prefixes": list(r.prefixes),
                            "checksum": r.checksum,
                            "pattern": r.source,
                        }
                        for r in rules
                    ],
                    indent=2,
                )
            )
            return EXIT_CLEAN
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(rules)} rules")
        for col in ("id", "owner", "severity", "prefixes", "checks", "description"):
            table.add_column(col)
        for r in rules:
            checks = ", ".join(
                x
                for x in (
                    r.checksum,
                    r.validator,
                    f"entropy≥{r.min_entropy}" if r.min_entropy else None,
                )
                if x
            )
            table.add_row(r.id, r.owner, r.severity, " ".join(r.prefixes), checks, r.description)
        Console().print(table)
        return EXIT_CLEAN
    from scanner.engine import Engine
    from scanner.ruletest import run_rule_examples

    results = run_rule_examples(rules, Engine(rules))
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"FAIL {r.rule_id} {r.kind} {r.template!r}: {r.detail}")
    print(
        f"rules test: {len(results) - len(failed)} passed, {len(failed)} failed "
        f"({len(rules)} rules)"
    )
    return EXIT_FOUND if failed else EXIT_CLEAN


def cmd_baseline(args: argparse.Namespace) -> int:
    from scanner.baseline import write_baseline

    args.no_baseline = True  # a new baseline records everything found today
    result, _, _ = run_scan(args)
    write_baseline(args.output, result.findings)
    print(
        f"keysweep: wrote {len(result.findings)} finding(s) to {args.output}; "
        f"scan with --baseline {args.output} to leave them out",
        file=sys.stderr,
    )
    return EXIT_CLEAN


def cmd_hook(args: argparse.Namespace) -> int:
    from scanner import hook

    if args.hook_name == "pre-commit":
        return hook.run_pre_commit(args.config, args.baseline)
    return hook.run_pre_push(args.remote, args.config, args.baseline)


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_ERROR
    handlers = {
        "scan": cmd_scan,
        "rules": cmd_rules,
        "baseline": cmd_baseline,
        "hook": cmd_hook,
        "install-hook": cmd_install_hook,
        "keys": cmd_keys,
    }
    try:
        return handlers[args.command](args)
    except (KeysweepError, FileNotFoundError) as exc:
        return _error(str(exc).strip("'\""))
    except KeyboardInterrupt:
        return _error("interrupted")
    except BrokenPipeError:
        return EXIT_CLEAN if args.command != "scan" else EXIT_ERROR
    except Exception as exc:  # a crash must never look like "findings" (1) or "clean" (0)
        return _error(f"internal error: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
