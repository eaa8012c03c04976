"""Encoded secrets: base64, percent-encoding, JSON/JS escapes, HTML entities, UTF-16.

Pure (no I/O). ``Decoder`` wraps an ``Engine``: it runs the engine on the bytes as
they are, and looks for *encoded forms of the rules' prefix literals* (the
"triggers"). With hyperscan both are one pass: a database of the engine's
literals and the triggers gives stage 1's regions and the trigger hits together
(``Decoder.joint``); the fallback prefilter runs a second multi-literal pass.
Only around a trigger does it decode: a bounded window, merged with its
neighbours, decoded once, scanned by the same engine, and searched for triggers
again, to ``max_depth`` layers (``percent>base64``: a base64 value inside a
URL-encoded one). Text that holds no encoded prefix costs nothing more.

Triggers are derived from every rule's prefixes, automatically:

* base64 (standard and URL-safe alphabets): the prefix's encoding at each of the
  three byte alignments, keeping only the characters that depend on the prefix
  alone (the "stable" part); a prefix whose stable part would be shorter than
  ``MIN_B64`` characters at any alignment gets no base64 trigger (too common to be
  selective). For the key service's own prefixes (``mg_live_``), a stable part long
  enough to split is also entered as its two halves, so a line wrap (PEM,
  ``base64`` at 76 columns, YAML block scalars) inside it still triggers; another
  rule's encoded prefix split by a wrap (about one in eight at 76 columns) is missed.
  In the engine's joint pass a base64 trigger of ``TAIL_MAX`` characters or fewer is
  its text and the one character after it, of those that can follow (``_b64_next``:
  the next character holds the prefix's last bits, so 4 or 16 of the 64 can, or a
  wrap or escape): a 4- or 5-character literal alone made the whole pass a third
  slower.
* percent: the prefix with each non-alphanumeric byte written ``%XX``, and every
  byte written ``%XX`` (hex digits in either case).
* escape: the same two forms with ``\\uXXXX`` and ``\\xXX`` (JSON, JavaScript).
* html: the same two forms with ``&#NN;`` and ``&#xHH;``.
  (These three for case-sensitive prefixes, when at least ``MIN_ESCAPED`` bytes
  long: a keyword such as ``password`` escaped is not how keys leak.)
* utf16: the prefix with a NUL after each byte but the last (matches LE and BE,
  with or without a BOM).

A match found in decoded bytes carries ``decoded`` (the chain, outermost first)
and offsets that point at the encoded text in the scanned buffer, so the line a
report shows is the line a person sees; the secret itself is the decoded one (its
SHA-256 and its redacted form are the key's).

Costs are bounded: each trigger opens a window as wide as its rules read (their
``before`` and longest match, in encoded bytes, at most ``MAX_REACH`` decoded);
windows merge but a merged region stops growing at ``MAX_REGION`` bytes; every
decoder is linear. 10 MB of base64 or of ``%25%25…``
costs one pass (no trigger) or a linear number of bounded decodes (dense triggers).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from scanner.prefilter import byte_class

if TYPE_CHECKING:
    from scanner.engine import Engine, Match
    from scanner.prefilter import HyperscanPrefilter
    from scanner.rules import Rule

MIN_B64 = 4  # stable base64 characters a prefix must give at every alignment
HALF_MIN = 4  # a half of a stable part, entered for line wraps, at least this long
MIN_ESCAPED = 8  # bytes an escaped form (percent, \u, &#) must have to be a trigger
MAX_DEPTH = 2  # decoding layers (percent>base64 is two)
MAX_REACH = 40_000  # decoded bytes a trigger's window reaches (a rule's longest match)
MAX_REGION = 256 * 1024  # merged windows are cut into regions no larger than this
# encoded bytes per decoded byte, at most (base64 4/3 and its line wraps; %XX; \uXXXX,
# &#NNN;; UTF-16)
SCALE = {"base64": 2, "percent": 3, "escape": 6, "html": 7, "utf16": 2}

KINDS = ("base64", "percent", "escape", "html", "utf16")
_SEP = b"\n\0\n"  # between decoded windows scanned in one engine call


@dataclass(frozen=True)
class Trigger:
    text: bytes
    caseless: bool
    kind: str
    phase: int = 0  # base64: characters from the start of a 4-character quantum
    before: int = 64  # decoded bytes a rule may read before the prefix
    after: int = 256  # and after its start (the longest match, and the look-ahead)
    # base64: the bytes that may follow the text (``_b64_follow``); empty: any. In the
    # engine's joint pass (and the hook's fast path) the trigger is the text and one of
    # these (``tail``); the other passes look for the text alone (more windows decoded,
    # the same findings).
    follow: frozenset[int] = frozenset()

    @property
    def tail(self) -> bytes:
        """The regex of what must follow the text (hyperscan), or b"" for none."""
        return byte_class(self.follow) if self.follow else b""


# ---------------------------------------------------------------------------
# Trigger literals


def _case_forms(prefix: str, caseless: bool) -> list[bytes]:
    raw = prefix.encode("utf-8")
    if not caseless:
        return [raw]
    forms = {raw, raw.lower(), raw.upper(), prefix.capitalize().encode("utf-8")}
    return sorted(forms)


def base64_stable(raw: bytes) -> list[tuple[str, int]] | None:
    """The characters of ``raw``'s base64 form that depend on ``raw`` alone, at each of
    the three alignments, with their phase (position in the 4-character quantum); None
    when one alignment gives fewer than ``MIN_B64``."""
    out: list[tuple[str, int]] = []
    for a in range(3):
        enc = base64.b64encode(b"\0" * a + raw + b"\0\0").decode()
        first = -(-8 * a // 6)
        last = (8 * (a + len(raw))) // 6
        if last - first < MIN_B64:
            return None
        out.append((enc[first:last], first % 4))
    return out


# What the token reader (``base64_token``) reads through between two characters: a
# line wrap, and the percent- or JSON-escaped forms of + / =.
_B64_GLUE = frozenset(b"\r\n%\\")
_B64_URL = str.maketrans("+/", "-_")
_B64_TO_URL = bytes.maketrans(b"+/", b"-_")
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
TAIL_MAX = 5  # base64 triggers this short get a tail (longer: the compile costs more)


def _b64_next(raw: bytes, a: int, end: int) -> bytes:
    """The characters (standard alphabet) that may follow ``raw``'s stable base64
    characters at alignment ``a`` (they end at character ``end`` of its encoding): the
    next character carries the last 2 or 4 bits of ``raw`` and the first of whatever
    follows it, so only 16 or 4 of the 64 are possible; b"" when any may (the stable
    part ends on a byte boundary)."""
    fixed = 8 * (a + len(raw)) - 6 * end  # bits of raw in the next character
    if not fixed:
        return b""
    high = (raw[-1] & ((1 << fixed) - 1)) << (6 - fixed)
    return _B64_ALPHABET[high : high + (1 << (6 - fixed))]


def _b64_follow(text: str, nexts: bytes) -> frozenset[int]:
    """A trigger's ``follow``: ``nexts`` in either alphabet and the glue the token reader
    reads through, for a trigger of ``TAIL_MAX`` characters or fewer (empty otherwise, or
    when any character may follow). Hyperscan's pass over the triggers runs about a
    third faster with them: a 4- or 5-character literal alone is dear."""
    if not nexts or len(text) > TAIL_MAX:
        return frozenset()
    return frozenset(nexts + nexts.translate(_B64_TO_URL)) | _B64_GLUE


def _b64_triggers(
    raw: bytes, halves: bool = True, before: int = 64, after: int = 256
) -> Iterable[Trigger]:
    stable = base64_stable(raw)
    if stable is None:
        return
    for a, (text, phase) in enumerate(stable):
        nexts = _b64_next(raw, a, -(-8 * a // 6) + len(text))
        pieces = [(text, phase, nexts)]
        m = -(-len(text) // 2)
        if halves and m >= HALF_MIN:
            # the first half is followed by the next stable character (or by a wrap)
            pieces += [
                (text[:m], phase, text[m].encode()),
                (text[len(text) - m :], (phase + len(text) - m) % 4, nexts),
            ]
        for piece, ph, after_it in pieces:
            follow = _b64_follow(piece, after_it)
            for alphabet in (piece, piece.translate(_B64_URL)):
                yield Trigger(alphabet.encode(), False, "base64", ph, before, after, follow)


def _escaped_forms(raw: bytes) -> list[tuple[bytes, str, bool]]:
    """The prefix's percent, escape and HTML forms: non-alphanumeric bytes written
    escaped, and every byte written escaped."""

    def every(fmt: Callable[[int], str], only_special: bool) -> bytes:
        return "".join(
            fmt(b) if (not only_special or not chr(b).isalnum()) else chr(b) for b in raw
        ).encode()

    fmts: list[tuple[str, Callable[[int], str]]] = [
        ("percent", lambda b: f"%{b:02x}"),
        ("escape", lambda b: f"\\u{b:04x}"),
        ("escape", lambda b: f"\\x{b:02x}"),
        ("html", lambda b: f"&#{b};"),
        ("html", lambda b: f"&#x{b:x};"),
    ]
    out: list[tuple[bytes, str, bool]] = []
    for kind, fmt in fmts:
        out.append((every(fmt, False), kind, True))
        out.append((every(fmt, True), kind, False))
    return out


def _utf16(raw: bytes) -> bytes:
    """A NUL after each byte but the last: the ASCII text in UTF-16, LE or BE."""
    return b"\0".join(raw[i : i + 1] for i in range(len(raw)))


def _reach(rule: Rule) -> tuple[int, int]:
    """Decoded bytes ``rule`` reads before its prefix and after it."""
    context = rule.context_window if rule.context_text else 0
    return (
        min(MAX_REACH, rule.before + context + 16),
        min(MAX_REACH, rule.max_length + context + 64),
    )


def _stems(rules: Sequence[Rule]) -> dict[tuple[bytes, bool], tuple[int, int, bool]]:
    """The prefixes worth an encoded trigger, (bytes, caseless) -> (reach before, reach
    after, a key-service rule's prefix): trailing punctuation (``password=``,
    ``password:``, ...) dropped where at least 4 bytes remain, and a prefix left out
    when a shorter one of the set already starts it (that one reaches as far as both)."""
    stems: dict[tuple[bytes, bool], tuple[int, int, bool]] = {}
    for rule in rules:
        for prefix in rule.prefixes:
            if not prefix.isascii():
                continue
            stem = prefix.rstrip(" \t\r\n=:\"'`]>\\(_-")
            if len(stem) < 4:
                stem = prefix
            raw = stem.lower().encode() if rule.case_insensitive else stem.encode()
            b, a, o = stems.get((raw, rule.case_insensitive), (0, 0, False))
            rb, ra = _reach(rule)
            ours = rule.owner == "keyservice"
            stems[(raw, rule.case_insensitive)] = (max(b, rb), max(a, ra), o or ours)
    kept: dict[tuple[bytes, bool], tuple[int, int, bool]] = {}
    for (raw, caseless), (b, a, o) in sorted(stems.items(), key=lambda x: (len(x[0][0]), x[0])):
        # a shorter kept stem that starts this one (stems of 4 bytes or more only)
        by = next(
            ((raw[:n], caseless) for n in range(4, len(raw)) if (raw[:n], caseless) in kept),
            None,
        )
        if by is None:
            kept[(raw, caseless)] = (b, a, o)
        else:
            kb, ka, ko = kept[by]
            kept[by] = (max(kb, b), max(ka, a), ko or o)
    return kept


def trigger_literals(rules: Sequence[Rule]) -> list[Trigger]:
    """Every encoded form of every rule's prefixes (deduplicated, see the module's
    docstring). A keyword rule (case-insensitive) gets base64 triggers for its lower and
    upper case forms, and the escaped forms only where its keyword holds punctuation."""
    seen: dict[tuple[bytes, bool, str, int], Trigger] = {}

    def add(t: Trigger) -> None:
        old = seen.get((t.text, t.caseless, t.kind, t.phase))
        if old is not None:
            # what may follow either (nothing said by one: anything)
            follow = old.follow | t.follow if old.follow and t.follow else frozenset()
            t = replace(
                t, before=max(t.before, old.before), after=max(t.after, old.after), follow=follow
            )
        seen[(t.text, t.caseless, t.kind, t.phase)] = t

    for (raw, caseless), (before, after, ours) in _stems(rules).items():
        forms = sorted({raw.lower(), raw.upper()}) if caseless else [raw]
        for form in forms:
            # the halves (a line wrap inside the encoded prefix) for our own keys only:
            # short literals cost the pass more than all the others, tails or not
            for t in _b64_triggers(form, ours, before, after):
                add(t)
            if ours:
                # base64 of base64 (a Kubernetes Secret holding a .dockerconfigjson whose
                # "auth" is base64 already): the second layer's stable parts are literals
                # too, and the first layer is found in the decoded window one level down
                for text, _phase in base64_stable(form) or []:
                    for t in _b64_triggers(text.encode(), False, before * 2, after * 2):
                        add(t)
                if not caseless and len(t.text) >= 8:
                    # base64 in a UTF-16 file (PowerShell's ``>`` writes UTF-16):
                    # two layers, utf16>base64 (the window reaches the base64's length)
                    add(Trigger(_utf16(t.text), False, "utf16", 0, before * 2, after * 2))
        add(Trigger(_utf16(raw), caseless, "utf16", 0, before, after))
        if len(raw) < 3 or caseless:
            continue
        special = any(not chr(b).isalnum() for b in raw)
        for text, kind, whole in _escaped_forms(raw):
            if caseless or (not whole and not special) or len(text) < MIN_ESCAPED:
                # A keyword (``password``) escaped, or a short form: common in text
                # (``%2dpass``), dear for the pass, and rarely how a key leaks.
                continue
            # hex digits in either case (the literal's own letters too: harmless, the
            # engine confirms on the decoded bytes)
            add(Trigger(text, True, kind, 0, before, after))
    return list(seen.values())


# ---------------------------------------------------------------------------
# The trigger pass (hyperscan, or Aho-Corasick, or bytes.find)


def _hs_escape(text: bytes) -> bytes:
    return b"".join(b"\\x%02x" % c for c in text)


class Store(Protocol):
    """Where compiled trigger databases are kept between runs (``scanner.scan`` gives
    one in the user's cache directory; this module does no I/O of its own)."""

    def load(self, key: str) -> bytes | None: ...

    def save(self, key: str, blob: bytes) -> None: ...


class _TriggerScanner:
    def __init__(
        self, triggers: list[Trigger], kind: str | None, store: Store | None = None
    ) -> None:
        self.store = store
        self.triggers = triggers
        self.lengths = [len(t.text) for t in triggers]
        self._local = threading.local()
        self._plain: list[int] = []  # the NUL-free triggers (hyperscan)
        # Their own database, compiled only if asked for (``hits(data)`` without
        # ``plain``): the decoder finds them in the engine's pass (Decoder.scan).
        self._plain_db: object | None = None
        self._automata: tuple[object, object] | None = None
        self.name = "python"
        if not triggers:
            return
        if kind != "python":
            try:
                import hyperscan
            except ImportError:
                if kind == "hyperscan":
                    raise
            else:
                self._hs = hyperscan
                # Literal mode (the quicker compile) for the triggers without a NUL; the
                # binding's literal mode stops at a NUL byte, so the UTF-16 ones are
                # \xHH escapes in regex mode, compiled the first time a buffer holds a
                # NUL (text without one cannot hold UTF-16).
                self._plain = [i for i, t in enumerate(triggers) if b"\0" not in t.text]
                self._nul = [i for i, t in enumerate(triggers) if b"\0" in t.text]
                self._nul_db: object | None = None
                self._nul_lock = threading.Lock()
                self.name = "hyperscan"
                return
        try:
            import ahocorasick
        except ImportError:
            return
        exact, caseless = ahocorasick.Automaton(), ahocorasick.Automaton()
        for i, t in enumerate(triggers):
            (caseless if t.caseless else exact).add_word(
                (t.text.lower() if t.caseless else t.text).decode("latin-1"), i
            )
        for automaton in (exact, caseless):
            if len(automaton):
                automaton.make_automaton()
        self._automata = (exact, caseless)

    def _compile(self, ids: list[int], literal: bool) -> object | None:
        if not ids:
            return None
        hs = self._hs
        ts = [self.triggers[i] for i in ids]
        key = None
        if self.store is not None:
            h = hashlib.sha256(f"keysweep-decode-v1 {hs.__version__} {literal}".encode())
            for i, t in zip(ids, ts, strict=True):
                h.update(b"%d %d %d\0" % (i, t.caseless, len(t.text)) + t.text)
            key = h.hexdigest()[:40]
            blob = self.store.load(key)
            if blob:
                try:
                    return hs.loadb(blob, hs.HS_MODE_BLOCK)
                except Exception:  # a damaged or foreign file: compile afresh
                    pass
        db = hs.Database(mode=hs.HS_MODE_BLOCK)
        db.compile(
            expressions=[t.text if literal else _hs_escape(t.text) for t in ts],
            ids=ids,
            elements=len(ids),
            flags=[hs.HS_FLAG_CASELESS if t.caseless else 0 for t in ts],
            literal=literal,
        )
        if key is not None and self.store is not None:
            self.store.save(key, hs.dumpb(db))
        return db

    def _scan_db(self, db: object, slot: str, data: bytes, out: list[tuple[int, int]]) -> None:
        scratch = getattr(self._local, slot, None)
        if scratch is None:
            scratch = self._hs.Scratch(db)
            setattr(self._local, slot, scratch)
        lengths = self.lengths

        def on_match(i: int, _f: int, to: int, _fl: int, _c: object) -> None:
            out.append((to - lengths[i], i))

        db.scan(data, match_event_handler=on_match, scratch=scratch)  # type: ignore[attr-defined]

    @property
    def db(self) -> object | None:
        """The plain (NUL-free) triggers' own hyperscan database, compiled on first use."""
        if self.name != "hyperscan":
            return None
        if self._plain_db is None and self._plain:
            with self._nul_lock:
                if self._plain_db is None:
                    self._plain_db = self._compile(self._plain, literal=True)
        return self._plain_db

    def hits(
        self, data: bytes, plain: list[tuple[int, int]] | None = None
    ) -> list[tuple[int, int]]:
        """(start, trigger index) of every trigger occurrence. ``plain``: the NUL-free
        triggers' occurrences, already found (in the engine's pass)."""
        out: list[tuple[int, int]] = []
        if not data or not self.triggers:
            return out
        lengths = self.lengths
        if self.name == "hyperscan":
            if plain is not None:
                out.extend(plain)
            elif (db := self.db) is not None:
                self._scan_db(db, "scratch", data, out)
            if self._nul and b"\0" in data:
                if self._nul_db is None:
                    with self._nul_lock:
                        if self._nul_db is None:
                            self._nul_db = self._compile(self._nul, literal=False)
                self._scan_db(self._nul_db, "nul_scratch", data, out)  # type: ignore[arg-type]
            return out
        if self._automata is not None:
            text = data.decode("latin-1")
            lowered = text.lower()
            for automaton, hay in zip(self._automata, (text, lowered), strict=True):
                if not len(automaton):  # type: ignore[arg-type]
                    continue
                for end, i in automaton.iter(hay):  # type: ignore[attr-defined]
                    out.append((end + 1 - lengths[i], i))
            return out
        lowered_b = data.lower()
        for i, t in enumerate(self.triggers):
            hay = lowered_b if t.caseless else data
            needle = t.text.lower() if t.caseless else t.text
            pos = hay.find(needle)
            while pos != -1:
                out.append((pos, i))
                pos = hay.find(needle, pos + 1)
        return out


# ---------------------------------------------------------------------------
# Decoders: each turns a region of the buffer into decoded bytes and a map from a
# decoded offset back to an offset in the region's buffer.

Mapper = Callable[[int], int]


@dataclass
class Decoded:
    data: bytes
    chain: str
    to_outer: Mapper


def _anchored_map(anchors_src: list[int], anchors_dst: list[int], lo: int) -> Mapper:
    """Decoded offset -> buffer offset, given the (src, dst) offsets where each escape
    starts (between anchors bytes map one to one)."""

    def to_outer(d: int) -> int:
        i = bisect.bisect_right(anchors_dst, d) - 1
        if i < 0:
            return lo + d
        return lo + anchors_src[i] + (d - anchors_dst[i] if d > anchors_dst[i] else 0)

    return to_outer


_PCT = re.compile(rb"%([0-9A-Fa-f]{2})")
_ESC = re.compile(rb"\\u([0-9A-Fa-f]{4})|\\x([0-9A-Fa-f]{2})|\\([/\\\"'])")
_HTML = re.compile(rb"&#(?:[xX]([0-9A-Fa-f]{1,6})|([0-9]{1,7}));?")
_HTML_NAMED = {b"&quot;": b'"', b"&amp;": b"&", b"&lt;": b"<", b"&gt;": b">", b"&apos;": b"'"}
_HTML_NAMED_RE = re.compile(rb"&(?:quot|amp|lt|gt|apos|lowbar|period|colon|equals|sol);")
_HTML_NAMED.update(
    {b"&lowbar;": b"_", b"&period;": b".", b"&colon;": b":", b"&equals;": b"=", b"&sol;": b"/"}
)


def _code_point_bytes(cp: int) -> bytes:
    if cp < 0x80:
        return bytes((cp,))
    try:
        return chr(cp).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return b"?"


def _unescape(
    seg: bytes,
    lo: int,
    pattern: re.Pattern[bytes],
    repl: Callable[[re.Match[bytes]], bytes],
    chain: str,
) -> Decoded | None:
    parts: list[bytes] = []
    src: list[int] = []
    dst: list[int] = []
    pos = 0
    out_len = 0
    for m in pattern.finditer(seg):
        s, e = m.span()
        if s > pos:
            parts.append(seg[pos:s])
            out_len += s - pos
        value = repl(m)
        src.append(s)
        dst.append(out_len)
        parts.append(value)
        out_len += len(value)
        # bytes after the escape map one to one from its end
        src.append(e)
        dst.append(out_len)
        pos = e
    if not src:
        return None
    parts.append(seg[pos:])
    # Within an escape's output everything maps to the escape's start.
    mapper = _anchored_map(src, dst, lo)
    return Decoded(b"".join(parts), chain, mapper)


def _pct_repl(m: re.Match[bytes]) -> bytes:
    return bytes((int(m.group(1), 16),))


def _esc_repl(m: re.Match[bytes]) -> bytes:
    if m.group(1) is not None:
        return _code_point_bytes(int(m.group(1), 16))
    if m.group(2) is not None:
        return bytes((int(m.group(2), 16),))
    return m.group(3)


def _html_repl(m: re.Match[bytes]) -> bytes:
    if m.group(0) in _HTML_NAMED:
        return _HTML_NAMED[m.group(0)]
    try:
        cp = int(m.group(1), 16) if m.group(1) is not None else int(m.group(2))
    except (TypeError, ValueError):
        return m.group(0)
    return _code_point_bytes(cp) if cp <= 0x10FFFF else b"?"


_HTML_ALL = re.compile(_HTML.pattern + rb"|" + _HTML_NAMED_RE.pattern)


def decode_percent(seg: bytes, lo: int = 0) -> Decoded | None:
    return _unescape(seg, lo, _PCT, _pct_repl, "percent")


def decode_escape(seg: bytes, lo: int = 0) -> Decoded | None:
    return _unescape(seg, lo, _ESC, _esc_repl, "escape")


def decode_html(seg: bytes, lo: int = 0) -> Decoded | None:
    return _unescape(seg, lo, _HTML_ALL, _html_repl, "html")


def decode_utf16(seg: bytes, lo: int = 0) -> Decoded | None:
    """Every other byte, starting at ``seg[0]`` (the ASCII half of each code unit, LE
    from a unit's start or BE from its second byte); a unit whose other byte is not
    NUL becomes NUL (not text a key is made of). ``decoded[i]`` stands at ``2 * i``."""
    lows, highs = seg[0::2], seg[1::2]
    if len(highs) < len(lows):
        highs += b"\0"
    if highs.count(0) != len(highs):
        # rare (non-ASCII text beside the key): mask those units out
        lows = bytes(a if b == 0 else 0 for a, b in zip(lows, highs, strict=True))
    return Decoded(lows, "utf16", lambda d: lo + 2 * d)


# base64: characters of a token, and what may stand between them: the percent and
# JSON-escaped forms of + / =, and a line wrap (in a patch, each line starts with +).
_B64_CHARS = rb"[A-Za-z0-9+/_-]+|%2[BbFf]|%3[Dd]|\\/|\\u00(?:2[BbFf]|3[Dd])"
_B64_CHARS_REV = rb"[A-Za-z0-9+/_-]+|[BbFf]2%|[Dd]3%|/\\|(?:[BbFf]2|[Dd]3)00u\\"
_WRAP = {False: (rb"\r?\n[ \t]*", rb"[ \t]*\n\r?"), True: (rb"\r?\n\+[ \t]*", rb"[ \t]*\+\n\r?")}
_B64_RIGHT = {
    p: re.compile(rb"(?:" + _B64_CHARS + rb"|" + w + rb")*") for p, (w, _) in _WRAP.items()
}
_B64_LEFT_REV = {
    p: re.compile(rb"(?:" + _B64_CHARS_REV + rb"|" + w + rb")*") for p, (_, w) in _WRAP.items()
}
_B64_NOISE = {
    p: re.compile(w + rb"|%2[BbFf]|%3[Dd]|\\/|\\u00(?:2[BbFf]|3[Dd])")
    for p, (w, _) in _WRAP.items()
}
_B64_NOISE_VALUE = {b"%2b": b"+", b"%2f": b"/", b"%3d": b"", b"\\/": b"/"}
_URL_TO_STD = bytes.maketrans(b"-_", b"+/")


def _b64_noise(m: re.Match[bytes]) -> bytes:
    text = m.group(0).lower()
    if text.startswith(b"\\u00"):
        return {b"2b": b"+", b"2f": b"/"}.get(text[4:], b"")
    return _B64_NOISE_VALUE.get(text, b"")


def base64_token(data: bytes, hit: int, lo: int, hi: int, patch: bool = False) -> tuple[int, int]:
    """The base64 token around ``hit``, clipped to [lo, hi): line wraps and the
    percent/JSON-escaped forms of ``+ / =`` are part of it."""
    left = _B64_LEFT_REV[patch].match(data[lo:hit][::-1])
    right = _B64_RIGHT[patch].match(data, hit, hi)
    start = hit - (left.end() if left else 0)
    end = right.end() if right else hit
    # a token does not begin or end with the whitespace of a wrap
    while start < hit and data[start] in b" \t\r\n":
        start += 1
    while end > hit and data[end - 1] in b" \t\r\n+":
        end -= 1
    return start, end


def decode_base64(
    data: bytes, start: int, end: int, hits_phase: list[tuple[int, int]], patch: bool = False
) -> list[Decoded]:
    """The token data[start:end], decoded at each alignment its hits ask for
    (``hits_phase``: (hit offset, phase))."""
    seg = data[start:end]
    chain = "base64"
    src: list[int] = []  # compact index -> raw index, at each removed piece
    dst: list[int] = []
    noise = _B64_NOISE[patch]
    if noise.search(seg) is not None:
        parts: list[bytes] = []
        pos = 0
        n = 0
        pct = esc = False
        for m in noise.finditer(seg):
            s, e = m.span()
            parts.append(seg[pos:s])
            n += s - pos
            value = _b64_noise(m)
            if m.group(0).startswith(b"%"):
                pct = True
            elif m.group(0).startswith(b"\\"):
                esc = True
            parts.append(value)
            n += len(value)
            src.append(e)
            dst.append(n)
            pos = e
        parts.append(seg[pos:])
        compact = b"".join(parts)
        if pct:
            chain = "percent>base64"
        elif esc:
            chain = "escape>base64"
    else:
        compact = seg
    compact = compact.translate(_URL_TO_STD)

    def raw_of(ci: int) -> int:  # compact index -> offset in data
        i = bisect.bisect_right(dst, ci) - 1
        return start + (ci if i < 0 else src[i] + (ci - dst[i]))

    def compact_of(raw: int) -> int:  # offset in data -> compact index
        r = raw - start
        i = bisect.bisect_right(src, r) - 1
        return r if i < 0 else dst[i] + (r - src[i])

    out: list[Decoded] = []
    done: set[int] = set()
    for hit, phase in hits_phase:
        if not start <= hit < end:
            continue
        first = (compact_of(hit) - phase) % 4
        if first in done:
            continue
        done.add(first)
        body = compact[first:]
        tail = len(body) % 4  # an unpadded end: 2 or 3 characters still carry bytes
        body = body[: len(body) - tail] + (body[len(body) - tail :] + b"==" if tail > 1 else b"")
        if len(body) < 4:
            continue
        try:
            decoded = binascii.a2b_base64(body)
        except (binascii.Error, ValueError):
            continue

        def to_outer(d: int, first: int = first) -> int:
            return raw_of(first + (d // 3) * 4 + (d % 3))

        out.append(Decoded(decoded, chain, to_outer))
    return out


# ---------------------------------------------------------------------------
# Regions: bounded windows around the hits of one kind, merged


def _regions(windows: list[tuple[int, int]], size: int) -> list[tuple[int, int, int, int]]:
    """(lo, hi, first window, end window) for ``windows`` sorted by hit: each hit's
    window, merged with the next while they overlap and the region stays under
    MAX_REGION (so every hit keeps its whole window and work stays linear)."""
    out: list[tuple[int, int, int, int]] = []
    i = 0
    n = len(windows)
    while i < n:
        lo, hi = windows[i]
        lo = lo if lo > 0 else 0
        hi = hi if hi < size else size
        j = i + 1
        while j < n:
            wlo, whi = windows[j]
            if wlo > hi:
                break
            if wlo < lo:
                lo = wlo if wlo > 0 else 0
            whi = whi if whi < size else size
            if whi - lo > MAX_REGION:
                break
            if whi > hi:
                hi = whi
            j += 1
        out.append((lo, hi, i, j))
        i = j
    return out


# ---------------------------------------------------------------------------


class Decoder:
    """The engine, plus what encoded forms of its rules' prefixes hide."""

    def __init__(
        self,
        engine: Engine,
        max_depth: int = MAX_DEPTH,
        prefilter: str | None = None,
        store: Store | None = None,
    ) -> None:
        self.engine = engine
        self.max_depth = max_depth
        self.triggers = trigger_literals(engine.rules)
        kind = prefilter if prefilter is not None else getattr(engine.prefilter, "name", None)
        self._scanner = _TriggerScanner(self.triggers, kind, store)
        # With hyperscan, one pass finds the engine's literals and the NUL-free triggers
        # (a database of both, compiled by the first scan: fast_path_database needs
        # only the triggers): decoding costs no second pass.
        self._joint_wanted = (
            self._scanner.name == "hyperscan" and engine.prefilter.name == "hyperscan"
        )
        self._joint: HyperscanPrefilter | None = None
        self._joint_ids = self._scanner._plain  # extra literal -> trigger index
        self._joint_lock = threading.Lock()
        self._store = store
        self.decoded_bytes = 0  # how much decoding happened (bench, tests)
        self.regions = 0

    def joint(self) -> HyperscanPrefilter | None:
        """The database of the engine's literals and the triggers (None: two passes,
        the fallback prefilter's way)."""
        if self._joint is None and self._joint_wanted:
            from scanner.prefilter import HyperscanPrefilter

            with self._joint_lock:
                if self._joint is None:
                    triggers = [self.triggers[i] for i in self._joint_ids]
                    self._joint = HyperscanPrefilter(
                        self.engine.rules,
                        extra=[(t.text, t.caseless, t.tail) for t in triggers],
                        store=self._store,
                    )
        return self._joint

    @property
    def trigger_db(self) -> object | None:
        return self._scanner.db

    def _engine_and_triggers(self, data: bytes) -> tuple[list[Match], list[tuple[int, int]]]:
        """The engine's matches in ``data`` and the trigger occurrences, in one pass
        when the joint database is there."""
        joint = self.joint()
        if joint is None:
            return self.engine.scan(data), self._scanner.hits(data)
        found: list[tuple[int, int]] = []
        regions = joint.regions(data, found)
        ids = self._joint_ids
        plain = [(pos, ids[i]) for pos, i in found]
        return self.engine.scan(data, regions), self._scanner.hits(data, plain)

    def _trigger_hits(self, data: bytes) -> list[tuple[int, int]]:
        joint = self.joint()
        if joint is None:
            return self._scanner.hits(data)
        found: list[tuple[int, int]] = []
        joint.regions(data, found)
        ids = self._joint_ids
        return self._scanner.hits(data, [(pos, ids[i]) for pos, i in found])

    def scan(self, data: bytes, patch: bool = False) -> list[Match]:
        """The engine's matches in ``data``, and those in its encoded parts. ``patch``:
        ``data`` is a diff whose added lines start with ``+`` (a wrapped base64 blob
        continues after it)."""
        if not self.triggers or not data:
            return self.engine.scan(data)
        plain, hits = self._engine_and_triggers(data)
        found = list(self._layer(data, 1, patch, hits))
        if not found:
            return plain
        # A generic match over encoded text gives way to what decoding it found there
        # (``token: <base64 of a key>`` is the key, not a generic secret).
        spans = sorted((m.start, m.end) for m in found if m.rule.confidence == "high")
        starts = [s for s, _ in spans]

        def covered(m: Match) -> bool:
            lo = bisect.bisect_left(starts, m.start - MAX_REACH)
            hi = bisect.bisect_left(starts, m.end)
            return any(m.start < e for _, e in spans[lo:hi])

        seen: set[tuple[str, int]] = set()
        out: list[Match] = []
        for m in [*plain, *found]:
            key = (m.rule.id, m.start)
            if key in seen:
                continue  # found as it stands, or by two triggers
            if m.rule.confidence != "high" and covered(m):
                continue
            seen.add(key)
            out.append(m)
        out.sort(key=lambda m: (m.start, m.rule.id))
        return out

    def _layer(
        self,
        data: bytes,
        depth: int,
        patch: bool = False,
        hits: list[tuple[int, int]] | None = None,
    ) -> Iterable[Match]:
        if hits is None:
            hits = self._trigger_hits(data)
        if not hits:
            return
        by_kind: dict[str, list[tuple[int, int, int, int]]] = {}
        triggers = self.triggers
        for pos, i in hits:
            t = triggers[i]
            by_kind.setdefault(t.kind, []).append((pos, t.phase, t.before, t.after))
        chunks: list[Decoded] = []
        for kind, kh in by_kind.items():
            kh.sort()
            chunks.extend(self._decode_kind(kind, data, kh, patch))
        if not chunks:
            return
        # One engine call for all of this layer's windows (a call has a fixed cost):
        # joined by a separator no match crosses, each match mapped back by its window.
        offsets: list[int] = []
        pos = 0
        for c in chunks:
            offsets.append(pos)
            pos += len(c.data) + len(_SEP)
            self.decoded_bytes += len(c.data)
        joined = _SEP.join(c.data for c in chunks)
        for m in self.engine.scan(joined):
            k = bisect.bisect_right(offsets, m.start) - 1
            base = offsets[k]
            if m.end - base > len(chunks[k].data):
                continue  # across a separator: not in the decoded bytes
            yield self._moved(m, chunks[k], m.start - base, m.end - base, chunks[k].chain)
        if depth < self.max_depth:
            for c in chunks:
                for m in self._layer(c.data, depth + 1):
                    yield self._moved(m, c, m.start, m.end, f"{c.chain}>{m.decoded}")

    @staticmethod
    def _moved(m: Match, chunk: Decoded, start: int, end: int, chain: str) -> Match:
        to_outer = chunk.to_outer
        outer = to_outer(start)
        return replace(
            m, start=outer, end=max(outer + 1, to_outer(max(start, end - 1)) + 1), decoded=chain
        )

    def _decode_kind(
        self, kind: str, data: bytes, kh: list[tuple[int, int, int, int]], patch: bool
    ) -> Iterable[Decoded]:
        positions = [h[0] for h in kh]
        scale = SCALE[kind]  # encoded bytes per decoded byte, at most
        windows = [(p - b * scale, p + a * scale) for p, _, b, a in kh]
        for lo, hi, i, j in _regions(windows, len(data)):
            self.regions += 1
            if kind == "base64":
                # tokens inside the region, each decoded at the alignments its hits ask for
                k = i
                while k < j:
                    start, end = base64_token(data, positions[k], lo, hi, patch)
                    group = [kh[k][:2]]
                    k += 1
                    while k < j and positions[k] < end:
                        group.append(kh[k][:2])
                        k += 1
                    yield from decode_base64(data, start, end, group, patch)
                continue
            if kind == "utf16":
                # one decode per parity of the hits (LE from a unit's start, BE from its
                # second byte: either way the ASCII bytes are at the hit's parity)
                for parity in sorted({p % 2 for p in positions[i:j]}):
                    a = lo + ((parity - lo) % 2)
                    d = decode_utf16(data[a:hi], a)
                    if d is not None:
                        yield d
                continue
            seg = data[lo:hi]
            decoder = {"percent": decode_percent, "escape": decode_escape, "html": decode_html}[
                kind
            ]
            d = decoder(seg, lo)
            if d is not None:
                yield d


_LOCK = threading.Lock()


def fast_path_database(engine: Engine) -> bytes:
    """One serialized hyperscan database of the engine's literals and their encoded
    forms: the pre-commit hook's fast path (``scanner.hook_cache``) calls a change
    clean only when none of them occurs."""
    import hyperscan

    from scanner.prefilter import collect_literals

    pieces = [(lit.text, lit.caseless, b"") for lit in collect_literals(engine.rules)]
    pieces += [(t.text, t.caseless, t.tail) for t in decoder_for(engine).triggers]
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(
        expressions=[_hs_escape(text) + tail for text, _, tail in pieces],
        ids=list(range(len(pieces))),
        elements=len(pieces),
        flags=[hyperscan.HS_FLAG_CASELESS if c else 0 for _, c, _ in pieces],
    )
    return hyperscan.dumpb(db)  # type: ignore[no-any-return]


def decoder_for(engine: Engine, store: Store | None = None) -> Decoder:
    """The decoder of ``engine`` (built once per engine: compiling the triggers costs
    more than compiling the engine's own prefilter; ``store`` keeps the compiled
    database between runs)."""
    cached = getattr(engine, "_keysweep_decoder", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    with _LOCK:
        cached = getattr(engine, "_keysweep_decoder", None)
        if cached is None:
            cached = Decoder(engine, store=store)
            engine._keysweep_decoder = cached  # type: ignore[attr-defined]
    return cached  # type: ignore[no-any-return]
