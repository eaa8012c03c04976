"""Archives and compressed files, opened in memory, with caps against bombs.

``expand(name, data)`` yields every leaf file inside ``data`` as a ``Member``
(nested archives are opened in turn, to ``Limits.max_depth`` levels) and every
thing it did not read as a ``Skipped`` with a reason. It never raises: corrupt,
truncated or hostile bytes end in ``Skipped``, after whatever could be read
before the damage was yielded (a truncated gzip's first megabytes, the members
of a zip whose central directory is cut off, read from their local headers).

Formats: gzip, bzip2, xz/lzma, zip (and the zip-based ``.jar .war .ear .whl
.apk .aar .docx .xlsx .pptx .odt .nupkg .egg .vsix``), tar and compressed tar
(``.tgz .tar.gz .tar.bz2 .tar.xz``). The format is decided by magic bytes first
and by the name second; a file only *named* like an archive that does not open
as one is a plain file (its bytes are yielded as a leaf, to be scanned).

A member's path joins the containers with ``!``: ``dist/app.jar!config/app.properties``.
A compressed tar is one container (``x.tgz!etc/app.env``); a compressed single file
is named by its stem (``app.log.gz!app.log``). Names come from the archive, so
they are shown with control characters escaped (``scanner.report.safe_text``).
Nothing is ever written to disk, so ``../`` and absolute member names are read
like any other (skipping them would hide a key; they cannot escape anywhere).

Caps, all enforced while decompressing, chunk by chunk (nothing is inflated in
full first and measured after):

* ``max_member_bytes``: one member's decompressed size (64 MiB);
* ``max_archive_bytes``: everything decompressed from one top-level file,
  nested archives included (256 MiB); once reached, the rest is skipped;
* ``max_ratio``: decompressed bytes per compressed byte, for a member and for
  the whole file (100), checked once a member or the file has produced more
  than ``RATIO_FLOOR`` (1 MiB), so a small, very repetitive text file is read;
* ``max_depth``: containers opened inside one another (3).

A member that hits a cap is skipped whole (``Skipped.capped`` is true), never
scanned in part. Links (tar symlinks and hard links, zip symlinks), encrypted
members and unsupported compression methods are skipped and named as well.
"""

from __future__ import annotations

import io
import stat
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scanner.report.safe_text import printable

if TYPE_CHECKING:
    import tarfile

# bz2, gzip, lzma, tarfile and zipfile are imported where an archive is opened: a scan
# (or the pre-commit hook) that meets none pays nothing for them.

MiB = 1024 * 1024
CHUNK = 256 * 1024
RATIO_FLOOR = 1 * MiB
SNIFF = 512  # bytes of head that decide the format (tar's magic sits at 257)

ZIP_SUFFIXES = (
    ".zip", ".jar", ".war", ".ear", ".whl", ".apk", ".aar", ".docx", ".xlsx", ".pptx",
    ".odt", ".ods", ".odp", ".nupkg", ".egg", ".vsix", ".xpi", ".ipa", ".epub",
)  # fmt: skip
# suffix -> (format, what the decompressed file is called in its place)
STREAM_SUFFIXES = (
    (".tar.gz", "gz", ".tar"), (".tgz", "gz", ".tar"), (".taz", "gz", ".tar"),
    (".tar.bz2", "bz2", ".tar"), (".tbz2", "bz2", ".tar"), (".tbz", "bz2", ".tar"),
    (".tb2", "bz2", ".tar"), (".tar.xz", "xz", ".tar"), (".txz", "xz", ".tar"),
    (".gz", "gz", ""), (".gzip", "gz", ""), (".bz2", "bz2", ""), (".xz", "xz", ""),
    (".lzma", "xz", ""),
)  # fmt: skip


@dataclass(frozen=True)
class Limits:
    max_depth: int = 3
    max_member_bytes: int = 64 * MiB
    max_archive_bytes: int = 256 * MiB
    max_ratio: float = 100.0


DEFAULT_ARCHIVE_DEPTH = Limits().max_depth  # the ``archive_depth`` setting's default


@dataclass(frozen=True)
class Member:
    path: str
    data: bytes


CAP_PREFIXES = ("archive bomb", "depth >", "member >", "archive >")


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str

    @property
    def capped(self) -> bool:
        """Stopped by a limit (bomb, size, depth) rather than by damage or a link."""
        return self.reason.startswith(CAP_PREFIXES)


def _size(n: int) -> str:
    if n % MiB == 0:
        return f"{n // MiB} MiB"
    return f"{n} bytes"


def _ratio(r: float) -> str:
    return str(int(r)) if float(r).is_integer() else str(r)


def _why(exc: BaseException) -> str:
    text = printable(str(exc))[:100]
    name = type(exc).__name__
    return f"corrupt archive ({name}: {text})" if text else f"corrupt archive ({name})"


def _base(path: str) -> str:
    return path.rsplit("!", 1)[-1].rsplit("/", 1)[-1]


_BZ2_BLOCKS = (b"1AY&SY", b"\x17rE8P\x90")  # a first block, or the end of an empty stream


def _magic(head: bytes) -> str | None:
    if head[:2] == b"\x1f\x8b":
        return "gz"
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[4:10] in _BZ2_BLOCKS:
        return "bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return "zip"
    if head[257:262] == b"ustar":
        return "tar"
    return None


_ALL_SUFFIXES = (*ZIP_SUFFIXES, ".tar", *(suffix for suffix, _, _ in STREAM_SUFFIXES))


def _by_name(name: str) -> str | None:
    low = name[-12:].lower()  # the longest suffix is shorter: no need for the whole path
    if not low.endswith(_ALL_SUFFIXES):
        return None
    low = _base(name).lower()
    if low.endswith(ZIP_SUFFIXES):
        return "zip"
    if low.endswith(".tar"):
        return "tar"
    for suffix, kind, _ in STREAM_SUFFIXES:
        if low.endswith(suffix):
            return kind
    return None


def _kind(name: str, head: bytes) -> tuple[str, bool] | None:
    """(format, decided by magic bytes) or None for a plain file."""
    kind = _magic(head)
    if kind is not None:
        return kind, True
    kind = _by_name(name)
    return (kind, False) if kind is not None else None


def looks_like_archive(name: str, head: bytes) -> bool:
    """Whether ``expand`` would try to open it: by magic bytes first (pass at least
    the first 262 bytes), by the file name second."""
    return _kind(name, head) is not None


def _inner_name(path: str) -> str:
    base = _base(path)
    low = base.lower()
    for suffix, _, replacement in STREAM_SUFFIXES:
        if low.endswith(suffix):
            stem = base[: len(base) - len(suffix)]
            return (stem + replacement) or "data"
    return base or "data"


class _Run:
    """One top-level expansion: its limits, the bytes inflated so far (every byte a
    decompressor produced, capped members included: the work done) and the bytes of
    the leaves given (each file once, however deep: what the whole file expands to)."""

    def __init__(self, limits: Limits, top_len: int) -> None:
        self.limits = limits
        self.top_len = max(top_len, 1)
        self.inflated = 0
        self.leaves = 0
        self.stopped = False

    def drain(
        self, read: Callable[[int], bytes], compressed: int, inflating: bool = True
    ) -> tuple[bytes, str | None, bool]:
        """Read a member to its end under the caps: (bytes, problem, capped). On a
        cap the bytes are dropped; on damage what was read before it is kept.
        ``inflating``: False for bytes stored as they are (a tar member, a stored zip
        member), which cost a copy, not a decompression."""
        lim = self.limits
        buf = io.BytesIO()  # getvalue() hands over its buffer: no second copy of a member
        compressed = max(compressed, 1)
        bomb = f"archive bomb: ratio > {_ratio(lim.max_ratio)}"
        while True:
            try:
                chunk = read(CHUNK)
            except Exception as exc:
                return buf.getvalue(), _why(exc), False
            if not chunk:
                return buf.getvalue(), None, False
            buf.write(chunk)
            n = buf.tell()
            if n > lim.max_member_bytes:
                return b"", f"member > {_size(lim.max_member_bytes)}", True
            if n > RATIO_FLOOR and n > lim.max_ratio * compressed:
                return b"", bomb, True
            whole = self.leaves + n
            if whole > RATIO_FLOOR and whole > lim.max_ratio * self.top_len:
                self.stopped = True
                return b"", bomb + ": rest skipped", True
            if inflating:
                self.inflated += len(chunk)
                if self.inflated > lim.max_archive_bytes:
                    self.stopped = True
                    return b"", f"archive > {_size(lim.max_archive_bytes)}: rest skipped", True


def expand(name: str, data: bytes, limits: Limits = Limits()) -> Iterator[Member | Skipped]:
    """Every leaf inside ``data`` (``name`` is its path, shown as given), nested archives
    opened to ``limits.max_depth``. Data that is not an archive is its own one leaf."""
    run = _Run(limits, len(data))
    try:
        yield from _node(run, name, data, 0)
    except Exception as exc:
        yield Skipped(name, _why(exc))


def _node(run: _Run, path: str, data: bytes, depth: int) -> Iterator[Member | Skipped]:
    """``data`` found at ``path``, inside ``depth`` containers: a leaf or an archive."""
    found = _kind(path, data[:SNIFF])
    if found is None:
        run.leaves += len(data)
        yield Member(path, data)
        return
    if depth >= run.limits.max_depth:
        yield Skipped(path, f"depth > {run.limits.max_depth}")
        return
    kind, sure = found
    if kind == "zip":
        yield from _zip(run, path, data, depth + 1, sure)
    elif kind == "tar":
        yield from _tar(run, path, data, depth + 1, sure)
    else:
        yield from _stream(run, kind, path, data, depth + 1, sure)


def _opened(
    run: _Run, path: str, content: bytes, depth: int, problem: str | None, capped: bool
) -> Iterator[Member | Skipped]:
    """What a member read by ``drain`` becomes: skipped, or a leaf / nested archive
    (and a skipped line after it when damage cut it short)."""
    if capped:
        yield Skipped(path, problem or "capped")
        return
    if content or problem is None:
        yield from _node(run, path, content, depth)
    if problem is not None:
        yield Skipped(path, problem)


def _stream(
    run: _Run, kind: str, path: str, data: bytes, depth: int, sure: bool
) -> Iterator[Member | Skipped]:
    import bz2
    import gzip
    import lzma

    opener: Callable[[io.BytesIO], io.BufferedIOBase] = {
        "gz": lambda raw: gzip.GzipFile(fileobj=raw, mode="rb"),
        "bz2": lambda raw: bz2.BZ2File(raw, mode="rb"),
        "xz": lambda raw: lzma.LZMAFile(raw, mode="rb"),  # noqa: SIM115 - closed by with
    }[kind]
    with opener(io.BytesIO(data)) as fh:
        content, problem, capped = run.drain(fh.read, len(data))
    inner = f"{path}!{_inner_name(path)}"
    if capped:
        yield Skipped(path, problem or "capped")
        return
    if problem is not None and not content:
        # Nothing came out: only named like one (a plain file), or damaged from the start.
        yield Member(path, data) if not sure else Skipped(path, problem)
        return
    if _magic(content[:SNIFF]) == "tar" or (
        _inner_name(path).lower().endswith(".tar") and _tar_opens(content)
    ):
        # x.tar.gz is one container: its members are x.tar.gz!member
        yield from _tar(run, path, content, depth, True)
    else:
        yield from _node(run, inner, content, depth)
    if problem is not None:  # cut short: what came before the damage was read
        yield Skipped(path, problem)


def _tar_opens(data: bytes) -> bool:
    import tarfile

    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            return tf.next() is not None
    except Exception:
        return False


def _tar(run: _Run, path: str, data: bytes, depth: int, sure: bool) -> Iterator[Member | Skipped]:
    import tarfile

    try:
        tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115 - closed below
    except Exception as exc:
        yield Member(path, data) if not sure else Skipped(path, _why(exc))
        return
    with tf:
        yield from _tar_members(run, path, tf, depth)


def _tar_members(
    run: _Run, path: str, tf: tarfile.TarFile, depth: int
) -> Iterator[Member | Skipped]:
    lim = run.limits
    while not run.stopped:
        try:
            info = tf.next()
        except Exception as exc:
            yield Skipped(path, _why(exc))
            return
        if info is None:
            return
        mpath = f"{path}!{printable(info.name)}"
        if info.issym() or info.islnk():
            yield Skipped(mpath, "link")
            continue
        if not info.isreg():
            continue
        if info.size > lim.max_member_bytes:
            yield Skipped(mpath, f"member > {_size(lim.max_member_bytes)}")
            continue
        try:
            fh = tf.extractfile(info)
        except Exception as exc:
            yield Skipped(mpath, _why(exc))
            continue
        if fh is None:
            continue
        content, problem, capped = run.drain(fh.read, info.size, inflating=False)
        yield from _opened(run, mpath, content, depth, problem, capped)


def _zip(run: _Run, path: str, data: bytes, depth: int, sure: bool) -> Iterator[Member | Skipped]:
    import zipfile

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except Exception as exc:
        if not sure:
            yield Member(path, data)  # only named like one: a plain file
            return
        # No central directory (a truncated download): read the local headers.
        yield from _zip_local(run, path, data, depth)
        yield Skipped(path, _why(exc))
        return
    lim = run.limits
    for info in infos:
        if run.stopped:
            return
        mpath = f"{path}!{printable(info.filename)}"
        if info.filename.endswith("/"):  # a directory (an empty name is a file)
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            yield Skipped(mpath, "link")
            continue
        if info.flag_bits & 0x1:
            yield Skipped(mpath, "encrypted")
            continue
        if info.file_size > lim.max_member_bytes:
            yield Skipped(mpath, f"member > {_size(lim.max_member_bytes)}")
            continue
        try:
            fh = zf.open(info)
        except Exception as exc:
            yield Skipped(mpath, _why(exc))
            continue
        stored = info.compress_type == zipfile.ZIP_STORED
        content, problem, capped = run.drain(fh.read, info.compress_size, inflating=not stored)
        yield from _opened(run, mpath, content, depth, problem, capped)


class _Inflater:
    """``read(n)`` over a raw deflate stream starting at ``data[start]``, n bytes of
    output at a time, fed 64 KiB of input at a time (no copy of the rest per call);
    ``end`` is where the stream stopped."""

    FEED = 64 * 1024

    def __init__(self, data: bytes, start: int) -> None:
        self.obj = zlib.decompressobj(-15)
        self.view = memoryview(data)
        self.pos = start
        self.tail: bytes | memoryview = b""

    def read(self, n: int) -> bytes:
        out = b""
        while not out and not self.obj.eof:
            if not self.tail:
                if self.pos >= len(self.view):
                    raise EOFError("deflate stream ends early")
                self.tail = self.view[self.pos : self.pos + self.FEED]
                self.pos += len(self.tail)
            out = self.obj.decompress(self.tail, n)
            self.tail = self.obj.unconsumed_tail
        return out

    @property
    def end(self) -> int:
        return self.pos - len(self.tail) - len(self.obj.unused_data)


_LOCAL = struct.Struct("<IHHHHHIIIHH")


def _zip_local(run: _Run, path: str, data: bytes, depth: int) -> Iterator[Member | Skipped]:
    """The members of a zip without its central directory, by their local headers."""
    pos = 0
    while not run.stopped:
        at = data.find(b"PK\x03\x04", pos)
        if at < 0 or at + _LOCAL.size > len(data):
            return
        _, _, flags, method, _, _, _, csize, _, nlen, xlen = _LOCAL.unpack_from(data, at)
        raw = data[at + _LOCAL.size : at + _LOCAL.size + nlen]
        name = raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        start = at + _LOCAL.size + nlen + xlen
        pos = at + 4
        if not nlen or start > len(data) or method not in (0, 8):
            continue  # not a header (a signature inside data), or nothing we can read
        pos = start
        mpath = f"{path}!{printable(name)}"
        if name.endswith("/"):
            continue
        if flags & 0x1:
            yield Skipped(mpath, "encrypted")
            continue
        inflater = None
        if method == 0:
            body = data[start : start + csize] if csize else data[start:]
            reader: Callable[[int], bytes] = io.BytesIO(body).read
            compressed = len(body)
            pos = start + csize
        else:
            inflater = _Inflater(data, start)
            reader = inflater.read
            compressed = csize or len(data) - start
        content, problem, capped = run.drain(reader, compressed, inflating=method != 0)
        if inflater is not None and inflater.obj.eof:
            pos = inflater.end
        yield from _opened(run, mpath, content, depth, problem, capped)
