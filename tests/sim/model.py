"""The simulator's documents and their JSON, in GitHub REST API (2022-11-28) shapes."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

ZERO_SHA = "0" * 40


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def node_id(kind: str, number: int) -> str:
    import base64

    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode().rstrip("=")


@dataclass(frozen=True)
class Urls:
    """Where links point: ``api`` is the simulator itself (API, raw files, git);
    ``html`` is the web UI base used in ``html_url``/``blob_url`` (not served)."""

    api: str
    html: str = "https://github.com"


@dataclass
class Actor:
    id: int
    login: str

    def json(self, urls: Urls) -> dict[str, Any]:
        return {
            "id": self.id,
            "login": self.login,
            "display_login": self.login,
            "gravatar_id": "",
            "url": f"{urls.api}/users/{self.login}",
            "avatar_url": f"https://avatars.githubusercontent.com/u/{self.id}?",
        }

    def user_json(self, urls: Urls) -> dict[str, Any]:
        return {
            "login": self.login,
            "id": self.id,
            "node_id": node_id("User", self.id),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{self.id}?v=4",
            "gravatar_id": "",
            "url": f"{urls.api}/users/{self.login}",
            "html_url": f"{urls.html}/{self.login}",
            "type": "User",
            "site_admin": False,
        }


@dataclass
class RepoInfo:
    id: int
    owner: Actor
    name: str
    description: str
    language: str
    created_at: float
    pushed_at: float
    default_branch: str = "main"
    has_git: bool = False  # a real bare repository is served under /git/
    size_kb: int = 0

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"

    def event_json(self, urls: Urls) -> dict[str, Any]:
        return {"id": self.id, "name": self.full_name, "url": f"{urls.api}/repos/{self.full_name}"}

    def json(self, urls: Urls) -> dict[str, Any]:
        api = f"{urls.api}/repos/{self.full_name}"
        html = f"{urls.html}/{self.full_name}"
        return {
            "id": self.id,
            "node_id": node_id("Repository", self.id),
            "name": self.name,
            "full_name": self.full_name,
            "private": False,
            "owner": self.owner.user_json(urls),
            "html_url": html,
            "description": self.description,
            "fork": False,
            "url": api,
            "commits_url": api + "/commits{/sha}",
            "compare_url": api + "/compare/{base}...{head}",
            "contents_url": api + "/contents/{+path}",
            "git_url": f"git://github.com/{self.full_name}.git",
            "ssh_url": f"git@github.com:{self.full_name}.git",
            "clone_url": f"{urls.api}/git/{self.full_name}.git",
            "svn_url": html,
            "homepage": None,
            "size": self.size_kb,
            "stargazers_count": 0,
            "watchers_count": 0,
            "language": self.language,
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": True,
            "has_pages": False,
            "forks_count": 0,
            "archived": False,
            "disabled": False,
            "open_issues_count": 0,
            "license": None,
            "allow_forking": True,
            "is_template": False,
            "topics": [],
            "visibility": "public",
            "forks": 0,
            "open_issues": 0,
            "watchers": 0,
            "default_branch": self.default_branch,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.pushed_at),
            "pushed_at": iso(self.pushed_at),
            "network_count": 0,
            "subscribers_count": 1,
        }


@dataclass
class FileChange:
    path: str
    status: str  # added | modified | removed
    content: bytes | None  # the file after the change (None: removed)
    blob_sha: str
    patch: str | None  # None: binary
    additions: int
    deletions: int
    patch_size: int = 0

    def json(self, urls: Urls, repo: str, ref: str, parent_ref: str | None) -> dict[str, Any]:
        # A removed file's links point at the last commit that had it.
        at = parent_ref if self.status == "removed" and parent_ref else ref
        qpath = quote(self.path)
        out: dict[str, Any] = {
            "sha": self.blob_sha,
            "filename": self.path,
            "status": self.status,
            "additions": self.additions,
            "deletions": self.deletions,
            "changes": self.additions + self.deletions,
            "blob_url": f"{urls.html}/{repo}/blob/{at}/{qpath}",
            "raw_url": f"{urls.api}/raw/{repo}/{at}/{qpath}",
            "contents_url": f"{urls.api}/repos/{repo}/contents/{qpath}?ref={at}",
        }
        return out


@dataclass
class Commit:
    sha: str
    repo: str
    parents: list[str]
    author: Actor
    author_name: str
    author_email: str
    epoch: float
    message: str
    files: list[FileChange]  # sorted by path
    tree_sha: str
    by_path: dict[str, FileChange] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_path = {f.path: f for f in self.files}

    def core_json(self, urls: Urls) -> dict[str, Any]:
        api = f"{urls.api}/repos/{self.repo}"
        person = {"name": self.author_name, "email": self.author_email, "date": iso(self.epoch)}
        return {
            "sha": self.sha,
            "node_id": node_id("Commit", int(self.sha[:12], 16)),
            "commit": {
                "author": person,
                "committer": person,
                "message": self.message,
                "tree": {"sha": self.tree_sha, "url": f"{api}/git/trees/{self.tree_sha}"},
                "url": f"{api}/git/commits/{self.sha}",
                "comment_count": 0,
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                    "verified_at": None,
                },
            },
            "url": f"{api}/commits/{self.sha}",
            "html_url": f"{urls.html}/{self.repo}/commit/{self.sha}",
            "comments_url": f"{api}/commits/{self.sha}/comments",
            "author": self.author.user_json(urls),
            "committer": self.author.user_json(urls),
            "parents": [
                {
                    "sha": p,
                    "url": f"{api}/commits/{p}",
                    "html_url": f"{urls.html}/{self.repo}/commit/{p}",
                }
                for p in self.parents
            ],
        }


@dataclass
class GistFile:
    filename: str
    language: str | None
    type: str
    content: bytes


@dataclass
class Gist:
    id: str
    owner: Actor
    description: str
    files: list[GistFile]
    version: str
    created_at: float = 0.0
    updated_at: float = 0.0
    list_body: bytes = b""  # the listing entry, serialised once when published

    def _urls(self, urls: Urls) -> dict[str, Any]:
        api = f"{urls.api}/gists/{self.id}"
        return {
            "url": api,
            "forks_url": api + "/forks",
            "commits_url": api + "/commits",
            "id": self.id,
            "node_id": node_id("Gist", int(self.id[:12], 16)),
            "git_pull_url": f"{urls.api}/git/gists/{self.id}.git",
            "git_push_url": f"{urls.api}/git/gists/{self.id}.git",
            "html_url": f"https://gist.github.com/{self.owner.login}/{self.id}",
        }

    def raw_url(self, urls: Urls, f: GistFile) -> str:
        owner = self.owner.login
        return f"{urls.api}/gist-raw/{owner}/{self.id}/raw/{self.version}/{quote(f.filename)}"

    def file_json(self, urls: Urls, f: GistFile) -> dict[str, Any]:
        return {
            "filename": f.filename,
            "type": f.type,
            "language": f.language,
            "raw_url": self.raw_url(urls, f),
            "size": len(f.content),
        }

    def list_json(self, urls: Urls) -> dict[str, Any]:
        return {
            **self._urls(urls),
            "files": {f.filename: self.file_json(urls, f) for f in self.files},
            "public": True,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "description": self.description,
            "comments": 0,
            "user": None,
            "comments_url": f"{urls.api}/gists/{self.id}/comments",
            "owner": self.owner.user_json(urls),
            "truncated": False,
        }

    def detail_json(self, urls: Urls, truncate_at: int) -> dict[str, Any]:
        out = self.list_json(urls)
        files: dict[str, Any] = {}
        for f in self.files:
            entry = self.file_json(urls, f)
            truncated = len(f.content) > truncate_at
            body = f.content[:truncate_at] if truncated else f.content
            entry["truncated"] = truncated
            entry["content"] = body.decode("utf-8", errors="ignore")
            files[f.filename] = entry
        out["files"] = files
        out["forks"] = []
        lines = sum(f.content.count(b"\n") for f in self.files)
        out["history"] = [
            {
                "user": self.owner.user_json(urls),
                "version": self.version,
                "committed_at": iso(self.updated_at),
                "change_status": {"total": lines, "additions": lines, "deletions": 0},
                "url": f"{urls.api}/gists/{self.id}/{self.version}",
            }
        ]
        return out


@dataclass
class Batch:
    """What one generation step produced, published at once by the event loop."""

    repos: list[RepoInfo] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)
    gists: list[Gist] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    planted: list[dict[str, Any]] = field(default_factory=list)
    built_at: float = field(default_factory=time.time)

    @property
    def documents(self) -> int:
        return sum(1 for e in self.events if e["type"] == "PushEvent") + len(self.gists)
