"""GitHub as a source: a push, a gist or a whole repository becomes fragments.

The fetching logic lives here, in the library, beside files and history; the
HTTP client is injected (``GitHubAPI``), so the workers bring theirs (token
pool, shared rate limits, Redis) and a test or another front end can bring
another. What GitHub serves is documented API shapes:

* a push (``PushEvent`` carries only ``before``/``head`` since October 2025) is
  ``GET /repos/{o}/{r}/compare/{before}...{head}``; a new branch (``before`` all
  zeros) or a compare GitHub will not give (404: a force push whose ``before``
  is no ancestor) is the head commit's own ``GET /repos/{o}/{r}/commits/{sha}``,
  its files paged 300 at a time up to GitHub's 3,000; a compare with 300 files
  (its cap) is read commit by commit instead. A file without ``patch`` (too
  large, binary) is fetched from ``raw_url``: an archive's members are each
  scanned (``dist/app.jar!config/app.properties``, the link opens the archive's
  blob), a UTF-16 file as its text. Commit messages are scanned too.
  A compare merges the push's commits file by file, so a finding in it names
  the pushed head (its link opens the head's blob at that line).
* a gist is ``GET /gists/{id}``; a ``truncated`` file, or one whose name or type
  says archive (its ``content`` is text, an archive's bytes are not), comes from
  ``raw_url``.
* a repository (made public, or asked for) is a bare clone, scanned whole.

Errors have a shape: ``TransientError`` (``RateLimited``, ``GitHubUnavailable``)
means try the document again later; ``PermanentError`` (``GitHubRefused``, or a
document that is gone) means record it and move on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from scanner.archives import looks_like_archive
from scanner.errors import PermanentError, TransientError
from scanner.findings import Location
from scanner.sources import Relocated, Sink
from scanner.sources.files import BufferFragment, SkipCounts, file_fragments
from scanner.sources.git_history import safe_subject

ZERO = "0" * 40
FILES_PER_PAGE = 300  # compare and commit file lists are capped at 300 a page
MAX_COMMIT_PAGES = 10  # 10 x 300 = GitHub's 3,000-file ceiling for one commit
MAX_FILE = 10 * 1024 * 1024  # raw files and gist files larger than this are skipped, counted
# A gist file of these types is fetched from raw_url (the API's `content` is text).
ARCHIVE_TYPES = {
    "application/zip",
    "application/gzip",
    "application/x-gzip",
    "application/x-tar",
    "application/x-bzip2",
    "application/x-xz",
    "application/java-archive",
    "application/octet-stream",
}


class RateLimited(TransientError):
    """GitHub said wait (``retry-after``, an exhausted budget or a secondary limit)."""

    def __init__(self, wait: float, why: str) -> None:
        super().__init__(f"GitHub rate limit: {why}; retry in {wait:.0f}s", wait)


class GitHubUnavailable(TransientError):
    """5xx, timeouts, connection errors, malformed answers: try again later."""


class GitHubRefused(PermanentError):
    """A 4xx other than 404 and the rate limits (e.g. 401, 409, 422, 451)."""


class GitHubAPI(Protocol):
    def get_json(self, url: str, *, params: dict[str, Any] | None = None) -> Any:
        """The decoded JSON, or None for a 404; raises the errors above."""
        ...

    def get_bytes(self, url: str, limit: int) -> bytes | None:
        """A raw file, or None when it is larger than ``limit`` or gone."""
        ...


def _patch_text(files: Sequence[dict[str, Any]], sha: str, author: dict[str, Any]) -> bytes:
    """GitHub's per-file patches as one ``git diff -U0``-shaped text the history locator reads."""
    header = "\x1f".join(
        str(x or "").replace("\n", " ")
        for x in (sha, author.get("name"), author.get("email"), author.get("date"))
    )
    parts = [f"\n\x1e{header}\n"]
    for f in files:
        patch = f.get("patch")
        if not patch or not isinstance(patch, str):
            continue
        name = str(f.get("filename", "")).replace("\n", "?")
        parts.append(f"\ndiff --git a/{name} b/{name}\n+++ b/{name}\n{patch}\n")
    return "".join(parts).encode("utf-8", "surrogatepass")


class _Document:
    """What every GitHub document source shares: the API, skip counts, a place to feed."""

    mode = "push"

    def __init__(self, api: GitHubAPI, max_file: int = MAX_FILE) -> None:
        self.api = api
        self.max_file = max_file
        self.skipped = SkipCounts()
        self.units = 0

    def _raw(self, url: str, name: str) -> bytes | None:
        data = self.api.get_bytes(url, self.max_file)
        if data is None:
            self.skipped.too_large += 1
        return data

    def _fragments(
        self, data: bytes, kind: str, name: str, repo: str | None = None
    ) -> list[BufferFragment]:
        """A fetched file as fragments: itself, or its members (an archive), as text."""
        return list(file_fragments(data, kind, name, self.skipped, repo=repo))


class PushSource(_Document):
    """One push: ``before..head`` of ``repo`` (``owner/name``)."""

    mode = "push"

    def __init__(
        self,
        api: GitHubAPI,
        repo: str,
        before: str | None,
        head: str | None,
        *,
        max_file: int = MAX_FILE,
    ) -> None:
        super().__init__(api, max_file)
        self.repo, self.before, self.head = repo, before, head
        self.target = repo

    def feed(self, sink: Sink) -> None:
        if not self.head:
            return
        self.units = 1
        if self.before and self.before != ZERO:
            cmp = self.api.get_json(f"/repos/{self.repo}/compare/{self.before}...{self.head}")
            if isinstance(cmp, dict):
                commits = [c for c in cmp.get("commits") or [] if isinstance(c, dict)]
                files = [f for f in cmp.get("files") or [] if isinstance(f, dict)]
                for c in commits:
                    self._message(c, sink)
                if len(files) < FILES_PER_PAGE:
                    last = (commits[-1] if commits else {}).get("commit") or {}
                    self._files(self.head, last.get("author") or {}, files, sink)
                else:  # the compare is capped at 300 files: page each commit's own list
                    for c in commits:
                        self._commit(str(c.get("sha")), sink, message=False)
                return
            # No compare (a force push whose `before` is gone): the head commit's own change.
        self._commit(self.head, sink, message=True)

    def _commit(self, sha: str, sink: Sink, *, message: bool) -> None:
        for page in range(1, MAX_COMMIT_PAGES + 1):
            body = self.api.get_json(
                f"/repos/{self.repo}/commits/{sha}",
                params={"per_page": FILES_PER_PAGE, "page": page},
            )
            if not isinstance(body, dict):
                return
            if message and page == 1:
                self._message(body, sink)
            files = [f for f in body.get("files") or [] if isinstance(f, dict)]
            author = (body.get("commit") or {}).get("author") or {}
            self._files(sha, author, files, sink)
            if len(files) < FILES_PER_PAGE:
                return

    def _message(self, commit: dict[str, Any], sink: Sink) -> None:
        """A commit message is published with the push: scanned once, located at the commit."""
        info = commit.get("commit") or {}
        text = info.get("message")
        if not isinstance(text, str) or not text:
            return
        sha = str(commit.get("sha") or "")
        author = info.get("author") or {}
        url = commit.get("html_url")

        def move(loc: Location) -> Location:
            return Location(
                kind="push",
                path=None,
                line=loc.line,
                repo=self.repo,
                commit=sha,
                author=author.get("name"),
                email=author.get("email"),
                date=author.get("date"),
                url=str(url) if url else None,
                subject=safe_subject(text.split("\n", 1)[0][:200]),
            )

        sink(Relocated(BufferFragment(text.encode("utf-8", "surrogatepass"), "push", None), move))

    def _files(
        self, sha: str, author: dict[str, Any], files: list[dict[str, Any]], sink: Sink
    ) -> None:
        from scanner.sources.git_history import PatchChunk

        blobs = {str(f.get("filename")): f.get("blob_url") for f in files}

        def move(loc: Location) -> Location:
            path = loc.path or ""
            blob = blobs.get(path)
            url = f"{blob}#L{loc.line}" if blob else None
            if blob is None and "!" in path:  # a member of an archive: the archive's blob
                outer = blobs.get(path.split("!", 1)[0])
                url = str(outer) if outer else None
            return Location(
                kind="push",
                path=loc.path,
                line=loc.line,
                repo=self.repo,
                commit=loc.commit or sha,
                author=loc.author or author.get("name"),
                email=loc.email or author.get("email"),
                date=loc.date or author.get("date"),
                url=url,
                column=loc.column,
                decoded=loc.decoded,
            )

        sink(Relocated(PatchChunk(_patch_text(files, sha, author), self.repo, 0, None), move))
        for f in files:
            if f.get("patch") or f.get("status") == "removed" or not f.get("raw_url"):
                continue
            name = str(f.get("filename"))
            data = self._raw(str(f["raw_url"]), name)
            if data is not None:
                for raw in self._fragments(data, "push", name, self.repo):
                    sink(Relocated(raw, move))


class GistSource(_Document):
    """One version of a public gist."""

    mode = "gist"

    def __init__(
        self, api: GitHubAPI, gist_id: str, updated_at: str | None, *, max_file: int = MAX_FILE
    ) -> None:
        super().__init__(api, max_file)
        self.gist_id, self.updated_at = gist_id, updated_at
        self.target = f"gist:{gist_id}"

    def feed(self, sink: Sink) -> None:
        gist = self.api.get_json(f"/gists/{self.gist_id}")
        if not isinstance(gist, dict):
            return  # deleted since it was listed: nothing to scan
        self.units = 1
        url = gist.get("html_url")
        files = gist.get("files") or {}
        if not isinstance(files, dict):
            raise GitHubUnavailable(f"gist {self.gist_id}: malformed files")
        for name, f in files.items():
            if not isinstance(f, dict):
                continue
            if int(f.get("size") or 0) > self.max_file:
                self.skipped.too_large += 1
                continue
            content = f.get("content")
            archive = looks_like_archive(name, b"") or f.get("type") in ARCHIVE_TYPES
            if (f.get("truncated") or content is None or archive) and f.get("raw_url"):
                data = self._raw(str(f["raw_url"]), name)
            else:
                data = str(content or "").encode("utf-8", "surrogatepass")
            if data is None:
                continue
            for fragment in self._fragments(data, "gist", name):
                sink(Relocated(fragment, self._mover(fragment.path or name, url, gist)))

    def _mover(self, name: str, url: Any, gist: dict[str, Any]) -> Callable[[Location], Location]:
        """``name``: the gist's file, or ``file!member`` inside an archive in it."""
        anchor = name.split("!", 1)[0]

        def move(loc: Location) -> Location:
            return Location(
                kind="gist",
                path=name,
                line=loc.line,
                repo=f"gist:{self.gist_id}",
                commit=self.updated_at,
                url=f"{url}#file-{anchor}" if url else None,
                date=gist.get("updated_at"),
                column=loc.column,
                decoded=loc.decoded,
            )

        return move


class RepoSource:
    """A whole repository: a bare clone of every ref, its full history scanned."""

    mode = "git"

    def __init__(
        self,
        api: GitHubAPI,
        repo: str | None = None,
        url: str | None = None,
        *,
        allowed_hosts: Sequence[str] = ("github.com",),
        http_hosts: Sequence[str] = (),
        jobs: int = 2,
    ) -> None:
        self.api = api
        self.repo, self.url = repo, url
        self.allowed_hosts, self.http_hosts, self.jobs = allowed_hosts, http_hosts, jobs
        self.target = url or repo or "?"
        self.skipped = SkipCounts()
        self.units = 0
        self.errors: list[str] = []

    def feed(self, sink: Sink) -> None:
        from scanner.sources.git_history import GitHistorySource
        from scanner.sources.remote import cloned, parse_remote

        url = self.url
        if url is None:
            meta = self.api.get_json(f"/repos/{self.repo}")
            if not isinstance(meta, dict) or not meta.get("clone_url"):
                raise GitHubRefused(f"repository {self.repo} is gone or has no clone URL")
            url = str(meta["clone_url"])
        remote = parse_remote(
            url, [*self.allowed_hosts, *self.http_hosts], http_hosts=self.http_hosts
        )
        self.target = remote.display
        with cloned(remote) as path:
            history = GitHistorySource(path, remote.display, jobs=self.jobs)
            history.feed(sink)
        self.units = history.units
        self.errors.extend(history.errors)


def document_source(api: GitHubAPI, doc: dict[str, Any]) -> PushSource | GistSource:
    """A fetch task's document (``{"kind": "push"|"gist", ...}``) as a source."""
    if doc.get("kind") == "push":
        return PushSource(api, str(doc["repo"]), doc.get("before"), doc.get("head"))
    if doc.get("kind") == "gist":
        return GistSource(api, str(doc["gist_id"]), doc.get("updated_at"))
    raise PermanentError(f"unknown document kind {doc.get('kind')!r}")
