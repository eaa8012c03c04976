"""History scans: every finding's commit, path and line, on a real repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.config import Config
from scanner.scan import ScanOptions, build_engine, scan_git
from scanner.sources import git_history
from tests.helpers import Repo, git, github_token, mg_live, mg_test


def scan(repo: Path, **opts: object):  # type: ignore[no-untyped-def]
    return scan_git(repo, build_engine(Config()), Config(), ScanOptions(**opts))  # type: ignore[arg-type]


@pytest.fixture
def history(tmp_path: Path) -> dict:
    """Keys added, moved and deleted across commits and branches."""
    r = Repo(tmp_path / "repo")
    live, test, gh, late = mg_live(), mg_test(), github_token(), mg_live()
    r.write("README.md", "# demo\n")
    c1 = r.commit("init")
    r.write("app/settings.py", f"DEBUG = True\nNAME = 'x'\nAPI_KEY = '{live}'\n")
    c2 = r.commit("add settings with a key")
    # The key moves to another file, its old line goes away.
    r.write("app/settings.py", "DEBUG = True\nNAME = 'x'\n")
    r.write("conf/keys.env", "\n".join(["# keys", "", "", "", f"MG={live}", ""]))
    c3 = r.commit("move key to env file")
    r.write('odd dir/ünïcode "q".txt', "one\ntwo\n" + f"token={gh}\n")
    c4 = r.commit("weird path")
    # Deleted again: still leaked in history.
    r.remove('odd dir/ünïcode "q".txt')
    c5 = r.commit("remove token")
    git(r.path, "checkout", "-q", "-b", "feature")
    r.write("feature.yaml", "a: 1\n" * 7 + f"key: {test}\n")
    c6 = r.commit("feature branch key")
    git(r.path, "checkout", "-q", "main")
    r.write("late.txt", f"{late}\n")
    c7 = r.commit("late key")
    return {
        "repo": r.path,
        "live": live,
        "test": test,
        "gh": gh,
        "late": late,
        "commits": [c1, c2, c3, c4, c5, c6, c7],
    }


def by_secret(result) -> dict:  # type: ignore[no-untyped-def]
    return {f.secret.decode(): f for f in result.findings}


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_finding_has_commit_path_line(history: dict, jobs: int) -> None:
    result = scan(history["repo"], jobs=jobs)
    c = history["commits"]
    found = by_secret(result)
    assert set(found) == {history["live"], history["test"], history["gh"], history["late"]}
    assert result.commits == 7

    live = found[history["live"]]
    assert (live.location.commit, live.location.path, live.location.line) == (
        c[1],
        "app/settings.py",
        3,
    )
    assert live.occurrences == 2
    assert [(loc.commit, loc.path, loc.line) for loc in live.locations] == [
        (c[1], "app/settings.py", 3),
        (c[2], "conf/keys.env", 5),
    ]
    assert live.location.author == "Ada Tester" and live.location.email == "ada@example.com"
    assert live.location.date == "2024-01-02T12:00:00+00:00"

    gh = found[history["gh"]]
    assert (gh.location.commit, gh.location.path, gh.location.line) == (
        c[3],
        'odd dir/ünïcode "q".txt',
        3,
    )
    test = found[history["test"]]
    assert (test.location.commit, test.location.path, test.location.line) == (
        c[5],
        "feature.yaml",
        8,
    )
    late = found[history["late"]]
    assert (late.location.commit, late.location.path, late.location.line) == (c[6], "late.txt", 1)


def test_removed_lines_are_not_reported_again(history: dict) -> None:
    # Commit 3 removes the key from settings.py: the removal is not an occurrence.
    live = by_secret(scan(history["repo"]))[history["live"]]
    assert all(loc.commit != history["commits"][4] for loc in live.locations)
    assert live.occurrences == 2


def test_since_limits_to_new_commits(history: dict) -> None:
    c = history["commits"]
    result = scan(history["repo"], since=c[4])
    assert set(by_secret(result)) == {history["test"], history["late"]}
    assert result.commits == 2


def test_tiny_blocks_split_commits_and_keep_lines(
    history: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Force chunks to be cut inside commits, files and hunks: locations must not move."""
    r = Repo(history["repo"].parent / "big")
    keys = [mg_live() for _ in range(12)]
    lines = []
    for i in range(3000):
        lines.append(f"filler line {i} " + "x" * 40)
        if i % 250 == 0:
            lines.append(f"K{i} = '{keys[i // 250]}'")
    r.write("big.py", "\n".join(lines) + "\n")
    sha = r.commit("one big commit")
    expected = {k: i + 1 for i, line in enumerate(lines) for k in keys if k in line}
    monkeypatch.setattr(git_history, "READ_BLOCK", 4096)
    monkeypatch.setattr(git_history, "MAX_CHUNK", 8192)
    found = by_secret(scan(r.path, jobs=1))
    assert {k: (f.location.line, f.location.commit, f.location.path) for k, f in found.items()} == {
        k: (line, sha, "big.py") for k, line in expected.items()
    }


def test_binary_files_in_history_are_skipped(tmp_path: Path) -> None:
    r = Repo(tmp_path / "bin")
    key = mg_live()
    r.write("blob.bin", b"\x00\x01\x02" + key.encode() + b"\x00")
    r.write("text.txt", key + "\n")
    r.commit("binary and text")
    (f,) = scan(r.path).findings
    assert f.location.path == "text.txt" and f.occurrences == 1


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(git_history.GitError, match="not a git repository"):
        git_history.open_repository(tmp_path)


def test_empty_repository(tmp_path: Path) -> None:
    r = Repo(tmp_path / "empty")
    result = scan(r.path)
    assert result.findings == [] and result.commits == 0


def test_unquote_path() -> None:
    assert git_history.unquote_path(b'"a\\tb\\"c\\303\\274"') == 'a\tb"cü'
    assert git_history.unquote_path(b"plain/path.txt") == "plain/path.txt"


def test_private_key_in_history_and_in_files_is_one_secret(tmp_path: Path) -> None:
    from scanner.examples import expand
    from scanner.scan import scan_path

    pem = expand(
        "-----BEGIN RSA PRIVATE KEY-----\n{b64:64}\n{b64:64}\n{b64:20}==\n"
        "-----END RSA PRIVATE KEY-----\n"
    )
    r = Repo(tmp_path / "pem")
    r.write("keys/server.key", pem)
    r.commit("add key")
    (hist,) = scan(r.path).findings
    (files,) = scan_path(r.path, build_engine(Config()), Config(), ScanOptions()).findings
    assert hist.secret_sha256 == files.secret_sha256
    assert hist.secret == pem.rstrip("\n").encode()
    assert hist.redacted == "-----BEGIN RSA PRIVATE KEY-----…"
    assert (hist.location.path, hist.location.line) == ("keys/server.key", 1)
