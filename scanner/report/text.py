"""Human output: a few labelled lines per finding, then a summary and what to do next.

Every value that came from a scanned repository (paths, author names, commit
subjects, a repository's own rule descriptions) is shown as text: never read as
rich markup, control characters escaped (``scanner.report.safe_text``). Lines
are never wrapped or padded: a terminal wraps long lines itself, and a pipe or
a file gets plain lines a script can read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from scanner.findings import Finding
from scanner.report.advice import ALLOW_HINT, next_step, rule_index
from scanner.report.safe_text import printable
from scanner.rules import Rule

ACTIONS = {
    "revoked": "revoked now",
    "already_revoked": "was already revoked",
    "would_revoke": "would revoke (dry run: nothing changed)",
    "looked_up": "not revoked: this scan only looked it up (--revoke revokes it)",
    "alert_only": "alert only (policy): not revoked",
    "ignored": "ignored (policy)",
    "failed": "NOT revoked: the key service call failed",
}


def describe_resolution(r: Mapping[str, Any]) -> list[tuple[str, str]]:
    if r.get("action") == "unknown":
        return [("key", "not issued by the key service (unknown): nothing to revoke")]
    owner = r.get("owner") or {}
    who = f"{r.get('org_id')}/{r.get('project_id')}"
    if owner.get("email"):
        who += f" ({owner.get('name') or ''} <{owner['email']}>)".replace("( <", "(<")
    status = f"{r.get('status_before')} → {r.get('status_after')}"
    if r.get("action") == "looked_up":
        status = str(r.get("status_before"))  # nothing was done: no "before → after"
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
LABEL_WIDTH = 10


def finding_rows(
    f: Finding,
    show_secrets: bool = False,
    outcome: Mapping[str, Any] | None = None,
    rule: Rule | None = None,
) -> list[tuple[str, str]]:
    """(label, value) pairs for one finding, every value printable."""
    rows = [("rule", f"{f.rule_id} ({f.severity}) — {printable(f.description)}")]
    secret = f.secret.decode("utf-8", "replace") if show_secrets and f.secret else f.redacted
    rows.append(("secret", printable(secret)))
    loc = f.location
    where = printable(loc.path) if loc.path else "<stdin>"
    if loc.line:
        where += f":{loc.line}"
    rows.append(("where", where))
    if loc.decoded:
        rows.append(("decoded", f"from {loc.decoded}"))
    if loc.repo:
        rows.append(("repo", printable(loc.repo)))
    if loc.commit:
        parts = [loc.commit[:12], printable(loc.author), printable(loc.date)]
        if loc.subject:
            parts.append(f'"{printable(loc.subject)}"')
        rows.append(("commit", " ".join(p for p in parts if p)))
    if loc.url:
        rows.append(("link", printable(loc.url)))
    if f.occurrences > 1:
        rows.append(("seen", f"{f.occurrences} times (first shown)"))
    if f.confidence != "high":
        rows.append(("confidence", f"{f.confidence} (checksum did not verify)"))
    if f.expires_at is not None:
        rows.append(("expires", "expired" if f.expired else f"at {f.expires_at} (unix time)"))
    if outcome is not None:
        rows.extend((label, printable(str(value))) for label, value in describe_resolution(outcome))
    rows.append(("next", printable(next_step(f, rule, outcome))))
    return rows


def write_text(
    findings: list[Finding],
    out: TextIO,
    summary: str,
    show_secrets: bool = False,
    color: bool | None = None,
    outcomes: Mapping[str, Mapping[str, Any]] | None = None,
    rules: Sequence[Rule] | Mapping[str, Rule] | None = None,
    hint: str | None = None,
    notes: Sequence[str] = (),
) -> None:
    """``color`` None: colour on a terminal only (NO_COLOR honoured)."""
    from rich.console import Console
    from rich.text import Text

    console = Console(
        file=out,
        force_terminal=color,
        no_color=True if color is False else None,  # None: NO_COLOR from the environment
        soft_wrap=True,
        highlight=False,
        emoji=False,
        markup=False,
    )
    by_id = rule_index(rules)  # type: ignore[arg-type]

    def line(label: str, value: str, style: str = "") -> None:
        text = Text(f"{label:<{LABEL_WIDTH}}", style="dim")
        text.append(value, style=style)
        text.rstrip()
        console.print(text, soft_wrap=True, crop=False, overflow="ignore")

    for f in findings:
        outcome = (outcomes or {}).get(f.fingerprint)
        for label, value in finding_rows(f, show_secrets, outcome, by_id.get(f.rule_id)):
            line(label, value, SEVERITY_STYLE.get(f.severity, "") if label == "rule" else "")
        console.print()
    console.print(Text(printable(summary)), soft_wrap=True, crop=False)
    for note in notes:
        console.print(Text(printable(note)), soft_wrap=True, crop=False)
    if findings:
        console.print(Text(printable(hint or ALLOW_HINT), style="dim"), soft_wrap=True, crop=False)
