"""From a reported token to findings: hashed here, the cleartext goes no further.

GitHub's partner alert body is a JSON array of ``{"token", "type", "url",
"source"}``; GitLab's ``POST /v1/revoke_tokens`` body is an array of ``{"type",
"token", "location"}``. Each token becomes the same findings the crawler would
make of it: the engine scans the token itself (same rules, so the same rule ids,
SHA-256 and fingerprints as a crawler finding of that key: the act path's
idempotency keys then make the two one revocation), plus the whole token as a
candidate of the ``mg_`` rule its prefix names, so the key service's answer
decides even for a token the engine would not report. Only our own keys
(``owner = "keyservice"``) are kept: the partner paths never report other
providers' keys.

Findings leave with ``secret=None``. A URL that contains the token is redacted
before it goes anywhere (an audit event or alert must never hold a key).
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from scanner.engine import Engine
from scanner.findings import Finding, FindingSet, Location, fingerprint, redact, sha256_hex

# GitHub's documented values of `source` (the partner program page lists them
# capitalised, its examples use lower case; both are accepted).
GITHUB_SOURCES = frozenset(
    {
        "content",
        "commit",
        "pull_request_title",
        "pull_request_description",
        "pull_request_comment",
        "issue_title",
        "issue_description",
        "issue_comment",
        "discussion_title",
        "discussion_body",
        "discussion_comment",
        "commit_comment",
        "gist_content",
        "gist_comment",
        "npm",
        "unknown",
    }
)
MAX_TOKEN = 1024
MAX_TYPE = 128
MAX_URL = 2048
BLOB_URL = re.compile(
    r"https://github\.com/(?P<repo>[^/\s]+/[^/\s]+)/blob/(?P<commit>[0-9a-fA-F]{7,64})/"
    r"(?P<path>[^#?\s]+)(?:#L(?P<line>\d+))?"
)
GIST_URL = re.compile(r"https://gist\.github\.com/(?:[^/\s]+/)?(?P<gist>[0-9a-fA-F]+)")


class BadRequest(Exception):
    """The body is not what the API documents (answer 400, do not retry)."""


@dataclass
class Report:
    """One reported token, hashed: what the feedback answer and the act path need."""

    token_hash: str  # SHA-256 hex of the token exactly as reported
    token_type: str
    source: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def hashes(self) -> set[str]:
        return {f.secret_sha256 for f in self.findings}


def clean_url(url: str, token: str) -> str:
    """The URL as given, with the token (if it appears in it) cut to its redacted form."""
    url = url[:MAX_URL]
    if token and token in url:
        url = url.replace(token, redact(token.encode(), ()))
    return url


def location_of(url: str, kind: str) -> Location:
    """Repository, commit, path and line where the URL is a GitHub blob link. ``kind``
    says who reported it and where they saw it: ``github_<source>`` (GitHub's
    ``source``: ``github_commit``, ``github_issue_comment``, …) or ``gitlab``."""
    m = BLOB_URL.match(url)
    if m:
        line = m.group("line")
        return Location(
            kind=kind,
            repo=m.group("repo"),
            commit=m.group("commit"),
            path=m.group("path"),
            line=int(line) if line else None,
            url=url,
        )
    g = GIST_URL.match(url)
    if g:
        return Location(kind=kind, repo=f"gist:{g.group('gist')}", url=url)
    return Location(kind=kind, url=url or None)


class Intake:
    """Turns reported tokens into findings of our own key rules (no I/O)."""

    def __init__(self, engine: Engine) -> None:
        if engine.honour_allow:
            # A reported token is public content: nothing in it may allow it.
            engine = copy.copy(engine)
            engine.honour_allow = False
        self.engine = engine
        self.ours = [r for r in engine.rules if r.owner == "keyservice"]

    def findings_for(self, token: str, location: Location) -> list[Finding]:
        return self.findings_for_many([(token, location)])[0]

    def findings_for_many(self, items: list[tuple[str, Location]]) -> list[list[Finding]]:
        """Each token's findings; the engine scans all of them in one call (one token a
        line: a newline is in no key's alphabet, so matches never run across tokens)."""
        datas = [t.encode("utf-8", "surrogatepass") for t, _ in items]
        starts: list[int] = []
        pos = 0
        for d in datas:
            starts.append(pos)
            pos += len(d) + 1
        sets = [FindingSet(expired_before=time.time()) for _ in items]
        for m in self.engine.scan(b"\n".join(datas)):
            if m.rule.owner != "keyservice":
                continue
            i = bisect.bisect_right(starts, m.start) - 1
            if m.end <= starts[i] + len(datas[i]):
                sets[i].add(m, items[i][1])
        out = []
        for (token, location), data, found in zip(items, datas, sets, strict=True):
            fs = found.findings()
            whole = sha256_hex(data)
            for rule in self.ours:
                if any(token.startswith(p) for p in rule.prefixes) and not any(
                    f.secret_sha256 == whole and f.rule_id == rule.id for f in fs
                ):
                    fs.append(
                        Finding(
                            rule_id=rule.id,
                            description=rule.description,
                            severity=rule.severity,
                            owner=rule.owner,
                            secret_sha256=whole,
                            redacted=redact(data, rule.prefixes),
                            fingerprint=fingerprint(rule.id, whole),
                            location=location,
                            locations=[location],
                            tags=list(rule.tags),
                        )
                    )
            out.append([replace(f, secret=None) for f in fs])
        return out

    def reports(self, items: list[tuple[str, str, str, str]], provider: str) -> list[Report]:
        """``(token, type, url, source)`` each -> its report (hash, findings, no cleartext)."""
        located = [
            (
                t,
                location_of(
                    clean_url(url, t), provider if src == provider else f"{provider}_{src}"
                ),
            )
            for t, _, url, src in items
        ]
        found = self.findings_for_many(located)
        return [
            Report(
                token_hash=hashlib.sha256(t.encode("utf-8", "surrogatepass")).hexdigest(),
                token_type=typ,
                source=src,
                findings=fs,
            )
            for (t, typ, _, src), fs in zip(items, found, strict=True)
        ]

    def report(self, token: str, token_type: str, url: str, source: str, provider: str) -> Report:
        return self.reports([(token, token_type, url, source)], provider)[0]


def _items(body: Any, max_items: int) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        raise BadRequest("body must be a JSON array")
    if len(body) > max_items:
        raise BadRequest(f"at most {max_items} tokens per request")
    if not all(isinstance(x, dict) for x in body):
        raise BadRequest("every element must be an object")
    return body


def _text(item: dict[str, Any], name: str, limit: int, *, required: bool) -> str:
    value = item.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        raise BadRequest(f"{name} must be a string of at most {limit} characters")
    return value


def github_reports(intake: Intake, body: Any, max_items: int) -> list[Report]:
    """GitHub's alert body -> reports. Raises BadRequest when the body is malformed."""
    items = []
    for item in _items(body, max_items):
        token = _text(item, "token", MAX_TOKEN, required=True)
        token_type = _text(item, "type", MAX_TYPE, required=True)
        url = _text(item, "url", MAX_URL, required=False)
        source = _text(item, "source", MAX_TYPE, required=False).lower()
        if source not in GITHUB_SOURCES:
            source = "unknown"  # recorded as GitHub's own catch-all value
        items.append((token, token_type, url, source))
    return intake.reports(items, "github")


def gitlab_reports(
    intake: Intake, body: Any, max_items: int, types: tuple[str, ...]
) -> list[Report]:
    """GitLab's revoke_tokens body -> reports; an unsupported type is a 400 (documented)."""
    reports = []
    items = _items(body, max_items)
    for item in items:
        token_type = _text(item, "type", MAX_TYPE, required=True)
        if token_type not in types:
            raise BadRequest(f"token type {token_type[:64]!r} is not supported")
    for item in items:
        token = _text(item, "token", MAX_TOKEN, required=True)
        location = _text(item, "location", MAX_URL, required=False)
        reports.append((token, str(item["type"]), location, "gitlab"))
    return intake.reports(reports, "gitlab")
