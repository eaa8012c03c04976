"""What to do next, per finding: the line a person acts on.

Third-party keys: the rule's own ``remediation`` (where the issuer lets you
revoke it) and ``rotate_url``. Our ``mg_`` keys: what the key service said
(revoked, unknown, dry run...), never "rotate" for a key it never issued.
"It stays in git history" is said only of a finding in a commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scanner.findings import Finding
from scanner.rules import Rule

ALLOW_HINT = (
    "False positive? Add a `keysweep:allow` comment on that line, or record it in a baseline: "
    "keysweep baseline create --output .keysweep-baseline.json, then scan with --baseline."
)


def allow_hint(baseline_command: str, scan_again: str | None = None) -> str:
    """How to silence a false positive, with the baseline command for this situation."""
    then = f", then {scan_again}" if scan_again else ""
    return (
        "False positive? Add a `keysweep:allow` comment on that line, or record it in a "
        f"baseline: {baseline_command}{then}."
    )


HISTORY = " It stays in git history: rotating it is what makes it harmless."
ROTATE_OURS = "(Keys → Rotate)"


def _ours(f: Finding, outcome: Mapping[str, Any] | None) -> str:
    live = f.rule_id == "mg-live-key"
    what = "live production key" if live else "test-mode key"
    action = (outcome or {}).get("action")
    if action == "unknown":
        return (
            "The key service never issued this key: there is nothing to rotate. "
            "Take it out anyway if it is not a placeholder."
        )
    if action == "revoked":
        return f"keysweep revoked this {what}: issue a new one {ROTATE_OURS} for what used it."
    if action == "already_revoked":
        return f"This {what} was already revoked: take it out of the code."
    if action == "would_revoke":
        return f"keysweep would revoke this {what} (dry run; nothing changed yet)."
    if action == "ignored":
        return f"This {what} is ignored by policy."
    if action == "failed":
        return f"NOT revoked (the key service call failed): rotate this {what} now {ROTATE_OURS}."
    if live:
        return f"This is a live production key: rotate it now {ROTATE_OURS}, then remove it."
    return f"This is one of our test keys: rotate it {ROTATE_OURS}, then remove it."


def next_step(
    f: Finding,
    rule: Rule | None = None,
    outcome: Mapping[str, Any] | None = None,
    in_history: bool | None = None,
) -> str:
    """One short line. ``in_history``: the finding is in a commit (default: it has one)."""
    if in_history is None:
        in_history = f.location.commit is not None
    if f.owner == "keyservice":
        text = _ours(f, outcome)
        if (outcome or {}).get("action") in ("unknown", "ignored", "revoked", "already_revoked"):
            return text  # nothing live is left to rotate
    elif f.expired:
        text = "This token has expired; remove it and check that nothing still issues it."
    elif rule is not None and rule.remediation:
        text = rule.remediation
        if rule.rotate_url and rule.rotate_url not in text:
            text = f"{text} ({rule.rotate_url})"
    else:
        text = "Revoke it with its issuer and make a new one, then remove it."
    return text + (HISTORY if in_history else "")


def rule_index(rules: list[Rule] | Mapping[str, Rule] | None) -> dict[str, Rule]:
    if rules is None:
        return {}
    if isinstance(rules, Mapping):
        return dict(rules)
    return {r.id: r for r in rules}
