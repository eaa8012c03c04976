"""Engine throughput: MB/s on real text with no keys and on key-dense text.

The no-key corpus is real source code (this Python's standard library, read
as bytes); the key-dense corpus is the same text with a freshly generated key
every 4 KiB. Both are scanned in 4 MiB blocks, single-threaded (one core), by:

* keysweep's engine with the hyperscan prefilter (the default),
* keysweep's engine with the pure-Python fallback prefilter,
* the floor peers named in the issue: one Python ``re`` alternation and one
  ``regex`` alternation of every prefix literal (stage 1 only, no confirmation).

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
from scanner.rules import load_rules

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
    rules = load_rules()
    literals = sorted({p for r in rules for p in r.prefixes})
    clean = real_text(args.mb)
    dense = key_dense(clean, [(t, r.checksum) for r in rules for t in r.positive])
    hs = Engine(rules, prefilter="hyperscan")
    py = Engine(rules, prefilter="python")
    found = len(hs.scan(clean[: 8 * 1024 * 1024]))
    re_alt = re.compile(b"|".join(re.escape(lit.encode()) for lit in literals))
    regex_alt = regex.compile(b"|".join(regex.escape(lit.encode()) for lit in literals))

    print(f"engine benchmark: {len(rules)} rules, {len(literals)} prefix literals, one core")
    print(
        f"no-key corpus: {len(clean) / 1e6:.0f} MB of real Python source ({found} findings in 8 MB)"
    )
    rows = [
        ("keysweep (hyperscan prefilter)", lambda d: hs.scan(d)),
        ("keysweep (pure-Python prefilter)", lambda d: py.scan(d)),
        ("floor: Python re alternation", lambda d: re_alt.findall(d)),
        ("floor: regex alternation", lambda d: regex_alt.findall(d)),
    ]
    base = None
    print(f"{'':36} {'no keys MB/s':>13} {'key-dense MB/s':>15} {'vs re':>7}")
    for name, fn in rows:
        a = throughput(fn, clean, repeat=3 if "regex" not in name else 1)
        b = throughput(fn, dense, repeat=1)
        if name.startswith("floor: Python re"):
            base = a
        print(f"{name:36} {a:13,.0f} {b:15,.0f}", end="")
        print(f" {a / base:6.1f}x" if base else "")
    hs_rate = throughput(lambda d: hs.scan(d), clean)
    print(
        f"target: >= 1000 MB/s per core on text with no keys -> {hs_rate:,.0f} MB/s "
        f"({'met' if hs_rate >= 1000 else 'NOT met'})"
    )
    dense_keys = -(-len(clean) // 4096)
    n = len(hs.scan(dense))
    print(f"key-dense corpus: {len(dense) / 1e6:.0f} MB, {dense_keys} planted keys, {n} matched")


if __name__ == "__main__":
    main()
