"""Properties of the engine under arbitrary surrounding bytes (issue #11), with
``hypothesis``: scanning never raises; a planted ``mg_`` key is always found with its
exact SHA-256; and no output (the finding's JSON, ``redacted``, the text, JSON and SARIF
reports) holds more than 12 characters of the key's random part.

Where the surroundings touch the key, two more properties hold: a key right after an
escape sequence (``\\n``, ``%3D``, ``\\u003e``) is found, and a key that runs on into more
key characters (``_old``, ``-backup``) is found as its 32-character key. Every other
strategy keeps a separator between the key and its surroundings.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from scanner.checksums import SCHEMES
from scanner.engine import Engine
from scanner.findings import FindingSet, Location, redact
from scanner.report.json_report import write_json
from scanner.report.sarif import write_sarif
from scanner.report.text import write_text
from scanner.rules import at_confidence, load_rules
from scanner.validators import _SIMPLE, looks_like_placeholder, run_validator

RULES = at_confidence(load_rules(), "medium")  # what `keysweep scan` runs by default
ENGINE = Engine(RULES)
# "Always found" is the workers' promise: random bytes may spell an allow comment
# (hypothesis finds "pragma: allowlist secret" on its own), which a manual scan honours.
PUBLIC = Engine(RULES, honour_allow=False)
SHOWN_MAX = 12

BOUNDED = settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written into the work tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- strategies --------------------------------------------------------------------------

# 24 random bytes -> the 32 base64url characters of a key (never a placeholder-like run).
keys = st.builds(
    lambda raw, env: f"mg_{env}_" + base64.urlsafe_b64encode(raw).decode(),
    st.binary(min_size=24, max_size=24),
    st.sampled_from(["live", "test"]),
).filter(lambda k: not looks_like_placeholder(k[8:].encode()))

ESCAPES = [
    b"\\n", b"\\r\\n", b"\\t", b"\\\\", b'\\"', b"\\/", b"\\u003e", b"\\u0022", b"\\x41",
    b"%3D", b"%20", b"%22", b"%0A", b"&#10;", b"&quot;", b"&amp;", b"&gt;",
]
PADDING = [b"=", b"==", b" ", b"\t", b"\n", b"\r\n", b"#", b"-", b"_", b"A", b"0", b"."]
INVALID_UTF8 = [b"\xff", b"\xfe\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\x80\x80", b"\xf8"]
PREFIXES = [b"mg_live_", b"mg_test_", b"mg_", b"mg_live", b"MG_LIVE_", b"mg-live-"]
NULS = [b"\x00", b"\x00" * 7, b"\x00\xff\x00"]



def _b64url(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


# JWTs whose claims hold anything JSON can say: NaN, Infinity, 1e999, huge ints, nesting.
claims = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
jwts = st.builds(
    lambda exp, extra, alg: b".".join(
        [
            _b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode()),
            _b64url(json.dumps({"exp": exp, "x": extra}).encode()),
            _b64url(b"signature-bytes-" * 2),
        ]
    ),
    st.one_of(
        st.sampled_from([float("nan"), float("inf"), float("-inf"), 10**400, True]),
        st.floats(),
        st.integers(),
        claims,
    ),
    claims,
    st.one_of(st.sampled_from(["HS256", "RS256", "none"]), claims),
)

fragment = st.one_of(
    jwts,
    st.sampled_from(ESCAPES),
    st.sampled_from(PADDING).flatmap(lambda p: st.integers(1, 64).map(lambda n: p * n)),
    st.sampled_from(INVALID_UTF8),
    st.sampled_from(PREFIXES).flatmap(lambda p: st.integers(1, 200).map(lambda n: p * n)),
    st.sampled_from(NULS),
    st.binary(max_size=64),
)
surroundings = st.lists(fragment, max_size=12).map(b"".join)

# What the current engine reads as the edge of a key (not a key character, not alnum).
SEPARATORS = [b" ", b"\n", b"\r\n", b'"', b"'", b"=", b":", b",", b";", b"\x00", b"\t", b"(", b")"]
separator = st.sampled_from(SEPARATORS)


# --- helpers --------------------------------------------------------------------------------


def longest_shown(key: str, text: str) -> int:
    """The longest run of the key's random part (after ``mg_live_``) found in ``text``."""
    body = key[8:]
    best = 0
    for i in range(len(body)):
        n = best + 1
        while i + n <= len(body) and body[i : i + n] in text:
            best, n = n, n + 1
    return best


def outputs(data: bytes, engine: Engine = ENGINE) -> tuple[list, list[str]]:
    """The findings of ``data`` and every output a person or a machine would read."""
    found = FindingSet()
    for m in engine.scan(data):
        found.add(m, Location(kind="stdin"))
    findings = found.findings()
    texts = [json.dumps(f.to_dict(), ensure_ascii=False) for f in findings]
    texts += [f.redacted for f in findings]
    for write in (
        lambda out: write_text(findings, out, "summary", color=False, rules=RULES),
        lambda out: write_json(findings, out),
        lambda out: write_sarif(findings, RULES, out),
    ):
        buf = io.StringIO()
        write(buf)
        texts.append(buf.getvalue())
    return findings, texts


def check_planted(key: str, data: bytes) -> None:
    findings, texts = outputs(data, PUBLIC)
    digest = hashlib.sha256(key.encode()).hexdigest()
    ours = [f for f in findings if f.rule_id in ("mg-live-key", "mg-test-key")]
    assert digest in {f.secret_sha256 for f in ours}, (key, data)
    for text in texts:
        assert longest_shown(key, text) <= SHOWN_MAX, text


# --- properties -------------------------------------------------------------------------------


@BOUNDED
@given(st.binary(max_size=4096))
def test_scanning_arbitrary_bytes_never_raises(data: bytes) -> None:
    outputs(data)


@BOUNDED
@given(surroundings, surroundings)
def test_scanning_hostile_fragments_never_raises(before: bytes, after: bytes) -> None:
    outputs(before + after)
    outputs(before + b"mg_live_" + after)


@BOUNDED
@given(keys, surroundings, separator, separator, surroundings)
def test_a_planted_key_is_found_with_its_hash_and_never_shown(
    key: str, before: bytes, left: bytes, right: bytes, after: bytes
) -> None:
    """Escapes, padding, prefix repetitions, NULs and invalid UTF-8 around the key, kept
    apart from it by a separator: found, exact hash, at most 12 characters shown."""
    check_planted(key, before + left + key.encode() + right + after)


@BOUNDED
@given(keys, st.binary(max_size=2048), separator, separator, st.binary(max_size=2048))
def test_a_key_in_random_bytes_is_found_with_its_hash_and_never_shown(
    key: str, before: bytes, left: bytes, right: bytes, after: bytes
) -> None:
    check_planted(key, before + left + key.encode() + right + after)


# The escapes the issue lists (``\n \r \t \" \/ \uXXXX \xXX %XX &#NN; &quot;``), each
# right before the key, in front of text that does not change what the escape is.
ADJACENT_ESCAPES = [
    b"\\n", b"\\r", b"\\t", b'\\"', b"\\/", b"\\u003e", b"\\x3d", b"%3D", b"%20", b"&#10;",
    b"&quot;",
]
CONTEXTS = [b"", b'{"k": "', b"token=", b"<p>", b"x ", b"?a=1&key="]


@BOUNDED
@given(
    keys, st.sampled_from(CONTEXTS), st.sampled_from(ADJACENT_ESCAPES), separator, surroundings
)
@example(
    key="mg_live_" + base64.urlsafe_b64encode(bytes(range(24))).decode(),
    before=b'{"k": "',
    escape=b"\\n",
    right=b'"',
    after=b"}",
)
def test_a_key_right_after_an_escape_is_found(
    key: str, before: bytes, escape: bytes, right: bytes, after: bytes
) -> None:
    check_planted(key, before + escape + key.encode() + right + after)


RUN_ONS = [b"_old", b"-backup", b"_2", b"-old", b"_bak", b"-v2"]  # the separators


@BOUNDED
@given(keys, separator, st.sampled_from(RUN_ONS), surroundings)
@example(
    key="mg_live_" + base64.urlsafe_b64encode(bytes(range(24))).decode(),
    left=b"=",
    run_on=b"_old",
    after=b"\n",
)
def test_a_key_that_runs_on_is_found_as_its_32_characters(
    key: str, left: bytes, run_on: bytes, after: bytes
) -> None:
    check_planted(key, left + key.encode() + run_on + b" " + after)


@BOUNDED
@given(st.binary(max_size=600), st.sampled_from([*_SIMPLE, "generic", "url_password"]))
def test_every_validator_answers(token: bytes, name: str) -> None:
    import regex

    m = regex.match(rb"(?P<user>[^:]*)", token)
    assert m is not None
    verdict = run_validator(name, token, token, m)
    assert verdict is None or verdict.expires_at is None or isinstance(verdict.expires_at, int)


@BOUNDED
@given(st.text(max_size=200))
def test_every_checksum_answers(token: str) -> None:
    for verify, _ in SCHEMES.values():
        assert verify(token) in (True, False)


@BOUNDED
@given(
    st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"-----BEGIN" + b)),
    st.lists(st.text(min_size=1, max_size=12), max_size=3).map(tuple),
)
def test_redacted_is_a_prefix_plus_at_most_8(secret: bytes, prefixes: tuple[str, ...]) -> None:
    shown = redact(secret, prefixes)
    assert shown.endswith("…")
    text = secret.decode("utf-8", "replace")
    if text.startswith("-----BEGIN"):
        head = shown[:-1]
        assert head == "-----BEGIN" or (head.endswith("-----") and len(head) <= 76)
        assert "\\" not in head and "\n" not in head
    else:
        prefix = next((p for p in prefixes if text.lower().startswith(p.lower())), "")
        assert len(shown) - 1 <= len(prefix) + 8
