"""Containers: what opening archives costs, and what a bomb costs.

Printed, each beside its floor (the same bytes read without keysweep's caps):

* a directory of text files with no archive in it, walked by ``iter_files`` (the
  archive and binary sniffs are the only new work per file), against reading
  the same files with ``open().read()``;
* a jar-shaped zip of source text, expanded by ``scanner.archives.expand``,
  against ``zipfile`` reading every member with no caps;
* a ~600-byte gzip that expands to 10 GiB, and a zip member of 50 MiB of zeros:
  time and peak memory until each is skipped.

Usage: python bench/archives.py  (a few seconds; builds everything at run time)
"""

from __future__ import annotations

import gzip
import io
import sys
import sysconfig
import tempfile
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scanner.archives import expand
from scanner.sources.files import iter_files

MiB = 1024 * 1024


def best(fn: Callable[[], object], runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def corpus(limit: int) -> list[tuple[str, bytes]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    out, total = [], 0
    for p in sorted(root.rglob("*.py")):
        data = p.read_bytes()
        out.append((str(p.relative_to(root)), data))
        total += len(data)
        if total >= limit:
            break
    return out


def main() -> None:
    files = corpus(32 * MiB)
    size = sum(len(d) for _, d in files)
    with tempfile.TemporaryDirectory() as tmp:
        for rel, data in files:
            p = Path(tmp, rel)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        walk = best(lambda: sum(len(f.data) for f in iter_files(Path(tmp))))
        floor = best(lambda: sum(len(p.read_bytes()) for p in Path(tmp).rglob("*.py")))
    print(f"{len(files)} text files, {size / MiB:.0f} MiB, no archive:")
    print(f"  iter_files (sniffs)   {size / MiB / walk:8.0f} MiB/s")
    print(f"  open().read() floor   {size / MiB / floor:8.0f} MiB/s   ratio {walk / floor:.2f}x")

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in files:
            zf.writestr(rel, data)
    jar = buf.getvalue()
    ours = best(lambda: sum(1 for _ in expand("app.jar", jar)))

    def plain() -> int:
        with zipfile.ZipFile(io.BytesIO(jar)) as zf:
            return sum(len(zf.read(i)) for i in zf.infolist())

    floor = best(plain)
    print(f"a {len(jar) / MiB:.1f} MiB jar of the same files ({size / MiB:.0f} MiB inflated):")
    print(f"  expand (capped)       {size / MiB / ours:8.0f} MiB/s")
    print(f"  zipfile.read floor    {size / MiB / floor:8.0f} MiB/s   ratio {ours / floor:.2f}x")

    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = c.compress(b"\0" * MiB) + c.flush(zlib.Z_FULL_FLUSH)
    inner = gzip.compress(b"")[:10] + one * 10240 + c.flush() + b"\0" * 8
    bomb = gzip.compress(gzip.compress(inner))
    flat = io.BytesIO()
    with zipfile.ZipFile(flat, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (50 * MiB))
    for label, name, data in (
        (f"gzip bomb, {len(bomb)} bytes -> 10 GiB", "bomb.gz", bomb),
        (f"zip, {len(flat.getvalue()) // 1024} KiB -> 50 MiB of zeros", "z.zip", flat.getvalue()),
    ):
        tracemalloc.start()
        t = time.perf_counter()
        got = list(expand(name, data))
        took = time.perf_counter() - t
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"{label}: skipped in {took * 1000:.0f} ms, peak {peak / MiB:.1f} MiB: {got[0]}")


if __name__ == "__main__":
    main()
