"""Redact anything shaped like a key from text about to be written (logs, messages).

The last line of defence: the code never logs a secret on purpose, and this
makes sure an accident does not either. It uses the rule pack's own engine, so
every family it detects is cut down to its redacted form. A second pass, with no
boundary rules, cuts down our own keys (and ``xxx_``-prefixed tokens) wherever
they stand, even glued to the bytes before them (``\\x00mg_live_…`` in a ``repr``,
``\\nmg_live_…`` in JSON), where the engine's look-behind would pass them.

``redact_text`` is total: it returns text for any input and never raises. When
the engine itself fails, everything token-shaped is cut down instead.
"""

from __future__ import annotations

import re
from functools import cache

from scanner.engine import Engine
from scanner.findings import redact

SHOWN = 8  # characters kept after a prefix, as ``redact`` keeps
# Anything token-shaped, for when the engine cannot be used: kept to its first 4.
_TOKENISH = re.compile(r"([A-Za-z0-9_\-+/=.~]{4})[A-Za-z0-9_\-+/=.~]{8,}")


@cache
def _engine() -> Engine:
    from scanner.rules import at_confidence, load_rules

    # Providers' key formats: a log line is not judged by the generic rules' names.
    return Engine(at_confidence(load_rules(validate_pack=False), "high"))


@cache
def _loose() -> re.Pattern[str]:
    """Prefixes of our own keys, and every prefix that ends in ``_`` (``ghp_``,
    ``npm_``, ``sk_live_``), followed by key characters: no look-behind at all."""
    prefixes = {
        p
        for r in _engine().rules
        for p in r.prefixes
        if r.owner == "keyservice" or (len(p) >= 4 and p.endswith("_"))
    }
    alternatives = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
    return re.compile(rf"({alternatives})([A-Za-z0-9_-]{{{SHOWN}}})[A-Za-z0-9_-]{{4,}}")


def _by_engine(text: str) -> str:
    data = text.encode("utf-8", "surrogatepass")
    matches = _engine().scan(data)
    if not matches:
        return text
    out, pos = [], 0
    for m in sorted(matches, key=lambda m: m.start):
        if m.start < pos:
            continue
        out.append(data[pos : m.start])
        out.append(redact(m.secret, m.rule.prefixes).encode())
        pos = m.end
    out.append(data[pos:])
    return b"".join(out).decode("utf-8", "replace")


def crude(text: str) -> str:
    """Every token-shaped run cut to its first 4 characters: what is left when nothing
    better can be trusted."""
    return _TOKENISH.sub(r"\1…", text)


def redact_text(text: object) -> str:
    """``text`` with every key-shaped run cut down to its redacted form. Total."""
    try:
        if not isinstance(text, str):
            text = safe_str(text)
        text = _by_engine(text)
        return _loose().sub(r"\1\2…", text)
    except Exception:  # the last line of defence must not be the one that fails
        try:
            return crude(text if isinstance(text, str) else safe_str(text))
        except Exception:
            return "<unprintable>"


def safe_str(value: object) -> str:
    """``str(value)``, else ``repr(value)``, else a placeholder: never raises."""
    for show in (str, repr):
        try:
            text = show(value)
            if isinstance(text, str):
                return text
        except Exception:  # a hostile __str__ / __repr__
            continue
    try:
        return f"<unprintable {type(value).__name__}>"
    except Exception:
        return "<unprintable>"
