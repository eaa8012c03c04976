"""Redact anything shaped like a key from text about to be written (logs, messages).

The last line of defence: the code never logs a secret on purpose, and this
makes sure an accident does not either. It uses the rule pack's own engine, so
every family it detects is cut down to its redacted form.
"""

from __future__ import annotations

from functools import cache

from scanner.engine import Engine
from scanner.findings import redact


@cache
def _engine() -> Engine:
    from scanner.rules import at_confidence, load_rules

    # Providers' key formats: a log line is not judged by the generic rules' names.
    return Engine(at_confidence(load_rules(validate_pack=False), "high"))


def redact_text(text: str) -> str:
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
