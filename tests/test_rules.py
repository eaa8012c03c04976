"""The rule pack: every rule's own examples, plus the behaviours that need more
than one line (checksums, JWT expiry, AWS companions, context, PEM blocks inside
`git diff -U0` output) and the self-scan guarantee.

Examples are templates expanded at run time (scanner/examples.py), so neither
this file nor any scanner/rules/*.toml file holds a string that looks like a
real key.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest
import regex

from scanner.engine import Engine, Match
from scanner.examples import expand
from scanner.rules import Rule, load_rules, pack_files
from tests.conftest import KEYSWEEP
from tests.helpers import Repo, git

RULES = load_rules()
BY_ID = {r.id: r for r in RULES}
PREFILTERS = ("hyperscan", "python")
RULES_DIR = Path(__file__).resolve().parents[1] / "scanner" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.toml"))

# Strings that must never stand literally in the rule pack or in this file. The
# Anthropic one is assembled so that this file does not hold it either.
FORBIDDEN = regex.compile(
    r"(mg_(live|test)_[A-Za-z0-9_-]{32}|gh[pousr]_[A-Za-z0-9]{36}|AKIA[0-9A-Z]{16}|"
    + regex.escape("sk-ant-api" + "03-")
    + r"|xox[bpar]-[0-9]{6,})"
)


@pytest.fixture(scope="module", params=PREFILTERS)
def engine(request: pytest.FixtureRequest) -> Engine:
    return Engine(RULES, prefilter=request.param)


@pytest.fixture(scope="module")
def default_engine() -> Engine:
    return Engine(RULES)


def hits(engine: Engine, text: str | bytes, rule_id: str) -> list[Match]:
    data = text.encode() if isinstance(text, str) else text
    return [m for m in engine.scan(data) if m.rule.id == rule_id]


# --- every rule's own examples -------------------------------------------------


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_positive_examples_are_found(engine: Engine, rule: Rule) -> None:
    for template in rule.positive:
        text = expand(template, rule.checksum)
        data = text.encode()
        found = hits(engine, data, rule.id)
        assert found, f"{rule.id}: positive {template!r} not found (expanded: {text!r})"
        for m in found:
            assert m.secret in data
            assert data[m.start : m.end] == m.secret
            assert m.confidence == rule.confidence


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_negative_examples_are_not_found(engine: Engine, rule: Rule) -> None:
    for template in rule.negative:
        text = expand(template, rule.checksum)
        found = hits(engine, text, rule.id)
        assert not found, f"{rule.id}: negative {template!r} matched {[m.secret for m in found]}"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_rule_is_documented_and_has_examples(rule: Rule) -> None:
    assert rule.description.strip(), rule.id
    assert len(rule.positive) >= 1, f"{rule.id}: needs a positive example"
    assert len(rule.positive) + len(rule.negative) >= 3, f"{rule.id}: needs near misses"
    assert len(rule.negative) >= 2, f"{rule.id}: needs at least 2 negative examples"
    assert rule.before >= 1 and rule.max_length >= 16
    assert regex.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", rule.id), "ids are lower-case kebab"
    if rule.owner == "third_party":  # our own keys' advice comes from the key service
        assert rule.provider, f"{rule.id}: who issues it?"
        assert rule.remediation and "\n" not in rule.remediation and len(rule.remediation) < 160
        assert rule.rotate_url and rule.rotate_url.startswith("https://"), rule.id
        assert rule.tags, f"{rule.id}: tag its family (cloud, vcs, ai, …) for rules list --filter"
    assert rule.origin.startswith("scanner/rules/")


@pytest.mark.parametrize("rule", [r for r in RULES if r.anchored], ids=lambda r: r.id)
def test_anchored_rules_start_at_their_literal(rule: Rule) -> None:
    """An anchored rule is tried only where a literal starts: every positive example
    must match from a literal, or the rule would silently miss it."""
    literals = [p.lower() if rule.case_insensitive else p for p in rule.prefixes]
    for template in rule.positive:
        text = expand(template, rule.checksum)
        hay = text.lower() if rule.case_insensitive else text
        starts = {i for lit in literals for i in _finds(hay, lit)}
        assert any(rule.pattern.match(text.encode(), i) for i in starts), (rule.id, template)


def _finds(hay: str, needle: str) -> list[int]:
    out, i = [], hay.find(needle)
    while i != -1:
        out.append(i)
        i = hay.find(needle, i + 1)
    return out


HOSTILE_TAILS = ("a" * 4000, "=" * 4000, " = " * 1300, "_-" * 2000, '"' * 4000, "A1/+" * 1000)


@pytest.mark.parametrize(
    "rule", [r for r in RULES if r.anchored or r.shape.led], ids=lambda r: r.id
)
def test_anchored_patterns_do_not_backtrack_catastrophically(rule: Rule) -> None:
    """Shipped anchored rules, and rules led by their literal (``Rule.shape``), run
    without the regex timeout on short windows (it costs more than the match): each
    must finish in linear time on hostile input after its literal. A
    pattern that backtracks exponentially would hang here (the 10 s timeout is a
    hang detector, not a speed target; speed lives in bench/engine.py)."""
    for lit in rule.prefixes:
        for tail in HOSTILE_TAILS:
            data = (lit + tail).encode()
            rule.pattern.match(data, 0, min(len(data), rule.max_length + 64), timeout=10.0)


# --- families the pack must cover -------------------------------------------------

REQUIRED_PREFIXES: dict[str, tuple[str, ...]] = {
    "mg": ("mg_live_", "mg_test_"),
    "github": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "github_token"),
    "gitlab": ("glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glimt-", "glagent-", "glsoat-"),
    "gitlab more": ("glcbt-", "gloas-", "glffct-", "GR1348941", "gitlab_token"),
    "slack": ("xoxb-", "xoxp-", "xoxa-", "xoxr-", "xapp-", "hooks.slack.com/", "xoxe-"),
    "stripe": ("sk_live_", "rk_live_", "sk_test_", "whsec_"),
    "openai": ("sk-proj-", "sk-svcacct-", "sk-admin-", "T3BlbkFJ"),
    "anthropic": ("sk-ant-api", "sk-ant-admin"),
    "aws": ("AKIA", "ASIA", "aws_secret", "aws_session_token"),
    "google": ("AIza", '"private_key_id"', "GOCSPX-", ":APA91b"),
    "azure": ("AccountKey=", "sig=", "SharedAccessKey=", "8Q~"),
    "npm": ("npm_", "_authtoken="),
    "pypi": ("pypi-AgEIcHlwaS5vcmc",),
    "huggingface": ("hf_",),
    "sendgrid": ("SG.",),
    "shopify": ("shpat_", "shpss_", "shpca_", "shppa_"),
    "digitalocean": ("dop_v1_", "doo_v1_", "dor_v1_"),
    "doppler": ("dp.pt.", "dp.st.", "dp.sa.", "dp.ct."),
    "keys": ("PRIVATE KEY-----", "OPENSSH PRIVATE KEY-----", "PGP PRIVATE KEY BLOCK-----"),
    "more keys": ("PuTTY-User-Key-File-", "AGE-SECRET-KEY-1"),
    "synth": ("sk_env_", "synth_api_key", "environment_api_key"),
    "synheart": ('"secret_key"', '"signing_secret"'),
    "jwt": ("eyJ",),
    # issue #14: families without a rule before
    "mailchimp": ("-us1",),
    "heroku": ("HRKU-AA", "heroku"),
    "twilio": ("twilio",),
    "postman": ("PMAK-",),
    "datadog": ("dd_api_key", "datadog"),
    "sentry": ("sntrys_", "sntryu_"),
    "databricks": ("dapi",),
    "atlassian": ("ATATT", "ATBB"),
    "telegram": (":AA",),
    "discord": ("discord", "/api/webhooks/"),
    "linear": ("lin_api_",),
    "notion": ("ntn_", "secret_"),
    "grafana": ("glsa_", "glc_"),
    "terraform cloud": (".atlasv1.",),
    "vault": ("hvs.", "vault_token"),
    "cloudflare": ("cfut_", "cloudflare"),
    "mapbox": ("sk.eyJ",),
    "algolia": ("algolia",),
    "okta": ("okta",),
    "square": ("EAAA", "sq0atp-", "sq0csp-"),
    "paypal": ("access_token$production$",),
    "alibaba": ("LTAI",),
    "tencent": ("AKID",),
    "databases": ("postgres://", "mysql://", "mongodb+srv://", "redis://", "amqp://", "jdbc:"),
    "mssql": ("password=",),
    "urls": ("://",),
    "config files": ('"auth"', "machine ", "$apr1$", "secret_key_base", "django-insecure-"),
    "generic": ("password=", "token=", "api_key=", "secret=", "bearer "),
}


def test_required_families_are_covered() -> None:
    have = set()
    for r in RULES:
        have.update(p.lower() if r.case_insensitive else p for p in r.prefixes)
    missing = [
        p
        for ps in REQUIRED_PREFIXES.values()
        for p in ps
        if p not in have and p.lower() not in have
    ]
    assert not missing, f"no rule looks for {missing}"
    for rule_id in ("github-classic-token", "npm-access-token"):
        assert BY_ID[rule_id].checksum == "crc32_base62"
    assert BY_ID["gitlab-pat"].checksum == "gitlab_routable"
    assert BY_ID["pypi-upload-token"].validator == "pypi_macaroon"
    assert BY_ID["github-app-installation-token"].validator == "github_jwt"
    assert BY_ID["jwt"].validator == "jwt" and BY_ID["jwt"].severity == "medium"
    assert BY_ID["aws-access-key-id"].companion is not None
    assert BY_ID["aws-temporary-access-key-id"].companion is not None
    assert BY_ID["synheart-credentials"].context is not None
    assert BY_ID["synth-api-key-assignment"].min_entropy is not None
    assert {r.severity for r in RULES} >= {"critical", "high", "medium"}


def test_the_pack_holds_150_families() -> None:
    """Issue #14: at least 150 families, each its own format (a provider may issue
    several: GitLab's PAT, deploy and runner tokens are different families)."""
    provider_rules = [r for r in RULES if "generic" not in r.tags]
    providers = {r.provider for r in provider_rules}
    assert len(provider_rules) >= 150, len(provider_rules)
    assert len(providers) >= 100, len(providers)
    assert sum(1 for r in RULES if r.companion is not None) >= 6  # id + secret pairs
    assert {r.confidence for r in RULES} == {"high", "medium"}
    assert all(r.confidence == "medium" for r in RULES if "generic" in r.tags)


def test_the_pack_is_split_by_family_and_every_file_loads() -> None:
    names = [name for name, _ in pack_files()]
    assert names[0] == "default.toml" and len(names) >= 8
    assert {p.name for p in RULE_FILES} == set(names)
    origins = {r.origin for r in RULES}
    assert origins == {f"scanner/rules/{n}" for n in names}
    # our own keys stay in default.toml (the detect stream owns them)
    assert {r.id for r in RULES if r.origin.endswith("default.toml")} == {
        "mg-live-key",
        "mg-test-key",
    }


# --- checksums ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule_id", "prefix"), [("github-classic-token", "ghp_"), ("npm-access-token", "npm_")]
)
def test_checksum_failures_are_dropped_or_low_confidence(rule_id: str, prefix: str) -> None:
    good = expand(f"token = {prefix}{{base62:30}}{{checksum}}", "crc32_base62")
    bad = expand(f"token = {prefix}{{base62:30}}{{badchecksum}}", "crc32_base62")
    for pf in PREFILTERS:
        strict = Engine(RULES, prefilter=pf)
        lenient = Engine(RULES, prefilter=pf, low_confidence=True)
        assert [m.confidence for m in hits(strict, good, rule_id)] == ["high"]
        assert hits(strict, bad, rule_id) == []
        low = hits(lenient, bad, rule_id)
        assert [m.confidence for m in low] == ["low"]
        assert low[0].secret.decode() == bad.split(" = ")[1]


# --- JWT expiry -------------------------------------------------------------------


def test_jwt_expiry_is_decoded_and_marked(default_engine: Engine) -> None:
    now = time.time()
    expired = hits(default_engine, expand("VERCEL_OIDC_TOKEN={jwt_expired}"), "jwt")
    fresh = hits(default_engine, expand('VERCEL_OIDC_TOKEN="{jwt}"'), "jwt")
    assert len(expired) == 1 and len(fresh) == 1
    assert expired[0].expires_at is not None and expired[0].expires_at < now
    assert default_engine.is_expired(expired[0]) is True
    assert fresh[0].expires_at is not None and fresh[0].expires_at > now
    assert default_engine.is_expired(fresh[0]) is False


# --- AWS companion ----------------------------------------------------------------


def test_aws_key_id_carries_its_secret_access_key(engine: Engine) -> None:
    text = expand(
        "[default]\n"
        "aws_access_key_id = AKIA{upper32:16}\n"
        "region = eu-west-1\n"
        "aws_secret_access_key = {b64:40}\n"
    )
    secret = text.rsplit("= ", 1)[1].strip().encode()
    found = hits(engine, text, "aws-access-key-id")
    assert len(found) == 1
    assert found[0].companion == secret


def test_aws_companion_from_json_and_absent_when_missing(engine: Engine) -> None:
    sts = expand(
        '{"Credentials": {\n  "AccessKeyId": "ASIA{upper32:16}",\n'
        '  "SecretAccessKey": "{b64:40}",\n  "SessionToken": "{b64:200}"\n}}'
    )
    secret = sts.split('"SecretAccessKey": "')[1].split('"')[0].encode()
    found = hits(engine, sts, "aws-temporary-access-key-id")
    assert len(found) == 1 and found[0].companion == secret
    alone = hits(
        engine,
        expand("aws_access_key_id = AKIA{upper32:16}\nregion = eu-west-1\n"),
        "aws-access-key-id",
    )
    assert len(alone) == 1 and alone[0].companion is None


def test_aws_companion_named_versus_bare(engine: Engine) -> None:
    # A value under a "secret" name is taken whatever its letters; a bare value
    # only when it is mixed-case like a real secret access key.
    key_id = expand("AKIA{upper32:16}")
    plain = expand("{lower:30}{digits:10}")
    env = f"AWS_ACCESS_KEY_ID={key_id}\nAWS_SECRET_KEY={plain}\n"
    named = hits(engine, env, "aws-access-key-id")
    assert [m.companion for m in named] == [plain.encode()]
    bare_plain = hits(engine, f"creds({key_id!r}, {plain!r})", "aws-access-key-id")
    assert [m.companion for m in bare_plain] == [None]
    mixed = expand("{upper:10}{lower:10}{b64:20}")
    bare_mixed = hits(engine, f"creds({key_id!r}, {mixed!r})", "aws-access-key-id")
    assert [m.companion for m in bare_mixed] == [mixed.encode()]


# --- Synheart context -------------------------------------------------------------


def test_synheart_credentials_need_app_id(engine: Engine) -> None:
    secret = expand("{b64url:40}")
    app_id = expand("app_{alnum_lower:12}")
    with_app = json.dumps({"app_id": app_id, "secret_key": secret})
    without = json.dumps({"name": "demo", "secret_key": secret})
    found = hits(engine, with_app, "synheart-credentials")
    assert [m.secret for m in found] == [secret.encode()]
    assert hits(engine, without, "synheart-credentials") == []


# --- PEM blocks in git diff -U0 output ----------------------------------------------


def test_private_key_inside_git_diff(engine: Engine) -> None:
    body = [expand("{b64:64}") for _ in range(12)] + [expand("{b64:24}") + "=="]
    block = ["-----BEGIN RSA PRIVATE KEY-----", *body, "-----END RSA PRIVATE KEY-----"]
    diff = "\n".join(
        [
            "diff --git a/deploy/key.pem b/deploy/key.pem",
            "new file mode 100644",
            "index 0000000..3b18e51",
            "--- /dev/null",
            "+++ b/deploy/key.pem",
            f"@@ -0,0 +1,{len(block)} @@",
            *("+" + line for line in block),
            "diff --git a/README.md b/README.md",
        ]
    )
    found = hits(engine, diff, "private-key")
    assert len(found) == 1
    secret = found[0].secret.decode()
    assert secret.startswith("-----BEGIN RSA PRIVATE KEY-----\n+")
    assert secret.endswith("+-----END RSA PRIVATE KEY-----")
    assert all(line in secret for line in body)


def test_every_positive_example_is_found_in_the_lines_a_commit_adds(tmp_path: Path) -> None:
    """Every rule's positive examples, each in a new file: what the pre-commit hook reads
    (``--staged``) and a history read as diffs (``--log-opts=--all``) write each line as
    ``+line``, as pushes the workers fetch do. Each example is found there with the
    secret (SHA-256) the rule finds in the file's own text. A rule that wants its match
    at a line's start must allow the diff's ``+`` (the htpasswd rule did not: a hash
    pushed to GitHub went unseen)."""
    engine = Engine(RULES, low_confidence=True)
    r = Repo(tmp_path / "r")
    expected: set[tuple[str, str]] = set()
    for rule in RULES:
        for n, template in enumerate(rule.positive):
            if "\r" in template or template.startswith("+"):
                continue  # CRLF and diff-shaped examples are for other inputs
            text = expand(template, rule.checksum)
            found = hits(engine, text, rule.id)
            expected |= {(rule.id, hashlib.sha256(m.secret).hexdigest()) for m in found}
            r.write(f"{rule.id}/{n}.txt", text + "\n")
    git(r.path, "add", "-A")

    def scan(*args: str) -> set[tuple[str, str]]:
        p = subprocess.run(
            [KEYSWEEP, "scan", str(r.path), *args, "--confidence", "low", "--format", "json"],
            capture_output=True,
            timeout=300,
        )
        assert p.returncode == 1, p.stderr.decode()
        return {(f["rule_id"], f["secret_sha256"]) for f in json.loads(p.stdout)}

    staged = scan("--staged", "--no-progress")
    r.commit("every rule's examples")
    history = scan("--log-opts=--all", "--no-progress")
    assert len(expected) > 300
    assert sorted(expected - staged) == []
    assert sorted(expected - history) == []


def test_private_key_without_end_line_is_cheap() -> None:
    # Without an END line the pattern must give up in linear time. No wall-clock bound
    # (a loaded CI machine is slow); a timeout far above a linear pass's cost instead,
    # which a quadratic or exponential pattern on 600 kB would still blow through.
    engine = Engine(RULES, regex_timeout=30.0)
    lines = "\n".join("+" + expand("{b64:64}") for _ in range(3000))
    data = f"+-----BEGIN PRIVATE KEY-----\n{lines}\n".encode() * 3
    found = engine.scan(data)
    assert engine.stats.regex_timeouts == 0
    assert [m for m in found if m.rule.id == "private-key"] == []


# --- the repository itself holds nothing ------------------------------------------


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rule_file_scans_clean(engine: Engine, path: Path) -> None:
    text = dict(pack_files())[path.name]
    assert text == path.read_text("utf-8")
    found = engine.scan(text.encode())
    assert found == [], [(m.rule.id, m.secret[:40]) for m in found]


def test_this_file_scans_clean(engine: Engine) -> None:
    found = engine.scan(Path(__file__).read_bytes())
    assert found == [], [(m.rule.id, m.secret[:40]) for m in found]


@pytest.mark.parametrize("path", [*RULE_FILES, Path(__file__)], ids=lambda p: p.name)
def test_no_key_like_literal(path: Path) -> None:
    text = path.read_text("utf-8")
    assert FORBIDDEN.search(text) is None
    # The forbidden regex itself works (it would catch an expanded example).
    assert FORBIDDEN.search(expand("AKIA{upper32:16}"))
    assert FORBIDDEN.search(expand("sk-ant-api{digits:0}03-{b64url:93}AA"))
