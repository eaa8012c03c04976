"""A whole history read and scanned by forked processes (``scanner.sources.blob_procs``):
what they find is what one process finds, a process that dies fails the scan, and
nothing is left running after the scan ends, however it ends."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pty
import select
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from scanner.config import Config
from scanner.scan import Collector, ScanOptions, build_engine, scan_source
from scanner.sources.git_history import GitHistorySource
from tests.conftest import KEYSWEEP
from tests.helpers import Repo, mg_live
from tests.test_git_blobs import _git_wrapper, everything  # noqa: F401 - the fixture

FORKED = "read and scanned by"


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSWEEP_CACHE_DIR", str(tmp_path / "cache"))


def scan_json(repo: Path, *args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    p = subprocess.run(
        [KEYSWEEP, "scan", str(repo), "--format", "json", "--no-progress", "-v", *args],
        capture_output=True,
        timeout=120,
        env=env,
    )
    return p, (json.loads(p.stdout) if p.returncode in (0, 1) else None)


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.mark.parametrize("jobs", ["2", "3"])
def test_processes_find_every_key_one_process_finds_at_the_same_places(
    everything: dict,  # noqa: F811 - the fixture imported above
    jobs: str,
) -> None:
    """Every key a commit publishes (file, move, merge, -diff file, archive, message,
    branch, tag) found by N processes with the same locations, in the same order, as
    by ``--jobs 1``; ``-v`` says which way the history was read."""
    repo, keys = everything["repo"], everything["keys"]
    p, forked = scan_json(repo, "--jobs", jobs)
    q, alone = scan_json(repo, "--jobs", "1")
    assert p.returncode == q.returncode == 1, p.stderr.decode() + q.stderr.decode()
    assert f"{FORKED} {jobs} processes".encode() in p.stderr
    assert FORKED.encode() not in q.stderr
    assert {f["secret_sha256"] for f in forked} == {sha(k) for k in keys.values()}
    assert forked == alone


def test_a_scanning_process_that_dies_fails_the_scan(tmp_path: Path) -> None:
    """A scanning process killed (SIGKILL) while its git cat-file is sending blobs: the
    scan ends with an error (exit 2) that says a share of the history was not read,
    never with the findings of the rest or "no leaks found"."""
    r = Repo(tmp_path / "r")
    for i in range(12):
        filler = "\n".join(f"line {j} of file {i}" for j in range(200))
        r.write(f"f{i}.txt", f"{filler}\nKEY = '{mg_live()}'\n")
    r.commit("files")
    # the wrapper's parent is the scanning process: kill it, not git
    env = _git_wrapper(tmp_path, "cat-file", "| head -c 300; kill -9 $PPID")
    p, _ = scan_json(r.path, "--jobs", "2", env=env)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert FORKED in err
    assert "keysweep: error: a scanning process ended before its share" in err
    assert b"no leaks found" not in p.stdout + p.stderr


def _three_keys(tmp_path: Path) -> tuple[Repo, list[str]]:
    """A repository of three commits, each adding a key."""
    r = Repo(tmp_path / "r")
    keys = [mg_live() for _ in range(3)]
    for i, key in enumerate(keys):
        r.write(f"k{i}.env", f"KEY={key}\n")
        r.commit(f"key {i}")
    return r, keys


def test_a_scan_with_another_thread_running_uses_threads(tmp_path: Path) -> None:
    """A process that already runs another thread (a library caller, a server) is not
    forked (a fork copies locks that thread may hold): the history is read and scanned
    by threads, and every key is found."""
    r, keys = _three_keys(tmp_path)
    config = Config()
    engine = build_engine(config)
    collector = Collector(engine, [])
    source = GitHistorySource(r.path, "r", jobs=2, by_blobs=True)
    hold = threading.Event()
    other = threading.Thread(target=hold.wait, daemon=True)
    other.start()
    try:
        assert source.fork_scanners(collector) is False
        result = scan_source(source, engine, config, ScanOptions(), collector)
    finally:
        hold.set()
        source.close()
    assert {f.secret_sha256 for f in result.findings} == {sha(k) for k in keys}


def _group_gone(pgid: int, timeout: float = 30) -> bool:
    """Whether every process of group ``pgid`` has ended (waits for it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _big_history(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "big")
    line = "x = compute(value, other_value)  # an ordinary line of code here\n"
    for i in range(6):
        r.write(f"src/m{i}.py", line * 60_000 + f"KEY = '{mg_live()}'\n")
        r.commit(f"module {i}")
    return r


def test_ctrl_c_during_a_forked_scan_leaves_nothing_running(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) once the processes are forked:
    keysweep exits, and no scanning process or git is left behind."""
    r = _big_history(tmp_path)
    proc = subprocess.Popen(
        [KEYSWEEP, "scan", str(r.path), "--no-progress", "-v", "--jobs", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stderr is not None
    seen = b""
    while FORKED.encode() not in seen:
        chunk = proc.stderr.readline()
        assert chunk, seen.decode()
        seen += chunk
    os.killpg(proc.pid, signal.SIGINT)
    rest = proc.stderr.read()
    code = proc.wait(timeout=60)
    assert (code, b"keysweep: error: interrupted" in rest) == (2, True), (seen + rest).decode()
    assert b"no leaks found" not in rest
    assert _group_gone(proc.pid), "a process of the scan outlived it"


def test_progress_on_a_terminal_with_forked_processes(tmp_path: Path) -> None:
    """On a terminal the progress display runs beside the forked processes: the scan
    shows it and ends with every key found."""
    r = _big_history(tmp_path)
    out = tmp_path / "report.json"
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [KEYSWEEP, "scan", str(r.path), "-v", "--jobs", "2", "--format", "json"],
        stdout=out.open("wb"),
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    shown = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        assert ready, shown.decode(errors="replace")
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: keysweep ended
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 1, shown.decode(errors="replace")
    assert FORKED.encode() in shown
    assert b"history" in shown and b"commits" in shown  # the progress line
    assert len(json.loads(out.read_text())) == 6


def test_a_repository_with_a_gitleaks_config_is_scanned_in_one_process(tmp_path: Path) -> None:
    """A ``.gitleaks.toml`` allowlist reads the scanned text around a match, which the
    forked processes do not send back: such a repository is read and scanned in the one
    process, and its allowlist still decides."""
    r = Repo(tmp_path / "r")
    kept, allowed = mg_live(), mg_live()
    r.write(".gitleaks.toml", "[allowlist]\npaths = ['''^fixtures/''']\n")
    r.write("app.env", f"KEY={kept}\n")
    r.write("fixtures/sample.env", f"KEY={allowed}\n")
    r.commit("config and keys")
    p, found = scan_json(r.path, "--jobs", "2")
    assert p.returncode == 1, p.stderr.decode()
    assert FORKED.encode() not in p.stderr
    assert {f["secret_sha256"] for f in found} == {sha(kept)}


def test_scanning_processes_end_with_a_killed_parent_and_free_its_output(
    tmp_path: Path,
) -> None:
    """keysweep SIGKILLed while its scanning processes wait on git: they end with it,
    and whatever reads keysweep's output sees its end at once, not when orphans finish."""
    r = Repo(tmp_path / "r")
    for i in range(4):
        r.write(f"f{i}.txt", f"KEY = '{mg_live()}'\n")
    r.commit("files")
    # every cat-file answer held back a minute: the scanning processes are waiting on it
    env = _git_wrapper(tmp_path, "cat-file", "| { sleep 60; cat; }; exit")
    proc = subprocess.Popen(
        [KEYSWEEP, "scan", str(r.path), "--no-progress", "-v", "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    assert proc.stderr is not None and proc.stdout is not None
    seen = b""
    while FORKED.encode() not in seen:
        line = proc.stderr.readline()
        assert line, seen.decode()
        seen += line
    children = [
        int(pid)
        for pid in subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
    ]

    def command(pid: int) -> str:  # "" for a short-lived git that ended meanwhile
        try:
            return Path(f"/proc/{pid}/cmdline").read_text()
        except FileNotFoundError:
            return ""

    scanners = [pid for pid in children if "scan" in command(pid)]
    assert len(scanners) == 2, children
    proc.kill()
    proc.wait(timeout=30)
    ready, _, _ = select.select([proc.stdout, proc.stderr], [], [], 30)
    assert ready and proc.stdout.read() == b"", "keysweep's output held open"
    deadline = time.monotonic() + 30
    alive = scanners
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if Path(f"/proc/{pid}").exists()]
        time.sleep(0.05)
    assert not alive, f"scanning processes outlived keysweep: {alive}"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the git wrapper's sleep


def test_copies_moves_and_merges_are_listed_in_the_same_order_as_one_process(
    tmp_path: Path,
) -> None:
    """A key kept through versions, copied to other paths, moved and merged: every
    location, in the order ``--jobs 1`` lists them."""
    r = Repo(tmp_path / "r")
    body = "".join(f"line {j}\n" for j in range(3000))
    keys = [mg_live() for _ in range(6)]
    for i, key in enumerate(keys):
        r.write(f"f{i}.txt", f"KEY={key}\n{body}")
    r.commit("v1")
    for i, key in enumerate(keys):
        r.write(f"f{i}.txt", f"KEY={key}\n{body}one more line\n")
    r.commit("v2")
    for i, key in enumerate(keys):
        r.write(f"g{i}.txt", f"KEY={key}\n{body}one more line\n")
        r.write(f"d{i}/f.txt", f"KEY={key}\n{body}one more line\n")
    r.commit("copies")
    from tests.helpers import git

    git(r.path, "checkout", "-q", "-b", "side")
    for i in range(0, 6, 2):
        git(r.path, "mv", f"g{i}.txt", f"h{i}.txt")
    r.commit("moves")
    git(r.path, "checkout", "-q", "main")
    r.write("other.txt", "x\n")
    r.commit("main moves on")
    git(r.path, "merge", "-q", "--no-ff", "-m", "merge side", "side")
    p, forked = scan_json(r.path, "--jobs", "2")
    q, alone = scan_json(r.path, "--jobs", "1")
    assert FORKED.encode() in p.stderr and FORKED.encode() not in q.stderr
    assert {f["secret_sha256"] for f in forked} == {sha(k) for k in keys}
    assert [[(x["commit"], x["path"]) for x in f["locations"]] for f in forked] == [
        [(x["commit"], x["path"]) for x in f["locations"]] for f in alone
    ]
    assert forked == alone


def test_what_archives_kept_from_the_scan_is_counted_and_named_alike(tmp_path: Path) -> None:
    """Thirty unreadable archives: the summary counts and names all thirty (up to the
    hundred one process names), whichever way the history was read (forked: in the
    names' order)."""
    import random

    r = Repo(tmp_path / "r")
    rng = random.Random(7)
    for i in range(30):
        (r.path / f"p{i}").mkdir(parents=True, exist_ok=True)
        (r.path / f"p{i}" / "bad.zip").write_bytes(b"PK\x03\x04" + rng.randbytes(200))
    r.commit("broken archives")
    runs = {}
    for jobs in ("2", "1"):
        p = subprocess.run(
            [KEYSWEEP, "scan", str(r.path), "--format", "sarif", "--jobs", jobs, "-v"],
            capture_output=True,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr.decode()
        runs[jobs] = (json.loads(p.stdout)["runs"][0]["properties"]["keysweep"], p.stderr)
    assert FORKED.encode() in runs["2"][1]
    forked, alone = runs["2"][0], runs["1"][0]
    assert len(forked["errors"]) == 30 and forked["errors"] == sorted(alone["errors"])
    assert {**forked, "errors": None} == {**alone, "errors": None}


# --- git log written ahead to a temporary file (``git_blobs._Following``) ------------


def _writer(script: str) -> tuple[subprocess.Popen[bytes], object]:
    """A process writing to an unlinked temporary file, as ``launch(ahead=True)``'s git
    log does, and the file."""
    import sys
    import tempfile

    out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the test, through _Following
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=out)
    return proc, out


def test_the_log_is_read_as_git_writes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that catches up with a git still writing waits for more (it does not
    take the file's end for the log's), gets what git writes next, and ends when git
    has ended and everything it wrote was read."""
    from scanner.sources import git_blobs

    proc, out = _writer(
        "import sys\n"
        "sys.stdout.write('first part\\n'); sys.stdout.flush()\n"
        "sys.stdin.readline()\n"
        "sys.stdout.write('second part\\n')\n"
    )
    following = git_blobs._Following(out, proc)
    got = b""
    while len(got) < len(b"first part\n"):
        got += following.read(4)
    assert got == b"first part\n"
    waiting = threading.Event()
    sleep = time.sleep

    def noted_sleep(seconds: float) -> None:
        waiting.set()  # the reader found nothing new while git runs
        sleep(seconds)

    monkeypatch.setattr(git_blobs.time, "sleep", noted_sleep)
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(following.read(100)))
    reader.start()
    assert waiting.wait(30), "the reader never waited for git"
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    proc.stdin.close()
    reader.join(30)
    assert result == [b"second part\n"]
    assert following.read(100) == b""  # git ended: the end
    assert proc.wait() == 0
    following.close()


def test_a_killed_git_ends_the_followed_log_with_what_it_wrote() -> None:
    """git log killed while the reader waits for more: the reader gets what was written,
    then the end (no hang); the scan then reports git's exit (see test_git_blobs)."""
    proc, out = _writer(
        "import sys, time\nsys.stdout.write('partial'); sys.stdout.flush()\ntime.sleep(600)\n"
    )
    from scanner.sources.git_blobs import _Following

    following = _Following(out, proc)
    got = b""
    while got != b"partial":
        got += following.read(100)
    proc.kill()
    assert following.read(100) == b""
    assert proc.wait() == -signal.SIGKILL
    following.close()


def test_a_git_log_slower_than_the_scan_still_gives_every_key(tmp_path: Path) -> None:
    """git log that stops part-way for a while (a slow disk, a busy machine) while the
    forked scan reads its file: every key is found, as by ``--jobs 1``, and the
    temporary file the log was written to is gone."""
    r = Repo(tmp_path / "r")
    keys = []
    for i in range(30):
        keys.append(mg_live())
        r.write(f"f{i}.txt", f"KEY = '{keys[-1]}'\n")
        r.commit(f"commit {i} " + "words " * 50)
    env = _git_wrapper(tmp_path, "log", "| { head -c 3000; sleep 1; cat; }")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env["TMPDIR"] = str(tmp)
    p, forked = scan_json(r.path, "--jobs", "2", env=env)
    q, alone = scan_json(r.path, "--jobs", "1")
    assert p.returncode == q.returncode == 1, p.stderr.decode()
    assert f"{FORKED} 2 processes".encode() in p.stderr
    assert {f["secret_sha256"] for f in forked} == {sha(k) for k in keys}
    assert forked == alone
    assert list(tmp.iterdir()) == []


def test_no_temporary_directory_reads_the_log_through_a_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No usable temporary directory: git log writes to a pipe, as before it could run
    ahead, and every key is still found."""
    from scanner.sources import git_blobs

    def no_temporary_directory(*_args: object, **_kwargs: object) -> object:
        raise FileNotFoundError("No usable temporary directory found")

    monkeypatch.setattr(git_blobs.tempfile, "TemporaryFile", no_temporary_directory)
    r, keys = _three_keys(tmp_path)
    config = Config()
    engine = build_engine(config)
    source = GitHistorySource(r.path, "r", jobs=2, by_blobs=True)
    try:
        source.prepare()
        log = source._blobs._log
        assert log is not None and not isinstance(log.stdout, git_blobs._Following)
        result = scan_source(source, engine, config, ScanOptions(), Collector(engine, []))
    finally:
        source.close()
    assert {f.secret_sha256 for f in result.findings} == {sha(k) for k in keys}


def test_no_git_on_path_is_said_when_the_log_would_run_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git missing when the log is launched ahead: a clear error, not a traceback."""
    from scanner.errors import KeysweepError
    from scanner.sources.git_blobs import BlobHistory

    r, _keys = _three_keys(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    history = BlobHistory(r.path, "r", jobs=2)
    with pytest.raises(KeysweepError, match="git is not installed or not on PATH"):
        history.launch(ahead=True)
    assert history._log is None
