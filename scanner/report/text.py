"""Human output: one small table per finding, then a summary and what to do next."""

from __future__ import annotations

from typing import TextIO

from scanner.findings import Finding
from scanner.report.advice import ALLOW_HINT, next_step

ACTIONS = {
    "revoked": "revoked now",
    "already_revoked": "was already revoked",
    "would_revoke": "would be revoked (run with --revoke)",
    "alert_only": "alert only (policy): not revoked",
    "ignored": "ignored (policy)",
    "failed": "NOT revoked: the key service call failed",
}


def describe_resolution(r: dict) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    if r.get("action") == "unknown":
        return [("key", "not issued by the key service (unknown): nothing to revoke")]
    owner = r.get("owner") or {}
    who = f"{r.get('org_id')}/{r.get('project_id')}"
    if owner.get("email"):
        who += f" ({owner.get('name') or ''} <{owner['email']}>)".replace("( <", "(<")
    status = f"{r.get('status_before')} → {r.get('status_after')}"
    if r.get("revoked_at"):
        status += f" (revoked at {r['revoked_at']})"
    rows = [
        ("owner", who),
        ("key", f"{r.get('key_id')} ({r.get('environment')})"),
        ("status", status),
        ("action", ACTIONS.get(r.get("action", ""), r.get("action", ""))),
    ]
    if r.get("error"):
        rows.append(("error", r["error"]))
    return rows


SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def write_text(
    findings: list[Finding],
    out: TextIO,
    summary: str,
    show_secrets: bool = False,
    color: bool | None = None,
    outcomes: dict[str, dict] | None = None,  # type: ignore[type-arg]
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(
        file=out, force_terminal=color, no_color=color is False, soft_wrap=True, highlight=False
    )
    for f in findings:
        table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 1))
        table.add_column(style="dim", no_wrap=True)
        table.add_column()
        style = SEVERITY_STYLE.get(f.severity, "")
        table.add_row("rule", f"[{style}]{f.rule_id}[/] ({f.severity}) — {f.description}")
        secret = f.secret.decode("utf-8", "replace") if show_secrets and f.secret else f.redacted
        table.add_row("secret", secret)
        loc = f.location
        where = f"{loc.path or '<stdin>'}:{loc.line}" if loc.line else (loc.path or "<stdin>")
        table.add_row("where", where)
        if loc.commit:
            table.add_row(
                "commit", f"{loc.commit[:12]} {loc.author or ''} {loc.date or ''}".rstrip()
            )
        if f.occurrences > 1:
            table.add_row("seen", f"{f.occurrences} times (first shown)")
        if f.confidence != "high":
            table.add_row("confidence", f"{f.confidence} (checksum did not verify)")
        if f.expires_at is not None:
            table.add_row("expires", "expired" if f.expired else f"at {f.expires_at} (unix time)")
        outcome = (outcomes or {}).get(f.fingerprint)
        if outcome is not None:
            for label, value in describe_resolution(outcome):
                table.add_row(label, value)
        table.add_row("next", next_step(f))
        console.print(table)
        console.print()
    console.print(summary)
    if findings:
        console.print(f"[dim]{ALLOW_HINT}[/]")
