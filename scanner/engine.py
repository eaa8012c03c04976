"""The detection engine: bytes in, matches out. Pure: no I/O, no network.

Stage 1 (``scanner.prefilter``) finds every prefix literal in one pass and
merges the hits into small per-rule windows. Stage 2 runs each rule's full
pattern (the ``regex`` module, with a timeout) on those windows only, then the
rule's checksum, entropy, validator and context filters, the placeholder
filter, inline allow comments and the configured allowlist.

Windows are bounded by the rule's ``before``/``max_length``, so stage 2's work
grows with the number of hits, never with their product: 10 MB of ``mg_live_``
repeated is one merged window scanned once, linearly.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from scanner.checksums import SCHEMES
from scanner.prefilter import LOOKAHEAD_MARGIN, Prefilter, make_prefilter
from scanner.rules import Rule
from scanner.validators import decode_jwt, looks_like_placeholder, shannon_entropy

if TYPE_CHECKING:
    import regex

# Inline markers that mark a line as a known false positive. The peers' markers
# are honoured too, so a repository that already uses them needs no change.
ALLOW_MARKERS: tuple[bytes, ...] = (
    b"keysweep:allow",
    b"gitleaks:allow",
    b"pragma: allowlist secret",
    b"trufflehog:ignore",
    b"nosec: keysweep",
)
ALLOW_CONTEXT = 4096  # how far along a line to look for an allow marker


@dataclass(frozen=True)
class Match:
    rule: Rule
    start: int  # offsets of the secret in the scanned buffer
    end: int
    secret: bytes
    confidence: str = "high"  # "low" when a checksum failed and low confidence was asked for
    expires_at: int | None = None
    companion: bytes | None = None


@dataclass
class EngineStats:
    bytes_scanned: int = 0
    regions: int = 0
    candidates: int = 0
    regex_timeouts: int = 0
    allowed_inline: int = 0
    allowed_config: int = 0
    placeholders: int = 0


@dataclass
class Allowlist:
    """Secrets to ignore: regexes over the secret, and exact secret hashes are elsewhere."""

    regexes: list[regex.Pattern[bytes]] = field(default_factory=list)

    @classmethod
    def from_strings(cls, patterns: Iterable[str]) -> Allowlist:
        import regex

        return cls([regex.compile(p.encode()) for p in patterns])

    def allows(self, secret: bytes) -> bool:
        return any(p.search(secret) for p in self.regexes)


def line_bounds(data: bytes, start: int, end: int) -> tuple[int, int]:
    lo = data.rfind(b"\n", max(0, start - ALLOW_CONTEXT), start) + 1
    hi = data.find(b"\n", end, end + ALLOW_CONTEXT)
    return lo, (hi if hi != -1 else min(len(data), end + ALLOW_CONTEXT))


@cache
def _allow_re() -> regex.Pattern[bytes]:
    import regex

    return regex.compile(b"|".join(regex.escape(m) for m in ALLOW_MARKERS))


def has_allow_marker(data: bytes, start: int, end: int) -> bool:
    lo, hi = line_bounds(data, start, end)
    return _allow_re().search(data, lo, hi) is not None


class Engine:
    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        allowlist: Allowlist | None = None,
        low_confidence: bool = False,
        prefilter: str | None = None,
        regex_timeout: float = 2.0,
        now: float | None = None,
    ) -> None:
        self.rules = list(rules)
        self.allowlist = allowlist or Allowlist()
        self.low_confidence = low_confidence
        self.prefilter: Prefilter = make_prefilter(self.rules, prefilter)
        self.regex_timeout = regex_timeout
        self.now = now
        self.stats = EngineStats()

    def scan(self, data: bytes) -> list[Match]:
        self.stats.bytes_scanned += len(data)
        regions = self.prefilter.regions(data)
        if not regions:
            return []
        out: list[Match] = []
        for rule_index, spans in regions.items():
            rule = self.rules[rule_index]
            for lo, hi in spans:
                self.stats.regions += 1
                out.extend(self._confirm(rule, data, lo, hi))
        out.sort(key=lambda m: (m.start, m.rule.id))
        return out

    def _confirm(self, rule: Rule, data: bytes, lo: int, hi: int) -> Iterable[Match]:
        try:
            found = list(rule.pattern.finditer(data, lo, hi, timeout=self.regex_timeout))
        except TimeoutError:
            self.stats.regex_timeouts += 1
            return
        size = len(data)
        for m in found:
            if m.end() >= hi - 1 and hi < size:
                # The window cut the match short: look again with the real bytes after it.
                longer = rule.pattern.match(
                    data,
                    m.start(),
                    min(size, m.start() + rule.max_length + LOOKAHEAD_MARGIN * 4),
                    timeout=self.regex_timeout,
                )
                if longer is None:
                    continue
                m = longer
            match = self._filter(rule, data, m)
            if match is not None:
                yield match

    def _filter(self, rule: Rule, data: bytes, m: regex.Match[bytes]) -> Match | None:
        self.stats.candidates += 1
        g = rule.group
        secret = m.group(g)
        if not secret:
            return None
        start, end = m.span(g)
        confidence = "high"
        if rule.checksum is not None and not SCHEMES[rule.checksum][0](secret.decode("latin-1")):
            if not self.low_confidence:
                return None
            confidence = "low"
        if rule.min_entropy is not None and shannon_entropy(secret) < rule.min_entropy:
            return None
        if looks_like_placeholder(secret):
            self.stats.placeholders += 1
            return None
        expires_at = None
        if rule.validator == "jwt":
            info = decode_jwt(secret)
            if info is None:
                return None
            expires_at = info.expires_at
        if rule.context is not None:
            w = rule.context_window
            if rule.context.search(data, max(0, start - w), min(len(data), end + w)) is None:
                return None
        if has_allow_marker(data, start, end):
            self.stats.allowed_inline += 1
            return None
        if self.allowlist.allows(secret):
            self.stats.allowed_config += 1
            return None
        companion = None
        if rule.companion is not None:
            w = rule.companion.window
            near = rule.companion.pattern.finditer(
                data, max(0, start - w), min(len(data), end + w), timeout=self.regex_timeout
            )
            # The nearest one: in a file with several profiles, the key's own secret.
            best = min(
                near, key=lambda c: min(abs(c.start() - end), abs(start - c.end())), default=None
            )
            if best is not None:
                companion = best.group(1 if best.re.groups else 0)
        return Match(rule, start, end, secret, confidence, expires_at, companion)

    def is_expired(self, match: Match) -> bool:
        now = self.now if self.now is not None else time.time()
        return match.expires_at is not None and match.expires_at < now
