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


def baseline_document(findings: list[Finding]) -> dict[str, Any]:
    entries = sorted(
        (
            {
                "fingerprint": f.fingerprint,
                "rule_id": f.rule_id,
                "redacted": f.redacted,
                "path": f.location.path,
                "commit": f.location.commit,
            }
            for f in findings
        ),
        key=lambda e: (e["rule_id"], e["fingerprint"]),
    )
    return {"tool": "keysweep", "version": VERSION, "findings": entries}


def write_baseline(path: Path, findings: list[Finding]) -> None:
    path.write_text(json.dumps(baseline_document(findings), indent=2) + "\n", "utf-8")


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
