"""Engine throughput: MB/s on real text with no keys and on key-dense text.

The no-key corpus is real source code (this Python's standard library, read
as bytes); the key-dense corpus is the same text with a freshly generated key
every 4 KiB. Both are scanned in 4 MiB blocks, single-threaded (one core), by:

* keysweep's engine with the hyperscan prefilter (the default), at each
  confidence level: ``high`` (providers' rules) and ``medium`` (plus the generic
  rules, the default of ``keysweep scan`` and the hooks),
* keysweep's engine with the fallback prefilter (Aho-Corasick),
* the floor peers named in the issue: one Python ``re`` alternation and one
  ``regex`` alternation of every prefix literal (stage 1 only, no confirmation).

Rules with no literal (only a team's imported .gitleaks.toml rule can be one)
are searched through every byte: the script counts them and prices one.

Usage: python bench/engine.py [--mb 64]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

import regex

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scanner.engine import Engine
from scanner.examples import expand
from scanner.rules import at_confidence, load_rules, rule_from_dict

BLOCK = 4 * 1024 * 1024


def real_text(mb: int) -> bytes:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts: list[bytes] = []
    size = 0
    for path in sorted(stdlib.rglob("*.py")):
        data = path.read_bytes()
        parts.append(data)
        size += len(data)
    text = b"".join(parts)
    return (text * (mb * 1024 * 1024 // len(text) + 1))[: mb * 1024 * 1024]


def key_dense(text: bytes, rules_templates: list[tuple[str, str | None]]) -> bytes:
    rng = random.Random(1)
    out = bytearray()
    for i in range(0, len(text), 4096):
        out += text[i : i + 4096]
        template, checksum = rng.choice(rules_templates)
        out += b"\n" + expand(template, checksum).encode() + b"\n"
    return bytes(out)


def throughput(scan: Callable[[bytes], object], data: bytes, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for i in range(0, len(data), BLOCK):
            scan(data[i : i + BLOCK])
        best = min(best, time.perf_counter() - t)
    return len(data) / best / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--mb", type=int, default=64, help="corpus size in MB (default 64)")
    args = ap.parse_args()
    every = load_rules()
    levels = {level: at_confidence(every, level) for level in ("high", "medium")}
    rules = levels["medium"]
    literals = sorted({p for r in rules for p in r.prefixes})
    anchored = sum(1 for r in rules if r.anchored)
    no_literal = [r.id for r in rules if not r.prefixes]
    clean = real_text(args.mb)
    dense = key_dense(clean, [(t, r.checksum) for r in levels["high"] for t in r.positive])
    engines = {level: Engine(rs, prefilter="hyperscan") for level, rs in levels.items()}
    py = Engine(rules, prefilter="python")
    found = {level: len(e.scan(clean[: 8 * 1024 * 1024])) for level, e in engines.items()}
    re_alt = re.compile(b"|".join(re.escape(lit.encode()) for lit in literals))
    regex_alt = regex.compile(b"|".join(regex.escape(lit.encode()) for lit in literals))

    print(
        f"engine benchmark: {len(rules)} rules ({len(levels['high'])} high, "
        f"{len(rules) - len(levels['high'])} medium), {len(literals)} literals, "
        f"{anchored} anchored rules, one core"
    )
    print(f"rules with no literal (searched through every byte): {len(no_literal)}")
    print(
        f"no-key corpus: {len(clean) / 1e6:.0f} MB of real Python source "
        f"(findings in 8 MB: high {found['high']}, medium {found['medium']})"
    )
    rows = [
        ("keysweep high (hyperscan)", lambda d: engines["high"].scan(d)),
        ("keysweep medium (hyperscan, default)", lambda d: engines["medium"].scan(d)),
        ("keysweep medium (fallback prefilter)", lambda d: py.scan(d)),
        ("floor: Python re alternation", lambda d: re_alt.findall(d)),
        ("floor: regex alternation", lambda d: regex_alt.findall(d)),
    ]
    base = None
    print(f"{'':38} {'no keys MB/s':>13} {'key-dense MB/s':>15} {'vs re':>7}")
    floor_mb = 4 * 1024 * 1024  # the floors are slow with the whole pack's literals
    for name, fn in rows:
        floor = "floor" in name
        a = throughput(fn, clean[:floor_mb] if floor else clean, repeat=1 if floor else 3)
        b = throughput(fn, dense[:floor_mb] if floor else dense, repeat=1)
        if name.startswith("floor: Python re"):
            base = a
        print(f"{name:38} {a:13,.0f} {b:15,.0f}", end="")
        print(f" {a / base:6.1f}x" if base else "")
    for level, engine in engines.items():
        rate = throughput(lambda d, e=engine: e.scan(d), clean)
        print(
            f"target: >= 1000 MB/s per core on text with no keys, {level}: {rate:,.0f} MB/s "
            f"({'met' if rate >= 1000 else 'NOT met'})"
        )
    # What one literal-less rule costs (an imported gitleaks rule without keywords).
    bare = rule_from_dict(
        {"id": "no-literal-example", "pattern": r"\b(acme_[a-z0-9]{24})\b"},
        "bench",
        need_prefix=False,
    )
    with_bare = Engine([*levels["high"], bare], prefilter="hyperscan")
    rate = throughput(lambda d: with_bare.scan(d), clean[: 16 * 1024 * 1024], repeat=1)
    print(f"cost of one rule with no literal: high + it = {rate:,.0f} MB/s")
    dense_keys = -(-len(clean) // 4096)
    n = len(engines["high"].scan(dense))
    print(f"key-dense corpus: {len(dense) / 1e6:.0f} MB, {dense_keys} planted keys, {n} matched")


if __name__ == "__main__":
    main()
