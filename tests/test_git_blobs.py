"""A full-history scan reads each file version (blob) once; ranges stay on diffs.

Each test plants fresh keys through real git and checks what a person reading the
report would: the commit, path and line where a key was added, how often it is
counted, and that a range scan still reports only what the range added."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from scanner.config import Config
from scanner.engine import Match
from scanner.findings import FindingSet, Location
from scanner.rules import load_rules
from scanner.scan import ScanOptions, build_engine, scan_git
from scanner.sources import git_history
from scanner.sources.git_history import GitHistorySource
from tests.conftest import KEYSWEEP
from tests.helpers import Repo, git, github_token, mg_live, mg_test, zip_bytes


def scan(repo: Path, by_blobs: bool | None = None, **opts: object):  # type: ignore[no-untyped-def]
    engine, config = build_engine(Config()), Config()
    source = GitHistorySource(
        repo,
        str(repo),
        since=opts.pop("since", None),  # type: ignore[arg-type]
        rev_args=opts.pop("rev_args", None),  # type: ignore[arg-type]
        jobs=opts.pop("jobs", 2),  # type: ignore[arg-type]
        by_blobs=by_blobs,
    )
    from scanner.scan import scan_source

    return scan_source(source, engine, config, ScanOptions(**opts))  # type: ignore[arg-type]


def found(result) -> dict:  # type: ignore[no-untyped-def]
    return {f.secret.decode(): f for f in result.findings}


def where(f) -> tuple:  # type: ignore[no-untyped-def]
    return f.location.commit, f.location.path, f.location.line


def all_places(f) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [(x.commit, x.path, x.line) for x in f.locations]


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSWEEP_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def everything(tmp_path: Path) -> dict:
    """A history with a key in each place a commit publishes one."""
    r = Repo(tmp_path / "all")
    k = {name: mg_live() for name in ("file", "moved", "merge", "attr", "zip", "msg", "tag")}
    k["branch"], k["gh"] = mg_test(), github_token()
    r.write(".gitattributes", "*.cfg -diff\n")
    r.write("app/settings.py", f"DEBUG = True\nAPI_KEY = '{k['file']}'\n")
    r.write("conf/old.env", f"# keys\nMG={k['moved']}\n")
    c = {"init": r.commit("init")}
    r.write("app/settings.py", f"DEBUG = False\nAPI_KEY = '{k['file']}'\n")  # still there
    r.remove("conf/old.env")
    r.write("conf/new.env", f"# keys\n\nMG={k['moved']}\n")  # moved (and changed)
    r.write("secrets.cfg", f"[prod]\nkey = {k['attr']}\n")
    r.write("dist/app.zip", zip_bytes({"config/app.env": f"# prod\nKEY={k['zip']}\n".encode()}))
    c["second"] = r.commit(f"second\n\ntested with {k['msg']}\n")
    git(r.path, "checkout", "-q", "-b", "side")
    r.write("side.txt", f"token = {k['gh']}\n")
    c["side"] = r.commit("side")
    git(r.path, "checkout", "-q", "main")
    r.write("README.md", "# demo\n")
    r.commit("main moves on")
    git(r.path, "merge", "-q", "--no-commit", "--no-ff", "side")
    r.write("merge.ini", f"[merge]\nkey = {k['merge']}\n")
    c["merge"] = r.commit("Merge branch 'side'")
    git(r.path, "checkout", "-q", "-b", "feature")
    r.write("feature.yaml", "a: 1\n" * 3 + f"key: {k['branch']}\n")
    c["branch"] = r.commit("feature branch key")
    # A commit only a tag reaches (no branch): still published.
    git(r.path, "checkout", "-q", "--detach", "main")
    r.write("tagged.txt", f"\n{k['tag']}\n")
    c["tag"] = r.commit("tagged only")
    git(r.path, "tag", "v-hidden")
    git(r.path, "checkout", "-q", "main")
    return {"repo": r.path, "keys": k, "commits": c}


def test_every_place_a_commit_publishes_a_key(everything: dict) -> None:
    k, c = everything["keys"], everything["commits"]
    result = scan(everything["repo"], by_blobs=True)
    f = found(result)
    assert set(f) == set(k.values())
    assert where(f[k["file"]]) == (c["init"], "app/settings.py", 2)
    assert f[k["file"]].occurrences == 1  # the second version still holding it adds nothing
    assert all_places(f[k["moved"]]) == [
        (c["init"], "conf/old.env", 2),
        (c["second"], "conf/new.env", 3),
    ]
    assert where(f[k["attr"]]) == (c["second"], "secrets.cfg", 2)  # a -diff file
    assert where(f[k["zip"]]) == (c["second"], "dist/app.zip!config/app.env", 2)
    assert where(f[k["msg"]]) == (c["second"], "<commit message>", 3)
    assert where(f[k["gh"]]) == (c["side"], "side.txt", 1)  # not again at the merge
    assert f[k["gh"]].occurrences == 1
    assert where(f[k["merge"]]) == (c["merge"], "merge.ini", 2)  # the merge's own change
    assert where(f[k["branch"]]) == (c["branch"], "feature.yaml", 4)  # not the default branch
    assert where(f[k["tag"]]) == (c["tag"], "tagged.txt", 2)  # only a tag reaches it
    loc = f[k["merge"]].location
    assert loc.author == "Ada Tester" and loc.email == "ada@example.com"
    assert loc.subject == "Merge branch 'side'" and loc.date.startswith("2024-01-")
    assert result.commits == len(git(everything["repo"], "rev-list", "--all").split())


def test_blobs_and_diffs_agree_where_a_key_is_added_once(everything: dict) -> None:
    """Where each key was added once, both ways of reading history say the same."""
    blobs = found(scan(everything["repo"], by_blobs=True))
    diffs = found(scan(everything["repo"], by_blobs=False))
    assert set(blobs) == set(diffs)
    for key, f in blobs.items():
        g = diffs[key]
        assert (all_places(f), f.occurrences) == (all_places(g), g.occurrences), key
        assert (f.location.column, f.location.subject) == (g.location.column, g.location.subject)


def test_a_key_removed_and_added_again_is_one_occurrence(tmp_path: Path) -> None:
    """A key that comes back at the same path is one occurrence, where it was first added
    (a diff counts each time the line is added); at another path it is another."""
    r = Repo(tmp_path / "again")
    key = mg_live()
    r.write("a.env", f"KEY={key}\n")
    first = r.commit("add")
    r.write("a.env", "KEY=\n")
    r.commit("remove")
    r.write("a.env", f"# back\nKEY={key}\n")
    r.commit("add again")
    r.write("copy/a.env", f"KEY={key}\n")
    copied = r.commit("copy")
    (f,) = scan(r.path).findings
    assert where(f) == (first, "a.env", 1)
    assert all_places(f) == [(first, "a.env", 1), (copied, "copy/a.env", 1)]
    assert f.occurrences == 2


def test_a_key_kept_through_many_versions_is_reported_where_added(tmp_path: Path) -> None:
    r = Repo(tmp_path / "versions")
    key = mg_live()
    lines = ["x = 1", "y = 2"]
    r.write("conf.py", "\n".join(lines) + "\n")
    r.commit("v0")
    lines.append(f"KEY = '{key}'")
    r.write("conf.py", "\n".join(lines) + "\n")
    added = r.commit("key")
    for i in range(20):
        lines.insert(0, f"# line {i}")  # the key's line number moves down
        r.write("conf.py", "\n".join(lines) + "\n")
        r.commit(f"v{i + 2}")
    (f,) = scan(r.path).findings
    assert where(f) == (added, "conf.py", 3) and f.occurrences == 1


def test_a_key_in_a_file_version_written_twice_in_one_blob(tmp_path: Path) -> None:
    """Two lines of one version holding the same key are two occurrences, as in a diff."""
    r = Repo(tmp_path / "twice")
    key = mg_live()
    r.write("a.txt", f"one {key}\ntwo\nthree {key}\n")
    c = r.commit("twice")
    (f,) = scan(r.path).findings
    assert all_places(f) == [(c, "a.txt", 1), (c, "a.txt", 3)] and f.occurrences == 2


def test_range_scans_report_only_what_the_range_added(tmp_path: Path) -> None:
    """A range (and --since, and the pre-push hook) reads diffs: a key that was in the
    file before the range is not reported again when the range changes that file."""
    r = Repo(tmp_path / "range")
    old, new = mg_live(), mg_test()
    r.write("app.env", f"OLD={old}\nNAME=a\n")
    base = r.commit("old key")
    r.write("app.env", f"OLD={old}\nNAME=b\nNEW={new}\n")
    head = r.commit("new key")
    assert set(found(scan(r.path, rev_args=[f"{base}..{head}"]))) == {new}
    assert set(found(scan(r.path, since=base))) == {new}
    p = subprocess.run(
        [KEYSWEEP, "scan", str(r.path), f"--log-opts={base}..{head}", "--format", "json"],
        capture_output=True,
        timeout=120,
    )
    assert {f["source"]["line"] for f in json.loads(p.stdout)} == {3}
    # The whole history reports both, each where it was added.
    full = found(scan(r.path))
    assert where(full[old]) == (base, "app.env", 1) and where(full[new]) == (head, "app.env", 3)


def test_a_long_blob_is_read_in_windows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A blob longer than a window is scanned window by window: keys near every cut keep
    their line and column, none is counted twice."""
    r = Repo(tmp_path / "long")
    keys = [mg_live() for _ in range(24)]
    lines, expected = [], {}
    for i, k in enumerate(keys):
        pad = "p" * (i * 613 % 9000)
        lines.append(f"{pad}={k};" + "q" * (i * 211 % 3000))
        expected[k] = (len(lines), len(pad) + 2)
        lines.extend(["filler"] * (i % 3))
    r.write("big.txt", "\n".join(lines) + "\n")
    c = r.commit("long")
    monkeypatch.setattr(git_history, "MAX_CHUNK", 4096)
    f = found(scan(r.path, jobs=1))
    assert set(f) == set(keys)
    for k, (line, column) in expected.items():
        loc = f[k].location
        assert (loc.commit, loc.path, loc.line, loc.column) == (c, "big.txt", line, column), k
        assert f[k].occurrences == 1


def test_an_archive_over_the_cap_is_named_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = Repo(tmp_path / "cap")
    key = mg_live()
    pad = random.Random(7).randbytes(8192)  # does not compress: the zip is over 4 KiB
    r.write("big.zip", zip_bytes({"a.env": f"KEY={key}\n".encode(), "pad.bin": pad}))
    r.write("small.zip", zip_bytes({"b.env": f"KEY={key}\n".encode()}))
    c = r.commit("archives")
    size = len((r.path / "big.zip").read_bytes())
    monkeypatch.setattr(git_history, "MAX_CHUNK", 4096)  # both are "long" blobs
    monkeypatch.setattr(git_history, "ARCHIVE_BLOB_MAX", size - 1)
    result = scan(r.path)
    (f,) = result.findings
    assert where(f) == (c, "small.zip!b.env", 1) and f.occurrences == 1
    assert any(e.startswith("big.zip: larger than") for e in result.skipped.errors)


def test_submodules_and_binary_blobs_are_passed_over(tmp_path: Path) -> None:
    sub = Repo(tmp_path / "sub")
    sub.write("x.txt", "x\n")
    sub.commit("sub")
    r = Repo(tmp_path / "super")
    key = mg_live()
    git(r.path, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub.path), "dep")
    r.write("logo.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + key.encode() + b"\x00\x01\x02")
    r.write("notes.txt", f"{key}\n")
    c = r.commit("submodule, image and notes")
    (f,) = scan(r.path).findings
    assert where(f) == (c, "notes.txt", 1) and f.occurrences == 1


def test_hostile_names_in_history(tmp_path: Path) -> None:
    """Paths with quotes, tabs, newlines and bytes that are not UTF-8, and an author
    name with control characters, come out as git stores them, nothing run."""
    r = Repo(tmp_path / "names")
    key = mg_live()
    name = 'we"ird\tdir/new\nline \\ $(touch x).env'
    r.write(name, f"K={key}\n")
    raw = tmp_path / "names" / "bytes"
    raw.mkdir()
    (raw / "caf\xe9.env".encode("latin-1").decode("utf-8", "surrogateescape")).write_bytes(
        f"K={key}\n".encode()
    )
    env = {"GIT_AUTHOR_NAME": "Eve \x1b[31mRed", "GIT_AUTHOR_EMAIL": "eve@example.com"}
    git(r.path, "add", "-A")
    subprocess.run(["git", "-C", str(r.path), "commit", "-qm", "names"], check=True, env={
        **__import__("os").environ, "GIT_COMMITTER_NAME": "c", "GIT_COMMITTER_EMAIL": "c@x",
        "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path), **env,
    })  # fmt: skip
    (f,) = scan(r.path).findings
    assert sorted(x.path for x in f.locations) == sorted([name, "bytes/caf\\xe9.env"])
    assert f.location.author == "Eve \x1b[31mRed"
    assert not (r.path / "x").exists()


def test_per_path_keeps_the_earliest_version_whatever_order_it_comes_in() -> None:
    """Blobs are scanned in parallel: an older version found after a newer one replaces
    it; a third version, later still, adds nothing."""
    (rule,) = [r for r in load_rules() if r.id.startswith("mg-live")][:1]
    key = mg_live().encode()
    m = Match(rule, 0, len(key), key)
    fs = FindingSet()

    def at(commit: str, path: str, line: int) -> Location:
        return Location("git", path=path, line=line, commit=commit)

    fs.add(m, at("new", "a.env", 9), -1, per_path=True)
    fs.add(m, at("other", "b.env", 1), -2, per_path=True)
    fs.add(m, at("old", "a.env", 3), -5, per_path=True)
    fs.add(m, at("old", "a.env", 7), -5, per_path=True)  # the same version, another line
    fs.add(m, at("newest", "a.env", 1), 0, per_path=True)
    (f,) = fs.findings()
    assert (f.location.commit, f.location.line) == ("old", 3)
    assert [(x.commit, x.path, x.line) for x in f.locations] == [
        ("old", "a.env", 3),
        ("other", "b.env", 1),
        ("old", "a.env", 7),
    ]
    assert f.occurrences == 3


def test_scan_git_of_a_whole_history_reads_blobs(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Which way is taken: blobs for every ref's whole history, diffs for a range."""
    from scanner.sources import git_blobs

    r = Repo(tmp_path / "which")
    r.write("a.txt", f"{mg_live()}\n")
    r.commit("a")
    used: list[str] = []
    feed = git_blobs.BlobHistory.feed

    def spy(self, sink):  # type: ignore[no-untyped-def]
        used.append("blobs")
        return feed(self, sink)

    monkeypatch.setattr(git_blobs.BlobHistory, "feed", spy)
    engine, config = build_engine(Config()), Config()
    assert len(scan_git(r.path, engine, config, ScanOptions()).findings) == 1
    assert used == ["blobs"]
    assert len(scan_git(r.path, engine, config, ScanOptions(), rev_args=["HEAD"]).findings) == 1
    assert len(scan_git(r.path, engine, config, ScanOptions(), paths=["a.txt"]).findings) == 1
    assert used == ["blobs"]
    # A repository with more objects than blob mode may remember is read as diffs.
    monkeypatch.setattr(git_blobs, "MAX_OBJECTS", 1)
    assert len(scan_git(r.path, engine, config, ScanOptions()).findings) == 1
    assert used == ["blobs"]


def test_a_new_version_is_read_where_it_changed_and_copies_whole(tmp_path: Path) -> None:
    """Versions of a large file are compared with the version before: a key in the part
    that did not change is where it was added; a copy of the file at another path (in the
    same commit or later) is a file of its own, all its keys reported there, as a diff
    reports a file added."""
    r = Repo(tmp_path / "big")
    k1, k2, k3 = mg_live(), mg_test(), github_token()
    lines = [f"filler line {i:04d} " + "abcdefgh" * 5 for i in range(1200)]
    lines[9] = f"FIRST = '{k1}'"
    r.write("big.txt", "\n".join(lines) + "\n")
    c1 = r.commit("v1")
    lines[899] = f"SECOND = '{k2}'"
    r.write("big.txt", "\n".join(lines) + "\n")
    r.write("same-commit-copy.txt", "\n".join(lines) + "\n")
    c2 = r.commit("v2 and a copy")
    lines.insert(600, f"THIRD = '{k3}'")
    r.write("big.txt", "\n".join(lines) + "\n")
    c3 = r.commit("v3")
    r.write("later/copy.txt", "\n".join(lines) + "\n")
    c4 = r.commit("copied later")
    f = found(scan(r.path, by_blobs=True))
    assert sorted(all_places(f[k1])) == sorted(
        [(c1, "big.txt", 10), (c2, "same-commit-copy.txt", 10), (c4, "later/copy.txt", 10)]
    )
    assert sorted(all_places(f[k2])) == sorted(
        [(c2, "big.txt", 900), (c2, "same-commit-copy.txt", 900), (c4, "later/copy.txt", 901)]
    )
    assert sorted(all_places(f[k3])) == sorted([(c3, "big.txt", 601), (c4, "later/copy.txt", 601)])
    assert [f[k].occurrences for k in (k1, k2, k3)] == [3, 3, 2]
    diffs = found(scan(r.path, by_blobs=False))
    for k in (k1, k2, k3):
        assert sorted(all_places(f[k])) == sorted(all_places(diffs[k]))


def test_versions_of_a_large_file_are_read_where_they_changed(tmp_path: Path) -> None:
    r = Repo(tmp_path / "many")
    lines = [f"line {i:05d} " + "abcdefgh" * 6 for i in range(1500)]
    commits = []
    for v in range(6):
        lines[200 * v + 100] = f"changed in version {v}"
        r.write("data.txt", "\n".join(lines) + "\n")
        commits.append(r.commit(f"v{v}"))
    whole = sum(len(git(r.path, "show", f"{c}:data.txt")) for c in commits)
    assert scan(r.path, by_blobs=True).bytes_scanned < whole // 2
    assert scan(r.path, by_blobs=False).bytes_scanned < whole // 2  # diffs, for scale


def test_a_private_key_replaced_inside_its_armour_is_found(tmp_path: Path) -> None:
    """The lines around a change are read with it: a PEM key whose body changes while
    its BEGIN and END lines stay is found in the new version (a diff shows the body
    alone)."""
    from scanner.examples import expand

    def pem() -> str:
        body = "\n".join(expand("{b64:64}") for _ in range(12))
        return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"

    r = Repo(tmp_path / "pem")
    before = "\n".join(f"# notes {i:03d} " + "z" * 50 for i in range(200))
    first, second = pem(), pem()
    r.write("keys.py", f'{before}\nKEY = """{first}"""\n{before}\n')
    c1 = r.commit("key")
    r.write("keys.py", f'{before}\nKEY = """{second}"""\n{before}\n')
    c2 = r.commit("new key")
    f = found(scan(r.path, by_blobs=True))
    assert where(f[first]) == (c1, "keys.py", 201) and where(f[second]) == (c2, "keys.py", 201)


def test_git_started_before_the_engine_is_stopped_on_an_error(tmp_path: Path) -> None:
    """The CLI starts reading a whole history before it reads its configuration: a
    configuration that fails ends the scan with its error, git stopped, nothing hung."""
    r = Repo(tmp_path / "early")
    r.write("a.txt", f"{mg_live()}\n")
    r.commit("a")
    p = subprocess.run(
        [KEYSWEEP, "scan", str(r.path), "--config", str(tmp_path / "missing.toml")],
        capture_output=True,
        timeout=120,
    )
    assert p.returncode == 2 and b"missing.toml" in p.stderr


def _damaged(tmp_path: Path, what: str) -> Path:
    """A repository with a key in a readable commit and one object of an older commit
    gone (``what``: its tree, or the blob of a file it added)."""
    r = Repo(tmp_path / what)
    r.write("a/old.txt", f"OLD = '{mg_live()}'\n")
    first = r.commit("first")
    r.write("b.txt", f"NEW = '{mg_live()}'\n")
    r.commit("second")
    oid = git(r.path, "rev-parse", f"{first}:a" if what == "tree" else f"{first}:a/old.txt")
    (r.path / ".git" / "objects" / oid[:2] / oid.strip()[2:]).unlink()
    return r.path


@pytest.mark.parametrize("what", ["tree", "blob"])
def test_a_damaged_repository_is_an_error_not_a_clean_history(tmp_path: Path, what: str) -> None:
    """A history git cannot read to its end (an object gone) ends the scan with an error
    that names it (exit 2), never 'no leaks found' over the part that was read."""
    repo = _damaged(tmp_path, what)
    p = subprocess.run([KEYSWEEP, "scan", str(repo)], capture_output=True, timeout=120)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert "keysweep: error:" in err and "--log-opts=--all" in err
    assert (what == "tree" and "unable to read tree" in err) or "old.txt" in err
    assert b"no leaks found" not in p.stdout + p.stderr


def _git_wrapper(
    tmp_path: Path, command: str, then: str = "| head -c 300; kill -9 $$"
) -> dict[str, str]:
    """PATH with a ``git`` whose ``command`` (log, cat-file) dies (SIGKILL) after
    writing 300 bytes, as a git killed mid-way would; or whose output goes through
    ``then`` (shell: a pipe, then what the wrapper does)."""
    import os
    import shutil

    real = shutil.which("git")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "git"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" {command} "*) "{real}" "$@" {then} ;; esac\n'
        f'exec "{real}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.mark.parametrize("command", ["log", "cat-file"])
def test_git_killed_mid_way_is_an_error(tmp_path: Path, command: str) -> None:
    """git log, or git cat-file in the middle of the one file's bytes, killed: the scan
    ends with an error (exit 2), not with what it read before."""
    r = Repo(tmp_path / "r")
    filler = "\n".join(f"line {j} of the file" for j in range(100))
    r.write("big.txt", f"{filler}\nKEY = '{mg_live()}'\n")
    r.commit("the file")
    for i in range(20):
        r.commit(f"empty commit {i}")
    env = _git_wrapper(tmp_path, command)
    p = subprocess.run([KEYSWEEP, "scan", str(r.path)], capture_output=True, timeout=120, env=env)
    assert p.returncode == 2, p.stderr.decode()
    assert b"keysweep: error:" in p.stderr and b"git" in p.stderr
    assert b"no leaks found" not in p.stdout + p.stderr


def test_a_shallow_clone_is_read_whole(tmp_path: Path) -> None:
    """A shallow clone (its oldest commit's parents absent): every file of that commit
    and after is read, as a diff scan reads them."""
    r = Repo(tmp_path / "src")
    k1, k2 = mg_live(), mg_test()
    r.write("a.txt", f"A = '{k1}'\n")
    r.commit("one")
    r.write("b.txt", f"B = '{k2}'\n")
    r.commit("two")
    shallow = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{r.path}", str(shallow)], check=True
    )
    blobs, diffs = found(scan(shallow, by_blobs=True)), found(scan(shallow, by_blobs=False))
    assert set(blobs) == set(diffs) == {k1, k2}
    assert {k: where(f) for k, f in blobs.items()} == {k: where(f) for k, f in diffs.items()}


def test_an_error_in_a_scanner_thread_ends_the_scan(tmp_path: Path) -> None:
    """A scanner that fails: ``feed`` raises its error once every thread has ended and
    git is stopped (no hang, no partial 'clean' result)."""
    r = Repo(tmp_path / "r")
    for i in range(5):
        r.write(f"f{i}.txt", f"file {i}\n")
        r.commit(f"c{i}")
    source = GitHistorySource(r.path, str(r.path), by_blobs=True)

    def sink(fragment: object) -> None:
        if hasattr(fragment, "segments"):
            raise RuntimeError("scanner failed")

    with pytest.raises(RuntimeError, match="scanner failed"):
        source.feed(sink)  # type: ignore[arg-type]
    blobs = source._blobs
    assert blobs._cat.returncode is not None and blobs._log.returncode is not None
    assert not any(t.is_alive() for t in blobs._threads)


@pytest.mark.parametrize("by_blobs", [True, False])
def test_an_author_name_cannot_pass_for_the_date(tmp_path: Path, by_blobs: bool) -> None:
    """A hand-made author name holding the field separator and a terminal escape: the
    finding's date is still the commit's, and the text report writes no escape byte."""
    import os

    from tests.helpers import GIT_ENV

    r = Repo(tmp_path / "r")
    r.write("a.txt", f"K = '{mg_live()}'\n")
    git(r.path, "add", "-A")
    env = {
        **os.environ,
        **GIT_ENV,
        "GIT_AUTHOR_NAME": "Eve\x1fX\x1f\x1b]0;title\x1b[2J",
        "GIT_AUTHOR_DATE": "2024-02-03T04:05:06+00:00",
    }
    subprocess.run(["git", "-C", str(r.path), "commit", "-qm", "the subject"], env=env, check=True)
    (f,) = scan(r.path, by_blobs=by_blobs).findings
    assert f.location.date == "2024-02-03T04:05:06+00:00"
    assert f.location.subject == "the subject" and f.location.email == "ada@example.com"
    extra = [] if by_blobs else ["--log-opts=--all"]
    p = subprocess.run([KEYSWEEP, "scan", str(r.path), *extra], capture_output=True, timeout=120)
    assert p.returncode == 1 and b"2024-02-03T04:05:06+00:00" in p.stdout
    assert b"\x1b" not in p.stdout + p.stderr


def test_git_killed_inside_a_long_binary_blob_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one blob longer than a window, binary (passed over, its bytes read past):
    cat-file ending inside it is an error, not a history read to its end."""
    monkeypatch.setattr(git_history, "MAX_CHUNK", 4096)
    r = Repo(tmp_path / "r")
    r.write("blob.bin", bytes(range(256)) * 64)
    r.commit("binary")
    monkeypatch.setenv("PATH", _git_wrapper(tmp_path, "cat-file")["PATH"])
    with pytest.raises(git_history.GitError, match="ended early"):
        scan(r.path, by_blobs=True)


@pytest.mark.parametrize("how", ["replace", "graft"])
@pytest.mark.parametrize("by_blobs", [True, False])
def test_a_commit_hidden_by_replace_refs_or_grafts_is_read(
    tmp_path: Path, how: str, by_blobs: bool
) -> None:
    """``git replace`` (a clean commit shown in place of the one with the key) or an
    ``info/grafts`` line (its child shown without it): a clone gets the commit with the
    key, and so does the scan."""
    r = Repo(tmp_path / "r")
    key = mg_live()
    r.write("k.txt", f"K = '{key}'\n")
    leaked = r.commit("the key")
    r.write("k.txt", "nothing\n")
    clean = r.commit("removed")
    if how == "replace":
        git(r.path, "checkout", "-q", leaked)
        r.write("k.txt", "nothing\n")
        stand_in = r.commit("the key, rewritten")
        git(r.path, "checkout", "-q", "main")
        git(r.path, "replace", leaked, stand_in)
    else:
        (r.path / ".git" / "info" / "grafts").write_text(f"{clean}\n")
    assert key not in git(r.path, "log", "--all", "-p")  # hidden from git log
    f = found(scan(r.path, by_blobs=by_blobs))
    assert where(f[key]) == (leaked, "k.txt", 1)


def test_a_repository_whose_log_output_encoding_is_utf16(tmp_path: Path) -> None:
    """The scanned repository's own configuration (``i18n.logOutputEncoding = UTF-16``)
    does not change what the reader parses: the key, its commit and subject."""
    r = Repo(tmp_path / "r")
    key = mg_live()
    r.write("k.txt", f"K = '{key}'\n")
    c = r.commit("the subject")
    git(r.path, "config", "i18n.logOutputEncoding", "UTF-16")
    (f,) = scan(r.path, by_blobs=True).findings
    assert where(f) == (c, "k.txt", 1) and f.location.subject == "the subject"
