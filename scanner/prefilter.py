"""Stage 1: one multi-literal pass over the whole buffer.

The prefilter reports every place one of the rules' prefix literals occurs and
turns those places into *regions*: for each rule, the merged byte ranges around
its hits that stage 2 must look at. Text with no keys produces no regions and
costs one pass.

Two implementations give the same answer:

* ``HyperscanPrefilter``: Vectorscan/Hyperscan's literal compiler (PyPI
  ``hyperscan``), several GB/s per core.
* ``PythonPrefilter``: ``bytes.find`` per distinct literal, correct everywhere,
  used where no hyperscan wheel installs (or with ``KEYSWEEP_PREFILTER=python``,
  the settings' ``prefilter``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from scanner.rules import Rule

# Room after the longest match so a pattern's trailing look-ahead sees real bytes.
LOOKAHEAD_MARGIN = 64

Regions = dict[int, list[tuple[int, int]]]  # rule index -> sorted, merged (start, end)


@dataclass(frozen=True)
class Literal:
    text: bytes
    caseless: bool
    rules: tuple[int, ...]


def collect_literals(rules: Sequence[Rule]) -> list[Literal]:
    by_key: dict[tuple[bytes, bool], list[int]] = {}
    for i, rule in enumerate(rules):
        for p in rule.prefixes:
            key = (
                p.lower().encode() if rule.case_insensitive else p.encode(),
                rule.case_insensitive,
            )
            by_key.setdefault(key, []).append(i)
    return [Literal(t, c, tuple(sorted(set(ids)))) for (t, c), ids in by_key.items()]


class _RegionBuilder:
    """Merges hits into per-rule windows as they arrive (bounded memory)."""

    __slots__ = ("after", "before", "open", "regions", "size")

    def __init__(self, rules: Sequence[Rule], size: int) -> None:
        self.before = [r.before for r in rules]
        self.after = [r.max_length + LOOKAHEAD_MARGIN for r in rules]
        self.open: dict[int, list[int]] = {}
        self.regions: Regions = {}
        self.size = size

    def add(self, rule: int, start: int) -> None:
        lo = start - self.before[rule]
        lo = lo if lo > 0 else 0
        hi = start + self.after[rule]
        hi = hi if hi < self.size else self.size
        cur = self.open.get(rule)
        if cur is not None and lo <= cur[1]:
            # Hyperscan reports by end offset, so a longer literal may start a
            # little before the previous hit: widen both ends.
            if lo < cur[0]:
                cur[0] = lo
            if hi > cur[1]:
                cur[1] = hi
            return
        if cur is not None:
            self.regions.setdefault(rule, []).append((cur[0], cur[1]))
        self.open[rule] = [lo, hi]

    def finish(self) -> Regions:
        for rule, (lo, hi) in self.open.items():
            self.regions.setdefault(rule, []).append((lo, hi))
        self.open = {}
        return self.regions


class PythonPrefilter:
    name = "python"

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = rules
        self.literals = collect_literals(rules)
        self.any_caseless = any(lit.caseless for lit in self.literals)

    def regions(self, data: bytes) -> Regions:
        hits: list[tuple[int, int]] = []  # (start, rule)
        lowered = data.lower() if self.any_caseless else data
        for lit in self.literals:
            hay = lowered if lit.caseless else data
            find = hay.find
            pos = find(lit.text)
            while pos != -1:
                hits.extend((pos, r) for r in lit.rules)
                pos = find(lit.text, pos + 1)
        hits.sort()
        builder = _RegionBuilder(self.rules, len(data))
        for start, rule in hits:
            builder.add(rule, start)
        return builder.finish()


class HyperscanPrefilter:
    name = "hyperscan"

    def __init__(self, rules: Sequence[Rule]) -> None:
        import hyperscan

        self._hs = hyperscan
        self.rules = rules
        self.literals = collect_literals(rules)
        self.lengths = [len(lit.text) for lit in self.literals]
        self.db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self.db.compile(
            expressions=[lit.text for lit in self.literals],
            ids=list(range(len(self.literals))),
            elements=len(self.literals),
            flags=[hyperscan.HS_FLAG_CASELESS if lit.caseless else 0 for lit in self.literals],
            literal=True,
        )
        self._local = threading.local()

    def _scratch(self) -> object:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._hs.Scratch(self.db)
        return scratch

    def regions(self, data: bytes) -> Regions:
        if not data:
            return {}
        builder = _RegionBuilder(self.rules, len(data))
        lengths = self.lengths
        literals = self.literals
        add = builder.add

        def on_match(lit: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            start = to - lengths[lit]
            for rule in literals[lit].rules:
                add(rule, start)

        self.db.scan(data, match_event_handler=on_match, scratch=self._scratch())
        return builder.finish()


Prefilter = PythonPrefilter | HyperscanPrefilter


def make_prefilter(rules: Sequence[Rule], kind: str | None = None) -> Prefilter:
    """``kind``: "hyperscan", "python" or None/"auto" (hyperscan when importable)."""
    kind = kind or "auto"
    if kind == "python":
        return PythonPrefilter(rules)
    try:
        return HyperscanPrefilter(rules)
    except ImportError:
        if kind == "hyperscan":
            raise
        return PythonPrefilter(rules)
