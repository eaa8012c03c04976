"""The one way a finding enters the background act path, whoever found it
(the crawler's fetch tasks, a partner alert). Findings travel as
``Finding.to_dict()``: hashes, redacted forms and locations, never a secret."""

from __future__ import annotations

from typing import Any


def submit_findings(findings: list[dict[str, Any]], origin: dict[str, Any] | None = None) -> None:
    """Queue ``findings`` for resolve -> act -> notify. ``origin`` says who found them
    (``{"source": "crawler"}``, ``{"source": "github_partner"}``, ...)."""
    if not findings:
        return
    from workers import state
    from workers.tasks import resolve_and_act

    state.count("findings", len(findings))
    resolve_and_act.delay(findings=findings, meta=dict(origin or {}))
