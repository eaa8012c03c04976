"""Git, everything a commit publishes: messages, a merge's own change, files that
``.gitattributes`` calls binary, lines of any length and archives a commit adds.
Each test plants a fresh key through real git and reads it back through the CLI."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import KEYSWEEP
from tests.helpers import GIT_ENV, Repo, git, mg_live, mg_test, zip_bytes


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def scan_json(*args: str, cwd: Path | None = None) -> list[dict]:
    p = subprocess.run(
        [KEYSWEEP, "scan", *args, "--format", "json", "--no-progress"],
        cwd=cwd,
        capture_output=True,
        timeout=300,
    )
    assert p.returncode in (0, 1), p.stderr.decode()
    return json.loads(p.stdout)


def by_hash(findings: list[dict]) -> dict[str, dict]:
    return {f["secret_sha256"]: f for f in findings}


def where(f: dict) -> tuple:
    loc = f["source"]
    return loc["commit"], loc["path"], loc["line"]


def hook(repo: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [KEYSWEEP, "hook", *args],
        cwd=repo,
        capture_output=True,
        input=stdin,
        env={**os.environ, **GIT_ENV},
        timeout=120,
    )


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSWEEP_CACHE_DIR", str(tmp_path / "cache"))


# --- commit messages -----------------------------------------------------------------


def test_key_in_a_commit_message_is_found_once_at_the_commit(tmp_path: Path) -> None:
    r = Repo(tmp_path / "msg")
    r.write("README.md", "# demo\n")
    r.commit("init")
    key, in_subject = mg_live(), mg_test()
    r.write("app.py", "print('hi')\n")
    c = r.commit(f"deploy\n\nused the key below to test\n{key}\n")
    r.write("app.py", "print('hi there')\n")
    c2 = r.commit(f"oops {in_subject} pasted\n\nbody")
    found = by_hash(scan_json(str(r.path)))
    assert set(found) == {sha(key), sha(in_subject)}
    f = found[sha(key)]
    assert where(f) == (c, "<commit message>", 4)
    assert f["occurrences"] == 1 and f["source"]["column"] == 1
    s = found[sha(in_subject)]
    assert where(s) == (c2, "<commit message>", 1) and s["source"]["column"] == 6
    # The subject shown beside a finding never holds the key whole.
    out = json.dumps(list(found.values()))
    assert in_subject not in out and key not in out


# --- a merge's own change ------------------------------------------------------------


def test_key_only_in_an_evil_merge_is_found_at_the_merge(tmp_path: Path) -> None:
    r = Repo(tmp_path / "merge")
    r.write("conf.ini", "[a]\nx = 1\n\n[b]\ny = 2\n")
    r.commit("init")
    git(r.path, "checkout", "-q", "-b", "side")
    side_key = mg_test()
    r.write("side.env", f"SIDE={side_key}\n")
    side = r.commit("side adds a key")
    r.write("conf.ini", "[a]\nx = 1\n\n[b]\ny = 3\n")
    r.commit("side changes b")
    git(r.path, "checkout", "-q", "main")
    r.write("conf.ini", "[a]\nx = 9\n\n[b]\ny = 2\n")
    r.commit("main changes a")
    git(r.path, "merge", "-q", "--no-commit", "--no-ff", "side")
    evil = mg_live()
    # The merge resolves cleanly, and slips in a line neither parent has.
    r.write("conf.ini", f"[a]\nx = 9\nkey = {evil}\n\n[b]\ny = 3\n")
    m = r.commit("Merge branch 'side'")
    assert len(git(r.path, "rev-list", "--parents", "-n1", m).split()) == 3
    found = by_hash(scan_json(str(r.path)))
    assert set(found) == {sha(evil), sha(side_key)}
    assert where(found[sha(evil)]) == (m, "conf.ini", 3)
    # What the merge brought in from the side branch is reported where it was added,
    # not a second time at the merge.
    assert where(found[sha(side_key)]) == (side, "side.env", 1)
    assert found[sha(side_key)]["occurrences"] == 1


def test_evil_merge_adding_a_new_file(tmp_path: Path) -> None:
    r = Repo(tmp_path / "merge2")
    r.write("a.txt", "a\n")
    r.commit("init")
    git(r.path, "checkout", "-q", "-b", "side")
    r.write("b.txt", "b\n")
    r.commit("side")
    git(r.path, "checkout", "-q", "main")
    r.write("c.txt", "c\n")
    r.commit("main")
    git(r.path, "merge", "-q", "--no-commit", "--no-ff", "side")
    key = mg_live()
    r.write("deploy/.env", f"# env\nMG_KEY={key}\n")
    m = r.commit("Merge side")
    (f,) = scan_json(str(r.path))
    assert f["secret_sha256"] == sha(key) and where(f) == (m, "deploy/.env", 2)


# --- .gitattributes: -diff and binary --------------------------------------------------


@pytest.fixture
def attributed(tmp_path: Path) -> dict:
    """A clone whose .gitattributes hides two files from git's diff."""
    r = Repo(tmp_path / "attr")
    r.write(".gitattributes", "secrets.cfg -diff\n*.dat binary\n")
    r.write("README.md", "# demo\n")
    r.commit("init")
    k1, k2 = mg_live(), mg_live()
    r.write("secrets.cfg", f"[prod]\nhost = example.org\nkey = {k1}\n")
    r.write("keys.dat", f"one\ntwo\nthree\nfour\nMG={k2}\n")
    c = r.commit("config")
    return {"repo": r, "k1": k1, "k2": k2, "commit": c}


def test_gitattributes_diff_and_binary_files_in_history(attributed: dict) -> None:
    found = by_hash(scan_json(str(attributed["repo"].path)))
    c = attributed["commit"]
    assert where(found[sha(attributed["k1"])]) == (c, "secrets.cfg", 3)
    assert where(found[sha(attributed["k2"])]) == (c, "keys.dat", 5)


def test_gitattributes_files_are_blocked_by_the_hooks(attributed: dict, tmp_path: Path) -> None:
    r: Repo = attributed["repo"]
    remote = r.add_origin(tmp_path / "remote.git")
    base = git(r.path, "rev-parse", "HEAD~1").strip()
    git(r.path, "push", "-q", "origin", f"{base}:refs/heads/main")
    # pre-push: the commit with both files.
    head = attributed["commit"]
    line = f"refs/heads/main {head} refs/heads/main {base}\n".encode()
    p = hook(r.path, "pre-push", "origin", str(remote), stdin=line)
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert "secrets.cfg:3" in err and "keys.dat:5" in err
    assert attributed["k1"] not in err and attributed["k2"] not in err
    # pre-commit: a staged -diff file and a staged binary one, each alone.
    for name, text, at in (
        ("secrets.cfg", "[dev]\nkey = {}\n", "secrets.cfg:2"),
        ("more.dat", "x\n{}\n", "more.dat:2"),
    ):
        key = mg_live()
        r.write(name, text.format(key))
        git(r.path, "add", name)
        p = hook(r.path, "pre-commit")
        err = p.stderr.decode()
        assert p.returncode == 1 and at in err and "commit blocked" in err, err
        assert key not in err
        git(r.path, "reset", "-q", "--hard", "HEAD")
        # The fast path (a cached prefilter) never passes it either.
        r.write(name, text.format(key))
        git(r.path, "add", name)
        assert hook(r.path, "pre-commit").returncode == 1
        git(r.path, "reset", "-q", "--hard", "HEAD")


def test_real_binary_files_are_still_skipped(tmp_path: Path) -> None:
    r = Repo(tmp_path / "bin")
    r.write(".gitattributes", "*.bin binary\n")
    key = mg_live()
    r.write("blob.bin", b"\x00\x01\x02\x03" * 64 + key.encode() + b"\x00")
    r.write("text.txt", key + "\n")
    r.commit("binary and text")
    (f,) = scan_json(str(r.path))
    assert f["source"]["path"] == "text.txt" and f["occurrences"] == 1


# --- lines of any length ---------------------------------------------------------------


def test_key_9mb_into_one_long_line(tmp_path: Path) -> None:
    r = Repo(tmp_path / "long")
    key, after = mg_live(), mg_test()
    filler = b"var a=1;" * (9 * 1024 * 1024 // 8)
    body = b"// minified\n" + filler + f'k="{key}";'.encode() + filler[:100_000]
    body += f'j="{after}";\n'.encode()
    r.write("dist/app.min.js", body)
    c = r.commit("build")
    history = by_hash(scan_json(str(r.path)))
    files = by_hash(scan_json(str(r.path), "--no-history"))
    assert set(history) == set(files) == {sha(key), sha(after)}
    f = history[sha(key)]
    assert where(f) == (c, "dist/app.min.js", 2)
    assert f["source"]["column"] == len(filler) + 4
    assert where(history[sha(after)]) == (c, "dist/app.min.js", 2)


def test_small_chunks_cut_inside_lines_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks cut every few KB inside long lines, between lines and in messages: every
    key keeps its line and column, none is found twice."""
    from scanner.config import Config
    from scanner.scan import ScanOptions, build_engine, scan_git
    from scanner.sources import git_history

    r = Repo(tmp_path / "cuts")
    keys = [mg_live() for _ in range(40)]
    lines, expected = [], {}
    for i, k in enumerate(keys[:30]):
        pad = "y" * (997 * (i + 1) % 20_000)
        lines.append(f"{pad} {k} " + "z" * (i * 131))
        expected[k] = (len(lines), len(pad) + 2)
        lines.append("short")
    r.write("long.txt", "\n".join(lines) + "\n")
    msg = "subject\n\n" + "\n".join(f"{'m' * 3000} {k}" for k in keys[30:]) + "\n"
    c = r.commit(msg)
    monkeypatch.setattr(git_history, "READ_BLOCK", 4096)
    monkeypatch.setattr(git_history, "MAX_CHUNK", 8192)
    result = scan_git(r.path, build_engine(Config()), Config(), ScanOptions(jobs=1))
    found = {f.secret.decode(): f for f in result.findings}
    assert set(found) == set(keys)
    for k, (line, column) in expected.items():
        loc = found[k].location
        assert (loc.commit, loc.path, loc.line, loc.column) == (c, "long.txt", line, column)
        assert found[k].occurrences == 1
    for i, k in enumerate(keys[30:]):
        loc = found[k].location
        assert (loc.path, loc.line, loc.column) == ("<commit message>", 3 + i, 3002)


# --- archives a commit adds -------------------------------------------------------------


def _gz(members: dict[str, bytes]) -> bytes:
    return gzip.compress(members["config/app.env"])


def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "pack", "member"),
    [
        ("dist/bundle.zip", zip_bytes, "dist/bundle.zip!config/app.env"),
        ("lib/app.jar", zip_bytes, "lib/app.jar!config/app.env"),
        ("backup/site.tgz", _tgz, "backup/site.tgz!config/app.env"),
        ("logs/app.env.gz", _gz, "logs/app.env.gz!app.env"),
        ("assets/data.bin", zip_bytes, "assets/data.bin!config/app.env"),  # by its first bytes
    ],
)
def test_archive_added_by_a_commit(tmp_path: Path, name: str, pack, member: str) -> None:  # type: ignore[no-untyped-def]
    r = Repo(tmp_path / "arc")
    r.write("README.md", "# demo\n")
    r.commit("init")
    key = mg_live()
    r.write(name, pack({"config/app.env": f"# prod\nMG_KEY={key}\n".encode(), "x.txt": b"x"}))
    c = r.commit("add a build")
    r.remove(name)
    r.commit("remove it again (still in history)")
    (f,) = scan_json(str(r.path))
    assert f["secret_sha256"] == sha(key)
    assert where(f) == (c, member, 2)


def test_archive_changed_by_a_commit(tmp_path: Path) -> None:
    r = Repo(tmp_path / "arc2")
    r.write("lib/app.jar", zip_bytes({"a.properties": b"name=demo\n"}))
    r.commit("v1")
    key = mg_test()
    r.write("lib/app.jar", zip_bytes({"a.properties": f"name=demo\ntoken={key}\n".encode()}))
    c = r.commit("v2")
    (f,) = scan_json(str(r.path))
    assert f["secret_sha256"] == sha(key) and where(f) == (c, "lib/app.jar!a.properties", 2)


def test_staged_archive_is_blocked_by_pre_commit(tmp_path: Path) -> None:
    r = Repo(tmp_path / "arc-hook")
    r.write("README.md", "# demo\n")
    r.commit("init")
    key = mg_live()
    r.write("dist/bundle.zip", zip_bytes({"settings.py": f"DEBUG = 0\nKEY = '{key}'\n".encode()}))
    git(r.path, "add", "dist/bundle.zip")
    for _ in range(2):  # the full path, then the cached fast path
        p = hook(r.path, "pre-commit")
        err = p.stderr.decode()
        assert p.returncode == 1 and "dist/bundle.zip!settings.py:2" in err, err
        assert key not in err


def test_scan_staged_opens_a_staged_archive_as_the_hook_does(tmp_path: Path) -> None:
    # `keysweep scan --staged` is documented as "what the pre-commit hook sees": a
    # zip and a gzip staged are opened there too, and point at the member's line.
    r = Repo(tmp_path / "arc-staged")
    r.write("README.md", "# demo\n")
    r.commit("init")
    zkey, gkey = mg_live(), mg_test()
    r.write("dist/bundle.zip", zip_bytes({"settings.py": f"DEBUG = 0\nKEY = '{zkey}'\n".encode()}))
    r.write("dumps/env.gz", gzip.compress(f"A=1\nB=2\nTOKEN={gkey}\n".encode()))
    git(r.path, "add", ".")
    found = by_hash(scan_json("--staged", cwd=r.path))
    assert set(found) == {sha(zkey), sha(gkey)}
    z, g = found[sha(zkey)]["source"], found[sha(gkey)]["source"]
    assert (z["path"], z["line"]) == ("dist/bundle.zip!settings.py", 2)
    assert g["path"].startswith("dumps/env.gz!") and g["line"] == 3


def test_pre_push_blocks_a_key_in_a_commit_message(tmp_path: Path) -> None:
    r = Repo(tmp_path / "push-msg")
    r.write("README.md", "# demo\n")
    base = r.commit("init")
    remote = r.add_origin(tmp_path / "remote.git")
    git(r.path, "push", "-q", "origin", "main")
    key = mg_live()
    r.write("README.md", "# demo\nmore\n")
    head = r.commit(f"docs\n\ntested with {key}\n")
    line = f"refs/heads/main {head} refs/heads/main {base}\n".encode()
    p = hook(r.path, "pre-push", "origin", str(remote), stdin=line)
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert f'<commit message>:3 (commit {head[:12]} "docs")' in err
    assert "git commit --amend" in err and "--no-edit" not in err
    assert key not in err


def test_links_for_a_message_and_an_archive_member() -> None:
    from scanner.links import browse_url

    repo, c = "https://github.com/o/r", "a" * 40
    assert browse_url(repo, c, "<commit message>", 3) == f"https://github.com/o/r/commit/{c}"
    assert (
        browse_url(repo, c, "dist/app.jar!config/app.env", 2)
        == f"https://github.com/o/r/blob/{c}/dist/app.jar"
    )


def test_git_log_cc_on_stdin_keeps_the_merge_line(tmp_path: Path) -> None:
    r = Repo(tmp_path / "stdin-cc")
    r.write("conf.ini", "a = 1\n\n\nb = 2\n")
    r.commit("init")
    git(r.path, "checkout", "-q", "-b", "side")
    r.write("conf.ini", "a = 1\n\n\nb = 3\n")
    r.commit("side")
    git(r.path, "checkout", "-q", "main")
    r.write("conf.ini", "a = 9\n\n\nb = 2\n")
    r.commit("main")
    git(r.path, "merge", "-q", "--no-commit", "--no-ff", "side")
    key = mg_live()
    r.write("conf.ini", f"a = 9\nkey = {key}\n\n\nb = 3\n")
    m = r.commit("Merge side")
    patch = git(r.path, "log", "-p", "--cc", "-1", m).encode()
    p = subprocess.run(
        [KEYSWEEP, "scan", "-", "--format", "json"], input=patch, capture_output=True, timeout=60
    )
    (f,) = json.loads(p.stdout)
    assert f["secret_sha256"] == sha(key)
    assert (f["source"]["commit"], f["source"]["path"], f["source"]["line"]) == (m, "conf.ini", 2)
