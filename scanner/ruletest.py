"""``keysweep rules test``: every rule's own examples, expanded at run time.

A positive example must produce a match of its rule whose secret lies inside
the example; a negative example must produce no match of its rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scanner.engine import Engine
from scanner.examples import expand
from scanner.rules import Rule


@dataclass(frozen=True)
class ExampleResult:
    rule_id: str
    kind: str  # "positive" | "negative"
    template: str
    ok: bool
    detail: str


def run_rule_examples(rules: Sequence[Rule], engine: Engine | None = None) -> list[ExampleResult]:
    engine = engine or Engine(rules)
    results: list[ExampleResult] = []
    for rule in rules:
        for kind, templates in (("positive", rule.positive), ("negative", rule.negative)):
            for template in templates:
                text = expand(template, rule.checksum).encode()
                hits = [m for m in engine.scan(text) if m.rule.id == rule.id]
                if kind == "positive":
                    ok = bool(hits)
                    detail = "matched" if ok else "no match"
                else:
                    ok = not hits
                    detail = "no match" if ok else f"matched {len(hits)} time(s)"
                results.append(ExampleResult(rule.id, kind, template, ok, detail))
    return results
