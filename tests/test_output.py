"""Every output is well-formed whatever the names: author names, commit subjects, file
names (even not UTF-8) and a repository's own rule descriptions are shown as text, never
as markup or terminal control; plain lines when not on a terminal; ids never cut."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
from pathlib import Path

from tests.conftest import KEYSWEEP
from tests.helpers import GIT_ENV, Repo, git, mg_live

ESC = "\x1b"
HOSTILE_AUTHOR = "Mallory [/x] [bold]\x1b[2J\x1b]0;pwned\x07"
HOSTILE_SUBJECT = "fix \x1b[31mred\x1b[0m [link=http://evil]x[/link]"


def run(*args: str, cwd: Path | None = None, env: dict | None = None, stdin: bytes | None = None):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [KEYSWEEP, *args],
        cwd=cwd,
        capture_output=True,
        input=stdin,
        env={**os.environ, **GIT_ENV, **(env or {})},
        timeout=120,
    )


def hostile_repo(tmp_path: Path) -> tuple[Repo, str]:
    r = Repo(tmp_path / "hostile")
    key = mg_live()
    name = b"src/bad\xff\x1b[2J[red]name.py"
    (r.path / "src").mkdir()
    (r.path / os.fsdecode(name)).write_bytes(f"K = '{key}'\n".encode())
    (r.path / ".keysweep.toml").write_text(
        '[[rules]]\nid = "acme-token"\ndescription = "ACME [/x] \\u001b[2J token"\n'
        "prefixes = [\"acme_tok_\"]\npattern = '(acme_tok_[A-Za-z0-9]{24})'\n"
    )
    (r.path / "acme.txt").write_text("t = acme_tok_" + "Zq7" * 8 + "\n")
    git(r.path, "add", "-A")
    env = {**os.environ, **GIT_ENV, "GIT_AUTHOR_NAME": HOSTILE_AUTHOR}
    subprocess.run(
        ["git", "-C", str(r.path), "commit", "-q", "-m", HOSTILE_SUBJECT], env=env, check=True
    )
    return r, key


def test_text_report_shows_hostile_names_as_text(tmp_path: Path) -> None:
    repo, key = hostile_repo(tmp_path)
    p = run("scan", str(repo.path), "--no-progress")
    assert p.returncode == 1, p.stderr.decode()
    out = p.stdout.decode("utf-8")  # valid UTF-8, whatever the file name's bytes
    assert ESC not in out and "\x07" not in out
    assert "Mallory [/x] [bold]\\x1b[2J\\x1b]0;pwned" in out  # git itself drops the BEL
    assert "fix \\x1b[31mred\\x1b[0m [link=http://evil]x[/link]" in out
    assert "src/bad\\xff\\x1b[2J[red]name.py:1" in out
    assert "ACME [/x] \\x1b[2J token" in out
    assert key not in out


def test_reports_to_files_and_stdout_are_whole_and_valid_utf8(tmp_path: Path) -> None:
    repo, _ = hostile_repo(tmp_path)
    for fmt in ("json", "jsonl", "sarif", "text"):
        out = tmp_path / f"report.{fmt}"
        p = run("scan", str(repo.path), "--format", fmt, "--output", str(out))
        assert p.returncode == 1, p.stderr.decode()
        text = out.read_bytes().decode("utf-8")
        if fmt in ("json", "sarif"):
            json.loads(text)
        elif fmt == "jsonl":
            assert all(json.loads(line) for line in text.splitlines())
        else:
            assert ESC not in text
        # The same on stdout, and with `-o -`.
        for extra in ((), ("-o", "-")):
            p = run("scan", str(repo.path), "--format", fmt, *extra)

            def same(t: str) -> str:
                return re.sub(r"in \d+\.\d+s", "", t)

            assert same(p.stdout.decode("utf-8")) == same(text)
    doc = json.loads((tmp_path / "report.json").read_text())
    paths = {f["source"]["path"] for f in doc}
    assert "src/bad\\xff\x1b[2J[red]name.py" in paths  # JSON escapes the control itself
    assert "src/bad\\\\xff\\u001b[2J[red]name.py" in (tmp_path / "report.json").read_text()
    # Files scanned as they are: the same names, the same well-formed reports.
    p = run("scan", str(repo.path), "--no-history", "--format", "json")
    assert p.returncode == 1
    assert any("bad\\xff" in f["source"]["path"] for f in json.loads(p.stdout.decode("utf-8")))
    assert not (Path.cwd() / "-").exists()


def test_a_piped_patch_cannot_put_an_escape_on_the_terminal_through_its_date() -> None:
    # `git show | keysweep scan -`: the Date header is the patch's text, not git's own.
    key = mg_live()
    patch = (
        "commit 1234567890abcdef1234567890abcdef12345678\n"
        "Author: A <a@example.com>\n"
        "Date:   Mon Dec 7 \x1b[31mRED\x1b]0;title\x07 2026\n\n    msg\n\n"
        "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -0,0 +1 @@\n"
        f"+k={key}\n"
    ).encode()
    p = run("scan", "-", stdin=patch)
    out = p.stdout.decode() + p.stderr.decode()
    assert p.returncode == 1 and "1234567890ab" in out, out
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b[31mRED" in out  # shown, escaped


def test_hook_message_shows_hostile_names_as_text(tmp_path: Path) -> None:
    r = Repo(tmp_path / "r")
    r.write("README.md", "x\n")
    r.commit("init")
    name = "evil\x1b[2J\x1b]0;t\x07.py"
    r.write(name, f"K = '{mg_live()}'\n")
    git(r.path, "add", "-A")
    p = subprocess.run(
        [KEYSWEEP, "hook", "pre-commit"],
        cwd=r.path,
        capture_output=True,
        env={**os.environ, **GIT_ENV, "KEYSWEEP_CACHE_DIR": str(tmp_path / "c")},
    )
    err = p.stderr.decode("utf-8")
    assert p.returncode == 1 and ESC not in err and "\x07" not in err
    assert "evil\\x1b[2J\\x1b]0;t\\x07.py:1" in err


def test_plain_unwrapped_lines_when_not_on_a_terminal(tmp_path: Path) -> None:
    r = Repo(tmp_path / "r")
    deep = "a-rather-long-directory-name/" * 4 + "settings_for_the_production_environment.py"
    r.write(deep, f"K = '{mg_live()}'\n")
    r.commit("a commit subject that is long enough to need more than eighty columns on one line")
    p = run("scan", str(r.path), env={"COLUMNS": "40"})
    lines = p.stdout.decode().splitlines()
    assert any(line == f"where     {deep}:1" for line in lines), lines
    assert all(line == line.rstrip() for line in lines)
    assert any(len(line) > 120 for line in lines)  # nothing wrapped at 80 (or 40)
    p = run("rules", "list", env={"COLUMNS": "40"})
    lines = p.stdout.decode().splitlines()
    assert all(line == line.rstrip() for line in lines)
    assert lines[0].split() == ["id", "owner", "severity", "prefixes", "checks", "description"]
    assert any(re.match(r"gitlab-feature-flags-client-token +third_party", line) for line in lines)


def _on_a_terminal(args: list[str], columns: int, raw: bool = False, **env_extra: str) -> str:
    """Run ``keysweep`` with its output on a pseudo-terminal ``columns`` wide."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    proc = subprocess.Popen(
        [KEYSWEEP, *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "TERM": "xterm-256color", **env_extra},
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=30)
    os.close(master)
    if raw:
        return b"".join(chunks).decode("utf-8", "replace")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))


def test_rules_list_never_cuts_ids_on_a_narrow_terminal() -> None:
    ids = [r["id"] for r in json.loads(run("rules", "list", "--format", "json").stdout)]
    for columns in (40, 80, 200):
        shown = _on_a_terminal(["rules", "list"], columns)
        words = set(re.findall(r"[a-z0-9][a-z0-9._-]+", shown))
        missing = [i for i in ids if i not in words]
        assert not missing, (columns, missing, shown[:2000])


def test_colour_on_a_terminal_only_and_no_color_honoured(tmp_path: Path) -> None:
    r = Repo(tmp_path / "r")
    r.write("a.py", f"K = '{mg_live()}'\n")
    r.commit("key")
    colour = re.compile(r"\x1b\[(?:[0-9]+;)*(?:3[0-7]|9[0-7]|38)[;m]")
    coloured = _on_a_terminal(["scan", str(r.path), "--no-progress"], 100, raw=True)
    assert colour.search(coloured) and "a.py:1" in coloured
    plain = _on_a_terminal(["scan", str(r.path), "--no-progress"], 100, raw=True, NO_COLOR="1")
    assert "a.py:1" in plain and not colour.search(plain)
    piped = run("scan", str(r.path))
    assert b"\x1b" not in piped.stdout


def test_a_report_file_is_whole_or_absent(tmp_path: Path) -> None:
    r = Repo(tmp_path / "r")
    r.write("a.py", f"K = '{mg_live()}'\n")
    r.commit("key")
    (tmp_path / "out.json").mkdir()  # the report cannot be put there
    p = run("scan", str(r.path), "--format", "json", "--output", str(tmp_path / "out.json"))
    assert p.returncode == 2 and "error" in p.stderr.decode()
    assert [x.name for x in tmp_path.iterdir() if x.name.startswith(".keysweep-")] == []
    # A directory that is not there: one line naming the file asked for, not a temporary.
    missing = tmp_path / "no-such-dir" / "report.json"
    p = run("scan", str(r.path), "--format", "json", "--output", str(missing))
    err = p.stderr.decode()
    assert p.returncode == 2 and err.count("\n") == 1
    assert f"--output {missing}: cannot write: No such file or directory" in err
    p = run("baseline", "create", str(r.path), "--output", str(missing))
    assert p.returncode == 2
    assert f"baseline {missing}: cannot write: No such file or directory" in p.stderr.decode()


def test_output_to_a_pipe_or_device_writes_into_it_and_leaves_it_there(tmp_path: Path) -> None:
    """`--output /dev/null` or a named pipe: the report goes into it, and it stays what
    it was (a rename over it would leave a regular file there; as root, in place of
    /dev/null for every process). Tested on a FIFO, never on /dev/null itself."""
    import stat
    import threading

    key = mg_live()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "k.env").write_text(f"K={key}\n")
    fifo = tmp_path / "report.pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    p = subprocess.run(
        [
            KEYSWEEP,
            "scan",
            str(tmp_path / "src"),
            "--no-history",
            "--format",
            "json",
            "--output",
            str(fifo),
        ],
        capture_output=True,
        timeout=120,
    )
    reader.join(timeout=60)
    assert p.returncode == 1, p.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    (f,) = json.loads(got[0])
    assert f["secret_sha256"] == hashlib.sha256(key.encode()).hexdigest()
