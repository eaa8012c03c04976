"""Stage 1's gate (``Rule.precheck``): an anchored rule's cheap ``re`` pattern, tried
where each literal hit starts, must accept wherever the rule's own pattern matches from
that start. If it did not, a secret would be lost before stage 2 ever saw it; so the
promise checked here is that the gate never changes what the engine reports. The same
for a rule's stage-1 heads (``Rule.heads``: what must come right before a literal, in
the hyperscan expression itself)."""

from __future__ import annotations

import dataclasses
import re
import sysconfig
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from scanner.engine import Engine
from scanner.examples import expand
from scanner.prefilter import LOOKAHEAD_MARGIN
from scanner.rules import Rule, RuleError, at_confidence, load_rules, rule_from_dict

RULES = at_confidence(load_rules(), "medium")
GATED = [r for r in RULES if r.precheck is not None]
UNGATED = [dataclasses.replace(r, precheck_text=None) for r in RULES]
HEADED = [r for r in RULES if r.heads]
UNHEADED = [dataclasses.replace(r, heads=()) for r in RULES]

BOUNDED = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def literal_starts(rule: Rule, data: bytes) -> list[int]:
    """Where stage 1 reports the rule: every start of one of its literals."""
    hay = data.lower() if rule.case_insensitive else data
    out: set[int] = set()
    for lit in rule.literal_bytes:
        lit = lit.lower() if rule.case_insensitive else lit
        pos = hay.find(lit)
        while pos != -1:
            out.add(pos)
            pos = hay.find(lit, pos + 1)
    return sorted(out)


def gate_misses(rule: Rule, data: bytes, everywhere: bool = False) -> list[bytes]:
    """The hits where the pattern matches (in stage 2's window) and the gate says no;
    ``everywhere``: every offset, not only where a literal starts (a stronger claim)."""
    assert rule.precheck is not None
    misses = []
    for start in range(len(data)) if everywhere else literal_starts(rule, data):
        hi = min(len(data), start + rule.max_length + LOOKAHEAD_MARGIN)
        if rule.pattern.match(data, start, hi) is not None and (
            rule.precheck.match(data, start, hi) is None
        ):
            misses.append(data[start : start + 80])
    return misses


def head_misses(rule: Rule, data: bytes) -> list[bytes]:
    """Every offset where one of the rule's prefixes with a head starts and the pattern
    matches from there (stage 2's window), but the bytes before it do not end with a
    match of the head: a hit stage 1 would drop that stage 2 would report."""
    flags = re.IGNORECASE if rule.case_insensitive else 0
    hay = data.lower() if rule.case_insensitive else data
    misses = []
    for stem, head in rule.heads:
        ends_with_head = re.compile(b"(?:" + head.encode() + rb")\Z", flags)
        for p in rule.literal_bytes:
            p = p.lower() if rule.case_insensitive else p
            if not p.startswith(stem.encode()):
                continue
            pos = hay.find(p)
            while pos != -1:
                hi = min(len(data), pos + rule.max_length + LOOKAHEAD_MARGIN)
                if rule.pattern.match(data, pos, hi) is not None and (
                    ends_with_head.search(data[:pos]) is None
                ):
                    misses.append(data[max(0, pos - 8) : pos + 80])
                pos = hay.find(p, pos + 1)
    return misses


def findings(engine: Engine, data: bytes) -> list[tuple[str, int, int, bytes]]:
    return [(m.rule.id, m.start, m.end, m.secret) for m in engine.scan(data)]


def test_the_generic_rule_has_a_gate() -> None:
    assert "generic-secret" in {r.id for r in GATED}


@pytest.mark.parametrize("rule", GATED, ids=[r.id for r in GATED])
def test_the_gate_accepts_every_example_the_pattern_matches(rule: Rule) -> None:
    for template in (*rule.positive, *rule.negative):
        data = expand(template).encode()
        assert gate_misses(rule, data, everywhere=True) == [], template


def test_the_generic_rule_has_a_head_for_its_key_keyword() -> None:
    assert {r.id: r.heads for r in HEADED} == {"generic-secret": (("key", "[a-z0-9][_.-]?"),)}


@pytest.mark.parametrize("rule", HEADED, ids=[r.id for r in HEADED])
def test_a_head_accepts_every_example_the_pattern_matches(rule: Rule) -> None:
    for template in (*rule.positive, *rule.negative):
        data = expand(template).encode()
        assert head_misses(rule, data) == [], template


def test_the_gate_changes_nothing_on_real_source_code() -> None:
    """A slice of this Python's standard library: the same findings with and without
    the gate, with either prefilter; and the gate does reject most keyword hits."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(stdlib.rglob("*.py")):
        if path.parent.name in {"email", "http", "urllib", "imaplib", "smtplib", "ssl"} or (
            path.stem in {"netrc", "imaplib", "smtplib", "ftplib", "getpass", "secrets"}
        ):
            parts.append(path.read_bytes())
            size += len(parts[-1])
    data = b"\n".join(parts)
    assert size > 200_000
    for rule in GATED:
        assert gate_misses(rule, data) == []
    for rule in HEADED:
        assert head_misses(rule, data) == []
    headless = Engine(UNHEADED, prefilter="hyperscan")
    assert findings(Engine(RULES, prefilter="hyperscan"), data) == findings(headless, data)
    for kind in ("hyperscan", "python"):
        gated, ungated = Engine(RULES, prefilter=kind), Engine(UNGATED, prefilter=kind)
        assert findings(gated, data) == findings(ungated, data)
        assert gated.stats.regions < ungated.stats.regions


# --- the gate against the pattern on generated assignments ------------------------------

KEYWORDS = [
    "password", "passwd", "pwd", "passphrase", "_pass", ".pass", "-pass", "secret", "token",
    "api_key", "apikey", "api-key", "auth", "authkey", "credential", "credentials", "creds",
    "private_key", "privatekey", "access_key", "accesskey", "key", "secretkey", "Key", "TOKEN",
]  # fmt: skip
BEFORE = ["", "DB_", "db.", "client", "x", "self.", "my-", " ", "'", '"', "$", "--", "define('"]
AFTER_NAME = ["", "_id", "s", "_file", ".value", "-x", "Key", "_token", "2"]
OPERATORS = [
    "=", " = ", ":", ": ", " : ", "=>", " => ", ":=", " := ", "??=", "||=", "\t=\t", "\" : ",
    "': ", '"]=', "\\\":", ": str = ", ":Type= ", "=  ", " ", "\t", "(", "(\"", "\n  value: ",
    "\n  - value: ", "\" value=\"", "', '", ">", "> ", "\r\n    value: ",
]  # fmt: skip
QUOTES = ["", '"', "'", "`", '\\"']
# A run of what a secret is made of (often long enough to be one), then anything that
# may end or disqualify a value.
SECRETISH = st.text(alphabet="aZq09xK7_-+/=.", min_size=0, max_size=20)
VALUE_CHARS = st.sampled_from(
    [*"aZ09_-./+=:$%{}()[]<>@!#*&^~;,|?", "\\", "\\n", " ", "\t", '"', "'", "`", "->", "::"]
)
values = st.builds(lambda a, b: a + b, SECRETISH, st.lists(VALUE_CHARS, max_size=8).map("".join))


@st.composite
def assignments(draw: st.DrawFn) -> bytes:
    quote = draw(st.sampled_from(QUOTES))
    text = (
        draw(st.sampled_from(BEFORE))
        + draw(st.sampled_from(KEYWORDS))
        + draw(st.sampled_from(AFTER_NAME))
        + draw(st.sampled_from(["", "'", '"', "]", "\\"]))
        + draw(st.sampled_from(OPERATORS))
        + quote
        + draw(values)
        + draw(st.sampled_from(["", quote, "</", ")", ";", "\n", " ", ","]))
        + draw(values)
    )
    return text.encode()


@st.composite
def plain_assignments(draw: st.DrawFn) -> bytes:
    """The common case: a name, an operator, a quoted or bare value of 4 to 20."""
    quote = draw(st.sampled_from(QUOTES))
    text = (
        draw(st.sampled_from(BEFORE))
        + draw(st.sampled_from(KEYWORDS))
        + draw(st.sampled_from(AFTER_NAME))
        + draw(st.sampled_from(OPERATORS))
        + quote
        + draw(st.text(alphabet="aZq09xK7_-+/=.", min_size=4, max_size=20))
        + quote
    )
    return text.encode()


@BOUNDED
@given(st.one_of(assignments(), plain_assignments()))
# Each form with the shortest value it takes (6 characters; a flag's value: 8).
@example(b"DB_PASSWORD = 'aaaaaa'")
@example(b"DB_PASSWORD := aaaaaa")
@example(b"<password>aaaaaa</password>")
@example(b'builder.setPassword("aaaaaa")')
@example(b"define('DB_PASSWORD', 'aaaaaa');")
@example(b"define('password', 'aaaaaa');")
@example(b"define( \"password\" , 'aaaaaa');")
@example(b'env:\n  - name: API_TOKEN\n    value: "aaaaaa"\n')
@example(b'<add key="ApiKey" value="aaaaaa" />')
@example(b"mysql --password aaaaaaaa")
@example(b"mysql --db-password aaaaaaaa")
@example(b" token--x aaaaaaaa")
@example(b"x_key\t=\t'aaaaaa'")
def test_the_gate_accepts_wherever_the_pattern_matches(text: bytes) -> None:
    for rule in GATED:
        assert gate_misses(rule, text, everywhere=True) == []
    for rule in HEADED:
        assert head_misses(rule, text) == []


@BOUNDED
@given(
    st.lists(st.one_of(assignments(), plain_assignments()), min_size=1, max_size=6),
    st.binary(max_size=64),
)
def test_the_engine_reports_the_same_with_and_without_the_gate(
    parts: list[bytes], noise: bytes
) -> None:
    data = noise.join(parts)
    assert findings(GATED_ENGINE, data) == findings(UNGATED_ENGINE, data)
    assert findings(GATED_ENGINE, data) == findings(UNHEADED_ENGINE, data)


GATED_ENGINE = Engine(RULES, low_confidence=True, prefilter="hyperscan")
UNGATED_ENGINE = Engine(UNGATED, low_confidence=True, prefilter="hyperscan")
UNHEADED_ENGINE = Engine(UNHEADED, low_confidence=True, prefilter="hyperscan")


# --- a rule's precheck field --------------------------------------------------------------


def test_a_precheck_is_for_anchored_rules_and_must_compile() -> None:
    base = {"id": "acme-secret", "prefixes": ["acme_secret="], "pattern": "acme_secret=(\\w+)"}
    rule = rule_from_dict({**base, "anchored": True, "precheck": "acme_secret=\\w"})
    assert rule.precheck is not None and rule.precheck.match(b"acme_secret=x")
    with pytest.raises(RuleError, match=r"acme-secret.*anchored"):
        rule_from_dict({**base, "precheck": "acme_secret=\\w"})
    with pytest.raises(RuleError, match=r"acme-secret.*precheck"):
        rule_from_dict({**base, "anchored": True, "precheck": "acme_secret=("}).validate()


def test_a_hit_the_gate_rejects_makes_no_region_but_a_real_one_is_found() -> None:
    rule = rule_from_dict(
        {
            "id": "acme-secret",
            "prefixes": ["acme_secret="],
            "pattern": "acme_secret=([A-Za-z0-9]{12})",
            "anchored": True,
            "precheck": "acme_secret=[A-Za-z0-9]{12}",
        }
    )
    value = expand("9{base62:10}Q")
    data = f"acme_secret=None\nacme_secret={value}\n".encode()
    for kind in ("hyperscan", "python"):
        engine = Engine([rule], prefilter=kind)
        assert [m.secret for m in engine.scan(data)] == [value.encode()]
        assert engine.stats.regions == 1


# --- a rule's stage1_heads field -------------------------------------------------------


def test_a_head_is_a_run_of_classes_and_characters() -> None:
    base = {"id": "acme-secret", "prefixes": ["secret="], "pattern": "(?<=acme_)secret=(\\w+)"}
    rule = rule_from_dict({**base, "stage1_heads": {"secret": "acme_"}})
    assert rule.heads == (("secret", "acme_"),)
    for bad in ("(?<=acme_)", "acme|x", "(acme)_", "[a-z", ""):
        with pytest.raises(RuleError, match=r"acme-secret.*stage1_heads"):
            rule_from_dict({**base, "stage1_heads": {"secret": bad}})


def test_a_hit_without_its_head_never_reaches_stage_2_but_a_real_one_is_found() -> None:
    rule = rule_from_dict(
        {
            "id": "acme-secret",
            "prefixes": ["secret="],
            "pattern": "(?<=acme_)secret=([A-Za-z0-9]{12})",
            "anchored": True,
            "stage1_heads": {"secret": "acme_"},
        }
    )
    value = expand("9{base62:10}Q")
    other = expand("9{base62:10}Z")
    data = f"secret={other}\nacme_secret={value}\n".encode()
    engine = Engine([rule], prefilter="hyperscan")
    assert [m.secret for m in engine.scan(data)] == [value.encode()]
    assert engine.stats.regions == 1  # the bare secret= made none
    # the fallback prefilter reads no heads: more regions, the same finding
    fallback = Engine([rule], prefilter="python")
    assert [m.secret for m in fallback.scan(data)] == [value.encode()]
