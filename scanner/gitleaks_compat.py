"""A home for gitleaks users: a repository's ``.gitleaks.toml`` and ``.gitleaksignore``.

A team that tuned gitleaks keeps its tuning:

* ``[[rules]]`` (id, description, regex, secretGroup, entropy, keywords, path, tags)
  become keysweep rules. gitleaks regexes are Go RE2; each is translated to the
  ``regex`` module's syntax or refused with a message naming the rule and the
  construct (``\\C``, the ``U`` flag, Unicode classes on bytes).
* ``[allowlist]`` / ``[[allowlists]]`` (global, ``targetRules``) and a rule's own
  ``[rules.allowlist]`` / ``[[rules.allowlists]]``: ``regexes`` (``regexTarget``
  secret, match or line), ``paths``, ``commits``, ``stopwords``, ``condition``
  OR/AND, as gitleaks applies them.
* ``[extend]``: ``useDefault`` (gitleaks' default rules are stood in for by
  keysweep's own pack: keysweep copies no rule of gitleaks), ``disabledRules``
  (gitleaks' default rule ids are mapped to keysweep's), ``path`` (another file,
  inside the repository, at most three deep); ``url`` is refused.
* ``.gitleaksignore``: fingerprints ``commit:path:rule-id:line`` (history) and
  ``path:rule-id:line`` (files); the rule id may be gitleaks' or keysweep's.

keysweep's own pack always runs (it is keysweep's, written from the providers'
formats); a ``.gitleaks.toml`` adds rules, disables mapped ones and allows
findings. The file is the scanned repository's own, so it is untrusted: bounded
sizes, paths kept inside the repository, every imported regex run with a timeout.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.errors import KeysweepError
from scanner.rules import Rule, RuleError, rule_from_dict

if TYPE_CHECKING:
    import regex

    from scanner.engine import EngineStats, Match
    from scanner.findings import Location

CONFIG_NAME = ".gitleaks.toml"
IGNORE_NAME = ".gitleaksignore"
MAX_RULES = 1000
MAX_PATTERN = 20_000
MAX_EXTEND_DEPTH = 3
MAX_FILE = 4 * 1024 * 1024
IMPORTED_BEFORE = 256  # bytes before a keyword hit the rule's regex may start
IMPORTED_AFTER = 512  # bytes after it the regex may end
REGEX_TIMEOUT = 2.0  # seconds, per allowlist regex: the engine's default (Engine.regex_timeout)

# gitleaks' default rule ids (the names only) -> keysweep's rule for the same family,
# for `disabledRules`, `targetRules`, per-rule allowlists and .gitleaksignore lines.
DEFAULT_RULE_IDS: dict[str, str] = {
    "generic-api-key": "generic-secret",
    "private-key": "private-key",
    "jwt": "jwt",
    "jwt-base64": "jwt",
    "aws-access-token": "aws-access-key-id",
    "github-pat": "github-classic-token",
    "github-oauth": "github-classic-token",
    "github-app-token": "github-classic-token",
    "github-refresh-token": "github-refresh-token",
    "github-fine-grained-pat": "github-fine-grained-pat",
    "gitlab-pat": "gitlab-pat",
    "gitlab-pat-routable": "gitlab-pat",
    "gitlab-ptt": "gitlab-pipeline-trigger-token",
    "gitlab-rrt": "gitlab-runner-registration-token",
    "gitlab-runner-authentication-token": "gitlab-runner-token",
    "gitlab-runner-authentication-token-routable": "gitlab-runner-token",
    "gitlab-deploy-token": "gitlab-deploy-token",
    "gitlab-cicd-job-token": "gitlab-ci-build-token",
    "gitlab-feed-token": "gitlab-feed-token",
    "gitlab-incoming-mail-token": "gitlab-incoming-mail-token",
    "gitlab-kubernetes-agent-token": "gitlab-agent-token",
    "gitlab-oauth-app-secret": "gitlab-oauth-app-secret",
    "gitlab-scim-token": "gitlab-scim-token",
    "gitlab-feature-flag-client-token": "gitlab-feature-flags-client-token",
    "slack-bot-token": "slack-bot-token",
    "slack-user-token": "slack-user-token",
    "slack-app-token": "slack-app-token",
    "slack-webhook-url": "slack-webhook-url",
    "slack-config-access-token": "slack-config-token",
    "slack-config-refresh-token": "slack-config-token",
    "slack-legacy-token": "slack-legacy-token",
    "slack-legacy-workspace-token": "slack-workspace-token",
    "stripe-access-token": "stripe-live-secret-key",
    "openai-api-key": "openai-api-key",
    "anthropic-api-key": "anthropic-api-key",
    "anthropic-admin-api-key": "anthropic-admin-key",
    "gcp-api-key": "google-api-key",
    "npm-access-token": "npm-access-token",
    "pypi-upload-token": "pypi-upload-token",
    "huggingface-access-token": "huggingface-token",
    "huggingface-organization-api-token": "huggingface-token",
    "sendgrid-api-token": "sendgrid-api-key",
    "shopify-access-token": "shopify-token",
    "shopify-custom-access-token": "shopify-token",
    "shopify-private-app-access-token": "shopify-token",
    "shopify-shared-secret": "shopify-token",
    "digitalocean-pat": "digitalocean-token",
    "digitalocean-access-token": "digitalocean-token",
    "digitalocean-refresh-token": "digitalocean-token",
    "doppler-api-token": "doppler-token",
    "heroku-api-key": "heroku-legacy-api-key",
    "heroku-api-key-v2": "heroku-api-key",
    "mailchimp-api-key": "mailchimp-api-key",
    "mailgun-private-api-token": "mailgun-api-key",
    "twilio-api-key": "twilio-api-key",
    "postman-api-token": "postman-api-key",
    "datadog-access-token": "datadog-api-key",
    "sentry-org-token": "sentry-org-token",
    "sentry-user-token": "sentry-user-token",
    "databricks-api-token": "databricks-token",
    "atlassian-api-token": "atlassian-api-token",
    "bitbucket-client-secret": "bitbucket-app-password",
    "azure-ad-client-secret": "azure-ad-client-secret",
    "telegram-bot-api-token": "telegram-bot-token",
    "discord-api-token": "discord-bot-token",
    "linear-api-key": "linear-api-key",
    "grafana-api-key": "grafana-api-key",
    "grafana-cloud-api-token": "grafana-cloud-token",
    "grafana-service-account-token": "grafana-service-account-token",
    "hashicorp-tf-api-token": "terraform-cloud-token",
    "vault-service-token": "vault-token",
    "vault-batch-token": "vault-token",
    "cloudflare-api-key": "cloudflare-legacy-token",
    "cloudflare-global-api-key": "cloudflare-global-api-key",
    "cloudflare-origin-ca-key": "cloudflare-origin-ca-key",
    "mapbox-api-token": "mapbox-secret-token",
    "algolia-api-key": "algolia-admin-key",
    "okta-access-token": "okta-api-token",
    "square-access-token": "square-access-token",
    "square-secret": "square-application-secret",
    "alibaba-access-key-id": "alibaba-access-key-id",
    "age-secret-key": "age-secret-key",
    "pulumi-api-token": "pulumi-access-token",
    "rubygems-api-token": "rubygems-api-key",
    "dynatrace-api-token": "dynatrace-token",
    "new-relic-user-api-key": "new-relic-user-key",
    "new-relic-insert-key": "new-relic-ingest-key",
    "new-relic-browser-api-token": "new-relic-ingest-key",
    "planetscale-api-token": "planetscale-token",
    "planetscale-password": "planetscale-token",
    "planetscale-oauth-token": "planetscale-token",
    "prefect-api-token": "prefect-api-key",
    "readme-api-token": "readme-api-key",
    "sourcegraph-access-token": "sourcegraph-token",
    "harness-api-key": "harness-pat",
    "octopus-deploy-api-key": "octopus-deploy-api-key",
    "contentful-delivery-api-token": "contentful-token",
    "airtable-api-key": "airtable-token",
    "typeform-api-token": "typeform-token",
    "frameio-api-token": "frameio-token",
    "infracost-api-token": "infracost-api-key",
    "defined-networking-api-token": "defined-networking-key",
    "1password-secret-key": "onepassword-secret-key",
    "1password-service-account-token": "onepassword-service-account-token",
    "facebook-access-token": "facebook-access-token",
    "facebook-secret": "facebook-app-secret",
    "twitter-bearer-token": "twitter-bearer-token",
    "flutterwave-secret-key": "flutterwave-secret-key",
    "plaid-secret-key": "plaid-secret",
    "flyio-access-token": "flyio-token",
    "openshift-user-token": "openshift-token",
    "snyk-api-token": "snyk-token",
    "sonar-api-token": "sonar-token",
    "jfrog-api-key": "jfrog-api-key",
    "jfrog-identity-token": "jfrog-api-key",
    "curl-auth-header": "generic-bearer-token",
    "kubernetes-secret-yaml": "generic-secret",
}


class GitleaksError(KeysweepError, ValueError):
    """A .gitleaks.toml keysweep cannot honour: the message says which rule and why."""


# --- Go RE2 -> Python regex -----------------------------------------------------------

_REFUSED = (
    (re.compile(r"\\C"), "\\C (any byte) has no equivalent"),
    (re.compile(r"\\[pP](?:\{|[A-Za-z])"), "Unicode classes (\\p{...}) do not apply to bytes"),
)


def translate_regex(go: str, rule_id: str) -> str:
    """A gitleaks (Go RE2) regex in the ``regex`` module's VERSION1 syntax, or a
    GitleaksError naming the rule and the construct that has no translation."""
    if len(go) > MAX_PATTERN:
        raise GitleaksError(f"rule {rule_id!r}: regex longer than {MAX_PATTERN} characters")
    for pattern, why in _REFUSED:
        if pattern.search(go):
            raise GitleaksError(f"rule {rule_id!r}: {why}; rewrite it without, or disable it")
    if re.search(r"\(\?[a-zA-Z]*U[a-zA-Z]*[):]", go):
        raise GitleaksError(
            f"rule {rule_id!r}: the U flag (swap greedy and lazy) has no equivalent; "
            "write the quantifiers lazy (*?) instead"
        )
    out: list[str] = []
    i, n = 0, len(go)
    in_class = False
    while i < n:
        c = go[i]
        if c == "\\" and i + 1 < n:
            nxt = go[i + 1]
            if nxt == "Q":  # \Q...\E: a literal run
                end = go.find("\\E", i + 2)
                literal = go[i + 2 : end if end != -1 else n]
                out.append("".join("\\" + ch if not ch.isalnum() else ch for ch in literal))
                i = end + 2 if end != -1 else n
                continue
            if nxt == "z":
                out.append("\\Z")
                i += 2
                continue
            if nxt.isdigit():  # RE2 has no backreferences: \123 is an octal character
                m = re.match(r"[0-7]{1,3}", go[i + 1 :])
                if m is None:
                    raise GitleaksError(f"rule {rule_id!r}: \\{nxt} is neither octal nor valid")
                out.append(f"\\x{int(m.group(0), 8):02x}")
                i += 1 + len(m.group(0))
                continue
            out.append(go[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "]" and not (out and out[-1] in ("[", "[^")):
                in_class = False
                out.append(c)
            elif c == "[" and go.startswith("[:", i):  # a POSIX class [[:alpha:]]
                end = go.find(":]", i + 2)
                out.append(go[i : end + 2] if end != -1 else "\\[")
                i = end + 2 if end != -1 else i + 1
                continue
            elif c == "[" or (c in "-&~|" and go[i + 1 : i + 2] == c):
                out.append("\\" + c)  # literal in RE2; a nested set or set operator in V1
            else:
                out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            if go.startswith("[^", i):
                out.append("[^")
                i += 2
            else:
                out.append("[")
                i += 1
            if i < n and go[i] == "]":  # a leading ] is literal in RE2
                out.append("\\]")
                i += 1
            continue
        if c == "{" and go.startswith("{,", i):
            out.append("\\{")  # RE2 reads x{,3} literally; regex would read a quantifier
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


# --- allowlists -----------------------------------------------------------------------


@dataclass
class Allowlist:
    description: str = ""
    condition: str = "OR"
    target: str = "secret"  # secret | match | line
    regexes: list[regex.Pattern[bytes]] = field(default_factory=list)
    paths: list[regex.Pattern[str]] = field(default_factory=list)
    commits: set[str] = field(default_factory=set)
    stopwords: list[str] = field(default_factory=list)
    target_rules: set[str] | None = None  # keysweep ids; None: every rule

    def allows(
        self,
        secret: bytes,
        match: bytes,
        line: bytes,
        path: str,
        commit: str,
        timeout: float | None = REGEX_TIMEOUT,
        stats: EngineStats | None = None,
    ) -> bool:
        """gitleaks' semantics: with OR, any criterion given allows; with AND, every
        criterion given must hold (stopwords and regexes still any-of inside). Each
        regex runs under ``timeout``; one that runs out allows nothing (the key stays
        reported) and is counted in ``stats.regex_timeouts``."""
        checks: list[bool] = []
        if self.commits:
            checks.append(bool(commit) and any(commit.startswith(c) for c in self.commits))
        if self.paths:
            checks.append(bool(path) and _any_search(self.paths, path, timeout, stats, False))
        if self.regexes:
            hay = {"match": match, "line": line}.get(self.target, secret)
            checks.append(_any_search(self.regexes, hay, timeout, stats, False))
        if self.stopwords:
            low = secret.decode("utf-8", "replace").lower()
            checks.append(any(w in low for w in self.stopwords))
        if not checks:
            return False
        return all(checks) if self.condition == "AND" else any(checks)


def _any_search(
    patterns: Iterable[Any],
    hay: Any,
    timeout: float | None,
    stats: EngineStats | None,
    on_timeout: bool,
) -> bool:
    """Whether any pattern is found in ``hay``; a pattern that runs out of time counts as
    ``on_timeout`` (chosen by the caller so that the key stays reported)."""
    for p in patterns:
        try:
            if p.search(hay, timeout=timeout) is not None:
                return True
        except TimeoutError:
            if stats is not None:
                stats.regex_timeouts += 1
            if on_timeout:
                return True
    return False


def _compile_path(text: str, rule_id: str) -> regex.Pattern[str]:
    """A path regex, compiled by the ``regex`` module so that it runs under a timeout."""
    import regex

    return regex.compile(translate_regex(text, rule_id), regex.V0)


def _strings(value: Any, what: str, origin: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GitleaksError(f"{origin}: {what} must be a list of strings")
    return list(value)


def map_rule_id(gitleaks_id: str) -> str:
    return DEFAULT_RULE_IDS.get(gitleaks_id, gitleaks_id)


def _allowlist(d: Any, origin: str, rule_id: str = "") -> Allowlist:
    import regex

    if not isinstance(d, dict):
        raise GitleaksError(f"{origin}: an allowlist must be a table")
    where = f"{origin} (rule {rule_id!r} allowlist)" if rule_id else f"{origin} allowlist"
    condition = str(d.get("condition", "OR")).upper()
    if condition not in ("OR", "AND"):
        raise GitleaksError(f"{where}: condition must be OR or AND")
    target = str(d.get("regexTarget", "secret")).lower()
    if target not in ("secret", "match", "line"):
        raise GitleaksError(f"{where}: regexTarget must be secret, match or line")
    compiled = []
    for text in _strings(d.get("regexes"), "regexes", where):
        try:
            compiled.append(
                regex.compile(translate_regex(text, rule_id or "allowlist").encode(), regex.V1)
            )
        except regex.error as exc:
            raise GitleaksError(f"{where}: regex {text!r} does not compile: {exc}") from None
    paths = []
    for text in _strings(d.get("paths"), "paths", where):
        try:
            paths.append(_compile_path(text, rule_id or "allowlist"))
        except regex.error as exc:
            raise GitleaksError(f"{where}: path {text!r} does not compile: {exc}") from None
    targets = d.get("targetRules")
    return Allowlist(
        description=str(d.get("description", "")),
        condition=condition,
        target=target,
        regexes=compiled,
        paths=paths,
        commits={c.lower() for c in _strings(d.get("commits"), "commits", where)},
        stopwords=[w.lower() for w in _strings(d.get("stopwords"), "stopwords", where)],
        target_rules=(
            {map_rule_id(t) for t in _strings(targets, "targetRules", where)}
            if targets is not None
            else None
        ),
    )


def _allowlists(d: dict[str, Any], single: str, many: str, origin: str, rid: str = "") -> list:
    out = []
    if single in d:
        out.append(_allowlist(d[single], origin, rid))
    items = d.get(many, [])
    if not isinstance(items, list):
        raise GitleaksError(f"{origin}: [[{many}]] must be an array of tables")
    out.extend(_allowlist(a, origin, rid) for a in items)
    return out


# --- the policy -------------------------------------------------------------------------


@dataclass
class Fingerprint:
    path: str
    rule_id: str
    line: int
    commit: str | None = None


@dataclass
class GitleaksPolicy:
    """What a repository's gitleaks files ask: rules to add, pack rules to switch off,
    findings to allow (allowlists) or ignore (.gitleaksignore)."""

    origin: str
    rules: list[Rule] = field(default_factory=list)
    disabled: set[str] = field(default_factory=set)
    rule_allowlists: dict[str, list[Allowlist]] = field(default_factory=dict)
    allowlists: list[Allowlist] = field(default_factory=list)
    path_filters: dict[str, regex.Pattern[str]] = field(default_factory=dict)
    ignored: set[tuple[str | None, str, str, int]] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    def keep(
        self,
        match: Match,
        loc: Location,
        data: bytes,
        start: int,
        *,
        timeout: float | None = REGEX_TIMEOUT,
        stats: EngineStats | None = None,
    ) -> bool:
        """False when the gitleaks tuning allows this match at this location. Every
        regex runs under ``timeout`` (``scanner.scan.gitleaks_keep`` passes the engine's,
        and its ``stats``); one that runs out never allows: the match is kept."""
        rule_id = match.rule.id
        path = loc.path or ""
        commit = loc.commit or ""
        line_no = loc.line or 0
        if (None, path, rule_id, line_no) in self.ignored or (
            commit and (commit, path, rule_id, line_no) in self.ignored
        ):
            return False
        flt = self.path_filters.get(rule_id)
        if flt is not None and not _any_search([flt], path, timeout, stats, True):
            return False
        lists = [a for a in self.allowlists if a.target_rules is None or rule_id in a.target_rules]
        lists += self.rule_allowlists.get(rule_id, [])
        if not lists:
            return True
        lo = data.rfind(b"\n", 0, start) + 1
        hi = data.find(b"\n", start)
        line = data[lo : hi if hi != -1 else len(data)]
        try:
            whole = match.rule.pattern.search(line, timeout=timeout)
        except TimeoutError:
            if stats is not None:
                stats.regex_timeouts += 1
            whole = None
        full = whole.group(0) if whole is not None else match.secret
        return not any(
            a.allows(match.secret, full, line, path, commit, timeout, stats) for a in lists
        )

    def pack_disabled(self, known: Iterable[str]) -> list[str]:
        return sorted(self.disabled & set(known))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GitleaksError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_FILE:
        raise GitleaksError(f"{path}: larger than {MAX_FILE} bytes")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise GitleaksError(f"{path}: not valid TOML: {exc}") from None


def _import_rule(d: Any, origin: str, policy: GitleaksPolicy) -> None:
    if not isinstance(d, dict) or not isinstance(d.get("id"), str):
        raise GitleaksError(f"{origin}: every [[rules]] needs an id")
    gid = d["id"]
    kid = map_rule_id(gid)
    lists = _allowlists(d, "allowlist", "allowlists", origin, gid)
    if "regex" not in d and "path" not in d:
        # An entry with only an id and allowlists extends the default rule of that id.
        policy.rule_allowlists.setdefault(kid, []).extend(lists)
        return
    if "regex" not in d:
        policy.warnings.append(
            f"{origin}: rule {gid!r} matches file names only (path without regex): keysweep "
            "reports secrets, not files; skipped"
        )
        return
    # The team's regex under a default rule's id replaces that rule, as in gitleaks:
    # imported under keysweep's id, it overrides keysweep's rule of the same family.
    rid = kid if gid in DEFAULT_RULE_IDS else (
        re.sub(r"[^a-z0-9._-]", "-", gid.lower()).strip("-._") or "gitleaks-rule"
    )
    pattern = "(?-i:" + translate_regex(str(d["regex"]), gid) + ")"
    keywords = _strings(d.get("keywords"), f"rule {gid!r} keywords", origin)
    spec: dict[str, Any] = {
        "id": rid,
        "description": str(d.get("description") or f"{gid} (from {origin})"),
        "provider": "gitleaks config",
        "severity": "high",
        "prefixes": [k.lower() for k in keywords if k],
        "case_insensitive": True,  # gitleaks matches keywords case-insensitively
        "pattern": pattern,
        "before": IMPORTED_BEFORE,
        "max_length": IMPORTED_AFTER,
        "tags": ["gitleaks", *[str(t) for t in d.get("tags", []) if isinstance(t, str)]],
        "remediation": "Rotate the secret with whoever issued it (a rule from your .gitleaks.toml)",
    }
    if d.get("secretGroup"):
        spec["secret_group"] = int(d["secretGroup"])
    if d.get("entropy"):
        spec["min_entropy"] = float(d["entropy"])
    try:
        rule = rule_from_dict(spec, origin, need_prefix=False)
        rule.validate()
    except RuleError as exc:
        raise GitleaksError(f"{origin}: rule {gid!r}: {exc}") from None
    if not rule.prefixes:
        policy.warnings.append(
            f"{origin}: rule {gid!r} has no keywords: it is searched through every byte "
            "(slow; add keywords)"
        )
    if "path" in d:
        import regex

        try:
            policy.path_filters[rule.id] = _compile_path(str(d["path"]), gid)
        except regex.error as exc:
            raise GitleaksError(f"{origin}: rule {gid!r} path does not compile: {exc}") from None
    policy.rules = [r for r in policy.rules if r.id != rule.id] + [rule]
    if lists:
        policy.rule_allowlists.setdefault(rule.id, []).extend(lists)


def _load_config(path: Path, base: Path, policy: GitleaksPolicy, depth: int) -> None:
    data = _read_toml(path)
    origin = path.name if depth == 0 else str(path.relative_to(base))
    extend = data.get("extend", {})
    if not isinstance(extend, dict):
        raise GitleaksError(f"{origin}: [extend] must be a table")
    if extend.get("url"):
        raise GitleaksError(f"{origin}: [extend] url is not supported (keysweep fetches nothing)")
    if extend.get("path"):
        if depth >= MAX_EXTEND_DEPTH:
            raise GitleaksError(f"{origin}: [extend] chains deeper than {MAX_EXTEND_DEPTH}")
        target = (path.parent / str(extend["path"])).resolve()
        if not target.is_relative_to(base.resolve()):
            raise GitleaksError(
                f"{origin}: [extend] path {extend['path']!r} is outside the repository"
            )
        _load_config(target, base, policy, depth + 1)
    for gid in _strings(extend.get("disabledRules"), "[extend] disabledRules", origin):
        policy.disabled.add(map_rule_id(gid))
    rules = data.get("rules", [])
    if not isinstance(rules, list):
        raise GitleaksError(f"{origin}: [[rules]] must be an array of tables")
    if len(rules) > MAX_RULES:
        raise GitleaksError(f"{origin}: more than {MAX_RULES} rules")
    for d in rules:
        _import_rule(d, origin, policy)
    policy.allowlists.extend(_allowlists(data, "allowlist", "allowlists", origin))


def parse_ignore(text: str, origin: str = IGNORE_NAME) -> set[tuple[str | None, str, str, int]]:
    """``.gitleaksignore`` lines: ``commit:path:rule-id:line`` or ``path:rule-id:line``
    (a path may itself hold ":"); ``#`` comments and blank lines are skipped."""
    out: set[tuple[str | None, str, str, int]] = set()
    for n, raw in enumerate(text.splitlines(), 1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        parts = entry.rsplit(":", 2)
        if len(parts) != 3 or not parts[2].isdigit():
            raise GitleaksError(f"{origin}:{n}: not a gitleaks fingerprint: {entry[:80]!r}")
        head, rule_id, line = parts
        commit = None
        m = re.match(r"([0-9a-f]{7,40}):(.+)$", head)
        if m is not None:
            commit, head = m.group(1), m.group(2)
        out.add((commit, head, map_rule_id(rule_id), int(line)))
    return out


def load(base: Path) -> GitleaksPolicy | None:
    """The gitleaks files at the top of the scanned repository, or None when it has none."""
    config, ignore = base / CONFIG_NAME, base / IGNORE_NAME
    if not config.is_file() and not ignore.is_file():
        return None
    policy = GitleaksPolicy(origin=CONFIG_NAME if config.is_file() else IGNORE_NAME)
    if config.is_file():
        _load_config(config, base, policy, 0)
    if ignore.is_file():
        try:
            raw = ignore.read_bytes()[:MAX_FILE]
        except OSError as exc:
            raise GitleaksError(f"{ignore}: cannot read: {exc.strerror}") from None
        policy.ignored = parse_ignore(raw.decode("utf-8", "replace"))
        # A fingerprint of a full commit matches the shortest prefix gitleaks writes.
    return policy
