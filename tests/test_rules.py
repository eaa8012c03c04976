"""The default rule pack: every rule's own examples, plus the behaviours that
need more than one line (checksums, JWT expiry, AWS companions, context, PEM
blocks inside `git diff -U0` output) and the self-scan guarantee.

Examples are templates expanded at run time (scanner/examples.py), so neither
this file nor default.toml holds a string that looks like a real key.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import regex

from scanner.engine import Engine, Match
from scanner.examples import expand
from scanner.rules import Rule, default_rules_text, load_rules

RULES = load_rules()
BY_ID = {r.id: r for r in RULES}
PREFILTERS = ("hyperscan", "python")
RULES_FILE = Path(__file__).resolve().parents[1] / "scanner" / "rules" / "default.toml"

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
            assert m.confidence == "high"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_negative_examples_are_not_found(engine: Engine, rule: Rule) -> None:
    for template in rule.negative:
        text = expand(template, rule.checksum)
        found = hits(engine, text, rule.id)
        assert not found, f"{rule.id}: negative {template!r} matched {[m.secret for m in found]}"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_every_rule_is_documented_and_has_examples(rule: Rule) -> None:
    assert rule.description.strip(), rule.id
    assert len(rule.positive) >= 2, f"{rule.id}: needs at least 2 positive examples"
    assert len(rule.negative) >= 2, f"{rule.id}: needs at least 2 negative examples"
    assert rule.before >= 1 and rule.max_length >= 16
    assert regex.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", rule.id), "ids are lower-case kebab"


# --- families the pack must cover -------------------------------------------------

REQUIRED_PREFIXES: dict[str, tuple[str, ...]] = {
    "mg": ("mg_live_", "mg_test_"),
    "github": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "gitlab": ("glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glimt-", "glagent-", "glsoat-"),
    "gitlab more": ("glcbt-", "gloas-", "glffct-", "GR1348941"),
    "slack": ("xoxb-", "xoxp-", "xoxa-", "xoxr-", "xapp-", "hooks.slack.com/"),
    "stripe": ("sk_live_", "rk_live_", "sk_test_", "whsec_"),
    "openai": ("sk-proj-", "sk-svcacct-", "sk-admin-", "T3BlbkFJ"),
    "anthropic": ("sk-ant-api", "sk-ant-admin"),
    "aws": ("AKIA", "ASIA"),
    "google": ("AIza",),
    "npm": ("npm_",),
    "pypi": ("pypi-AgEIcHlwaS5vcmc",),
    "huggingface": ("hf_",),
    "sendgrid": ("SG.",),
    "shopify": ("shpat_", "shpss_", "shpca_", "shppa_"),
    "digitalocean": ("dop_v1_", "doo_v1_", "dor_v1_"),
    "doppler": ("dp.pt.", "dp.st.", "dp.sa.", "dp.ct."),
    "keys": ("PRIVATE KEY-----", "OPENSSH PRIVATE KEY-----", "PGP PRIVATE KEY BLOCK-----"),
    "synth": ("sk_env_", "synth_api_key", "environment_api_key"),
    "synheart": ('"secret_key"', '"signing_secret"'),
    "jwt": ("eyJ",),
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
    assert BY_ID["jwt"].validator == "jwt" and BY_ID["jwt"].severity == "medium"
    assert BY_ID["aws-access-key-id"].companion is not None
    assert BY_ID["aws-temporary-access-key-id"].companion is not None
    assert BY_ID["synheart-credentials"].context is not None
    assert BY_ID["synth-api-key-assignment"].min_entropy is not None
    assert {r.severity for r in RULES} >= {"critical", "high", "medium"}


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


def test_private_key_without_end_line_is_cheap(engine: Engine) -> None:
    lines = "\n".join("+" + expand("{b64:64}") for _ in range(3000))
    data = f"+-----BEGIN PRIVATE KEY-----\n{lines}\n".encode() * 3
    start = time.perf_counter()
    found = engine.scan(data)
    assert time.perf_counter() - start < 2.0
    assert engine.stats.regex_timeouts == 0
    assert [m for m in found if m.rule.id == "private-key"] == []


# --- the repository itself holds nothing ------------------------------------------


def test_rule_file_scans_clean(engine: Engine) -> None:
    text = default_rules_text()
    assert text == RULES_FILE.read_text("utf-8")
    found = engine.scan(text.encode())
    assert found == [], [(m.rule.id, m.secret[:40]) for m in found]


def test_this_file_scans_clean(engine: Engine) -> None:
    found = engine.scan(Path(__file__).read_bytes())
    assert found == [], [(m.rule.id, m.secret[:40]) for m in found]


@pytest.mark.parametrize("path", [RULES_FILE, Path(__file__)], ids=lambda p: p.name)
def test_no_key_like_literal(path: Path) -> None:
    text = path.read_text("utf-8")
    assert FORBIDDEN.search(text) is None
    # The forbidden regex itself works (it would catch an expanded example).
    assert FORBIDDEN.search(expand("AKIA{upper32:16}"))
    assert FORBIDDEN.search(expand("sk-ant-api{digits:0}03-{b64url:93}AA"))
