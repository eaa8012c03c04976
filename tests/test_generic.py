"""Generic secrets: a secret-ish name assigned a secret-looking value, in every common
syntax, reported at medium confidence; each value filter proved on its own; and the
offline checksums and decoders the provider rules rely on."""

from __future__ import annotations

import json
import secrets
import string
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner import generic
from scanner.checksums import SCHEMES
from scanner.engine import Engine
from scanner.examples import expand
from scanner.rules import at_confidence, load_rules
from tests.conftest import KEYSWEEP

RULES = load_rules()
MEDIUM = Engine(at_confidence(RULES, "medium"))
HIGH = Engine(at_confidence(RULES, "high"))


def generic_hits(text: str) -> list[bytes]:
    return [m.secret for m in MEDIUM.scan(text.encode()) if "generic" in m.rule.tags]


def secret() -> str:
    return expand("{base62:18}7Q")


# --- every common syntax ---------------------------------------------------------------

SYNTAXES = {
    "env": "DB_PASSWORD={s}",
    "shell": 'export API_TOKEN="{s}"',
    "yaml": "database:\n  password: {s}\n",
    "json": '{{"client_secret": "{s}"}}',
    "toml": '[smtp]\npassword = "{s}"\n',
    "ini": "[db]\npasswd = {s}\n",
    "properties": "spring.datasource.password={s}",
    "python": 'DATABASE_PASSWORD = "{s}"',
    "python-kwarg": "connect(host=h, password='{s}')",
    "python-typed": 'API_KEY: str = "{s}"',
    "js": 'const apiKey = "{s}";',
    "ts-object": "export default {{ authToken: '{s}' }}",
    "go": 'cfg := Config{{Token: "{s}"}}',
    "go-short": 'secret := "{s}"',
    "java": 'private static final String SECRET_KEY = "{s}";',
    "java-builder": 'builder.setPassword("{s}")',
    "ruby": "config.api_key = '{s}'",
    "ruby-hash": "{{ :password => '{s}' }}",
    "php": "$password = '{s}';",
    "php-array": "'auth_token' => '{s}',",
    "php-define": "define('DB_PASSWORD', '{s}');",
    "csharp": 'var clientSecret = "{s}";',
    "terraform": 'resource "x" "y" {{\n  admin_password = "{s}"\n}}',
    "dockerfile": "ENV REGISTRY_TOKEN={s}",
    "dockerfile-legacy": "ENV REGISTRY_TOKEN {s}",
    "k8s-env": 'env:\n  - name: DB_PASSWORD\n    value: "{s}"\n',
    "k8s-secret": "stringData:\n  password: {s}\n",
    "xml-attribute": '<connection password="{s}" />',
    "xml-element": "<password>{s}</password>",
    "dotnet-appsettings": '<add key="ApiKey" value="{s}" />',
    "cli-flag": "mysql --user=root --password {s}",
    "escaped-json": '"{{\\"api_key\\": \\"{s}\\"}}"',
}


@pytest.mark.parametrize("syntax", SYNTAXES, ids=list(SYNTAXES))
def test_every_common_syntax_is_found_at_medium_only(syntax: str) -> None:
    value = secret()
    text = SYNTAXES[syntax].format(s=value)
    assert generic_hits(text) == [value.encode()], text
    (match,) = [m for m in MEDIUM.scan(text.encode()) if "generic" in m.rule.tags]
    assert match.confidence == "medium" and match.entropy and match.entropy > 3
    assert [m for m in HIGH.scan(text.encode()) if "generic" in m.rule.tags] == []


def test_an_assertion_far_back_on_a_long_line_does_not_make_a_fixture() -> None:
    """The fixture filter reads the candidate's own line, at most 512 bytes of it: an
    ``assert`` at the start of a buffer whose first line is long is not that line's."""
    value = secret()
    line = f'assert ok; {"x" * 600}; password = "{value}"'
    assert generic_hits(line) == [value.encode()]
    assert generic_hits(f'assert password == "{value}"') == []  # a real assertion


def test_a_provider_match_wins_over_the_generic_one() -> None:
    token = expand("ghp_{base62:30}{checksum}", "crc32_base62")
    assert [m.rule.id for m in MEDIUM.scan(f"GITHUB_TOKEN={token}".encode())] == [
        "github-classic-token"
    ]


# --- each filter on its own ------------------------------------------------------------
# (name, a value it must reject, the same line with a value that passes every filter)

FILTER_CASES = {
    "name": [
        'tokenizer = "{s}"',
        'author = "{s}"',
        'password_file = "{s}"',
        'token_type = "{s}"',
        'auth_url = "{s}"',
    ],
    "reference": [
        "DB_PASSWORD=${{DB_PASSWORD}}",
        "password: {{{{ .Values.db.password }}}}",
        "API_TOKEN: ${{{{ secrets.API_TOKEN }}}}",
        'password = os.environ["DB_PASSWORD"]',
        "const apiKey = process.env.API_KEY;",
        'url = "%(password)s"',
        "password = self.password",
        'token = get_token("{s}")',
        "secret = config.secret_value",
    ],
    "placeholder": [
        'password = "changeme-please"',
        "api_key: your-api-key-here",
        'token = "<your token>"',
        'password = "aaaaaaaaaaaa"',
        'secret = "xxxxxxxxxxxxxxxx"',
        'password = "p@ssw0rd123"',
        'client_secret = "REDACTED_SECRET"',
        'password = "s3cr3t-pass"',
    ],
    "path": [
        'private_key = "/etc/ssl/private/server.key"',
        'credentials = "./config/credentials.json"',
        'auth = "https://login.example.net/oauth/authorize"',
    ],
    "identifier": [
        'secret_id = "{uuid}"',
        'auth_token = "{uuid}"',
        "api_version: 2024-01-01.preview",
        'token_version = "v12.4.1-beta"',
        "auth_host = api.internal.example.com",
        "EMRFS_SSE_KEY = 'fs.s3.enableServerSideEncryption'",
        "EMRFS_CSE_KMS_KEY_ID_KEY = 'fs.s3.cse.kms.keyId'",
        "USER_AGENT_KEY = 'HTTP_USER_AGENT'",
        "X_FORWARDED_KEY = 'HTTP_X_FORWARDED_FOR'",
    ],
    "hash": ["integrity: sha512-{b64:86}==", 'token_digest = "sha256:{hex:32}{hex:32}"'],
    # A provider's near miss: its prefix, but not its format (xAI keys are xai- + 80).
    "provider": [
        "xai_token = 'xai-{base62:41}'",
        'GITLAB_TOKEN = "glpat-{base62:8}"',
        "aws_key = AKIA{base62:9}",
    ],
    "fixture": [
        'TEST_PASSWORD = "{s}"',
        'fake_token = "{s}"',
        'MOCK_API_KEY = "{s}"',
        'assert token == "{s}"',
        'dummy_secret = "{s}"',
    ],
    "shape": [
        'token = "short12"',
        'password = "abc12"',
        "password: correcthorsebatterystaple",
        "password: 12345678901",
        'secret = "GetCallerIdentity"',
        'token = "worker-1"',
        'secret = "Summer2024!"',
        "password: 1234567890",
    ],
}


@pytest.mark.parametrize(
    ("filter_name", "template"),
    [(f, t) for f, ts in FILTER_CASES.items() for t in ts],
    ids=[f"{f}-{i}" for f, ts in FILTER_CASES.items() for i, _ in enumerate(ts)],
)
def test_each_filter_rejects_what_it_is_for(filter_name: str, template: str) -> None:
    text = expand(template.replace("{s}", secret()).replace("{{", "{").replace("}}", "}"))
    assert generic_hits(text) == [], text
    # This filter is one that rejects it (the bench prices each filter by the full list).
    data = text.encode()
    rule = next(r for r in RULES if r.id == "generic-secret")
    reasons: set[str] = set()
    for start in range(len(data)):
        m = rule.pattern.match(data, start)
        if m is not None and m.group(1):
            v = generic.judge(m.group(1), data, m, every=True)
            reasons.update((v.rejected_by or "").split(","))
    assert filter_name in reasons or not reasons, (text, reasons)


def test_a_subscript_or_a_type_after_an_unquoted_value_is_code() -> None:
    """``NAME = Foo[int]()`` (a type subscripted, a dict read) is code: no candidate,
    so it costs no judging either; the same value written as data is one."""
    value = secret()
    assert generic_hits(f"fault_handler_fd_key = StashKey[{value}]()") == []
    assert generic_hits(f"token = tokens[{value}]") == []
    assert generic_hits(f"API_TOKEN={value}\n") == [value.encode()]


def test_values_shaped_like_names_are_secrets_when_they_hold_random_parts() -> None:
    """The identifier filter's constant and property shapes take words only: a key
    whose random part holds digits (Finage's ``API_KEY`` + 32), runs long, or sits
    between dots is not a name."""
    random_part = expand("{base62:30}").upper() + "7"
    assert generic_hits(f'secret = "API_KEY{random_part}"') == [f"API_KEY{random_part}".encode()]
    for _ in range(50):
        long_upper = "PROD_" + "".join(secrets.choice(string.ascii_uppercase) for _ in range(20))
        assert not generic.is_identifier_like(long_upper)
        dotted = "a1." + expand("{base62:20}") + "." + expand("{base62:20}")
        assert not generic.is_identifier_like(dotted), dotted
    assert generic.is_identifier_like("spring.datasource.password")
    assert generic.is_identifier_like("fs.s3.consistent.retryPeriodSeconds")


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(
        [
            "password",
            "DB_PASSWORD",
            "api_key",
            "cache_key",
            "client_secret",
            "auth_token",
            "EMRFS_SSE_KEY",
            "self.token",
            "TEST_PASSWORD",
            "secret",
        ]
    ),
    value=st.one_of(
        st.text(
            alphabet=string.ascii_letters + string.digits + "_-.:/+=$%{}@!*",
            min_size=6,
            max_size=40,
        ),
        st.sampled_from(
            [
                "changeme-please",
                "p@ssw0rd123",
                "GetCallerIdentity",
                "worker-1",
                "fs.s3.consistent",
                "HTTP_USER_AGENT",
                "/etc/app/key.pem",
                "Summer2024!",
                "sha256:" + "ab" * 20,
            ]
        ),
    ),
    quote=st.sampled_from(['"', "'", ""]),
)
def test_the_engine_s_filter_order_keeps_what_the_bench_s_keeps(
    name: str, value: str, quote: str
) -> None:
    """judge(why=False) asks the filters in DECIDE_ORDER (shape third): which filter it
    names may differ, whether one rejects may not."""
    data = f"{name} = {quote}{value}{quote}\n".encode()
    rule = next(r for r in RULES if r.id == "generic-secret")
    for start in range(len(data)):
        m = rule.pattern.match(data, start)
        if m is not None and m.group(1):
            ordered = generic.judge(m.group(1), data, m)
            quick = generic.judge(m.group(1), data, m, why=False)
            assert bool(ordered.rejected_by) == bool(quick.rejected_by), (data, ordered, quick)
            assert set(generic.DECIDE_ORDER) == set(generic.FILTER_NAMES)


# Each text is written in two halves joined at run time, so this file holds no
# password assignment that a scan of this repository would (rightly) report.
TYPED_PASSWORDS = [
    ("DB_PASS", "WORD=admin123"),
    ('"pass', 'word": "hunter22",'),
    ("$dbpas", "swd = 'pass123';"),
    ("REDIS_PASS", "WORD=RedisPass1!"),
    ("export GMAIL_PASS", 'WORD="Pass!12345"'),
    ('"encryptedPass', 'word": "MDoEEPgAAAAAAAAAAAAAAAAAAAEwFAYIKoZIhvcNAwcECBQ0N0Eftd",'),
]


@pytest.mark.parametrize("halves", TYPED_PASSWORDS, ids=lambda h: h[0].strip('"$ '))
def test_a_password_is_judged_as_typed_by_a_person(halves: tuple[str, str]) -> None:
    """Weak, human passwords are real passwords (leaky-repo counts each as a risk); only
    fillers (password123, changeme), fixtures and references are left out."""
    text = "".join(halves)
    assert len(generic_hits(text)) == 1, text


def test_a_token_must_look_generated() -> None:
    assert generic_hits("DB_PASS" + "WORD=admin123") == [b"admin123"]
    assert generic_hits("API_TOKEN=admin123") == []  # a word and a number: not generated


def test_filters_listed_for_the_bench_are_the_ones_applied() -> None:
    assert generic.FILTER_NAMES == (
        "name",
        "reference",
        "placeholder",
        "path",
        "identifier",
        "hash",
        "provider",
        "fixture",
        "shape",
    )
    line = b'TEST_PASSWORD = "${X}"'
    got = generic.value_filters("TEST_PASSWORD", "${X}", line, 1.0)
    assert got[:1] == ["reference"] and "fixture" in got and "shape" in got
    assert generic.value_filters("TEST_PASSWORD", "${X}", line, 1.0, first_only=True) == [
        "reference"
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TEST_PASSWORD", "${X}"),
        ("cache_key", "9aZq0xK7aZq0xK7"),
        ("API_TOKEN", "changeme123"),
        ("db_password", "/etc/app/secret.txt"),
        ("token", "123e4567-e89b-12d3-a456-426614174000"),
        ("integrity", "sha512-" + "a" * 20 + "Zq09"),
        ("api_key", "glpat-" + "x7Kq" * 3),
        ("fake_secret", "9aZq0xK7aZq0xK7aZ"),
        ("client_secret", "9aZq0xK7aZq0xK7aZ"),
        ("password", "hunter22"),
        ("auth_token", "abcdefgh"),
    ],
)
def test_the_first_filter_judge_asks_is_the_first_the_full_list_gives(
    name: str, value: str
) -> None:
    """judge stops at the first filter (first_only, written out); the bench lists them
    all: the same first label (or none) either way."""
    line = f"{name} = '{value}'".encode()
    for entropy in (0.5, 3.0, 5.0):
        for quoted in (True, False):
            every = generic.value_filters(name, value, line, entropy, quoted)
            first = generic.value_filters(name, value, line, entropy, quoted, first_only=True)
            assert first == every[:1], (name, value, entropy, quoted)


PLACEHOLDER_PIECES = [
    "example", "Sample", "DUMMY", "placeholder", "changeme", "change_this", "replace", "your_",
    "yourKey", "your", "insert-", "enter_", "redacted", "REMOVED", "masked", "secret_here",
    "_here", "-here", "todo", "TBD", "fixme", "none", "NULL", "nil", "xxxx", "XXXXX", "***",
    "...", "my_secret", "mypassword", "password", "passwd", "Secret", "TOKEN", "p@ssw0rd",
    "s3cr3t", "t0k3n", "3x4mpl3", "dumm1", "ch4ng3m3", "n0n3", "aZq0", "9", "_", "-", ".",
]  # fmt: skip


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(st.sampled_from(PLACEHOLDER_PIECES), max_size=5).map("".join))
def test_the_placeholder_words_search_is_skipped_only_where_it_cannot_match(
    value: str,
) -> None:
    """PLACEHOLDER_MARK is a superset of PLACEHOLDER_WORDS on ASCII text (on the value as
    written and on its un-leeted form): skipping the search never changes a verdict."""
    for text in (value, generic.unleet(value)):
        if generic.PLACEHOLDER_WORDS.search(text):
            assert generic.PLACEHOLDER_MARK.search(text.lower()), text


# --- checksums and decoders --------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "template"),
    [
        ("gitlab_routable", "glpat-{b64url:40}.01."),
        ("gitlab_routable", "glrt-t2_{b64url:30}."),
        ("crc32_le_hex", "glsa_{base62:32}_"),
        ("crc32_hex", "cfut_{base62:40}"),
        ("bech32", "AGE-SECRET-KEY-1{BECH32:52}"),
        ("crc32_base62", "npm_{base62:30}"),
    ],
)
def test_checksums_verify_and_one_changed_character_fails(scheme: str, template: str) -> None:
    verify, compute = SCHEMES[scheme]
    head = expand(template)
    token = head + compute(head)
    assert verify(token)
    for i in range(len(token) - 7, len(token)):  # the checksum's own characters
        for alt in "0aZ":
            bad = token[:i] + alt + token[i + 1 :]
            if bad != token and not (scheme == "bech32" and alt.lower() == token[i].lower()):
                assert not verify(bad), (token, bad)
    if scheme == "gitlab_routable":
        assert verify(expand("glpat-{b64url:20}"))  # a legacy token carries no checksum


def test_pypi_token_is_decoded_as_a_macaroon() -> None:
    from scanner.validators import parse_macaroon_v2, run_validator

    token = expand("pypi-{pypi_macaroon}").encode()
    assert run_validator("pypi_macaroon", token, token, None) is not None  # type: ignore[arg-type]
    import base64

    body = token[5:]
    raw = base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4))
    mac = parse_macaroon_v2(raw)
    assert mac["location"] == b"pypi.org" and len(mac["caveats"]) == 1
    with pytest.raises(ValueError):
        parse_macaroon_v2(raw[:-1])  # a truncated signature


def test_github_installation_token_jwt_is_decoded_and_expiry_kept() -> None:
    token = expand("ghs_{digits:7}_{jwt_expired}")
    (m,) = [m for m in HIGH.scan(token.encode()) if m.rule.id == "github-app-installation-token"]
    assert m.expires_at is not None and HIGH.is_expired(m)


# --- rules list ---------------------------------------------------------------------------


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([KEYSWEEP, *args], capture_output=True, timeout=120, cwd=cwd)


def test_rules_list_filters_and_counts(tmp_path: Path) -> None:
    every = json.loads(run("rules", "list", "--format", "json", cwd=tmp_path).stdout)
    assert len(every) >= 150
    aws = json.loads(
        run("rules", "list", "--format", "json", "--filter", "AWS", cwd=tmp_path).stdout
    )
    assert aws and all(
        "aws" in " ".join((r["id"], r["provider"], r["description"])).lower() for r in aws
    )
    cloud_high = json.loads(
        run(
            "rules",
            "list",
            "--format",
            "json",
            "--tag",
            "cloud",
            "--confidence",
            "high",
            cwd=tmp_path,
        ).stdout
    )
    assert cloud_high and {r["confidence"] for r in cloud_high} == {"high"}
    assert all("cloud" in r["tags"] for r in cloud_high)
    medium = json.loads(
        run("rules", "list", "--format", "json", "--confidence", "medium", cwd=tmp_path).stdout
    )
    assert {r["id"] for r in medium} >= {"generic-secret", "generic-bearer-token"}
    ours = json.loads(
        run("rules", "list", "--format", "json", "--owner", "keyservice", cwd=tmp_path).stdout
    )
    assert {r["id"] for r in ours} == {"mg-live-key", "mg-test-key"}
    text = run("rules", "list", "--filter", "gitlab", cwd=tmp_path).stdout.decode()
    assert f"of {len(every)} rules" in text and "gitlab-pat" in text
    p = run("rules", "test", "--filter", "slack", cwd=tmp_path)
    assert p.returncode == 0 and "0 failed" in p.stdout.decode()


def test_scan_confidence_levels(tmp_path: Path) -> None:
    d = tmp_path / "p"
    d.mkdir()
    value = secret()
    bad = expand("ghp_{base62:30}{badchecksum}", "crc32_base62")
    (d / "settings.py").write_text(f'DB_PASSWORD = "{value}"\nOLD = "{bad}"\n')

    def ids(*args: str) -> list[str]:
        p = run("scan", str(d), "--no-history", "--format", "json", *args)
        return sorted(f["rule_id"] for f in json.loads(p.stdout))

    assert ids() == ["generic-secret"]  # the default is medium
    assert ids("--confidence", "high") == []
    assert ids("--confidence", "low") == ["generic-secret", "github-classic-token"]
    assert ids("--low-confidence") == ids("--confidence", "low")
    assert "--confidence" in run("scan", "--help").stdout.decode()


def test_the_hooks_report_generic_secrets_unless_told_high(tmp_path: Path) -> None:
    from tests.helpers import Repo, git

    r = Repo(tmp_path / "repo")
    r.write("README.md", "demo\n")
    r.commit("init")
    r.write("settings.py", f'DB_PASSWORD = "{secret()}"\n')
    git(r.path, "add", "-A")
    p = run("hook", "pre-commit", cwd=r.path)
    assert p.returncode == 1 and b"generic-secret" in p.stderr
    assert run("hook", "pre-commit", "--confidence", "high", cwd=r.path).returncode == 0
    r.commit("leak")  # pre-push: the same rule through the history path
    head = git(r.path, "rev-parse", "HEAD").strip()
    line = f"refs/heads/main {head} refs/heads/main {'0' * 40}\n".encode()
    pushed = subprocess.run(
        [KEYSWEEP, "hook", "pre-push", "origin", "x"],
        cwd=r.path,
        input=line,
        capture_output=True,
        timeout=120,
    )
    assert pushed.returncode == 1 and b"generic-secret" in pushed.stderr
