"""SARIF 2.1.0 for GitHub code scanning and other SARIF consumers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

from scanner import __version__
from scanner.findings import Finding
from scanner.report import summary
from scanner.report.advice import ALLOW_HINT, next_step
from scanner.report.safe_text import json_safe
from scanner.rules import Rule

if TYPE_CHECKING:
    from scanner.sources.files import SkipCounts

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": "".join(p.capitalize() for p in rule.id.replace(".", "-").split("-")),
        "shortDescription": {"text": rule.description or rule.id},
        "fullDescription": {"text": f"{rule.description} (prefixes: {', '.join(rule.prefixes)})"},
        "help": {"text": ALLOW_HINT},
        "defaultConfiguration": {"level": LEVEL[rule.severity]},
        "properties": {
            "tags": ["security", "secret", *rule.tags],
            "security-severity": SECURITY_SEVERITY[rule.severity],
            "owner": rule.owner,
        },
    }


def _result(
    f: Finding, index: int, outcome: dict[str, Any] | None, rule: Rule | None = None
) -> dict[str, Any]:
    loc = f.location
    physical: dict[str, Any] = {"artifactLocation": {"uri": loc.path or "stdin"}}
    if loc.line:
        physical["region"] = {"startLine": loc.line}
        if loc.column:
            physical["region"]["startColumn"] = loc.column
    props: dict[str, Any] = {
        "secret_sha256": f.secret_sha256,
        "redacted": f.redacted,
        "occurrences": f.occurrences,
        "confidence": f.confidence,
    }
    if outcome is not None:
        props["keyservice"] = outcome
    for k in ("commit", "author", "date", "repo", "subject", "url", "decoded"):
        if getattr(loc, k):
            props[k] = getattr(loc, k)
    where = f" in commit {loc.commit[:12]}" if loc.commit else ""
    return {
        "ruleId": f.rule_id,
        "ruleIndex": index,
        "level": LEVEL[f.severity],
        "message": {"text": f"{f.description}: {f.redacted}{where}. {next_step(f, rule, outcome)}"},
        "locations": [{"physicalLocation": physical}],
        "partialFingerprints": {"keysweep/v1": f.fingerprint},
        "properties": props,
    }


def sarif_document(
    findings: list[Finding],
    rules: list[Rule],
    outcomes: Mapping[str, dict[str, Any]] | None = None,
    skipped: SkipCounts | None = None,
    regex_timeouts: int = 0,
) -> dict[str, Any]:
    """``skipped`` and ``regex_timeouts``: what the scan passed over, in the run's
    ``properties.keysweep`` and as ``invocations[0].toolExecutionNotifications``."""
    index = {r.id: i for i, r in enumerate(rules)}
    by_id = {r.id: r for r in rules}
    outcomes = outcomes or {}
    extra: dict[str, Any] = {}
    if skipped is not None:
        extra = {
            "invocations": [summary.sarif_invocation(skipped, regex_timeouts)],
            "properties": {"keysweep": summary.as_dict(skipped, regex_timeouts)},
        }
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                **extra,
                "tool": {
                    "driver": {
                        "name": "keysweep",
                        "version": __version__,
                        "informationUri": "https://github.com/keysweep/keysweep",
                        "rules": [_rule(r) for r in rules],
                    }
                },
                "results": [
                    _result(
                        f,
                        index.get(f.rule_id, 0),
                        outcomes.get(f.fingerprint),
                        by_id.get(f.rule_id),
                    )
                    for f in findings
                ],
            }
        ],
    }


def write_sarif(
    findings: list[Finding],
    rules: list[Rule],
    out: TextIO,
    outcomes: Mapping[str, dict[str, Any]] | None = None,
    skipped: SkipCounts | None = None,
    regex_timeouts: int = 0,
) -> None:
    doc = json_safe(sarif_document(findings, rules, outcomes, skipped, regex_timeouts))
    json.dump(doc, out, indent=2, ensure_ascii=False)
    out.write("\n")
