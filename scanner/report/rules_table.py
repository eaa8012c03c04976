"""``keysweep rules list``: a table on a terminal, plain lines elsewhere; ids whole.

On a terminal of any width the id, owner and severity columns keep their full
width (an id is what a person copies into ``disabled_rules``); only the
description wraps. Not on a terminal: one rule per line, columns separated by
two spaces, nothing wrapped, truncated or padded at the end.
"""

from __future__ import annotations

from typing import TextIO

from scanner.report.safe_text import printable
from scanner.rules import Rule


def _checks(r: Rule) -> str:
    return ", ".join(
        x
        for x in (r.checksum, r.validator, f"entropy≥{r.min_entropy}" if r.min_entropy else None)
        if x
    )


def _rows(rules: list[Rule]) -> list[tuple[str, ...]]:
    return [
        (
            r.id,
            r.owner,
            r.severity,
            printable(" ".join(r.prefixes[:6]) + (" …" if len(r.prefixes) > 6 else "")),
            _checks(r),
            printable(r.description),
        )
        for r in rules
    ]


HEADER = ("id", "owner", "severity", "prefixes", "checks", "description")


def print_rules(rules: list[Rule], out: TextIO, count: str | None = None) -> None:
    """``count``: what to say under the rules ("12 of 221 rules"); default "N rules"."""
    count = count or f"{len(rules)} rules"
    rows = _rows(rules)
    if not rows:
        print(f"no rule matches ({count})", file=out)
        return
    fixed = sum(max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(HEADER[:3]))
    if out.isatty():
        from rich.console import Console

        console = Console(file=out, markup=False, highlight=False)
        # Too narrow for the whole ids and some description: plain lines, ids whole.
        plain = console.width < fixed + 3 * 4 + 30
    else:
        plain = True
    if plain:
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(HEADER[:3])]
        for row in [HEADER, *rows]:
            fixed = "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True))
            rest = "  ".join(c for c in row[3:] if c)
            print(f"{fixed}  {rest}".rstrip(), file=out)
        print(count, file=out)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=count)
    for i, name in enumerate(HEADER):
        if i < 3:
            width = max(len(name), *(len(row[i]) for row in rows))
            table.add_column(name, no_wrap=True, min_width=width)
        else:
            table.add_column(name, overflow="fold", ratio=1 if name == "description" else None)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)
