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

CONFIDENCE_LEVELS = ("high", "medium", "low")
# Scans and hooks report generic secrets by default: a hard-coded password is exactly
# what a person auditing a repository (or stopping a commit) wants to see, gitleaks and
# detect-secrets report them by default too, and the value filters keep false positives
# down (bench/corpora.py). The workers scan public content at "high" only.
DEFAULT_CONFIDENCE = "medium"

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
        "--confidence",
        choices=CONFIDENCE_LEVELS,
        default=DEFAULT_CONFIDENCE,
        help="what to report: high = providers' keys only (prefix, checksum or format); "
        "medium = also generic secrets, a secret-ish name assigned a secret-looking value "
        f"(password = ..., api_key: ...); low = also tokens whose checksum fails "
        f"(default: {DEFAULT_CONFIDENCE})",
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
    rl = rules_sub.add_parser(
        "list",
        help="show the rules (id, provider, confidence, literals) and how many there are",
        description="Show the rule pack (every scanner/rules/*.toml file) plus your own "
        "rules, with the count. Filters combine: keysweep rules list --filter aws "
        "--confidence high",
    )
    rl.add_argument("--format", choices=("text", "json"), default="text")
    rl.add_argument("--config", type=Path, metavar="FILE")
    _add_rule_filters(rl)
    rt = rules_sub.add_parser("test", help="run every rule's positive and negative examples")
    rt.add_argument("--config", type=Path, metavar="FILE")
    _add_rule_filters(rt)

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
    hook.add_argument(
        "--confidence",
        choices=CONFIDENCE_LEVELS,
        default=DEFAULT_CONFIDENCE,
        help="high = providers' keys only; medium = also generic secrets (a hard-coded "
        f"password = ...); low = also tokens whose checksum fails (default: {DEFAULT_CONFIDENCE})",
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
    """Scan per the arguments; returns (ScanResult, rules) or raises a keysweep error."""
    import time

    from scanner.config import load_config, resolve_baseline
    from scanner.scan import ScanOptions, build_engine, scan_fragments, scan_git, scan_path
    from scanner.sources.files import read_stdin
    from scanner.sources.remote import DEFAULT_ALLOWED_HOSTS, cloned, looks_like_url, parse_remote

    target: str = args.target
    is_url = target != "-" and looks_like_url(target)
    root = None if (target == "-" or is_url) else Path(target)
    if root is not None and not root.exists():
        raise FileNotFoundError(f"{target}: no such file or directory")
    config = load_config(args.config, root if root is not None else Path.cwd())
    confidence = "low" if args.low_confidence else args.confidence
    engine = build_engine(config, confidence=confidence)
    opts = ScanOptions(
        history=not args.no_history,
        since=args.since,
        jobs=max(1, args.jobs),
        low_confidence=confidence == "low",
        baseline=(
            None
            if getattr(args, "no_baseline", False)
            else resolve_baseline(getattr(args, "baseline", None), config, root)
        ),
        include_binary=args.include_binary,
    )
    if target == "-":
        frag = read_stdin(sys.stdin.buffer)
        return (
            scan_fragments([frag], engine, config, opts, "<stdin>", "stdin"),
            engine.rules,
            config,
        )

    progress = _progress(not args.no_progress)

    def history(repo: Path, display: str):  # type: ignore[no-untyped-def]
        if progress is None:
            return scan_git(repo, engine, config, opts, display)
        started = time.perf_counter()
        with progress:
            task = progress.add_task("history", total=None, rate="")

            def update(done: int, total: int, nbytes: int) -> None:
                mbs = nbytes / 1e6 / max(time.perf_counter() - started, 1e-6)
                progress.update(task, completed=done, total=total or None, rate=f"{mbs:,.0f} MB/s")

            return scan_git(repo, engine, config, opts, display, progress=update)

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
    return scan_path(root, engine, config, opts), engine.rules, config


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


def send_alerts(findings: list, outcomes: dict, config) -> list[str]:  # type: ignore[no-untyped-def,type-arg]
    """Tell owners and the security team what was found and done; returns problems."""
    from scanner.notify.dedup import SqliteDedup
    from scanner.notify.dispatch import Notifier, NotifySettings
    from scanner.notify.message import alerts_from

    channels = NotifySettings.from_env(config.notify).channels()
    if not channels:
        return []
    alerts = alerts_from(findings, outcomes)
    url, token = config.keyservice()
    client = None
    if url and token:
        from scanner.keyservice import KeyServiceClient

        client = KeyServiceClient(url, token)
    try:
        report = Notifier(channels, SqliteDedup(), audit=client).notify(alerts)
    finally:
        if client is not None:
            client.close()
    sent = ", ".join(f"{k} {v}" for k, v in sorted(report.sent.items())) or "none"
    print(f"keysweep: alerts sent: {sent}; already sent before: {report.skipped}", file=sys.stderr)
    return [f"alert not delivered: {e}" for e in report.errors]


def resolve_and_act(findings: list, config, args: argparse.Namespace) -> tuple[list[str], dict]:  # type: ignore[no-untyped-def,type-arg]
    """Look our keys up (and revoke them with --revoke); returns problems and outcomes."""
    ours = [f for f in findings if f.owner == "keyservice"]
    wanted = args.revoke or args.dry_run
    if not ours:
        return [], {}
    url, token = config.keyservice()
    if not (url and token):
        if wanted:
            raise KeysweepError(
                "--revoke and --dry-run need the key service: set "
                "KEYSWEEP_KEYSERVICE_URL and KEYSWEEP_KEYSERVICE_TOKEN"
            )
        return [], {}
    from scanner.act import Policy, act
    from scanner.keyservice import KeyServiceClient
    from scanner.resolve import MemoryNegativeCache, resolve

    policy = Policy(*config.policy())
    with KeyServiceClient(url, token) as client:
        try:
            owned = resolve(ours, client, MemoryNegativeCache())
        except KeysweepError as exc:
            if args.revoke and not args.dry_run:
                return [f"{exc}; {len(ours)} key(s) NOT revoked"], {}
            return [f"key service lookup failed, owners not shown: {exc}"], {}
        outcomes = act(owned, client, policy, dry_run=not args.revoke or args.dry_run)
    by_fp = {o.fingerprint: o for o in outcomes}
    failed = [f"{o.redacted}: NOT revoked: {o.error}" for o in outcomes if o.action == "failed"]
    return failed, by_fp


def cmd_scan(args: argparse.Namespace) -> int:
    result, rules, config = run_scan(args)
    problems, outcomes = resolve_and_act(result.findings, config, args)
    if args.revoke and not args.dry_run and not args.no_notify and result.findings:
        problems += send_alerts(result.findings, outcomes, config)
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
    from scanner.scan import rules_for

    config = load_config(args.config, Path.cwd())
    every = rules_for(config)
    rules = select_rules(every, args)
    count = f"{len(rules)} of {len(every)} rules" if len(rules) != len(every) else (
        f"{len(every)} rules"
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
        from rich.console import Console
        from rich.table import Table

        providers = len({r.provider for r in rules})
        table = Table(title=f"{count} ({providers} providers)")
        for col in ("id", "provider", "confidence", "severity", "literals", "checks"):
            table.add_column(col)
        for r in rules:
            checks = ", ".join(
                x
                for x in (
                    r.checksum,
                    r.validator,
                    f"entropy≥{r.min_entropy}" if r.min_entropy else None,
                    "companion" if r.companion else None,
                )
                if x
            )
            literals = " ".join(r.prefixes[:4]) + (" …" if len(r.prefixes) > 4 else "")
            table.add_row(r.id, r.provider, r.confidence, r.severity, literals, checks)
        Console().print(table)
        print(count)
        return EXIT_CLEAN
    from scanner.engine import Engine
    from scanner.ruletest import run_rule_examples

    results = run_rule_examples(rules, Engine(every, low_confidence=False))
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"FAIL {r.rule_id} {r.kind} {r.template!r}: {r.detail}")
    print(f"rules test: {len(results) - len(failed)} passed, {len(failed)} failed ({count})")
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
        return hook.run_pre_commit(args.config, args.baseline, args.confidence)
    return hook.run_pre_push(args.remote, args.config, args.baseline, args.confidence)


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
