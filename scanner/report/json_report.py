from __future__ import annotations

import json
from typing import TextIO

from scanner.findings import Finding


def write_json(findings: list[Finding], out: TextIO, show_secrets: bool = False) -> None:
    json.dump([f.to_dict(show_secrets) for f in findings], out, indent=2, ensure_ascii=False)
    out.write("\n")


def write_jsonl(findings: list[Finding], out: TextIO, show_secrets: bool = False) -> None:
    for f in findings:
        out.write(json.dumps(f.to_dict(show_secrets), ensure_ascii=False) + "\n")
