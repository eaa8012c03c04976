"""Stage 1: one multi-literal pass over the whole buffer.

The prefilter reports every place one of the rules' prefix literals occurs and
turns those places into *regions*: for each rule, the merged byte ranges around
its hits that stage 2 must look at. Text with no keys produces no regions and
costs one pass.

An *anchored* rule (a keyword rule, see ``Rule.anchored``) gets one unmerged
region per hit that starts exactly at the literal, so stage 2 tries its pattern
there only; if the rule has a gate (``Rule.precheck``, a Python ``re`` pattern
that accepts wherever the rule's pattern matches), a hit the gate rejects makes
no region at all: "token = None" costs one C-level match, not a stage-2 try. A
rule with no literal at all (an imported rule) gets the whole buffer as its
region: correct, and as slow as it sounds (``bench/engine.py`` counts such
rules).

The hyperscan database may also hold *extra* literals whose hits are handed back
beside the regions: the decoder's triggers (``scanner.decode``) ride on the
engine's one pass that way.

Two implementations give the same answer:

* ``HyperscanPrefilter``: Vectorscan/Hyperscan's literal compiler (PyPI
  ``hyperscan``), several GB/s per core.
* ``PythonPrefilter``: an Aho-Corasick automaton (``pyahocorasick``), or
  ``bytes.find`` per literal without it; correct everywhere, used where no
  hyperscan wheel installs (or with ``KEYSWEEP_PREFILTER=python``, the
  settings' ``prefilter``).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

from scanner.rules import Rule, Tail, Var

# Room after the longest match so a pattern's trailing look-ahead sees real bytes.
LOOKAHEAD_MARGIN = 64

Regions = dict[int, list[tuple[int, int]]]  # rule index -> sorted, merged (start, end)
Gate = Callable[[bytes, int, int], "re.Match[bytes] | None"]  # Rule.precheck's match


@dataclass(frozen=True)
class Literal:
    text: bytes
    caseless: bool
    rules: tuple[int, ...]
    tail: bytes = b""  # a regex of the byte classes that must follow (Rule.shape), or b""
    # len(text) + the tail's length (hits are reported by where they end); 0 when the
    # tail's length varies: hyperscan then reports where the match starts (SOM)
    width: int = 0
    # a regex the bytes right before the literal must match (Rule.heads), or b"";
    # only where ``width`` is fixed (the hit's start is then ``width`` before its end)
    head: bytes = b""


def _hs_bytes(text: bytes) -> bytes:
    """A literal as a hyperscan expression (every byte ``\\xHH``: NUL and metacharacters
    included)."""
    return b"".join(b"\\x%02x" % b for b in text)


@cache
def byte_class(chars: frozenset[int]) -> bytes:
    """A regex character class of these bytes (ranges written as \\xHH). Cached: the
    pack's tails share a few dozen classes over thousands of positions."""
    out, run = [], []
    for b in sorted(chars):
        if run and b == run[-1] + 1:
            run.append(b)
            continue
        if run:
            out.append((run[0], run[-1]))
        run = [b]
    if run:
        out.append((run[0], run[-1]))
    text = "".join(f"\\x{a:02x}" if a == z else f"\\x{a:02x}-\\x{z:02x}" for a, z in out)
    return f"[{text}]".encode()


def tail_regex(tail: Tail) -> bytes:
    """The tail as a regex both hyperscan and Python's ``re`` read the same way."""
    parts: list[tuple[bytes, int]] = []
    out = b""
    for item in tail:
        if isinstance(item, Var):
            out += _runs(parts)
            parts = []
            hi = b"" if item.hi is None else b"%d" % item.hi
            out += byte_class(item.chars) + b"{%d,%s}" % (item.lo, hi)
            continue
        cls = byte_class(item)
        if parts and parts[-1][0] == cls:
            parts[-1] = (cls, parts[-1][1] + 1)
        else:
            parts.append((cls, 1))
    return out + _runs(parts)


def _runs(parts: list[tuple[bytes, int]]) -> bytes:
    return b"".join(cls if n == 1 else cls + b"{%d}" % n for cls, n in parts)


def tail_width(tail: Tail) -> int | None:
    """How many bytes the tail matches, or None when it has a run of varying length."""
    if any(isinstance(t, Var) for t in tail):
        return None
    return len(tail)


def collect_literals(rules: Sequence[Rule], tails: bool = True) -> list[Literal]:
    """One entry per distinct literal, shared by the rules that use it; with ``tails``, a
    rule whose pattern requires byte classes right after a literal gets its own entry,
    literal + tail (``Rule.shape``): stage 1 then rejects near misses by itself; and a
    prefix a rule gives a head (``Rule.heads``) carries it, where the width is fixed."""
    by_key: dict[tuple[bytes, bool, bytes, bytes], list[int]] = {}
    widths: dict[tuple[bytes, bool, bytes, bytes], int] = {}
    for i, rule in enumerate(rules):
        shape = rule.shape if tails else None
        for p in rule.prefixes:
            tail = shape.tail(p) if shape is not None else ()
            text = p.lower().encode() if rule.case_insensitive else p.encode()
            w = tail_width(tail)
            head = b""
            if tails and w is not None:
                stem = p.lower() if rule.case_insensitive else p
                head = next((h.encode() for s, h in rule.heads if stem.startswith(s)), b"")
            key = (text, rule.case_insensitive, tail_regex(tail) if tail else b"", head)
            by_key.setdefault(key, []).append(i)
            widths[key] = 0 if w is None else len(text) + w
    return [
        Literal(t, c, tuple(sorted(set(ids))), tail, widths[(t, c, tail, head)], head)
        for (t, c, tail, head), ids in by_key.items()
    ]


class _Plan:
    """Per-rule window sizes, computed once per prefilter (not once per scanned block)."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        # A rule led by its literal (Rule.shape) needs no bytes before a hit in its window
        # (its boundary look-behind reads them in place); overlapping hits merge.
        self.before = [0 if r.shape.led else r.before for r in rules]
        self.after = [r.max_length + LOOKAHEAD_MARGIN for r in rules]
        self.anchored = [r.anchored for r in rules]
        self.bare = [i for i, r in enumerate(rules) if not r.prefixes]
        # An anchored rule's gate (Rule.precheck), tried where each hit starts.
        self.precheck: list[Gate | None] = [
            r.precheck.match if r.anchored and r.precheck is not None else None for r in rules
        ]


class _RegionBuilder:
    """Merges hits into per-rule windows as they arrive (bounded memory)."""

    __slots__ = ("after", "anchored", "before", "data", "open", "precheck", "regions", "size")

    def __init__(self, rules: Sequence[Rule], data: bytes, plan: _Plan | None = None) -> None:
        plan = plan or _Plan(rules)
        self.before, self.after, self.anchored = plan.before, plan.after, plan.anchored
        self.precheck = plan.precheck
        self.open: dict[int, list[int]] = {}
        self.regions: Regions = {}
        self.data = data
        size = self.size = len(data)
        if size:
            for i in plan.bare:
                self.regions[i] = [(0, size)]  # no literal: stage 2 searches everything

    def add(self, rule: int, start: int) -> None:
        if self.anchored[rule]:
            hi = start + self.after[rule]
            hi = hi if hi < self.size else self.size
            gate = self.precheck[rule]
            if gate is not None and gate(self.data, start, hi) is None:
                return  # the rule's pattern cannot match from here (Rule.precheck)
            self.regions.setdefault(rule, []).append((start, hi))
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
        self.plan = _Plan(rules)
        # One automaton entry per distinct literal; each holds (tail regex or None, rules).
        by_text: dict[tuple[bytes, bool], list[tuple[re.Pattern[bytes] | None, tuple[int, ...]]]]
        by_text = {}
        for lit in collect_literals(rules):
            tail = re.compile(lit.tail) if lit.tail else None
            by_text.setdefault((lit.text, lit.caseless), []).append((tail, lit.rules))
        self.literals = [Literal(t, c, ()) for t, c in by_text]
        self.tails = list(by_text.values())
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
        tails = self.tails
        if self._automata is not None:
            text = data.decode("latin-1")
            for automaton, hay in zip(
                self._automata, (text, text.lower() if self.any_caseless else ""), strict=True
            ):
                if not len(automaton):  # type: ignore[arg-type]
                    continue
                for end, i in automaton.iter(hay):  # type: ignore[attr-defined]
                    for tail, rules in tails[i]:
                        if tail is None or tail.match(data, end + 1):
                            hits.extend((end + 1 - len(literals[i].text), r) for r in rules)
            return hits
        lowered = data.lower() if self.any_caseless else data
        for i, lit in enumerate(literals):
            hay = lowered if lit.caseless else data
            find = hay.find
            pos = find(lit.text)
            while pos != -1:
                for tail, rules in tails[i]:
                    if tail is None or tail.match(data, pos + len(lit.text)):
                        hits.extend((pos, r) for r in rules)
                pos = find(lit.text, pos + 1)
        return hits

    def regions(self, data: bytes) -> Regions:
        hits = self._hits(data)
        hits.sort()
        builder = _RegionBuilder(self.rules, data, self.plan)
        for start, rule in hits:
            builder.add(rule, start)
        return builder.finish()


class Store(Protocol):
    """Where compiled databases are kept between runs (``scanner.decode.Store``)."""

    def load(self, key: str) -> bytes | None: ...

    def save(self, key: str, blob: bytes) -> None: ...


class HyperscanPrefilter:
    """``extra``: more literals (text, caseless, tail) in the same database, whose hits
    ``regions`` hands back beside the regions: the decoder's triggers ride on the
    engine's one pass instead of a second one (``scanner.decode``). A tail (b"" for
    none) is a character class that must follow the text; a hit's start is the text's."""

    name = "hyperscan"

    def __init__(
        self,
        rules: Sequence[Rule],
        extra: Sequence[tuple[bytes, bool, bytes]] = (),
        store: Store | None = None,
    ) -> None:
        import hyperscan

        self._hs = hyperscan
        self.rules = rules
        self.plan = _Plan(rules)
        self.literals = collect_literals(rules)
        self.lengths = [lit.width for lit in self.literals]
        self.rules_of = [lit.rules for lit in self.literals]
        # A literal of one anchored rule with a gate (most of the generic rule's keyword
        # hits, most of them rejected): handled in the match callback itself.
        self.gated: list[tuple[int, int, Gate] | None] = []
        for lit in self.literals:
            gate = self.plan.precheck[lit.rules[0]] if len(lit.rules) == 1 else None
            self.gated.append(
                None if gate is None else (lit.rules[0], self.plan.after[lit.rules[0]], gate)
            )
        self.extra = list(extra)
        self.extra_lengths = [len(text) + (1 if tail else 0) for text, _, tail in self.extra]
        self._local = threading.local()
        self.db = None
        if not self.literals and not self.extra:
            return
        expressions = [
            (b"(?:" + lit.head + b")" if lit.head else b"") + _hs_bytes(lit.text) + lit.tail
            for lit in self.literals
        ]
        expressions += [_hs_bytes(text) + tail for text, _, tail in self.extra]
        caseless = hyperscan.HS_FLAG_CASELESS
        flags = [
            (caseless if lit.caseless else 0)
            | (hyperscan.HS_FLAG_SOM_LEFTMOST if not lit.width else 0)
            for lit in self.literals
        ]
        flags += [caseless if c else 0 for _, c, _ in self.extra]
        key = None
        if store is not None:
            h = hashlib.sha256(f"keysweep-prefilter-v1 {hyperscan.__version__}".encode())
            for e, f in zip(expressions, flags, strict=True):
                h.update(b"%d %d\0" % (f, len(e)) + e)
            key = h.hexdigest()[:40]
            blob = store.load(key)
            if blob:
                try:
                    self.db = hyperscan.loadb(blob, hyperscan.HS_MODE_BLOCK)
                    return
                except Exception:  # a damaged or foreign file: compile afresh
                    pass
        self.db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self.db.compile(
            expressions=expressions,
            ids=list(range(len(expressions))),
            elements=len(expressions),
            flags=flags,
        )
        if store is not None and key is not None:
            store.save(key, hyperscan.dumpb(self.db))

    def _scratch(self) -> object:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._hs.Scratch(self.db)
        return scratch

    def regions(self, data: bytes, extra_hits: list[tuple[int, int]] | None = None) -> Regions:
        """The regions of ``data``; with ``extra_hits``, also (start, index into
        ``extra``) of each extra literal's occurrence, appended to it."""
        if not data:
            return {}
        builder = _RegionBuilder(self.rules, data, self.plan)
        if self.db is None:
            return builder.finish()
        lengths = self.lengths
        rules_of = self.rules_of
        gated = self.gated
        add = builder.add
        regions = builder.regions
        size = len(data)
        own = len(self.literals)
        extra_lengths = self.extra_lengths
        found = extra_hits if extra_hits is not None else []

        def on_match(lit: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
            if lit >= own:
                found.append((to - extra_lengths[lit - own], lit - own))
                return
            width = lengths[lit]
            start = to - width if width else _from
            one = gated[lit]
            if one is not None:  # _RegionBuilder.add for one gated anchored rule, inlined
                rule, after, gate = one
                hi = start + after
                hi = hi if hi < size else size
                if gate(data, start, hi) is not None:
                    regions.setdefault(rule, []).append((start, hi))
                return
            for rule in rules_of[lit]:
                add(rule, start)

        self.db.scan(data, match_event_handler=on_match, scratch=self._scratch())
        return builder.finish()


Prefilter = PythonPrefilter | HyperscanPrefilter


def make_prefilter(
    rules: Sequence[Rule], kind: str | None = None, store: Store | None = None
) -> Prefilter:
    """``kind``: "hyperscan", "python" or None/"auto" (hyperscan when importable);
    ``store``: where a compiled database is kept between runs."""
    kind = kind or "auto"
    if kind == "python":
        return PythonPrefilter(rules)
    try:
        return HyperscanPrefilter(rules, store=store)
    except ImportError:
        if kind == "hyperscan":
            raise
        return PythonPrefilter(rules)
