"""Baselines: known findings to leave out of later scans.

A baseline holds fingerprints, which depend on the rule and the secret's hash
only, so moving code around never makes it churn. It holds no secret.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from scanner.errors import KeysweepError
from scanner.findings import Finding

VERSION = 1


class BaselineError(KeysweepError, ValueError):
    pass


def baseline_document(
    findings: list[Finding], keep: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The baseline of ``findings``, plus the entries of an earlier baseline in ``keep``
    (``keysweep baseline add``); one entry per fingerprint."""
    by_fp: dict[str, dict[str, Any]] = {str(e["fingerprint"]): e for e in keep or []}
    for f in findings:
        by_fp[f.fingerprint] = {
            "fingerprint": f.fingerprint,
            "rule_id": f.rule_id,
            "redacted": f.redacted,
            "path": f.location.path,
            "commit": f.location.commit,
        }
    entries = sorted(
        by_fp.values(), key=lambda e: (str(e.get("rule_id")), str(e["fingerprint"]))
    )
    return {"tool": "keysweep", "version": VERSION, "findings": entries}


def write_baseline(
    path: Path, findings: list[Finding], keep: list[dict[str, Any]] | None = None
) -> None:
    from scanner.report.safe_text import json_safe

    doc = json_safe(baseline_document(findings, keep))
    try:
        path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", "utf-8")
    except OSError as exc:
        raise BaselineError(f"baseline {path}: cannot write: {exc.strerror or exc}") from None


def load_entries(path: Path) -> list[dict[str, Any]]:
    """The entries of a baseline file (for adding to it)."""
    load_baseline(path)  # the same checks and messages
    doc = json.loads(path.read_text("utf-8"))
    return [e for e in doc.get("findings", []) if isinstance(e, dict) and "fingerprint" in e]


def load_baseline(path: Path) -> set[str]:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise BaselineError(f"baseline {path}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline {path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise BaselineError(f"baseline {path}: not a keysweep baseline (version {VERSION})")
    items = doc.get("findings", [])
    if not isinstance(items, list):
        raise BaselineError(f"baseline {path}: 'findings' must be a list")
    return {str(e["fingerprint"]) for e in items if isinstance(e, dict) and "fingerprint" in e}
