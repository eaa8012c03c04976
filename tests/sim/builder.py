"""Builds traffic: pushes (commits with precomputed patches), gists, public
repositories (real bare git repos) and noise events, with keys planted in them.

A ``Builder`` is used from one thread at a time (the app serialises generation
behind a lock and runs it in a worker thread); it owns its random generator, its
id counters and the pool of "active" repositories that later pushes modify.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.sim.content import (
    Words,
    code_lines,
    gist_filename,
    lang_of,
    language_and_type,
    paths_for,
)
from tests.sim.gitrepo import GitCommit, create_bare_repo
from tests.sim.keys import Planter, Snippet
from tests.sim.model import (
    ZERO_SHA,
    Actor,
    Batch,
    Commit,
    FileChange,
    Gist,
    GistFile,
    RepoInfo,
    Urls,
    git_blob_sha,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
Item = tuple[str, dict[str, Any] | None]  # (kind, key service answer for our keys)


@dataclass
class BuildSpec:
    pushes: int = 0
    gists: int = 0
    public_repos: int = 0
    noise: int = 0
    large_files: int = 0  # extra pushes whose one file is over the patch limit (no patch)
    binary_files: int = 0  # extra pushes that add a binary file (no patch)
    wide_pushes: list[int] = field(default_factory=list)  # extra one-commit pushes, N files
    large_gists: int = 0  # gists with a file over the truncation limit
    huge_gists: int = 0  # gists with a file over the clone limit (nothing planted)
    items: list[Item] = field(default_factory=list)
    max_patch_bytes: int = 1 << 20
    gist_truncate_bytes: int = 1 << 20
    gist_clone_bytes: int = 10 << 20
    new_branch_ratio: float = 0.15


@dataclass
class DocPlan:
    kind: str  # push wide_push large_push binary_push gist large_gist huge_gist repo noise
    size: int = 0
    items: list[Item] = field(default_factory=list)


@dataclass
class RepoState:
    info: RepoInfo
    tree: dict[str, list[str]]
    head: str | None


def weave(
    base: list[str], inserts: Sequence[tuple[int, Snippet]]
) -> tuple[list[str], dict[int, int]]:
    """Insert snippets before ``base[pos]``; returns the lines and, per snippet tag,
    the 0-based index of the line where its key starts."""
    out: list[str] = []
    where: dict[int, int] = {}
    ordered = sorted(inserts, key=lambda x: x[0])
    i = 0
    for pos, snip in ordered:
        out.extend(base[i:pos])
        i = max(i, pos)
        where[snip.tag] = len(out) + snip.offset
        out.extend(snip.lines)
    out.extend(base[i:])
    return out, where


def _range(start: int, length: int) -> str:
    """A hunk range as git prints it (``start`` is 0-based; "N" alone when length is 1)."""
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"


def added_patch(new: list[str]) -> tuple[str, int, int]:
    """GitHub's ``patch`` of a new file: one hunk of added lines."""
    body = "\n".join("+" + x for x in new)
    return f"@@ -0,0 +{_range(0, len(new))} @@\n" + body, len(new), 0


def removed_patch(old: list[str]) -> tuple[str, int, int]:
    body = "\n".join("-" + x for x in old)
    return f"@@ -{_range(0, len(old))} +0,0 @@\n" + body, 0, len(old)


def insertion_patch(old: list[str], at: int, block: list[str], context: int = 3) -> str:
    """The hunk for ``block`` inserted before ``old[at]``, with git's 3 lines of context."""
    lo, hi = max(0, at - context), min(len(old), at + context)
    before, after = old[lo:at], old[at:hi]
    header = (
        f"@@ -{_range(lo, len(before) + len(after))} "
        f"+{_range(lo, len(before) + len(block) + len(after))} @@"
    )
    lines = [header, *(" " + x for x in before), *("+" + x for x in block)]
    lines += [" " + x for x in after]
    return "\n".join(lines)


def text_bytes(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def doc_type(plan_kind: str) -> str:
    if plan_kind.endswith("push"):
        return "push"
    return "gist" if plan_kind.endswith("gist") else plan_kind


class Builder:
    def __init__(self, seed: int | None, urls: Urls, workdir: Path) -> None:
        self.rng = random.Random(seed)
        self.words = Words(self.rng)
        self.urls = urls
        self.workdir = workdir
        self.planter = Planter(self.rng)
        self.event_id = 52_000_000_000 + self.rng.randrange(10**9)
        self.push_id = 27_000_000_000 + self.rng.randrange(10**9)
        self.repo_ids: set[int] = set()
        self.names: set[str] = set()
        self.pool: list[RepoState] = []
        self.actors: list[Actor] = []
        self.tag = 0

    # -- ids and names -----------------------------------------------------

    def hexid(self, n: int = 40) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def next_event_id(self) -> str:
        self.event_id += self.rng.randrange(1, 40)
        return str(self.event_id)

    def actor(self) -> Actor:
        if len(self.actors) < 300 or self.rng.random() < 0.2:
            a = Actor(self.rng.randrange(1_000, 190_000_000), self.words.login())
            self.actors.append(a)
            if len(self.actors) > 2000:
                self.actors.pop(0)
            return a
        return self.rng.choice(self.actors)

    def new_repo(self, owner: Actor | None = None, existing: bool = True) -> RepoState:
        owner = owner or self.actor()
        if len(self.names) > 500_000:  # long runs: forget names the store has evicted
            self.names = {r.info.full_name for r in self.pool}
            self.repo_ids = {r.info.id for r in self.pool}
        while True:
            name = self.words.repo_name()
            if f"{owner.login}/{name}" not in self.names:
                break
            name = f"{name}-{self.rng.randrange(2, 99)}"
            if f"{owner.login}/{name}" not in self.names:
                break
        self.names.add(f"{owner.login}/{name}")
        while True:
            rid = self.rng.randrange(600_000_000, 1_100_000_000)
            if rid not in self.repo_ids:
                self.repo_ids.add(rid)
                break
        now = time.time()
        info = RepoInfo(
            id=rid,
            owner=owner,
            name=name,
            description=self.words.sentence(),
            language=self.rng.choice(("Python", "JavaScript", "Go", "TypeScript", "Shell")),
            created_at=now - self.rng.randrange(3600, 86400 * 400),
            pushed_at=now,
            size_kb=self.rng.randrange(10, 5000),
        )
        tree: dict[str, list[str]] = {}
        head: str | None = None
        if existing:  # a repository with history from before the simulation started
            head = self.hexid()
            for _ in range(self.rng.randrange(2, 6)):
                p = paths_for(self.words)
                tree[p] = code_lines(self.words, lang_of(p), self.rng.randrange(20, 120))
        return RepoState(info, tree, head)

    def pick_repo(self, need_head: bool = False) -> RepoState:
        candidates = [r for r in self.pool if r.head or not need_head]
        if len(self.pool) < 20 or not candidates or self.rng.random() < 0.25:
            state = self.new_repo(existing=need_head or self.rng.random() < 0.7)
            self.pool.append(state)
            if len(self.pool) > 200:
                self.pool.pop(0)
            return state
        return self.rng.choice(candidates)

    # -- planting ----------------------------------------------------------

    def snippets(self, items: list[Item], family: str) -> list[Snippet]:
        out = []
        for kind, minted in items:
            snip = self.planter.snippet(kind, family, minted)
            self.tag += 1
            snip.tag = self.tag
            out.append(snip)
        return out

    def placed(self, snips: list[Snippet], n_lines: int, lo: int = 0) -> list[tuple[int, Snippet]]:
        return [(self.rng.randrange(lo, max(lo, n_lines) + 1), s) for s in snips]

    @staticmethod
    def planted(snip: Snippet, line0: int, doc: dict[str, Any]) -> dict[str, Any]:
        rec = snip.material.record()
        rec["doc"] = {
            "type": doc["type"],
            "repo": doc.get("repo"),
            "sha": doc.get("sha"),
            "path": doc["path"],
            "line": line0 + 1,
            "gist_id": doc.get("gist_id"),
            "event_id": doc.get("event_id"),
            **{k: v for k, v in doc.items() if k in ("before", "head", "ref", "removed_in")},
        }
        return rec

    # -- the entry point ---------------------------------------------------

    def build(self, spec: BuildSpec) -> Batch:
        plans: list[DocPlan] = [DocPlan("push") for _ in range(spec.pushes)]
        plans += [DocPlan("gist") for _ in range(spec.gists)]
        specials = [DocPlan("wide_push", size=n) for n in spec.wide_pushes]
        specials += [DocPlan("large_push") for _ in range(spec.large_files)]
        specials += [DocPlan("large_gist") for _ in range(spec.large_gists)]
        specials += [DocPlan("repo") for _ in range(spec.public_repos)]
        plans += specials
        plans += [DocPlan("binary_push") for _ in range(spec.binary_files)]
        plans += [DocPlan("huge_gist") for _ in range(spec.huge_gists)]
        items = sorted(spec.items, key=lambda it: it[0] == "near_miss")
        for plan in specials:  # each special document carries a key when there are keys
            if items:
                plan.items.append(items.pop(0))
        carriers = [p for p in plans if p.kind != "huge_gist"]
        if items and not carriers:
            raise ValueError("keys to plant but no documents to plant them in")
        # Spread each kind over the document types first (push, gist, repo), so a
        # few keys of a kind still reach every type; the rest go anywhere.
        by_type: dict[str, list[DocPlan]] = {}
        for p in carriers:
            by_type.setdefault(doc_type(p.kind), []).append(p)
        groups: dict[str, list[Item]] = {}
        for item in items:
            groups.setdefault("ours" if item[0] in ("live", "test") else item[0], []).append(item)
        for group in groups.values():
            types = sorted(by_type)
            self.rng.shuffle(types)
            for j, item in enumerate(group):
                pool = by_type[types[j]] if j < len(types) else carriers
                self.rng.choice(pool).items.append(item)
        plans += [DocPlan("noise") for _ in range(spec.noise)]
        self.rng.shuffle(plans)
        batch = Batch()
        for plan in plans:
            if plan.kind.endswith("push"):
                self.build_push(plan, spec, batch)
            elif plan.kind.endswith("gist"):
                self.build_gist(plan, spec, batch)
            elif plan.kind == "repo":
                self.build_public_repo(plan, batch)
            else:
                self.build_noise(batch)
        return batch

    # -- pushes ------------------------------------------------------------

    def text_change(
        self, path: str, old: list[str] | None, items: list[Item], n_new: int
    ) -> tuple[FileChange, list[str], list[tuple[Snippet, int]]]:
        family = lang_of(path)
        snips = self.snippets(items, family)
        if old is None:
            filler = code_lines(self.words, family, n_new)
            new, where = weave(filler, self.placed(snips, len(filler)))
            status = "added"
            patch, adds, dels = added_patch(new)
        else:
            block = code_lines(self.words, family, n_new, header=False)
            block, where_block = weave(block, self.placed(snips, len(block)))
            at = self.rng.randrange(len(old) + 1)
            new = old[:at] + block + old[at:]
            where = {tag: at + i for tag, i in where_block.items()}
            status = "modified"
            patch, adds, dels = insertion_patch(old, at, block), len(block), 0
        data = text_bytes(new)
        change = FileChange(
            path, status, data, git_blob_sha(data), patch, adds, dels, len(patch.encode())
        )
        return change, new, [(s, where[s.tag]) for s in snips]

    def removal(self, path: str, old: list[str]) -> FileChange:
        patch, adds, dels = removed_patch(old)
        return FileChange(
            path, "removed", None, git_blob_sha(text_bytes(old)), patch, adds, dels, len(patch)
        )

    def filler(self, family: str, limit: int) -> list[str]:
        """Code lines comfortably past ``limit`` bytes (a large file or gist)."""
        target = max(int(limit * 1.25), limit + 4096)
        lines: list[str] = []
        size = 0
        while size < target:
            chunk = code_lines(self.words, family, 200, header=not lines)
            lines.extend(chunk)
            size += sum(len(x) + 1 for x in chunk)
        return lines

    def large_change(
        self, path: str, items: list[Item], limit: int
    ) -> tuple[FileChange, list[tuple[Snippet, int]]]:
        family = lang_of(path)
        lines = self.filler(family, limit)
        snips = self.snippets(items, family)
        new, where = weave(lines, self.placed(snips, len(lines), lo=len(lines) // 2))
        patch, adds, dels = added_patch(new)
        data = text_bytes(new)
        change = FileChange(
            path, "added", data, git_blob_sha(data), patch, adds, dels, len(patch.encode())
        )
        return change, [(s, where[s.tag]) for s in snips]

    def binary_change(self, path: str) -> FileChange:
        data = PNG_MAGIC + self.rng.randbytes(self.rng.randrange(2_000, 20_000))
        return FileChange(path, "added", data, git_blob_sha(data), None, 0, 0, 0)

    def fresh_path(self, taken: set[str] | dict[str, Any]) -> str:
        for _ in range(50):
            p = paths_for(self.words)
            if p not in taken:
                return p
        return f"src/{self.words.noun()}_{self.hexid(6)}.py"

    def commit_changes(
        self, state: RepoState, items: list[Item], n_changes: int, apply: bool, touched: set[str]
    ) -> tuple[list[FileChange], list[tuple[Snippet, int, str]]]:
        """Changes for one commit on ``state``'s tree (updated when ``apply``)."""
        changes: list[FileChange] = []
        placed: list[tuple[Snippet, int, str]] = []
        share = [items[i::n_changes] for i in range(n_changes)]
        for mine in share:
            existing = [p for p in state.tree if p not in touched and len(state.tree[p]) < 400]
            roll = self.rng.random()
            if existing and not mine and roll < 0.06 and len(state.tree) > 3:
                path = self.rng.choice(existing)
                changes.append(self.removal(path, state.tree[path]))
                touched.add(path)
                if apply:
                    del state.tree[path]
                continue
            if existing and roll < 0.6:
                path = self.rng.choice(existing)
                old: list[str] | None = state.tree[path]
                n_new = self.rng.randrange(1, 16)
            else:
                path = self.fresh_path(state.tree.keys() | touched)
                old = None
                n_new = self.rng.randrange(20, 200)
            change, new, where = self.text_change(path, old, mine, n_new)
            touched.add(path)
            changes.append(change)
            placed.extend((s, line, path) for s, line in where)
            if apply:
                state.tree[path] = new
        return changes, placed

    def make_commit(self, state: RepoState, parent: str | None, files: list[FileChange]) -> Commit:
        name, email = self.words.person()
        verb, noun = self.words.verb(), self.words.noun()
        message = self.rng.choice(
            (
                f"{verb.capitalize()} {noun} handling",
                f"fix: {verb} {noun} on retry",
                f"feat({noun}): {verb} {self.words.noun()}s",
                f"Update {noun} config",
                f"WIP {noun}",
                f"chore: bump {noun}",
            )
        )
        return Commit(
            sha=self.hexid(),
            repo=state.info.full_name,
            parents=[parent] if parent else [],
            author=state.info.owner,
            author_name=name,
            author_email=email,
            epoch=time.time() - self.rng.randrange(5, 3600),
            message=message,
            files=sorted(files, key=lambda f: f.path),
            tree_sha=self.hexid(),
        )

    def build_push(self, plan: DocPlan, spec: BuildSpec, batch: Batch) -> None:
        need_head = plan.kind in ("wide_push", "large_push", "binary_push")
        state = self.pick_repo(need_head=need_head)
        repo = state.info
        ref = "refs/heads/" + repo.default_branch
        commits: list[Commit] = []
        placed: list[tuple[Snippet, int, str, Commit]] = []
        if plan.kind == "wide_push":
            commit, wplaced = self.wide_commit(state, plan)
            commits.append(commit)
            placed.extend((s, line, path, commit) for s, line, path in wplaced)
            before = state.head or ZERO_SHA
            state.head = commit.sha
        elif plan.kind in ("large_push", "binary_push"):
            touched: set[str] = set()
            files: list[FileChange] = []
            found: list[tuple[Snippet, int, str]] = []
            if plan.kind == "large_push":
                path = f"data/{self.words.noun()}_fixtures_{self.hexid(6)}.json"
                change, where = self.large_change(path, plan.items, spec.max_patch_bytes)
                files.append(change)
                found.extend((s, line, path) for s, line in where)
            else:
                files.append(self.binary_change(f"assets/{self.words.noun()}-{self.hexid(6)}.png"))
                changes, where3 = self.commit_changes(state, plan.items, 1, True, touched)
                files.extend(changes)
                found.extend(where3)
            commit = self.make_commit(state, state.head, files)
            commits.append(commit)
            placed.extend((s, line, path, commit) for s, line, path in found)
            before = state.head or ZERO_SHA
            state.head = commit.sha
        elif state.head is None:  # the first push of a brand-new repository
            touched = set()
            changes, where3 = self.commit_changes(
                state, plan.items, self.rng.randrange(2, 5), True, touched
            )
            commit = self.make_commit(state, None, changes)
            commits.append(commit)
            placed.extend((s, line, path, commit) for s, line, path in where3)
            before = ZERO_SHA
            state.head = commit.sha
        elif self.rng.random() < spec.new_branch_ratio:  # a new branch: one new commit
            ref = f"refs/heads/{self.rng.choice(('feature', 'fix', 'dev'))}/{self.words.snake()}"
            touched = set()
            changes, where3 = self.commit_changes(
                state, plan.items, self.rng.randrange(1, 4), False, touched
            )
            commit = self.make_commit(state, state.head, changes)
            commits.append(commit)
            placed.extend((s, line, path, commit) for s, line, path in where3)
            before = ZERO_SHA
        else:
            before = state.head
            n_commits = self.rng.choices((1, 2, 3), (70, 20, 10))[0]
            shares = [plan.items[i::n_commits] for i in range(n_commits)]
            touched = set()
            parent: str | None = state.head
            for mine in shares:
                changes, where3 = self.commit_changes(
                    state, mine, self.rng.randrange(1, 4), True, touched
                )
                commit = self.make_commit(state, parent, changes)
                commits.append(commit)
                placed.extend((s, line, path, commit) for s, line, path in where3)
                parent = commit.sha
            state.head = parent
        head = commits[-1].sha
        event_id = self.next_event_id()
        self.push_id += self.rng.randrange(1, 30)
        repo.pushed_at = time.time()
        batch.repos.append(repo)
        batch.commits.extend(commits)
        batch.events.append(
            {
                "id": event_id,
                "type": "PushEvent",
                "actor": repo.owner.json(self.urls),
                "repo": repo.event_json(self.urls),
                "payload": {
                    "repository_id": repo.id,
                    "push_id": self.push_id,
                    "ref": ref,
                    "head": head,
                    "before": before,
                },
                "public": True,
            }
        )
        for snip, line, path, commit in placed:
            doc = {
                "type": "push",
                "repo": repo.full_name,
                "sha": commit.sha,
                "path": path,
                "event_id": event_id,
                "before": before,
                "head": head,
                "ref": ref,
            }
            batch.planted.append(self.planted(snip, line, doc))

    def wide_commit(
        self, state: RepoState, plan: DocPlan
    ) -> tuple[Commit, list[tuple[Snippet, int, str]]]:
        n = max(1, plan.size)
        base = f"generated/{self.words.noun()}_{self.hexid(6)}"
        paths = [f"{base}/part_{i:04d}.py" for i in range(n)]  # already in sorted order
        visible = min(n, 3000)
        lo = 300 if visible > 300 else 0
        targets: dict[int, list[Item]] = {}
        for item in plan.items:  # beyond the compare cap when there is a beyond
            targets.setdefault(self.rng.randrange(lo, visible), []).append(item)
        files: list[FileChange] = []
        placed: list[tuple[Snippet, int, str]] = []
        for i, path in enumerate(paths):
            lines = code_lines(self.words, "py", self.rng.randrange(4, 10), header=False)
            snips = self.snippets(targets.get(i, []), "py")
            new, where = weave(lines, self.placed(snips, len(lines)))
            patch, adds, dels = added_patch(new)
            data = text_bytes(new)
            files.append(
                FileChange(path, "added", data, git_blob_sha(data), patch, adds, dels, len(patch))
            )
            placed.extend((s, where[s.tag], path) for s in snips)
        return self.make_commit(state, state.head, files), placed

    # -- gists -------------------------------------------------------------

    def build_gist(self, plan: DocPlan, spec: BuildSpec, batch: Batch) -> None:
        owner = self.actor()
        names: list[str] = []
        for _ in range(self.rng.choices((1, 2, 3), (70, 20, 10))[0]):
            name = gist_filename(self.words)
            if name not in names:
                names.append(name)
        big = plan.kind in ("large_gist", "huge_gist")
        share: dict[str, list[Item]] = {n: [] for n in names}
        for item in plan.items:
            share[names[0] if big else self.rng.choice(names)].append(item)
        gist_id = self.hexid(32)
        version = self.hexid()
        files: list[GistFile] = []
        placed: list[tuple[Snippet, int, str]] = []
        for i, name in enumerate(names):
            family = lang_of(name)
            if big and i == 0:
                limit = (
                    spec.gist_truncate_bytes if plan.kind == "large_gist" else spec.gist_clone_bytes
                )
                lines = self.filler(family, limit)
                # Keys go past the truncation point: only raw_url shows them.
                cut, acc = 0, 0
                while cut < len(lines) and acc <= spec.gist_truncate_bytes:
                    acc += len(lines[cut]) + 1
                    cut += 1
                snips = self.snippets(share[name], family)
                new, where = weave(lines, self.placed(snips, len(lines), lo=cut))
            else:
                lines = code_lines(self.words, family, self.rng.randrange(20, 200))
                snips = self.snippets(share[name], family)
                new, where = weave(lines, self.placed(snips, len(lines)))
            lang, mime = language_and_type(name)
            files.append(GistFile(name, lang, mime, text_bytes(new)))
            placed.extend((s, where[s.tag], name) for s in snips)
        gist = Gist(
            id=gist_id,
            owner=owner,
            description=self.rng.choice(("", self.words.sentence(), f"{self.words.noun()} notes")),
            files=sorted(files, key=lambda f: f.filename),
            version=version,
        )
        batch.gists.append(gist)
        for snip, line, name in placed:
            doc = {"type": "gist", "gist_id": gist_id, "sha": version, "path": name}
            batch.planted.append(self.planted(snip, line, doc))

    # -- public repositories (PublicEvent) ---------------------------------

    def build_public_repo(self, plan: DocPlan, batch: Batch) -> None:
        state = self.new_repo(existing=False)
        repo = state.info
        repo.has_git = True
        name, email = self.words.person()
        now = int(time.time())
        main = self.rng.choice(("app.py", "index.js", "main.go"))
        files1 = {
            "README.md": text_bytes(code_lines(self.words, "md", 25)),
            f"src/{main}": text_bytes(code_lines(self.words, lang_of(main), 60)),
            ".gitignore": b"__pycache__/\nnode_modules/\n.env\n*.log\n",
        }
        commits = [GitCommit("Initial commit", name, email, now - 5 * 86400, dict(files1))]
        first, rest = plan.items[:1], plan.items[1:]
        cfg_path = self.rng.choice(("config/settings.py", "config/app.yaml", ".env.production"))
        family = lang_of(cfg_path)
        cfg_lines = code_lines(self.words, family, 30)
        snips1 = self.snippets(first, family)
        cfg_new, where1 = weave(cfg_lines, self.placed(snips1, len(cfg_lines)))
        commits.append(
            GitCommit(
                "Add configuration", name, email, now - 4 * 86400, {cfg_path: text_bytes(cfg_new)}
            )
        )
        # The key is deleted again (it stays in history), as people do.
        commits.append(
            GitCommit(
                "Remove credentials from config",
                name,
                email,
                now - 3 * 86400,
                {cfg_path: text_bytes(cfg_lines)},
            )
        )
        extra_path = self.fresh_path(set(files1) | {cfg_path})
        fam2 = lang_of(extra_path)
        extra_lines = code_lines(self.words, fam2, self.rng.randrange(20, 80))
        snips2 = self.snippets(rest, fam2)
        extra_new, where2 = weave(extra_lines, self.placed(snips2, len(extra_lines)))
        commits.append(
            GitCommit(
                f"Add {self.words.noun()} helpers",
                name,
                email,
                now - 2 * 86400,
                {extra_path: text_bytes(extra_new)},
            )
        )
        path = self.workdir / "git" / repo.owner.login / f"{repo.name}.git"
        shas = create_bare_repo(path, commits)
        event_id = self.next_event_id()
        repo.pushed_at = now - 2 * 86400
        batch.repos.append(repo)
        batch.events.append(
            {
                "id": event_id,
                "type": "PublicEvent",
                "actor": repo.owner.json(self.urls),
                "repo": repo.event_json(self.urls),
                "payload": {},
                "public": True,
            }
        )
        base = {"type": "repo", "repo": repo.full_name, "event_id": event_id}
        for s in snips1:
            doc = {**base, "sha": shas[1], "path": cfg_path, "removed_in": shas[2]}
            batch.planted.append(self.planted(s, where1[s.tag], doc))
        for s in snips2:
            doc = {**base, "sha": shas[3], "path": extra_path}
            batch.planted.append(self.planted(s, where2[s.tag], doc))

    # -- events without code -----------------------------------------------

    def build_noise(self, batch: Batch) -> None:
        state = self.rng.choice(self.pool) if self.pool else self.new_repo()
        repo = state.info
        actor = self.actor()
        kind = self.rng.choice(
            ("WatchEvent", "IssuesEvent", "CreateEvent", "ForkEvent", "IssueCommentEvent")
        )
        number = self.rng.randrange(1, 400)
        issue = {
            "id": self.rng.randrange(10**9, 4 * 10**9),
            "number": number,
            "title": self.words.sentence(),
            "state": "open",
            "html_url": f"{self.urls.html}/{repo.full_name}/issues/{number}",
            "user": actor.user_json(self.urls),
        }
        payload: dict[str, Any]
        if kind == "WatchEvent":
            payload = {"action": "started"}
        elif kind == "IssuesEvent":
            payload = {"action": "opened", "issue": issue}
        elif kind == "IssueCommentEvent":
            payload = {
                "action": "created",
                "issue": issue,
                "comment": {
                    "id": self.rng.randrange(10**9, 4 * 10**9),
                    "body": self.words.sentence(),
                },
            }
        elif kind == "CreateEvent":
            payload = {
                "ref": f"release-{self.rng.randrange(1, 9)}.{self.rng.randrange(0, 20)}",
                "ref_type": "branch",
                "master_branch": repo.default_branch,
                "description": None,
                "pusher_type": "user",
            }
        else:
            payload = {
                "forkee": {
                    "id": self.rng.randrange(600_000_000, 1_100_000_000),
                    "name": repo.name,
                    "full_name": f"{actor.login}/{repo.name}",
                    "private": False,
                    "html_url": f"{self.urls.html}/{actor.login}/{repo.name}",
                }
            }
        batch.events.append(
            {
                "id": self.next_event_id(),
                "type": kind,
                "actor": actor.json(self.urls),
                "repo": repo.event_json(self.urls),
                "payload": payload,
                "public": True,
            }
        )
