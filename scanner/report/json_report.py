from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TextIO

from scanner.findings import Finding
from scanner.report.safe_text import json_safe

Outcomes = Mapping[str, dict[str, Any]]  # fingerprint -> what was done (Outcome.as_dict())


def write_json(
    findings: list[Finding],
    out: TextIO,
    show_secrets: bool = False,
    outcomes: Outcomes | None = None,
) -> None:
    outcomes = outcomes or {}
    docs = [json_safe(f.to_dict(show_secrets, outcomes.get(f.fingerprint))) for f in findings]
    json.dump(docs, out, indent=2, ensure_ascii=False)
    out.write("\n")


def write_jsonl(
    findings: list[Finding],
    out: TextIO,
    show_secrets: bool = False,
    outcomes: Outcomes | None = None,
) -> None:
    outcomes = outcomes or {}
    for f in findings:
        doc = json_safe(f.to_dict(show_secrets, outcomes.get(f.fingerprint)))
        out.write(json.dumps(doc, ensure_ascii=False) + "\n")
