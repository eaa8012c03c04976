"""Decoding's cost: MB/s with and without it, on text with no keys and on dense
encoded keys.

The no-key corpus is real source code (this Python's standard library, as in
bench/engine.py), scanned in 4 MiB blocks on one core by:

* the engine alone (``Engine.scan``: what bench/engine.py measures),
* the engine with decoding (``scanner.decode.Decoder.scan``: what every scan runs),
* stage 1 alone with decoding on: the one multi-literal pass over the engine's
  literals and the triggers together (with hyperscan the triggers share the engine's
  database; the fallback runs the trigger pass on its own),

at confidence ``high`` and ``medium`` (the default of ``keysweep scan``). Then the
dense-encoded case: every 4 KiB of the corpus followed by a fresh ``mg_`` key in one
of the encoded forms (base64 in a k8s Secret line, percent with ``%5F``, JSON
``\\u`` escapes, HTML entities, UTF-16 never mixes with UTF-8 text so it is left
out), each of which must be found; and two hostile inputs (10 MB of random base64,
10 MB of ``%25``).

Usage: python bench/decode.py [--mb 32]
"""

from __future__ import annotations

import argparse
import base64
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import real_text, throughput  # bench/engine.py: the same corpus and clock

from scanner.decode import Decoder
from scanner.engine import Engine
from scanner.rules import at_confidence, load_rules

REPEAT = 5  # best of: this machine shares its cores, and a run descheduled part-way
# would otherwise count the wait


def encoded_key(i: int) -> tuple[str, bytes]:
    key = "mg_live_" + secrets.token_urlsafe(24)
    form = i % 4
    if form == 0:
        text = f"  token: {base64.b64encode(key.encode()).decode()}"
    elif form == 1:
        text = "url?token=" + key.replace("_", "%5F")
    elif form == 2:
        text = '"k": "' + "".join(f"\\u{ord(c):04x}" for c in key) + '"'
    else:
        text = "<a>" + "".join(f"&#{ord(c)};" for c in key) + "</a>"
    return key, text.encode()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--mb", type=int, default=32, help="corpus size in MB (default 32)")
    args = ap.parse_args()
    clean = real_text(args.mb)
    every = load_rules()
    print(f"decode benchmark: {len(clean) / 1e6:.0f} MB of real Python source, one core")
    print(f"{'':10} {'engine MB/s':>12} {'+decoding MB/s':>15} {'stage 1 MB/s':>18} triggers")
    decoders = {}
    for level in ("high", "medium"):
        engine = Engine(at_confidence(every, level), prefilter="hyperscan")
        t = time.perf_counter()
        decoder = Decoder(engine)
        decoder.joint()  # the one database of literals and triggers (compiled on first use)
        built = time.perf_counter() - t
        decoders[level] = decoder
        plain = throughput(engine.scan, clean, REPEAT)
        decoded = throughput(decoder.scan, clean, REPEAT)
        joint = decoder.joint()
        trig = throughput(
            decoder._scanner.hits if joint is None else lambda d, j=joint: j.regions(d, []),
            clean,
            REPEAT,
        )
        print(
            f"{level:10} {plain:12,.0f} {decoded:15,.0f} {trig:18,.0f} "
            f"{len(decoder.triggers)} (compiled in {built:.2f} s)"
        )
        print(
            f"target: >= 1000 MB/s per core on text with no keys, decoding on, {level}: "
            f"{decoded:,.0f} MB/s ({'met' if decoded >= 1000 else 'NOT met'})"
        )
    # Dense encoded keys: one every 4 KiB, each form in turn.
    decoder = decoders["medium"]
    keys: list[str] = []
    out = bytearray()
    dense_src = clean[: 8 * 1024 * 1024]
    for n, i in enumerate(range(0, len(dense_src), 4096)):
        key, text = encoded_key(n)
        keys.append(key)
        out += dense_src[i : i + 4096] + b"\n" + text + b"\n"
    dense = bytes(out)
    found = {m.secret.decode() for m in decoder.scan(dense) if m.decoded}
    rate = throughput(decoder.scan, dense, repeat=1)
    print(
        f"dense encoded: {len(dense) / 1e6:.0f} MB, {len(keys)} encoded keys, "
        f"{len(found & set(keys))} found, {rate:,.0f} MB/s"
    )
    for name, data in (
        ("10 MB of random base64", base64.b64encode(secrets.token_bytes(7_864_320))),
        ("10 MB of %25", b"%25" * 3_495_253),
    ):
        before = decoder.decoded_bytes
        t = time.perf_counter()
        decoder.scan(data)
        took = time.perf_counter() - t
        print(
            f"{name}: {took:.2f} s, {decoder.decoded_bytes - before:,} bytes decoded "
            f"({len(data) / took / 1e6:,.0f} MB/s)"
        )


if __name__ == "__main__":
    main()
