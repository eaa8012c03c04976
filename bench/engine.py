"""Engine throughput: MB/s on real text with no keys, on text dense with near
misses and on key-dense text, beside the same figures for the engine of "today"
(a git revision, by default the one issue #11 was measured on).

The no-key corpus is real source code (this Python's standard library, read
as bytes); the near-miss corpus is the same text with a prefix-shaped string
every 100 bytes (``mg_live_`` + 20 characters, ``AKIA`` + 10, ``eyJ`` + a
base64 JSON blob that is no JWT); the key-dense corpus is the same text with a
freshly generated key every 4 KiB. All are scanned in 4 MiB blocks,
single-threaded; "per core" figures are CPU seconds of this process (the
machine may be shared), best of three. They are scanned by:

* keysweep's engine with the hyperscan prefilter (the default), at each
  confidence level: ``high`` (providers' rules) and ``medium`` (plus the generic
  rules, the default of ``keysweep scan`` and the hooks),
* keysweep's engine with the fallback prefilter (Aho-Corasick),
* the floor peers named in the issue: one Python ``re`` alternation and one
  ``regex`` alternation of every prefix literal (stage 1 only, no confirmation).

Rules with no literal (only a team's imported .gitleaks.toml rule can be one)
are searched through every byte: the script counts them and prices one.

The "today" column runs the first table's measurement in a child process on
the scanner package of ``--today REV`` (``git archive``), same corpora, same run.

Usage: python bench/engine.py [--mb 64] [--today fc4776f | --today none]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import string
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import regex

# The "today" child process imports the scanner package of another revision.
sys.path.insert(0, os.environ.get("KEYSWEEP_BENCH_TREE") or str(Path(__file__).parents[1]))

from scanner.engine import Engine
from scanner.examples import expand
from scanner.rules import at_confidence, load_rules, rule_from_dict

BLOCK = 4 * 1024 * 1024
ROOT = Path(__file__).resolve().parent.parent


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


def near_misses(text: bytes, every: int = 100) -> bytes:
    """A prefix-shaped string every ``every`` bytes: mg_live_ + 20 characters, AKIA +
    10, eyJ + a base64 JSON blob (no JWT), in turn, inside real text."""
    rng = random.Random(3)
    b64url = (string.ascii_letters + string.digits + "_-").encode()
    upper = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    out = bytearray()
    step = every - 32
    for n, i in enumerate(range(0, len(text), step)):
        out += text[i : i + step]
        kind = n % 3
        if kind == 0:
            out += b" mg_live_" + bytes(rng.choice(b64url) for _ in range(20)) + b" "
        elif kind == 1:
            out += b" AKIA" + bytes(rng.choice(upper) for _ in range(10)) + b" "
        else:
            blob = json.dumps({"n": rng.randrange(10**6), "k": "v"}).encode()
            out += b" " + base64.urlsafe_b64encode(blob).rstrip(b"=") + b" "
    return bytes(out)


def throughput(scan: Callable[[bytes], object], data: bytes, repeat: int = 3) -> float:
    """MB per CPU second of this process (one core), best of ``repeat``."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        for i in range(0, len(data), BLOCK):
            scan(data[i : i + BLOCK])
        best = min(best, time.process_time() - t)
    return len(data) / max(best, 1e-9) / 1e6


LEVELS = ("high", "medium", "low")


def measure_levels(mb: int) -> dict[str, dict[str, float]]:
    """No keys and near-miss-dense MB/s per confidence level (what "today" is asked)."""
    every = load_rules()
    clean = real_text(mb)
    dense = near_misses(clean[: max(8, mb // 4) * 1024 * 1024])
    out: dict[str, dict[str, float]] = {}
    for level in LEVELS:
        engine = Engine(
            at_confidence(every, level), low_confidence=level == "low", prefilter="hyperscan"
        )
        out[level] = {
            "clean": throughput(engine.scan, clean),
            "near": throughput(engine.scan, dense),
            "near_found": float(len(engine.scan(dense[:BLOCK]))),
        }
    return out


def measure_today(rev: str, mb: int) -> dict[str, dict[str, float]] | None:
    """The same measurement on the scanner package of ``rev``, in a child process."""
    try:
        blob = subprocess.run(
            ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "scanner"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"today ({rev}): not measured: {exc}", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory() as tree:
        tar_path = Path(tree) / "scanner.tar"
        tar_path.write_bytes(blob)
        with tarfile.open(tar_path) as tar:
            tar.extractall(tree, filter="data")
        child = subprocess.run(
            [sys.executable, __file__, "--levels-json", "--mb", str(mb)],
            capture_output=True,
            env={**os.environ, "KEYSWEEP_BENCH_TREE": tree},
            check=False,
        )
    if child.returncode != 0:
        print(f"today ({rev}): failed: {child.stderr.decode()[-400:]}", file=sys.stderr)
        return None
    result: dict[str, dict[str, float]] = json.loads(child.stdout)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--mb", type=int, default=64, help="corpus size in MB (default 64)")
    ap.add_argument(
        "--today",
        default="fc4776f",
        help="git revision whose engine is measured beside this one ('none': skip)",
    )
    ap.add_argument("--levels-json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.levels_json:
        print(json.dumps(measure_levels(args.mb)))
        return
    levels_now = measure_levels(args.mb)
    today = None if args.today == "none" else measure_today(args.today, args.mb)
    print(
        f"per confidence level, MB per CPU second (one core); today = {args.today}, "
        "measured in this run"
    )
    print(f"{'level':8} {'no keys':>9} {'today':>7} {'near misses':>12} {'today':>7} {'found':>6}")
    for level in LEVELS:
        now = levels_now[level]
        then = today[level] if today else {"clean": float("nan"), "near": float("nan")}
        print(
            f"{level:8} {now['clean']:9,.0f} {then['clean']:7,.0f} {now['near']:12,.0f} "
            f"{then['near']:7,.0f} {now['near_found']:6.0f}"
        )
    for level in LEVELS:
        rate, near = levels_now[level]["clean"], levels_now[level]["near"]
        print(
            f"target {level}: no keys >= 1000 MB/s: {rate:,.0f} "
            f"({'met' if rate >= 1000 else 'NOT met'}); near misses >= 100 MB/s: {near:,.0f} "
            f"({'met' if near >= 100 else 'NOT met'})"
        )
    print()
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
