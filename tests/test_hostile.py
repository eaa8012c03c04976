"""Hostile input (issue #11): validators that always answer, logs that never show a
key, ``redacted`` that holds for every rule and encoding, every user-supplied regex
under the timeout, and public content that cannot allow itself."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import string
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from scanner.checksums import SCHEMES
from scanner.engine import Allowlist, Engine
from scanner.examples import expand
from scanner.findings import redact
from scanner.rules import load_rules, rule_from_dict
from scanner.validators import _SIMPLE, run_validator
from tests.conftest import KEYSWEEP
from tests.helpers import GIT_ENV, Repo, git, mg_live

RULES = load_rules()
MG = next(r for r in RULES if r.id == "mg-live-key")


def sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def cli(
    *args: str, cwd: Path | None = None, stdin: bytes | None = None, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KEYSWEEP, *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt_with_exp(exp_literal: str) -> str:
    """A signed-looking JWT whose ``exp`` is written as the JSON text given."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64url(f'{{"sub":"user-{os.urandom(4).hex()}","exp":{exp_literal}}}'.encode())
    return f"{header}.{claims}.{b64url(os.urandom(32))}"


def forms(key: str) -> dict[str, str]:
    """The ways a key could be written out: none of them may reach an output."""
    raw = key.encode()
    return {
        "raw": key,
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "percent": urllib.parse.quote(key, safe=""),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "utf16": key.encode("utf-16-le").decode("latin-1"),
    }


def longest_shown(secret: str, text: str) -> int:
    """The longest run of ``secret``'s characters (after a known prefix) in ``text``."""
    body = secret
    for p in ("mg_live_", "mg_test_"):
        body = body.removeprefix(p)
    best = 0
    for i in range(len(body)):
        n = best + 1
        while i + n <= len(body) and body[i : i + n] in text:
            best, n = n, n + 1
    return best


def assert_nowhere(key: str, text: str) -> None:
    for name, form in forms(key).items():
        assert form not in text, f"the key's {name} form is in the output"
    assert longest_shown(key, text) <= 12, "more than 12 characters of the key are shown"


# --- crash-proof: validators and checksums are total ---------------------------------

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" + "0" * 400, "true"]


@pytest.mark.parametrize("exp", NON_FINITE)
def test_a_jwt_with_a_non_finite_exp_does_not_stop_the_scan(exp: str) -> None:
    """A JWT whose exp is NaN, 1e999 or absurd crashed the scan (exit 2, no report):
    now the JWT is reported with no expiry and the mg_ key beside it is reported too."""
    key, token = mg_live(), jwt_with_exp(exp)
    data = f'{{"id_token": "{token}"}}\nAPI_KEY={key}\n'.encode()
    p = cli("scan", "-", "--format", "json", stdin=data)
    assert p.returncode == 1, p.stderr
    found = {f["rule_id"]: f for f in json.loads(p.stdout)}
    assert found["mg-live-key"]["secret_sha256"] == sha(key)
    assert found["jwt"]["secret_sha256"] == sha(token)
    assert "expires_at" not in found["jwt"]  # no date is no expiry: reported as live


HOSTILE_TOKENS: list[bytes] = [
    b"",
    b".",
    b"..",
    b"\x00" * 40,
    b"\xff\xfe" * 30,
    "é€😀".encode(),
    b"eyJ" + b"A" * 5000,
    # A JWT whose claims nest deeper than Python's recursion limit.
    f"eyJhbGciOiJIUzI1NiJ9.{b64url(b'[' * 100_000)}.c2ln".encode(),
    # exp as a huge integer, a list; alg as an object.
    ("eyJhbGciOiJIUzI1NiJ9." + b64url(b'{"exp":' + b"9" * 5000 + b"}") + ".c2ln").encode(),
    ("eyJhbGciOiJIUzI1NiJ9." + b64url(b'{"exp":[1e999]}') + ".c2ln").encode(),
    (b64url(b'{"alg":{"x":1}}') + "." + b64url(b'{"exp":NaN}') + ".c2ln").encode(),
    b"ghs_123_" + b"eyJ" * 100,
    b"pypi-AgEIcHlwaS5vcmc" + b"\xff" * 20,
    b"pypi-" + b64url(bytes([2, 1, 0x7F]) + b"\xff" * 20).encode(),
    b"pypi-" + b64url(bytes([2]) + b"\x80" * 100).encode(),
    b"glpat-" + b"." * 30,
    b"glrt-t1_abc.01.zzzzzzzzz",
    b"AGE-SECRET-KEY-1" + "é".encode() * 10,
    b"glsa_" + b"_" * 40,
    b"cfk_" + b"\xff" * 48,
]


def test_validators_and_checksums_answer_on_hostile_tokens() -> None:
    import regex

    m = regex.match(rb"(?P<user>.*)", b"u")
    assert m is not None
    for token in HOSTILE_TOKENS:
        for name in [*_SIMPLE, "generic", "url_password"]:
            run_validator(name, token, token, m)  # no exception, whatever the answer
        text = token.decode("utf-8", "surrogateescape")
        for verify, _ in SCHEMES.values():
            assert verify(text) in (True, False)
            assert verify(token.decode("latin-1")) in (True, False)
        Engine(RULES).scan(token + b" " + token)


def test_a_validator_that_raises_keeps_its_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A validator bug never costs a scan: the candidate is kept (it was not shown to
    be no key), and the scan goes on."""
    import scanner.validators as v

    def broken(secret: bytes) -> None:
        raise RuntimeError("validator bug")

    monkeypatch.setitem(v._SIMPLE, "jwt", broken)
    token, key = jwt_with_exp("1"), mg_live()
    found = Engine(RULES).scan(f"t = {token}\nk = {key}\n".encode())
    assert {m.rule.id for m in found} >= {"jwt", "mg-live-key"}


# --- leak-proof logs ----------------------------------------------------------------------

LOG_SCRIPT = r"""
import logging, os, sys
from workers.logs import setup_logging

key = os.environ["PLANTED"]
jwt = os.environ["PLANTED_JWT"]
setup_logging("DEBUG")
log = logging.getLogger("keysweep.hostile")

class StrRaises:
    def __str__(self): raise RuntimeError("no str")
    def __repr__(self): return f"StrRaises({key!r})"

class BothRaise:
    def __str__(self): raise RuntimeError(key)
    def __repr__(self): raise RuntimeError(key)

class Bomb(Exception):
    def __str__(self): raise RuntimeError("no str for " + key)

log.info("bytes %s", key.encode())
log.info("bytes after a NUL %r", b"\x00" + key.encode())
log.info("bytearray %s", bytearray(key.encode()))
log.info("not a number %d", key)
log.info("too few args %s %s", key)
log.info("too many args %s", key, key, 3)
log.info("mapping wanted %(k)s", key)
log.info("a dict %(k)s", {"k": key})
log.info(key)
log.info(ValueError("raised with " + key))
log.info("str raises %s", StrRaises())
log.info("both raise %s", BothRaise())
log.info("escaped %s", "\\n" + key)
log.info("glued %s", "token" + key)
log.info("after a letter x%s", key)
log.info("json %s", '{"k":"\\u003e' + key + '"}')
log.info("jwt beside %s %s", jwt, key)
log.info("list %s", [key, b"\xff" + key.encode()])
log.info("extra", extra={"task_id": key, "fingerprint": BothRaise()})
log.info("percent 100%% sure %s", key)
log.info("100% " + key)
log.info(BothRaise())
try:
    raise ValueError(f"request failed: token={key}")
except ValueError:
    log.exception("with a traceback")
try:
    raise Bomb()
except Bomb:
    log.exception("an exception whose str raises")
try:
    raise KeyError(key.encode())
except KeyError:
    log.error("exc_info of %s", key, exc_info=True)
print("done", file=sys.stderr)
"""


def test_logs_never_show_a_key_whatever_the_record_holds() -> None:
    """Non-str arguments, bad format strings, bytes, exceptions (and ones whose str
    raises), a key glued to an escape or a letter, a NaN JWT beside it: every record is
    written as one redacted JSON line, never Python's "--- Logging error ---" with the
    raw arguments, and the key is in stderr in no form."""
    key = mg_live()
    env = {**os.environ, "PLANTED": key, "PLANTED_JWT": jwt_with_exp("NaN")}
    p = subprocess.run(
        [sys.executable, "-c", LOG_SCRIPT], capture_output=True, env=env, timeout=120
    )
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, err
    assert err.rstrip().endswith("done")
    assert "Logging error" not in err and "could not be written" not in err
    lines = err.rstrip().splitlines()[:-1]
    assert len(lines) == 25
    for line in lines:
        json.loads(line)  # one JSON object per record
    assert_nowhere(key, err + p.stdout.decode("utf-8", "replace"))
    assert key[:16] + "…" in err  # the redacted form stands where the key was


def test_a_formatter_that_fails_never_lets_logging_print_the_arguments() -> None:
    """The handler's error path (``handleError``) prints neither message nor args."""
    import io
    import logging

    from workers.logs import SafeStreamHandler

    class Broken(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            raise RuntimeError("formatter bug")

    key = mg_live()
    out, err = io.StringIO(), io.StringIO()
    handler = SafeStreamHandler(out)
    handler.setFormatter(Broken())
    logger = logging.getLogger("keysweep.hostile.broken")
    logger.addHandler(handler)
    logger.propagate = False
    saved = sys.stderr
    sys.stderr = err
    try:
        logger.error("key %s", key)
    finally:
        sys.stderr = saved
        logger.removeHandler(handler)
    assert "could not be written (RuntimeError)" in err.getvalue()
    assert_nowhere(key, out.getvalue() + err.getvalue())


# --- redacted: the prefix plus at most 8 characters -----------------------------------------


def pem_private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def pem_body(pem: str) -> str:
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


def longest_run(body: str, text: str) -> int:
    best = 0
    for i in range(len(body)):
        n = best + 1
        while i + n <= len(body) and body[i : i + n] in text:
            best, n = n, n + 1
    return best


def test_a_pem_key_in_json_is_redacted_to_its_armour_line(tmp_path: Path) -> None:
    """A GCP service-account file: the PEM written with \\n escapes in a JSON string came
    out whole in ``redacted``, so in every report, baseline and hook message."""
    pem = pem_private_key()
    doc = {
        "type": "service_account",
        "project_id": "demo",
        "private_key_id": os.urandom(20).hex(),
        "private_key": pem,
        "client_email": "svc@demo.iam.gserviceaccount.com",
    }
    repo = Repo(tmp_path / "repo")
    repo.write("sa.json", json.dumps(doc, indent=2) + "\n")
    body = pem_body(pem)
    outputs: dict[str, str] = {}
    for fmt in ("text", "json", "jsonl", "sarif"):
        p = cli("scan", ".", "--no-history", "--format", fmt, cwd=repo.path)
        assert p.returncode == 1, p.stderr
        outputs[fmt] = p.stdout.decode()
        outputs[f"{fmt} stderr"] = p.stderr.decode()
    keys = [f for f in json.loads(outputs["json"]) if f["rule_id"] == "private-key"]
    assert keys and {f["redacted"] for f in keys} == {"-----BEGIN PRIVATE KEY-----…"}
    # As it stands in the file (and, once JSON strings are decoded, as the PEM itself).
    assert {f["secret_sha256"] for f in keys} <= {
        sha(json.dumps(pem.rstrip("\n"))[1:-1]),
        sha(pem.rstrip("\n")),
    }
    p = cli("baseline", "create", "--no-history", "--output", "base.json", ".", cwd=repo.path)
    assert p.returncode == 0, p.stderr
    outputs["baseline"] = (repo.path / "base.json").read_text()
    # The pre-commit hook's message.
    git(repo.path, "add", "sa.json")
    env = {**GIT_ENV, "KEYSWEEP_CACHE_DIR": str(tmp_path / "cache")}
    p = cli("hook", "pre-commit", cwd=repo.path, env=env)
    assert p.returncode == 1, p.stderr
    outputs["hook"] = p.stdout.decode() + p.stderr.decode()
    assert "-----BEGIN PRIVATE KEY-----…" in outputs["hook"]
    for name, text in outputs.items():
        assert longest_run(body, text) <= 12, f"{name} shows the key's body"


def test_redacted_is_the_prefix_plus_at_most_8_for_every_rule() -> None:
    """Every rule's positive examples, scanned as they are and inside a JSON string:
    ``redacted`` is a known prefix (or a PEM armour line) plus at most 8 characters."""
    engine = Engine(RULES, low_confidence=True)
    checked = 0
    for rule in RULES:
        for template in rule.positive:
            text = expand(template, rule.checksum)
            for data in (text.encode(), json.dumps({"v": text}).encode()):
                for m in engine.scan(data):
                    shown = redact(m.secret, m.rule.prefixes)
                    assert shown.endswith("…")
                    head = shown[:-1]
                    secret = m.secret.decode("utf-8", "replace")
                    if secret.startswith("-----BEGIN"):
                        assert head.startswith("-----BEGIN") and head.endswith("-----")
                        assert len(head) <= 80 and "\\" not in head and "\n" not in head
                    else:
                        prefix = next(
                            (p for p in m.rule.prefixes if secret.lower().startswith(p.lower())),
                            "",
                        )
                        assert len(head) <= len(prefix) + 8, (rule.id, shown)
                    checked += 1
    assert checked > len(RULES)


# --- every user-supplied regex runs under the timeout -----------------------------------------

# The operator's KEYSWEEP_REGEX_TIMEOUT (2 s by default), short so each timeout is cheap.
QUICK = {"KEYSWEEP_REGEX_TIMEOUT": "0.25"}
CATASTROPHIC = "(a|a)+$"  # exponential on "aaa…a!" (the regex module's guards do not catch it)
CATASTROPHIC_ON_KEYS = r"(.|.)+[^\w-]"  # exponential on any run of key characters


def acme_token() -> str:
    """The rule's own alphabet only (a base64url token with a - or _ is not one)."""
    return "acme_tok_" + "".join(
        secrets.choice(string.ascii_letters + string.digits) for _ in range(24)
    )


def acme_rule(context: str) -> dict:
    return {
        "id": "acme-token",
        "description": "ACME internal token",
        "owner": "third_party",
        "severity": "high",
        "prefixes": ["acme_tok_"],
        "pattern": "(acme_tok_[A-Za-z0-9]{24})",
        "context": context,
    }


def test_a_context_or_allowlist_regex_that_times_out_keeps_the_key() -> None:
    """In the engine, with a short timeout: each timeout is counted and the key is
    reported (a timed-out context counts as found, a timed-out allowlist allows nothing)."""
    token = acme_token()
    key = mg_live()
    rule = rule_from_dict(acme_rule(CATASTROPHIC), "test")
    engine = Engine(
        [*RULES, rule],
        allowlist=Allowlist.from_strings([CATASTROPHIC_ON_KEYS]),
        regex_timeout=0.05,
    )
    data = f"{token} {'a' * 40}!\nK = {key}\n".encode()
    found = {m.rule.id: m.secret for m in engine.scan(data)}
    assert found == {"acme-token": token.encode(), "mg-live-key": key.encode()}
    assert engine.stats.regex_timeouts >= 3  # the context, and the allowlist on each secret
    assert engine.stats.allowed_config == 0


def test_a_catastrophic_custom_context_and_allowlist_do_not_hang_a_scan(tmp_path: Path) -> None:
    """Through the CLI: a config whose custom rule's context and allowlist are
    catastrophic; the scan finishes and reports both keys with their exact hashes."""
    token = acme_token()
    key = mg_live()
    d = tmp_path / "src"
    d.mkdir()
    (d / "app.env").write_text(f"ACME={token} {'a' * 40}!\nMG={key}\n")
    rule = acme_rule(CATASTROPHIC)
    config = tmp_path / "keysweep.toml"
    config.write_text(
        f"allowlist_regexes = [{json.dumps(CATASTROPHIC_ON_KEYS)}]\n\n[[rules]]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in rule.items())
    )
    p = cli("scan", str(d), "--no-history", "--config", str(config), "--format", "json", env=QUICK)
    assert p.returncode == 1, p.stderr
    got = {f["rule_id"]: f["secret_sha256"] for f in json.loads(p.stdout)}
    assert got == {"acme-token": sha(token), "mg-live-key": sha(key)}


def test_a_catastrophic_gitleaks_allowlist_does_not_hang_a_scan_or_the_hook(
    tmp_path: Path,
) -> None:
    """A repository's .gitleaks.toml whose allowlist regex over the line is catastrophic:
    `keysweep scan` and the pre-commit hook finish and the key is reported, not allowed."""
    key = mg_live()
    repo = Repo(tmp_path / "repo")
    repo.write("k.env", f"MG={key}  {'a' * 40}!\n")
    repo.write(
        ".gitleaks.toml",
        f'[allowlist]\nregexTarget = "line"\nregexes = [{json.dumps(CATASTROPHIC)}]\n',
    )
    p = cli("scan", ".", "--no-history", "--format", "json", cwd=repo.path, env=QUICK)
    assert p.returncode == 1, p.stderr
    assert [f["secret_sha256"] for f in json.loads(p.stdout)] == [sha(key)]
    git(repo.path, "add", "-A")
    env = {**GIT_ENV, **QUICK, "KEYSWEEP_CACHE_DIR": str(tmp_path / "cache")}
    p = cli("hook", "pre-commit", cwd=repo.path, env=env)
    assert p.returncode == 1, p.stderr
    assert key[:16] + "…" in p.stderr.decode()


def test_gitleaks_allowlist_timeouts_count_into_the_engine_stats(tmp_path: Path) -> None:
    """Every regex of a .gitleaks.toml allowlist (over the line, the secret, the path)
    and a rule's path filter run under the engine's timeout; each timeout is counted,
    and none of them allows the key."""
    from scanner.config import load_config
    from scanner.scan import Collector, gitleaks_keep
    from scanner.sources.files import FileSource

    key = mg_live()
    (tmp_path / ("a" * 30 + "!.env")).write_text(f"MG={key}  {'a' * 40}!\n")
    (tmp_path / ".gitleaks.toml").write_text(
        f'[allowlist]\nregexTarget = "line"\nregexes = [{json.dumps(CATASTROPHIC)}]\n'
        f"paths = [{json.dumps(CATASTROPHIC)}]\n\n"
        f"[[allowlists]]\nregexes = [{json.dumps(CATASTROPHIC_ON_KEYS)}]\n"
    )
    config = load_config(None, tmp_path)
    engine = Engine([r for r in RULES if r.confidence == "high"], regex_timeout=0.05)
    collector = Collector(engine, [], keep=gitleaks_keep(config, engine))
    FileSource(tmp_path).feed(collector.scan)
    assert [f.secret_sha256 for f in collector.found.findings()] == [sha(key)]
    assert engine.stats.regex_timeouts == 3  # line, path, secret


# --- public content is not the owner's to allow ------------------------------------------------

ALLOW_COMMENTS = ["# gitleaks:allow", "# keysweep:allow", "# pragma: allowlist secret"]


@pytest.mark.parametrize("comment", ALLOW_COMMENTS)
def test_allow_comments_decide_only_where_the_owner_scans(comment: str) -> None:
    key = mg_live()
    data = f'API_KEY = "{key}"  {comment}\n'.encode()
    own = Engine(RULES)
    assert own.scan(data) == [] and own.stats.allowed_inline >= 1
    found = Engine(RULES, honour_allow=False).scan(data)
    assert [m.secret for m in found if m.rule.owner == "keyservice"] == [key.encode()]


def test_the_operators_own_allowlist_still_applies_to_public_content() -> None:
    key = mg_live()
    engine = Engine(RULES, allowlist=Allowlist.from_strings([key[:20]]), honour_allow=False)
    assert engine.scan(f"K = {key}  # gitleaks:allow\n".encode()) == []
    assert engine.stats.allowed_config == 1 and engine.stats.allowed_inline == 0


def test_keysweep_scan_still_honours_an_allow_comment() -> None:
    key = mg_live()
    p = cli("scan", "-", "--format", "json", stdin=f"K = '{key}'  # gitleaks:allow\n".encode())
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == []


def test_public_content_ignores_the_repositorys_allowlists_and_baseline(tmp_path: Path) -> None:
    """scan_source with an engine that does not honour allow markers (the workers') leaves
    out the scanned tree's .gitleaks.toml allowlists and any baseline."""
    from scanner.config import load_config
    from scanner.scan import ScanOptions, build_engine, scan_path

    key = mg_live()
    (tmp_path / "k.env").write_text(f"MG={key}\n")
    (tmp_path / ".gitleaks.toml").write_text('[allowlist]\nregexes = ["mg_live_"]\n')
    config = load_config(None, tmp_path)
    opts = ScanOptions(history=False)
    own = scan_path(tmp_path, build_engine(config), config, opts)
    assert own.findings == []  # the owner's own tuning allows it
    public = scan_path(tmp_path, build_engine(config, honour_allow=False), config, opts)
    assert [f.secret_sha256 for f in public.findings] == [sha(key)]
    baseline = tmp_path / "baseline.json"
    p = cli("baseline", "create", "--no-history", "-o", str(baseline), str(tmp_path / "k.env"))
    assert p.returncode == 0, p.stderr
    opts = ScanOptions(history=False, baseline=baseline)
    public = scan_path(tmp_path, build_engine(config, honour_allow=False), config, opts)
    assert [f.secret_sha256 for f in public.findings] == [sha(key)] and public.baselined == 0


def test_the_workers_and_the_partner_service_build_engines_that_ignore_allow_markers() -> None:
    from scanner.partner.intake import Intake
    from scanner.scan import build_engine
    from scanner.settings import Settings
    from workers import tasks
    from workers.settings import settings

    settings.cache_clear()
    tasks.engine.cache_clear()
    try:
        assert tasks.engine().honour_allow is False
    finally:
        tasks.engine.cache_clear()
    own = build_engine(Settings())
    intake = Intake(own)
    assert intake.engine.honour_allow is False and own.honour_allow is True
    key = mg_live()
    (found,) = intake.findings_for_many([(key, _partner_location())])
    assert [f.secret_sha256 for f in found] == [sha(key)]


def _partner_location():  # type: ignore[no-untyped-def]
    from scanner.findings import Location

    return Location(kind="partner", url="https://github.com/o/r/blob/main/a.py#L1")
