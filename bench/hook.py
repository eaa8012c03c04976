"""Pre-commit hook latency: a one-file staged change in a repository of 5,000 files.

Prints the median wall time (N runs) of:

* ``keysweep hook pre-commit`` with a warm cache (the usual case: the compiled
  prefilter database is loaded, nothing else is imported),
* the same with a cold cache (the full path: rule pack, engine, compile),
* ``gitleaks git --pre-commit --staged`` and ``detect-secrets-hook`` on the
  same staged change, when installed (``pip install -e '.[bench]'``),

as ratios, then where keysweep's start-up goes (``python -X importtime``).

Usage: python bench/hook.py [--runs 21] [--files 5000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "B",
    "GIT_AUTHOR_EMAIL": "b@example.com",
    "GIT_COMMITTER_NAME": "B",
    "GIT_COMMITTER_EMAIL": "b@example.com",
}


def tool(name: str) -> str | None:
    return shutil.which(name, path=os.path.dirname(sys.executable)) or shutil.which(name)


def build_repo(root: Path, files: int) -> Path:
    repo = root / "repo"
    repo.mkdir()
    sources = sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py"))
    for i in range(files):
        src = sources[i % len(sources)]
        dest = repo / f"pkg{i % 50}" / f"mod{i}.py"
        dest.parent.mkdir(exist_ok=True)
        dest.write_bytes(src.read_bytes()[:20000])
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=repo, check=True, env=ENV)
    target = repo / "pkg7" / "mod7.py"
    target.write_text(target.read_text() + "\n\ndef added(x):\n    return x * 2  # new code\n")
    subprocess.run(["git", "add", str(target)], cwd=repo, check=True)
    return repo


def median_wall(
    cmd: list[str], cwd: Path, runs: int, env: dict[str, str], before: list[str] | None = None
) -> float:
    times = []
    for _ in range(runs):
        if before:
            subprocess.run(before, check=True)
        t = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def import_budget(repo: Path, env: dict[str, str]) -> list[tuple[int, str]]:
    code = (
        "import sys; sys.argv[1:] = ['hook', 'pre-commit']; "
        "from scanner.entry import main; sys.exit(main())"
    )
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
    )
    rows = []
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            if not name.startswith("  "):  # top level only
                rows.append((int(cumulative), name.strip()))
    return sorted(rows, reverse=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--files", type=int, default=5000)
    args = ap.parse_args()
    keysweep = tool("keysweep") or "keysweep"
    with tempfile.TemporaryDirectory(prefix="ks-hook-bench-") as tmp:
        root = Path(tmp)
        repo = build_repo(root, args.files)
        cache = root / "cache"
        env = {**ENV, "KEYSWEEP_CACHE_DIR": str(cache)}
        subprocess.run([keysweep, "hook", "pre-commit"], cwd=repo, env=env, check=True)
        rows: dict[str, float] = {
            "keysweep (warm cache)": median_wall(
                [keysweep, "hook", "pre-commit"], repo, args.runs, env
            ),
            "keysweep (cold cache)": median_wall(
                [keysweep, "hook", "pre-commit"],
                repo,
                args.runs,
                env,
                before=["rm", "-rf", str(cache)],
            ),
        }
        if gl := tool("gitleaks"):
            rows["gitleaks git --pre-commit --staged"] = median_wall(
                [gl, "git", "--pre-commit", "--staged", "--no-banner", "."], repo, args.runs, env
            )
        if ds := tool("detect-secrets-hook"):
            rows["detect-secrets-hook"] = median_wall([ds, "pkg7/mod7.py"], repo, args.runs, env)
        floor = median_wall([sys.executable, "-c", "pass"], repo, args.runs, env)
        ks = rows["keysweep (warm cache)"]
        print(
            f"hook benchmark: one staged file in a repository of {args.files} files, "
            f"median of {args.runs} runs"
        )
        print(f"{'':36} {'median s':>9} {'keysweep / it':>14}")
        for name, t in rows.items():
            print(f"{name:36} {t:9.3f} {ks / t:14.2f}")
        print(f"{'floor: python -c pass':36} {floor:9.3f} {ks / floor:14.2f}")
        print(f"target: <= 0.120 s median -> {ks:.3f} s ({'met' if ks <= 0.12 else 'NOT met'})")
        for label, e in (("warm", env), ("cold", {**env, "KEYSWEEP_CACHE_DIR": str(root / "c2")})):
            budget = import_budget(repo, e)
            total = sum(c for c, _ in budget) / 1000
            top = ", ".join(f"{n} {c / 1000:.0f}" for c, n in budget[:6])
            print(f"import budget ({label}): {total:.0f} ms in all; largest (ms): {top}")


if __name__ == "__main__":
    main()
