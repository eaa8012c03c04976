"""What to do next, per finding: the line a person acts on."""

from __future__ import annotations

from scanner.findings import Finding

ALLOW_HINT = (
    "False positive? Add a `keysweep:allow` comment on that line, or record it in a baseline: "
    "keysweep baseline create --output .keysweep-baseline.json, then scan with --baseline."
)


def next_step(f: Finding) -> str:
    if f.rule_id == "mg-live-key":
        return "This is a live production key: rotate it now (Keys → Rotate), then remove it."
    if f.owner == "keyservice":
        return "This is one of our test keys: rotate it (Keys → Rotate), then remove it."
    if f.expired:
        return "This token has expired; remove it and check that nothing still issues it."
    return (
        f"Revoke or rotate this {f.description or f.rule_id} with its issuer, then remove it "
        "(it stays in git history until the history is rewritten)."
    )
