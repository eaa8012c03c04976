"""Stage 1: one multi-literal pass over the whole buffer.

The prefilter reports every place one of the rules' prefix literals occurs and
turns those places into *regions*: for each rule, the merged byte ranges around
its hits that stage 2 must look at. Text with no keys produces no regions and
costs one pass.

An *anchored* rule (a keyword rule, see ``Rule.anchored``) gets one unmerged
region per hit that starts exactly at the literal, so stage 2 tries its pattern
there only. A rule with no literal at all (an imported rule) gets the whole
buffer as its region: correct, and as slow as it sounds (``bench/engine.py``
counts such rules).

Two implementations give the same answer:

* ``HyperscanPrefilter``: Vectorscan/Hyperscan's literal compiler (PyPI
  ``hyperscan``), several GB/s per core.
* ``PythonPrefilter``: an Aho-Corasick automaton (``pyahocorasick``), or
  ``bytes.find`` per literal without it; correct everywhere, used where no
  hyperscan wheel installs (or with ``KEYSWEEP_PREFILTER=python``, the
  settings' ``prefilter``).
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

    __slots__ = ("after", "anchored", "before", "open", "regions", "size")

    def __init__(self, rules: Sequence[Rule], size: int) -> None:
        self.before = [r.before for r in rules]
        self.after = [r.max_length + LOOKAHEAD_MARGIN for r in rules]
        self.anchored = [r.anchored for r in rules]
        self.open: dict[int, list[int]] = {}
        self.regions: Regions = {}
        self.size = size
        for i, r in enumerate(rules):
            if not r.prefixes and size:
                self.regions[i] = [(0, size)]  # no literal: stage 2 searches everything

    def add(self, rule: int, start: int) -> None:
        if self.anchored[rule]:
            hi = start + self.after[rule]
            self.regions.setdefault(rule, []).append((start, hi if hi < self.size else self.size))
            return
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
        for rule, spans in self.regions.items():
            if self.anchored[rule] and len(spans) > 1:
                # Hits arrive by end offset and overlapping literals ("token",
                # "tokens") share a start: one try per start, in order.
                self.regions[rule] = sorted(set(spans))
        return self.regions


class PythonPrefilter:
    """The fallback: an Aho-Corasick automaton (``pyahocorasick``, a C extension with
    wheels where hyperscan has none) over the bytes read as latin-1, one pass for any
    number of literals; without it, ``bytes.find`` per literal (correct, slow)."""

    name = "python"

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = rules
        self.literals = collect_literals(rules)
        self.any_caseless = any(lit.caseless for lit in self.literals)
        self._automata: tuple[object, object] | None = None
        try:
            import ahocorasick
        except ImportError:
            return
        exact, caseless = ahocorasick.Automaton(), ahocorasick.Automaton()
        for i, lit in enumerate(self.literals):
            (caseless if lit.caseless else exact).add_word(lit.text.decode("latin-1"), i)
        for automaton in (exact, caseless):
            if len(automaton):
                automaton.make_automaton()
        self._automata = (exact, caseless)

    def _hits(self, data: bytes) -> list[tuple[int, int]]:
        hits: list[tuple[int, int]] = []  # (start, rule)
        literals = self.literals
        if self._automata is not None:
            text = data.decode("latin-1")
            for automaton, hay in zip(
                self._automata, (text, text.lower() if self.any_caseless else ""), strict=True
            ):
                if not len(automaton):  # type: ignore[arg-type]
                    continue
                for end, i in automaton.iter(hay):  # type: ignore[attr-defined]
                    lit = literals[i]
                    hits.extend((end + 1 - len(lit.text), r) for r in lit.rules)
            return hits
        lowered = data.lower() if self.any_caseless else data
        for lit in literals:
            hay = lowered if lit.caseless else data
            find = hay.find
            pos = find(lit.text)
            while pos != -1:
                hits.extend((pos, r) for r in lit.rules)
                pos = find(lit.text, pos + 1)
        return hits

    def regions(self, data: bytes) -> Regions:
        hits = self._hits(data)
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
        self._local = threading.local()
        self.db = None
        if not self.literals:
            return
        self.db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self.db.compile(
            expressions=[lit.text for lit in self.literals],
            ids=list(range(len(self.literals))),
            elements=len(self.literals),
            flags=[hyperscan.HS_FLAG_CASELESS if lit.caseless else 0 for lit in self.literals],
            literal=True,
        )

    def _scratch(self) -> object:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._hs.Scratch(self.db)
        return scratch

    def regions(self, data: bytes) -> Regions:
        if not data:
            return {}
        builder = _RegionBuilder(self.rules, len(data))
        if self.db is None:
            return builder.finish()
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
