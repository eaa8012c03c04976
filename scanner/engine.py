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
from scanner.prefilter import LOOKAHEAD_MARGIN, Prefilter, Regions, Store, make_prefilter
from scanner.rules import Rule
from scanner.validators import looks_like_placeholder, run_validator, shannon_entropy

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
ANCHORED_NO_TIMEOUT = 2048  # bytes: a shipped anchored rule's window this short needs no timeout
SPLIT_TIMEOUTS = 16  # a timed-out window's hits confirmed alone: at most this many more timeouts


@dataclass(frozen=True)
class Match:
    rule: Rule
    start: int  # offsets of the secret in the scanned buffer
    end: int
    secret: bytes
    confidence: str = "high"  # the rule's; "low" when a checksum failed and low was asked for
    expires_at: int | None = None
    companion: bytes | None = None
    entropy: float | None = None  # bits per character, where the rule measured it
    decoded: str | None = None  # how the secret was decoded, outermost first: "percent>base64"
    # A run-on key (the mg_ format's KEY_old, KEY-backup): the whole run, looked up
    # beside the secret (the 32-character key); None when nothing ran on.
    run: bytes | None = None


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

    def allows(
        self, secret: bytes, timeout: float | None = None, stats: EngineStats | None = None
    ) -> bool:
        """Whether a regex allows ``secret``. Each runs under ``timeout``: one that runs
        out is counted (``stats.regex_timeouts``) and allows nothing, so a catastrophic
        allowlist regex never hangs a scan nor hides the key it was tried on."""
        for p in self.regexes:
            try:
                if p.search(secret, timeout=timeout) is not None:
                    return True
            except TimeoutError:
                if stats is not None:
                    stats.regex_timeouts += 1
        return False


def line_bounds(data: bytes, start: int, end: int) -> tuple[int, int]:
    """The line around ``start:end``, at most ``ALLOW_CONTEXT`` bytes each way."""
    nl = data.rfind(b"\n", max(0, start - ALLOW_CONTEXT), start)
    lo = nl + 1 if nl != -1 else max(0, start - ALLOW_CONTEXT)
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
        honour_allow: bool = True,
        lookup_runs: bool = False,
        store: Store | None = None,
    ) -> None:
        """``store``: where stage 1's compiled database is kept between runs (the caller's
        I/O; ``scanner.scan.DecodeCache``).

        ``honour_allow=False``: inline allow comments (``keysweep:allow``,
        ``gitleaks:allow``, ...) decide nothing, and ``scanner.scan`` also leaves out the
        scanned repository's own allowlists and any baseline. For public content (the
        workers, partner alerts): a leaker's ``# gitleaks:allow`` must not protect a live
        key. The operator's own ``allowlist`` (``allowlist_regexes`` from the environment
        or the operator's config) still applies."""
        self.rules = list(rules)
        self.allowlist = allowlist or Allowlist()
        self.low_confidence = low_confidence
        self.prefilter: Prefilter = make_prefilter(self.rules, prefilter, store)
        self.regex_timeout = regex_timeout
        self.now = now
        self.honour_allow = honour_allow
        # A key service is there to ask: a run-on mg_ candidate with no separator (low
        # confidence) is kept for the lookup even when low confidence was not asked for;
        # the caller shows it only if the key service knows it (scanner.cli).
        self.lookup_runs = lookup_runs
        self.stats = EngineStats()

    def scan(self, data: bytes, regions: Regions | None = None) -> list[Match]:
        """The matches in ``data``. ``regions``: stage 1's answer for ``data``, when the
        caller already has it (the decoder's one pass gives it beside its triggers)."""
        self.stats.bytes_scanned += len(data)
        if regions is None:
            regions = self.prefilter.regions(data)
        if not regions:
            return []
        out: list[Match] = []
        stats = self.stats
        for rule_index, spans in regions.items():
            rule = self.rules[rule_index]
            stats.regions += len(spans)
            if not rule.anchored:
                for lo, hi in spans:
                    out.extend(self._confirm(rule, data, lo, hi))
                continue
            # An anchored rule: one try where each literal starts (see Rule.anchored). A
            # shipped rule reads a window of a few hundred bytes from one start, and
            # tests/test_rules.py proves each such pattern linear on hostile input; the
            # regex module's timeout costs ~4 us a call, more than the match itself, so
            # it guards only long windows and user rules.
            match = rule.pattern.match
            shipped = rule.origin.startswith("scanner/rules/")
            for lo, hi in spans:
                timeout = None if hi - lo <= ANCHORED_NO_TIMEOUT and shipped else self.regex_timeout
                try:
                    one = match(data, lo, hi, timeout=timeout)
                except TimeoutError:
                    stats.regex_timeouts += 1
                    continue
                if one is not None:
                    out.extend(self._accept(rule, data, (one,), hi))
        out.sort(key=lambda m: (m.start, m.rule.id))
        return out if len(out) < 2 else _settle(out)

    def _confirm(self, rule: Rule, data: bytes, lo: int, hi: int) -> Iterable[Match]:
        """A window of a rule that is not anchored (an anchored rule's try is in scan):
        one hit, or hits close together merged, searched once. A shipped rule led by
        its literal (Shape.led) is linear from each start (tests/test_rules.py), so a
        short window needs no timeout either."""
        shipped = rule.origin.startswith("scanner/rules/")
        timeout = (
            None
            if rule.shape.led and shipped and hi - lo <= ANCHORED_NO_TIMEOUT
            else self.regex_timeout
        )
        try:
            found = list(rule.pattern.finditer(data, lo, hi, timeout=timeout))
        except TimeoutError:
            # Never drop a window: confirm each prefix hit in it alone, bounded.
            self.stats.regex_timeouts += 1
            yield from self._confirm_each_hit(rule, data, lo, hi)
            return
        yield from self._accept(rule, data, found, hi)

    def _accept(
        self, rule: Rule, data: bytes, found: Iterable[regex.Match[bytes]], hi: int
    ) -> Iterable[Match]:
        size = len(data)
        for m in found:
            if m.end() >= hi - 1 and hi < size:
                # The window cut the match short: look again with the real bytes after it.
                try:
                    longer = rule.pattern.match(
                        data,
                        m.start(),
                        min(size, m.start() + rule.max_length + LOOKAHEAD_MARGIN * 4),
                        timeout=self.regex_timeout,
                    )
                except TimeoutError:
                    self.stats.regex_timeouts += 1
                    longer = None
                if longer is None:
                    continue
                m = longer
            match = self._filter(rule, data, m)
            if match is not None:
                yield match

    def _confirm_each_hit(self, rule: Rule, data: bytes, lo: int, hi: int) -> Iterable[Match]:
        """A window whose search timed out (10 MB of ``mg_live_`` merged into one, or a
        user's pattern backtracking on hostile bytes): each prefix hit in it gets its own
        small window, ``before`` + ``max_length`` around it, searched alone. Work stays
        linear in the window (hits x a bounded window), the whole pass is capped at
        ``SPLIT_TIMEOUTS`` timeouts, and each small window that still times out (or is
        left after the cap) is counted. Only a user's rule can time out on a small window:
        the shipped ones are linear from each start (tests/test_rules.py)."""
        hay = data[lo:hi].lower() if rule.case_insensitive else data[lo:hi]
        starts: set[int] = set()
        for lit in rule.literal_bytes:
            lit = lit.lower() if rule.case_insensitive else lit
            pos = hay.find(lit)
            while pos != -1:
                starts.add(lo + pos)
                pos = hay.find(lit, pos + 1)
        budget = SPLIT_TIMEOUTS
        seen: set[tuple[int, int]] = set()
        after = rule.max_length + LOOKAHEAD_MARGIN
        for n, start in enumerate(sorted(starts)):
            if budget <= 0:
                self.stats.regex_timeouts += len(starts) - n  # left unconfirmed: counted
                return
            a, b = max(lo, start - rule.before), min(len(data), start + after)
            shipped = rule.origin.startswith("scanner/rules/")
            try:
                if rule.shape.led:  # its matches start at a hit: one try there
                    one = rule.pattern.match(
                        data, start, b, timeout=None if shipped else self.regex_timeout
                    )
                    found = [one] if one is not None and one.span() not in seen else []
                else:
                    found = [
                        m
                        for m in rule.pattern.finditer(data, a, b, timeout=self.regex_timeout)
                        if m.span() not in seen
                    ]
            except TimeoutError:
                self.stats.regex_timeouts += 1
                budget -= 1
                continue
            seen.update(m.span() for m in found)
            yield from self._accept(rule, data, found, b)

    def _filter(self, rule: Rule, data: bytes, m: regex.Match[bytes]) -> Match | None:
        self.stats.candidates += 1
        g = rule.group
        secret = m.group(g)
        if not secret:
            return None
        start, end = m.span(g)
        confidence = rule.confidence
        run = None
        if rule.run_separator is not None:
            tail = m.group("run")
            if tail:
                if rule.run_separator.match(tail) is not None:
                    # KEY_old, KEY-backup, KEY followed by another key: the key, and
                    # the whole run looked up too (the key service decides).
                    run = secret + tail if len(tail) <= rule.run_max else None
                elif len(tail) <= rule.run_max and (self.low_confidence or self.lookup_runs):
                    run, confidence = secret + tail, "low"
                else:
                    return None
            if _periodic(secret, rule.literal_bytes):  # padding, a repeated filler
                self.stats.placeholders += 1
                return None
        if rule.checksum is not None and not SCHEMES[rule.checksum][0](secret.decode("latin-1")):
            if not self.low_confidence:
                return None
            confidence = "low"
        entropy = None
        if rule.min_entropy is not None:
            entropy = shannon_entropy(secret)
            if entropy < rule.min_entropy:
                return None
        if (
            rule.validator != "generic"
            and looks_like_placeholder(secret)
            and looks_like_placeholder(
                # the format's own literal may be a run (Twitter's A…A): judge what follows it
                next((secret[len(p) :] for p in rule.literal_bytes if secret.startswith(p)), secret)
            )
        ):
            self.stats.placeholders += 1
            return None
        expires_at = None
        if rule.validator is not None:
            verdict = run_validator(rule.validator, secret, data, m)
            if verdict is None:
                return None
            expires_at = verdict.expires_at
            entropy = verdict.entropy if verdict.entropy is not None else entropy
        if rule.context is not None and not self._has_context(rule, data, start, end):
            return None
        if self.honour_allow and has_allow_marker(data, start, end):
            self.stats.allowed_inline += 1
            return None
        if self.allowlist.allows(secret, self.regex_timeout, self.stats):
            self.stats.allowed_config += 1
            return None
        companion = None
        if rule.companion is not None:
            w = rule.companion.window
            try:
                near = rule.companion.pattern.finditer(
                    data, max(0, start - w), min(len(data), end + w), timeout=self.regex_timeout
                )
                # The nearest one: in a file with several profiles, the key's own secret.
                best = min(
                    near,
                    key=lambda c: min(abs(c.start() - end), abs(start - c.end())),
                    default=None,
                )
            except TimeoutError:  # the key is reported without its companion
                self.stats.regex_timeouts += 1
                best = None
            if best is not None:
                companion = best.group(1 if best.re.groups else 0)
        return Match(rule, start, end, secret, confidence, expires_at, companion, entropy, run=run)

    def _has_context(self, rule: Rule, data: bytes, start: int, end: int) -> bool:
        """The rule's context regex near the secret, under the regex timeout. A context
        that runs out of time counts as found (and as a timeout): a catastrophic context
        regex in a custom rule must neither hang a scan nor drop a real key, so an
        undecided context keeps the candidate, as the rule's other filters already
        passed it."""
        assert rule.context is not None
        w = rule.context_window
        try:
            found = rule.context.search(
                data, max(0, start - w), min(len(data), end + w), timeout=self.regex_timeout
            )
        except TimeoutError:
            self.stats.regex_timeouts += 1
            return True
        return found is not None

    def is_expired(self, match: Match) -> bool:
        now = self.now if self.now is not None else time.time()
        return match.expires_at is not None and match.expires_at < now


def _periodic(secret: bytes, literals: tuple[bytes, ...]) -> bool:
    """A filler, not a key: what follows the literal is one short unit repeated
    (``mg_live_`` padding, ``abab…``), at most half its length. A random body of 16 or
    more characters never is."""
    n = len(secret)
    if n < 16 or secret.find(secret[-4:], 0, n - 4) == -1:
        return False  # a periodic body's last 4 bytes occur one period earlier
    body = next((secret[len(p) :] for p in literals if secret.startswith(p)), secret)
    n = len(body)
    if n < 16:
        return False
    pos = body.find(body[:4], 1, n // 2 + 4)
    while pos != -1 and pos <= n // 2:
        if body[pos:] == body[: n - pos]:
            return True
        pos = body.find(body[:4], pos + 1, n // 2 + 4)
    return False


def _settle(matches: list[Match]) -> list[Match]:
    """One match per (rule, span): an anchored rule may reach the same value from two
    keywords (client_SECRET, secret_TOKEN). A secret already reported as another match's
    companion is not reported again. And a match gives way to a better-ranked match of
    another rule over the same bytes: the provider's rule says more about the secret
    (GITHUB_TOKEN=ghp_… is a GitHub token; https://u:ghp_…@github.com too)."""
    seen: set[tuple[str, int, int]] = set()
    ranked = [(m.start, m.end, _rank(m)) for m in matches]
    paired = {m.companion for m in matches if m.companion is not None}
    kept: list[Match] = []
    for m in matches:
        key = (m.rule.id, m.start, m.end)
        if key in seen or m.secret in paired:  # already reported with its id (AWS)
            continue
        seen.add(key)
        rank = _rank(m)
        if rank and any(r < rank and s < m.end and m.start < e for s, e, r in ranked):
            continue
        kept.append(m)
    return kept


def _rank(m: Match) -> int:
    """0: a provider's own format; 1: a format that carries others (a URL, a connection
    string, a config file); 2: generic."""
    if m.rule.confidence != "high":
        return 2
    return 1 if "container" in m.rule.tags else 0
