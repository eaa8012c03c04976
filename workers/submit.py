"""The one way a finding enters the background act path, whoever found it
(the crawler's fetch tasks, a partner alert). Findings travel as
``Finding.to_dict()``: hashes, redacted forms and locations, never a secret.

Both entries are ledger-backed: the work is written to the pending-work ledger
(Redis) before its message is sent, so a message the broker loses, or a worker
that dies holding it, is re-sent by the sweeper until its task succeeds."""

from __future__ import annotations

from typing import Any

from scanner.errors import TransientError

ACT = "workers.tasks.resolve_and_act"
NOTIFY = "workers.tasks.send_alerts"


class BrokerUnavailable(TransientError):
    """The work is on record in the ledger, but its message could not be sent now: the
    sweeper sends it when the broker answers again. Raised so that a caller that can
    ask its sender to retry (a partner alert: 503) does so; a retry is harmless."""


def submit_findings(findings: list[dict[str, Any]], origin: dict[str, Any] | None = None) -> None:
    """Queue ``findings`` for resolve -> act -> notify, tracked until done. ``origin``
    says who found them (``{"source": "crawler"}``, ``{"source": "github_partner"}``, ...).

    Returns once the work is on record in Redis and its message is with the broker.
    Raises if Redis cannot record it (nothing recorded), or ``BrokerUnavailable`` when
    it is recorded but the broker did not take the message (the sweeper will)."""
    if not findings:
        return
    from workers import ledger, state

    work = ledger.track(ACT, "act", {"findings": findings, "meta": dict(origin or {})})
    state.count("findings", len(findings))
    if not ledger.publish(work):
        raise BrokerUnavailable("the broker did not take the findings; the sweeper will send them")


def submit_alerts(alerts: list[dict[str, Any]]) -> None:
    """Queue alerts (``alert_to_dict``) for delivery, tracked until done."""
    if not alerts:
        return
    from workers import ledger

    ledger.publish(ledger.track(NOTIFY, "notify", {"alerts": alerts}))
