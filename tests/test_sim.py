"""The GitHub simulator (tests/sim) as a real process, checked with httpx and git.

One simulator (with a real key service) serves a fixed data set to the read-only
tests; a second one without a key service takes the tests that change state
(flooding /events, rate limits, faults, duplicates).
"""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scanner.engine import Engine
from scanner.rules import at_confidence, load_rules
from tests.keyservice_fixture import KeyService, start_keyservice
from tests.sim.fixture import GitHubSim, github_sim, start_sim  # noqa: F401

ZEROS = "0" * 40
LIMIT = 4000  # patch / gist truncation limit used by the module simulator
HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "HOME": "/nonexistent"}

Json = dict[str, Any]


# -- fixtures ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyService]:
    with start_keyservice(tmp_path_factory.mktemp("ks")) as service:
        yield service


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, ks: KeyService) -> Iterator[GitHubSim]:
    with start_sim(
        tmp_path_factory.mktemp("sim"),
        ks,
        seed=7,
        poll_interval=1,
        max_patch_bytes=LIMIT,
        gist_truncate_bytes=LIMIT,
        gist_clone_bytes=4 * LIMIT,
    ) as s:
        yield s


@pytest.fixture(scope="module")
def data(sim: GitHubSim) -> Json:
    """The fixed data set: normal traffic plus one of each special document."""
    made = sim.generate(
        pushes=30,
        gists=12,
        public_repos=1,
        large_files=1,
        binary_files=1,
        wide_pushes=[3200],
        large_gists=1,
        huge_gists=1,
        noise=10,
        plant={"live": 4, "test": 2, "third_party": 8, "near_miss": 6},
    )
    return {"made": made, "planted": sim.planted()}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitHubSim]:
    with start_sim(tmp_path_factory.mktemp("scratch"), poll_interval=1) as s:
        yield s


@pytest.fixture(scope="module")
def engine() -> Engine:
    # What the workers run: providers' keys (high confidence), not the generic rules.
    return Engine(at_confidence(load_rules(), "high"))


# -- helpers ----------------------------------------------------------------


def new_lines(patch: str) -> dict[int, str]:
    """Line number in the new file -> text, for the lines a patch shows; checks
    that every hunk header's counts agree with its body."""
    out: dict[int, str] = {}
    lines = patch.split("\n")
    i = 0
    while i < len(lines):
        m = HUNK.match(lines[i])
        assert m, f"not a hunk header: {lines[i]!r}"
        old_n = int(m.group(2) or 1)
        new_start, new_n = int(m.group(3)), int(m.group(4) or 1)
        i += 1
        seen_old = seen_new = 0
        n = new_start
        while i < len(lines) and not lines[i].startswith("@@"):
            tag, text = lines[i][:1], lines[i][1:]
            if tag in ("+", " "):
                out[n] = text
                n += 1
                seen_new += 1
            if tag in ("-", " "):
                seen_old += 1
            assert tag in ("+", "-", " ", "\\"), lines[i]
            i += 1
        assert (seen_old, seen_new) == (old_n, new_n), "hunk counts do not match"
    return out


def key_at(lines: dict[int, str], line: int, key: str) -> bool:
    return all(part in lines.get(line + k, "") for k, part in enumerate(key.split("\n")))


def text_lines(content: str) -> dict[int, str]:
    return dict(enumerate(content.split("\n"), start=1))


def commit_files(gh: httpx.Client, repo: str, sha: str) -> list[Json]:
    """Every file of a commit, following the Link rel="next" pages."""
    files: list[Json] = []
    r = gh.get(f"/repos/{repo}/commits/{sha}", params={"per_page": 300})
    while True:
        assert r.status_code == 200, r.text
        files += r.json()["files"]
        nxt = r.links.get("next")
        if not nxt:
            return files
        r = gh.get(nxt["url"])


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, check=True, env=GIT_ENV, timeout=60
    )
    return done.stdout.decode()


# -- /events ----------------------------------------------------------------


def test_event_shapes(sim: GitHubSim, data: Json) -> None:
    with sim.client("shapes") as gh:
        r = gh.get("/events", params={"per_page": 100})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    events = r.json()
    types = {e["type"] for e in events}
    assert {"PushEvent", "PublicEvent"} <= types
    assert types - {"PushEvent", "PublicEvent"}, "noise events are served too"
    zero_before = []
    for e in events:
        assert set(e) == {"id", "type", "actor", "repo", "payload", "public", "created_at"}
        assert e["id"].isdigit() and e["public"] is True and ISO.match(e["created_at"])
        assert set(e["repo"]) == {"id", "name", "url"} and e["repo"]["name"].count("/") == 1
        assert {"id", "login", "display_login", "url", "avatar_url"} <= set(e["actor"])
        if e["type"] == "PushEvent":
            p = e["payload"]
            assert set(p) == {"repository_id", "push_id", "ref", "head", "before"}
            assert p["repository_id"] == e["repo"]["id"] and p["ref"].startswith("refs/heads/")
            assert re.fullmatch(r"[0-9a-f]{40}", p["head"]) and len(p["before"]) == 40
            if p["before"] == ZEROS:
                zero_before.append(e)
        elif e["type"] == "PublicEvent":
            assert e["payload"] == {}
        else:
            assert "commits" not in e["payload"] and "head" not in e["payload"]
    assert zero_before, "new branches / new repositories push with before = 40 zeros"
    # A new branch cannot be compared: the client reads the head commit instead.
    p = zero_before[0]["payload"]
    repo = zero_before[0]["repo"]["name"]
    with sim.client("shapes") as gh:
        assert gh.get(f"/repos/{repo}/compare/{ZEROS}...{p['head']}").status_code == 404
        c = gh.get(f"/repos/{repo}/commits/{p['head']}")
    assert c.status_code == 200 and c.json()["sha"] == p["head"] and c.json()["files"]


def test_events_paging_cap_and_links(scratch: GitHubSim) -> None:
    scratch.reset()
    scratch.generate(noise=340)
    seen: list[str] = []
    with scratch.client("pager") as gh:
        r = gh.get("/events", params={"per_page": 100})
        assert r.links["next"]["url"].endswith("page=2") and r.links["last"]["url"].endswith(
            "page=3"
        )
        etags = set()
        while True:
            assert r.status_code == 200 and "x-poll-interval" in r.headers
            etags.add(r.headers["etag"])
            seen += [e["id"] for e in r.json()]
            if "next" not in r.links:
                break
            r = gh.get(r.links["next"]["url"])
        assert {"first", "prev"} <= set(r.links) and "last" not in r.links
        assert len(seen) == 300 == len(set(seen)) and len(etags) == 3
        assert [int(i) for i in seen] == sorted((int(i) for i in seen), reverse=True)
        beyond = gh.get("/events", params={"per_page": 100, "page": 4})
        assert beyond.status_code == 422 and "pagination is limited" in beyond.json()["message"]
        default = gh.get("/events")
        assert len(default.json()) == 30 and default.links["last"]["url"].endswith("page=10")


def test_etag_304_is_free_and_poll_interval(scratch: GitHubSim) -> None:
    scratch.reset()
    scratch.generate(pushes=3)
    with scratch.client("etag") as gh:
        first = gh.get("/events")
        etag = first.headers["etag"]
        assert first.headers["x-poll-interval"] == "1"
        again = gh.get("/events", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["x-poll-interval"] == "1"
        assert again.headers["x-ratelimit-remaining"] == first.headers["x-ratelimit-remaining"]
        third = gh.get("/events", headers={"If-None-Match": etag})
        assert third.headers["x-ratelimit-used"] == first.headers["x-ratelimit-used"]
        scratch.generate(pushes=1)
        changed = gh.get("/events", headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert (
            int(changed.headers["x-ratelimit-used"]) == int(first.headers["x-ratelimit-used"]) + 1
        )
    stats = scratch.stats()
    assert stats["if_none_match"] == 3 and stats["not_modified"] == 2
    times = [e["t"] for e in stats["events_requests"]]
    assert len(times) == 4 and times == sorted(times)


def test_duplicate_event(scratch: GitHubSim) -> None:
    scratch.reset()
    made = scratch.generate(pushes=2, noise=0)
    first = made["push_events"][0]
    assert scratch.duplicate(first) == first
    with scratch.client("dup") as gh:
        ids = [e["id"] for e in gh.get("/events").json()]
    assert ids[0] == first and ids.count(first) == 2
    with httpx.Client(base_url=scratch.url) as http:
        assert http.post("/_sim/duplicate", json={"event_id": "1"}).status_code == 404


# -- compare, commits, raw ----------------------------------------------------


def test_compare_cap_then_commit_paging(sim: GitHubSim, data: Json) -> None:
    wide = [p for p in data["planted"] if p["doc"]["path"].startswith("generated/")]
    assert wide, "the wide push carries a planted key"
    doc = wide[0]["doc"]
    with sim.client("wide") as gh:
        r = gh.get(f"/repos/{doc['repo']}/compare/{doc['before']}...{doc['head']}")
        assert r.status_code == 200
        body = r.json()
        assert body["status"] == "ahead" and body["ahead_by"] == body["total_commits"] == 1
        assert body["commits"][0]["sha"] == doc["head"]
        assert {"sha", "commit", "html_url"} <= set(body["commits"][0])
        assert {"name", "email", "date"} <= set(body["commits"][0]["commit"]["author"])
        assert len(body["files"]) == 300
        assert doc["path"] not in {f["filename"] for f in body["files"]}
        files = commit_files(gh, doc["repo"], doc["head"])
        page2 = gh.get(f"/repos/{doc['repo']}/commits/{doc['head']}", params={"page": 2})
    assert len(files) == 3000 == len({f["filename"] for f in files})
    assert len(page2.json()["files"]) == 300 and page2.links["last"]["url"].endswith("page=10")
    hit = next(f for f in files if f["filename"] == doc["path"])
    for f in [*files[:3], hit]:
        assert set(f) == {
            "sha",
            "filename",
            "status",
            "additions",
            "deletions",
            "changes",
            "blob_url",
            "raw_url",
            "contents_url",
            "patch",
        }
    assert key_at(new_lines(hit["patch"]), doc["line"], wide[0]["key"])


def test_missing_patch_means_raw_url(sim: GitHubSim, data: Json) -> None:
    large = [p for p in data["planted"] if p["doc"]["path"].startswith("data/")]
    assert large
    item = large[0]
    doc = item["doc"]
    with sim.client("raw") as gh:
        files = commit_files(gh, doc["repo"], doc["sha"])
        entry = next(f for f in files if f["filename"] == doc["path"])
        assert "patch" not in entry and entry["additions"] > 0
        raw = gh.get(entry["raw_url"])
        assert raw.status_code == 200 and len(raw.content) > LIMIT
        assert "x-ratelimit-limit" not in raw.headers  # raw bytes are not API calls
        assert key_at(text_lines(raw.text), doc["line"], item["key"])
        contents = gh.get(entry["contents_url"]).json()
        assert contents["encoding"] == "base64" and contents["path"] == doc["path"]
        # A binary file has no patch either; its raw bytes are served as they are.
        binary = None
        for e in gh.get("/events", params={"per_page": 100}).json():
            if e["type"] != "PushEvent":
                continue
            c = gh.get(f"/repos/{e['repo']['name']}/commits/{e['payload']['head']}").json()
            binary = next((f for f in c["files"] if f["filename"].endswith(".png")), None)
            if binary:
                break
        assert binary is not None and "patch" not in binary
        png = gh.get(binary["raw_url"])
        assert png.content.startswith(b"\x89PNG") and png.headers["content-type"].startswith(
            "application/octet-stream"
        )


def test_compare_server_error_is_injectable(sim: GitHubSim, data: Json) -> None:
    doc = next(p["doc"] for p in data["planted"] if p["doc"]["path"].startswith("generated/"))
    url = f"/repos/{doc['repo']}/compare/{doc['before']}...{doc['head']}"
    sim.config(compare_error_over_files=1000)
    try:
        with sim.client("bigdiff") as gh:
            assert gh.get(url).status_code == 502
    finally:
        sim.config(compare_error_over_files=0)
    sim.fault(url, 500)
    with sim.client("bigdiff") as gh:
        assert gh.get(url).status_code == 500
        assert gh.get(url).status_code == 200


# -- gists --------------------------------------------------------------------


def test_gist_list_detail_and_truncation(sim: GitHubSim, data: Json, tmp_path: Path) -> None:
    with sim.client("gists") as gh:
        r = gh.get("/gists/public", params={"per_page": 5})
        assert r.status_code == 200 and len(r.json()) == 5 and "next" in r.links
        listing = gh.get("/gists/public", params={"per_page": 100}).json()
        assert len(listing) == len(data["made"]["gists"])
        for g in listing:
            assert {"id", "files", "created_at", "updated_at", "owner", "git_pull_url"} <= set(g)
            for f in g["files"].values():
                assert set(f) == {"filename", "type", "language", "raw_url", "size"}
        future = gh.get("/gists/public", params={"since": "2999-01-01T00:00:00Z"})
        assert future.json() == []
        large = [p for p in data["planted"] if p["doc"]["type"] == "gist"]
        hidden_seen = False
        for item in large:
            doc = item["doc"]
            g = gh.get(f"/gists/{doc['gist_id']}").json()
            assert g["history"][0]["version"] == doc["sha"] and "updated_at" in g
            f = g["files"][doc["path"]]
            assert {"content", "truncated", "raw_url", "size"} <= set(f)
            if f["truncated"]:
                assert len(f["content"].encode()) <= LIMIT < f["size"]
                # The large gist's key lies past the cut: only raw_url shows it.
                hidden_seen = hidden_seen or item["key"] not in f["content"]
                content = gh.get(f["raw_url"]).text
                assert len(content.encode()) == f["size"]
            else:
                content = f["content"]
            assert key_at(text_lines(content), doc["line"], item["key"])
        assert hidden_seen
        huge = [(g, f) for g in listing for f in g["files"].values() if f["size"] > 4 * LIMIT]
        assert huge, "a gist over the clone limit is listed"
    # ... and can be cloned from git_pull_url (dumb HTTP, built on first use).
    g, f = huge[0]
    dest = tmp_path / "gist"
    git("clone", "--quiet", g["git_pull_url"], str(dest))
    assert (dest / f["filename"]).stat().st_size == f["size"]


# -- public repositories --------------------------------------------------------


def test_public_repo_clone_over_dumb_http(sim: GitHubSim, data: Json, tmp_path: Path) -> None:
    items = [p for p in data["planted"] if p["doc"]["type"] == "repo"]
    assert items
    name = items[0]["doc"]["repo"]
    with sim.client("repo") as gh:
        meta = gh.get(f"/repos/{name}").json()
    assert meta["private"] is False and meta["full_name"] == name
    assert meta["clone_url"] == f"{sim.url}/git/{name}.git" and meta["html_url"].endswith(name)
    dest = tmp_path / "clone"
    git("clone", "--quiet", meta["clone_url"], str(dest))
    log = git("log", "--format=%H %s", cwd=dest).splitlines()
    assert len(log) == 4 and log[-1].endswith("Initial commit")
    for item in items:
        doc = item["doc"]
        shown = git("show", f"{doc['sha']}:{doc['path']}", cwd=dest)
        assert key_at(text_lines(shown), doc["line"], item["key"])
        if "removed_in" in doc:  # added, then deleted: only history has it
            assert item["key"] not in git("show", f"{doc['removed_in']}:{doc['path']}", cwd=dest)
            assert item["key"] not in (dest / doc["path"]).read_text()


# -- rate limits and faults -------------------------------------------------------


def test_rate_limit_headers_and_exhaustion(scratch: GitHubSim) -> None:
    scratch.reset()
    scratch.config(rate_limit=5)
    try:
        with scratch.client("small-budget") as gh, scratch.client("other") as other:
            remaining = []
            for _ in range(5):
                r = gh.get("/events")
                assert r.status_code == 200
                remaining.append(int(r.headers["x-ratelimit-remaining"]))
                assert r.headers["x-ratelimit-resource"] == "core"
                assert int(r.headers["x-ratelimit-reset"]) > time.time()
            assert remaining == [4, 3, 2, 1, 0]
            denied = gh.get("/events")
            assert denied.status_code == 403
            assert denied.headers["x-ratelimit-remaining"] == "0"
            assert "API rate limit exceeded" in denied.json()["message"]
            assert other.get("/events").headers["x-ratelimit-remaining"] == "4"
        anon = httpx.get(scratch.url + "/events")
        assert anon.headers["x-ratelimit-limit"] == "60"
        assert anon.headers["x-ratelimit-remaining"] == "59"
        bearer = httpx.get(
            scratch.url + "/events", headers={"Authorization": "Bearer small-budget"}
        )
        assert bearer.status_code == 403  # the same token, however it is sent
        with scratch.client("small-budget") as gh:
            assert gh.get("/rate_limit").json()["resources"]["core"]["remaining"] == 0
    finally:
        scratch.config(rate_limit=5000)
    tokens = scratch.stats()["tokens"]
    assert tokens[GitHubSim.token_label("small-budget")] == 8
    assert not any("small-budget" in label for label in tokens)


def test_injected_faults(scratch: GitHubSim) -> None:
    scratch.reset()
    scratch.fault("/events", 429, retry_after=2)
    scratch.fault("/events", 403, retry_after=30)
    with scratch.client("faults") as gh:
        r = gh.get("/events")
        assert r.status_code == 429 and r.headers["retry-after"] == "2"
        r = gh.get("/events")
        assert r.status_code == 403 and r.headers["x-ratelimit-remaining"] == "0"
        assert abs(int(r.headers["x-ratelimit-reset"]) - (time.time() + 30)) < 3
        assert gh.get("/events").status_code == 200
        for status in (500, 502):
            scratch.fault("/gists/public", status)
            assert gh.get("/gists/public").status_code == status
        assert gh.get("/gists/public").status_code == 200
    assert scratch.stats()["fault_hits"] == 4


def test_secondary_limits(scratch: GitHubSim) -> None:
    scratch.reset()
    scratch.config(max_concurrent=2)
    scratch.fault("/events", None, delay=0.5, count=6)  # slow answers pile up in flight
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:

            def call(_: int) -> httpx.Response:
                with scratch.client("burst") as gh:
                    return gh.get("/events")

            answers = list(pool.map(call, range(6)))
    finally:
        scratch.config(max_concurrent=100)
        scratch.clear_faults()
    limited = [r for r in answers if r.status_code == 403]
    assert limited and len(limited) < 6
    assert all(r.headers["retry-after"] == "60" for r in limited)
    assert all("secondary rate limit" in r.json()["message"] for r in limited)
    assert scratch.stats()["max_inflight"] >= 3
    scratch.config(points_per_minute=3)
    try:
        with scratch.client("points") as gh:
            codes = [gh.get("/gists/public").status_code for _ in range(4)]
            assert gh.get("/events").status_code == 200  # a different endpoint
    finally:
        scratch.config(points_per_minute=900)
    assert codes == [200, 200, 200, 403]


# -- ground truth ---------------------------------------------------------------


def test_planted_ground_truth_matches_served_content(sim: GitHubSim, data: Json) -> None:
    planted = data["planted"]
    kinds = {p["kind"] for p in planted}
    assert kinds == {"live", "test", "third_party", "near_miss"}
    assert sum(p["kind"] == "live" for p in planted) == 4
    for p in planted:
        assert {"kind", "key", "sha256", "display_prefix", "key_id", "doc", "published_at"} <= set(
            p
        )
        if p["kind"] in ("live", "test"):
            assert p["key"].startswith(f"mg_{p['kind']}_") and p["key_id"]
            assert p["display_prefix"] == p["key"][:16]
    with sim.client("truth") as gh:
        for item in planted:
            doc = item["doc"]
            if doc["type"] == "push":
                files = commit_files(gh, doc["repo"], doc["sha"])
                f = next(x for x in files if x["filename"] == doc["path"])
                lines = (
                    new_lines(f["patch"]) if "patch" in f else text_lines(gh.get(f["raw_url"]).text)
                )
                assert key_at(lines, doc["line"], item["key"]), doc
                if doc["before"] != ZEROS and not doc["path"].startswith("generated/"):
                    cmp = gh.get(f"/repos/{doc['repo']}/compare/{doc['before']}...{doc['head']}")
                    entry = next(x for x in cmp.json()["files"] if x["filename"] == doc["path"])
                    if "patch" in entry:
                        assert key_at(new_lines(entry["patch"]), doc["line"], item["key"])
            elif doc["type"] == "gist":
                g = gh.get(f"/gists/{doc['gist_id']}").json()["files"][doc["path"]]
                text = gh.get(g["raw_url"]).text if g["truncated"] else g["content"]
                assert key_at(text_lines(text), doc["line"], item["key"]), doc


def test_engine_finds_exactly_the_planted_keys(sim: GitHubSim, data: Json, engine: Engine) -> None:
    """Served documents hold the planted keys and nothing else a rule would report."""
    planted = [p for p in data["planted"] if p["doc"]["type"] in ("push", "gist")]
    want = {p["key"] for p in planted if p["kind"] != "near_miss"}
    near = {p["key"] for p in planted if p["kind"] == "near_miss"}
    found: set[str] = set()
    with sim.client("engine") as gh:
        for g in gh.get("/gists/public", params={"per_page": 100}).json():
            for f in g["files"].values():
                found |= {m.secret.decode() for m in engine.scan(gh.get(f["raw_url"]).content)}
        for e in gh.get("/events", params={"per_page": 100}).json():
            if e["type"] != "PushEvent":
                continue
            repo, p = e["repo"]["name"], e["payload"]
            shas = [p["head"]]
            if p["before"] != ZEROS:  # as a worker does: compare, then each commit
                cmp = gh.get(f"/repos/{repo}/compare/{p['before']}...{p['head']}").json()
                shas = [c["sha"] for c in cmp["commits"]]
            for sha in shas:
                for f in commit_files(gh, repo, sha):
                    if f["status"] == "removed":
                        continue
                    if "patch" in f and f["status"] == "added":
                        blob = "\n".join(new_lines(f["patch"]).values()).encode()
                    else:
                        blob = gh.get(f["raw_url"]).content
                    found |= {m.secret.decode() for m in engine.scan(blob)}
    assert found == want
    assert not found & near


def test_background_generator(scratch: GitHubSim) -> None:
    scratch.reset()
    scratch.set_rate(40, plant_every=4)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(scratch.planted()) < 6:
            time.sleep(0.2)
    finally:
        scratch.set_rate(0)
    planted = scratch.planted()
    assert len(planted) >= 6
    # No key service: only third-party keys and near misses are planted.
    assert {p["kind"] for p in planted} == {"third_party", "near_miss"}
    assert all(p["published_at"] <= time.time() for p in planted)
    stats = scratch.stats()
    assert stats["generated_docs"] >= 24 and stats["published"]["pushes"] > 0
    assert stats["published"]["gists"] > 0
    with scratch.client("bg") as gh:
        assert gh.get("/events").json() and gh.get("/gists/public").json()


def test_github_sim_fixture_plants_keys_the_key_service_knows(
    github_sim: GitHubSim,  # noqa: F811 (the fixture imported above)
    keyservice: KeyService,
) -> None:
    made = github_sim.generate(pushes=3, gists=2, plant={"live": 2, "test": 1})
    assert made["planted"] == 3 and not made["skipped"]
    planted = github_sim.planted()
    with keyservice.client() as http:
        matches = http.post(
            "/v1/keys/lookup", json={"hashes": [p["sha256"] for p in planted]}
        ).json()["matches"]
    by_hash = {m["sha256"]: m for m in matches}
    for p in planted:
        m = by_hash[p["sha256"]]
        assert m["key_id"] == p["key_id"] and m["environment"] == p["kind"]
        assert m["status"] == "active" and m["display_prefix"] == p["display_prefix"]
    assert github_sim.log_path.exists() and "listening on" in github_sim.log()
    assert p["key"] not in github_sim.log()  # nor any other planted key
