"""GitHub pushes, gists and repositories as library sources: the simulator over real
HTTP, through the workers' own GitHub client, into ``scan_source``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner.errors import PermanentError, TransientError
from scanner.findings import sha256_hex
from scanner.scan import ScanOptions, build_engine, scan_source
from scanner.settings import Settings
from scanner.sources.github import (
    GistSource,
    GitHubRefused,
    PushSource,
    RateLimited,
    RepoSource,
    document_source,
)
from tests import redis_env
from tests.helpers import github_token, mg_live
from tests.sim.fixture import GitHubSim, github_sim, github_sim_nokeys  # noqa: F401


@pytest.fixture
def gh(github_sim: GitHubSim, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:  # noqa: F811
    """The workers' GitHub client (token pool and limits in Redis) on the simulator."""
    from workers import settings as settings_mod
    from workers import state
    from workers.github import github

    monkeypatch.setenv("KEYSWEEP_REDIS_URL", redis_env.url(14))
    monkeypatch.setenv("KEYSWEEP_REDIS_PREFIX", f"kssrc-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("KEYSWEEP_GITHUB_TOKENS", "src-token")
    monkeypatch.setenv("KEYSWEEP_GITHUB_API_URL", github_sim.url)
    for f in (settings_mod.settings, state.client, github):
        f.cache_clear()
    yield github()
    r = state.client()
    for k in r.scan_iter(f"{settings_mod.settings().prefix}:*"):
        r.delete(k)
    for f in (settings_mod.settings, state.client, github):
        f.cache_clear()


def scan(source: Any):  # type: ignore[no-untyped-def]
    s = Settings()
    return scan_source(source, build_engine(s), s, ScanOptions())


def test_a_planted_push_is_found_with_its_exact_hash_and_link(
    github_sim: GitHubSim,  # noqa: F811
    gh: Any,
) -> None:
    github_sim.generate(pushes=4, plant={"live": 3})
    planted = [p for p in github_sim.planted("live") if p["doc"]["type"] == "push"]
    assert planted
    for p in planted:
        doc = p["doc"]
        result = scan(PushSource(gh, doc["repo"], doc["before"], doc["head"]))
        (f,) = [f for f in result.findings if f.secret_sha256 == p["sha256"]]
        loc = f.location
        assert (loc.kind, loc.repo, loc.path, loc.line) == (
            "push",
            doc["repo"],
            doc["path"],
            doc["line"],
        )
        # A compare merges the push's commits: the finding names the pushed head (whose
        # blob the link opens at that line) unless the push was one commit.
        assert loc.commit in {doc["sha"], doc["head"]}
        assert loc.url and loc.url.endswith(f"#L{doc['line']}")
        assert result.files == 1 and result.mode == "push"


def test_a_push_github_will_not_compare_is_scanned_as_its_head_commit(
    github_sim: GitHubSim,  # noqa: F811
    gh: Any,
) -> None:
    """A force push: `before` is no ancestor of `head`, the compare answers 404."""
    github_sim.generate(pushes=6, plant={"live": 6})
    planted = [
        p
        for p in github_sim.planted("live")
        if p["doc"]["type"] == "push" and p["doc"]["sha"] == p["doc"]["head"]
    ]
    assert planted, "no key in a head commit"
    doc = planted[0]["doc"]
    result = scan(PushSource(gh, doc["repo"], "f" * 40, doc["head"]))
    assert planted[0]["sha256"] in {f.secret_sha256 for f in result.findings}


def test_a_gist_and_its_truncated_file_are_found(
    github_sim: GitHubSim,  # noqa: F811
    gh: Any,
) -> None:
    github_sim.generate(gists=3, large_gists=1, plant={"live": 4})
    planted = [p for p in github_sim.planted("live") if p["doc"]["type"] == "gist"]
    assert len(planted) >= 2
    for p in planted:
        doc = p["doc"]
        result = scan(GistSource(gh, doc["gist_id"], None))
        (f,) = [f for f in result.findings if f.secret_sha256 == p["sha256"]]
        assert (f.location.kind, f.location.path) == ("gist", doc["path"])
        assert f.location.repo == f"gist:{doc['gist_id']}"


def test_a_deleted_gist_is_nothing_to_scan(gh: Any) -> None:
    result = scan(GistSource(gh, "0" * 32, None))
    assert (result.findings, result.files) == ([], 0)


def test_errors_keep_their_shape(github_sim: GitHubSim, gh: Any) -> None:  # noqa: F811
    github_sim.generate(pushes=1)
    doc = next(e for e in github_sim.client().get("/events").json() if e["type"] == "PushEvent")
    repo, head = doc["repo"]["name"], doc["payload"]["head"]
    github_sim.fault(f"/repos/{repo}/", 451, count=5)
    with pytest.raises(GitHubRefused) as refused:
        scan(PushSource(gh, repo, None, head))
    assert isinstance(refused.value, PermanentError)
    github_sim.clear_faults()
    github_sim.fault(f"/repos/{repo}/", 429, retry_after=3, count=1)
    with pytest.raises(RateLimited) as limited:
        scan(PushSource(gh, repo, None, head))
    assert isinstance(limited.value, TransientError) and limited.value.wait == 3
    with pytest.raises(PermanentError, match="unknown document kind"):
        document_source(gh, {"kind": "wiki"})


class FakeAPI:
    """An in-memory GitHub for the source's own branches (real traffic is tested above)."""

    def __init__(self, answers: dict[str, Any], raw: dict[str, bytes] | None = None) -> None:
        self.answers, self.raw = answers, raw or {}
        self.calls: list[str] = []

    def get_json(self, url: str, *, params: dict[str, Any] | None = None) -> Any:
        page = (params or {}).get("page", 1)
        self.calls.append(f"{url}#{page}")
        return self.answers.get(f"{url}#{page}", self.answers.get(url))

    def get_bytes(self, url: str, limit: int) -> bytes | None:
        data = self.raw.get(url)
        return None if data is None or len(data) > limit else data


def _commit(sha: str, message: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    author = {"name": "Ada", "email": "ada@example.com", "date": "2026-11-30T10:00:00Z"}
    return {"sha": sha, "commit": {"message": message, "author": author}, "files": files}


def test_commit_messages_raw_files_and_skips() -> None:
    """A key in a commit message, one in a file GitHub gave no patch for, a file over the
    size cap and a binary file: found, found, skipped and counted."""
    msg_key, raw_key = mg_live(), github_token()
    sha = "a" * 40
    files = [
        {"filename": "big.txt", "status": "added", "raw_url": "raw/big"},
        {"filename": "bin.dat", "status": "added", "raw_url": "raw/bin"},
        {"filename": "conf.env", "status": "added", "raw_url": "raw/conf"},
    ]
    api = FakeAPI(
        {"/repos/o/r/commits/" + sha: _commit(sha, f"add config\n\nkey {msg_key}\n", files)},
        {
            "raw/big": b"x" * 100,
            "raw/bin": b"\0\1\2" + raw_key.encode(),
            "raw/conf": f"TOKEN={raw_key}\n".encode(),
        },
    )
    source = PushSource(api, "o/r", None, sha, max_file=60)
    result = scan(source)
    by_hash = {f.secret_sha256: f for f in result.findings}
    message = by_hash[sha256_hex(msg_key.encode())].location
    assert (message.path, message.line, message.commit, message.subject) == (
        None,
        3,
        sha,
        "add config",
    )
    assert by_hash[sha256_hex(raw_key.encode())].location.path == "conf.env"
    assert (source.skipped.too_large, source.skipped.binary) == (1, 1)


def test_a_commit_with_more_than_300_files_is_read_page_by_page() -> None:
    key = mg_live()
    sha = "b" * 40
    page1 = [
        {"filename": f"f{i}", "status": "added", "patch": "@@ -0,0 +1 @@\n+x"} for i in range(300)
    ]
    page2 = [{"filename": "late.env", "status": "added", "patch": f"@@ -0,0 +1 @@\n+K={key}"}]
    api = FakeAPI(
        {
            f"/repos/o/r/commits/{sha}#1": _commit(sha, "many", page1),
            f"/repos/o/r/commits/{sha}#2": _commit(sha, "many", page2),
        }
    )
    result = scan(PushSource(api, "o/r", "0" * 40, sha))
    assert [f.location.path for f in result.findings] == ["late.env"]
    assert api.calls == [f"/repos/o/r/commits/{sha}#1", f"/repos/o/r/commits/{sha}#2"]


def test_a_repository_source_clones_and_scans_every_commit(
    github_sim_nokeys: GitHubSim,  # noqa: F811
    tmp_path: Path,
) -> None:
    sim = github_sim_nokeys
    sim.generate(public_repos=1, plant={"third_party": 2})
    repo = next(p for p in sim.planted() if p["doc"]["type"] == "repo")["doc"]["repo"]
    meta = sim.client().get(f"/repos/{repo}").json()
    host = sim.url.split("://", 1)[1]
    source = RepoSource(FakeAPI({f"/repos/{repo}": meta}), repo, http_hosts=(host,))
    result = scan(source)
    truth = {p["sha256"] for p in sim.planted() if p["doc"]["repo"] == repo}
    assert truth <= {f.secret_sha256 for f in result.findings}
    assert result.commits >= 1 and result.mode == "git"
    with pytest.raises(GitHubRefused, match="gone"):
        scan(RepoSource(FakeAPI({}), "o/missing"))


def test_a_key_in_a_pushed_commits_subject_is_never_shown_whole() -> None:
    """The subject is shown beside the finding (JSON, alerts, audit metadata): a key in
    it is cut to 12 characters, as the history scan cuts it."""
    key = mg_live()
    sha = "b" * 40
    api = FakeAPI({"/repos/o/r/commits/" + sha: _commit(sha, f"rotate {key} now\n", [])}, {})
    result = scan(PushSource(api, "o/r", None, sha))
    (f,) = result.findings
    assert f.secret_sha256 == sha256_hex(key.encode())
    assert f.location.subject is not None and f.location.subject.startswith("rotate mg_live_")
    assert key not in f.location.subject and key[:13] not in f.location.subject
