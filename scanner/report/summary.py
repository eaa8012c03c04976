"""What a scan passed over, for every report's summary: skipped files (binary, too
large, unreadable, links), archive members skipped by a cap (bomb, size, depth:
counted, the first 20 named) and stage-2 regex timeouts.

The text report (and the summary line a JSON, JSON Lines or SARIF report prints
on stderr) says it in words (``phrases``); SARIF carries it as data in the run's
``properties`` and ``invocations`` (``sarif_invocation``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scanner.sources.files import SkipCounts


def phrases(skipped: SkipCounts, regex_timeouts: int = 0) -> list[str]:
    """``["skipped: 1 binary, 2 archives capped: a.zip!b.gz (archive bomb: ratio > 100),
    c.tgz!d.zip!e.zip!f.zip (depth > 3)", "3 regex timeouts (…)"]``; nothing when
    nothing was passed over."""
    counts = [
        f"{v} {k}"
        for k, v in (
            ("binary", skipped.binary),
            ("too large", skipped.too_large),
            ("unreadable", skipped.unreadable),
        )
        if v
    ]
    n = skipped.archives_capped
    if n:
        named = ", ".join(skipped.capped)
        more = n - len(skipped.capped)
        if more > 0:
            named += f", and {more} more"
        counts.append(f"{n} archive{'s' if n != 1 else ''} capped: {named}")
    out = ["skipped: " + ", ".join(counts)] if counts else []
    if regex_timeouts:
        out.append(
            f"{regex_timeouts} regex timeout{'s' if regex_timeouts != 1 else ''} "
            "(a rule's pattern ran out of time on a window)"
        )
    return out


def as_dict(skipped: SkipCounts, regex_timeouts: int = 0) -> dict[str, Any]:
    """The same as data (SARIF run properties)."""
    return {
        "skipped": {
            "binary": skipped.binary,
            "too_large": skipped.too_large,
            "unreadable": skipped.unreadable,
            "symlinks": skipped.symlinks,
            "excluded": skipped.excluded,
            "archives_capped": skipped.archives_capped,
        },
        "capped": list(skipped.capped),
        "errors": list(skipped.errors),
        "regex_timeouts": regex_timeouts,
    }


def sarif_invocation(skipped: SkipCounts, regex_timeouts: int = 0) -> dict[str, Any]:
    """A SARIF ``invocation``: the scan ran to its end; each thing passed over is a
    ``toolExecutionNotification`` (a capped archive or an unreadable file names it)."""
    notes: list[dict[str, Any]] = []

    def note(text: str, rule: str, uri: str | None = None) -> None:
        doc: dict[str, Any] = {
            "level": "warning",
            "message": {"text": text},
            "descriptor": {"id": rule},
        }
        if uri:
            doc["locations"] = [{"physicalLocation": {"artifactLocation": {"uri": uri}}}]
        notes.append(doc)

    for entry in skipped.capped:
        note(f"skipped: {entry}", "archive-capped", entry.rsplit(" (", 1)[0])
    more = skipped.archives_capped - len(skipped.capped)
    if more > 0:
        note(f"skipped: {more} more archives capped", "archive-capped")
    for err in skipped.errors:
        note(f"skipped: {err}", "unreadable")
    for label, rule, n in (
        ("binary file", "binary", skipped.binary),
        ("file over the size limit", "too-large", skipped.too_large),
    ):
        if n:
            plural = label.replace("file", "files") if n != 1 else label
            note(f"skipped: {n} {plural}", rule)
    if regex_timeouts:
        note(f"{regex_timeouts} regex timeouts", "regex-timeout")
    return {"executionSuccessful": True, "toolExecutionNotifications": notes}
