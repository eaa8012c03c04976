"""The engine on bad and hostile input, and the two prefilters agreeing."""

from __future__ import annotations

import random

import pytest

from scanner.engine import Engine
from scanner.prefilter import HyperscanPrefilter, PythonPrefilter
from scanner.rules import load_rules
from tests.helpers import github_token, mg_live, mg_test

RULES = load_rules()


@pytest.fixture(params=["hyperscan", "python"])
def engine(request: pytest.FixtureRequest) -> Engine:
    return Engine(RULES, prefilter=request.param)


def ids(matches: list) -> list[str]:
    return [m.rule.id for m in matches]


def test_finds_key_with_exact_offsets(engine: Engine) -> None:
    key = mg_live()
    data = f"config:\n  api_key: {key}\n".encode()
    (m,) = engine.scan(data)
    assert m.rule.id == "mg-live-key"
    assert data[m.start : m.end] == key.encode() == m.secret


def test_invalid_utf8_and_nul_bytes_do_not_hide_a_key(engine: Engine) -> None:
    key = mg_test()
    data = b"\xff\xfe\x00\x80garbage\xc3(" + key.encode() + b"\x00\xed\xa0\x80tail"
    assert ids(engine.scan(data)) == ["mg-test-key"]


def test_fifty_megabyte_single_line(engine: Engine) -> None:
    key = mg_live()
    line = b"a" * (25 * 1024 * 1024) + b" " + key.encode() + b" " + b"b" * (25 * 1024 * 1024)
    matches = engine.scan(line)
    assert ids(matches) == ["mg-live-key"]
    assert matches[0].secret == key.encode()


def test_empty_input(engine: Engine) -> None:
    assert engine.scan(b"") == []


def test_ten_megabytes_of_prefix_is_one_bounded_window(engine: Engine) -> None:
    # Overlapping hits merge into one window per rule, searched once: work stays linear.
    data = b"mg_live_" * (10 * 1024 * 1024 // 8)
    regions = engine.prefilter.regions(data)
    assert sum(len(v) for v in regions.values()) == 1
    assert engine.scan(data) == []  # a run of key characters is never a key


def test_near_miss_prefixes_produce_nothing(engine: Engine) -> None:
    data = b"mg_livex mg_live mg-live_ mg_tst_ ghp_ gho_short AKIA " * 200_000
    assert engine.scan(data) == []


def test_key_among_many_near_misses(engine: Engine) -> None:
    key = mg_live()
    data = b"mg_live_ " * 100_000 + key.encode() + b"\n" + b"mg_live_ " * 100_000
    assert [m.secret for m in engine.scan(data)] == [key.encode()]


def test_key_running_on_into_more_key_characters_is_not_a_key(engine: Engine) -> None:
    key = mg_live()
    assert engine.scan((key + "A" * 40).encode()) == []
    assert engine.scan(("Z" + key).encode()) == []


def test_a_run_of_64_body_characters_is_low_confidence_only() -> None:
    body64 = mg_live()[8:] + "Q" + mg_live()[9:]
    data = f"mg_live_{body64}".encode()
    assert Engine(RULES).scan(data) == []
    (m,) = Engine(RULES, low_confidence=True).scan(data)
    assert (m.confidence, m.secret, m.run) == ("low", data[:40], data)
    assert Engine(RULES, low_confidence=True).scan(data + b"x") == []  # 65: no key


@pytest.mark.parametrize(
    "marker",
    [
        "keysweep:allow",
        "gitleaks:allow",
        "pragma: allowlist secret",
        "trufflehog:ignore",
    ],
)
def test_inline_allow_comments(engine: Engine, marker: str) -> None:
    key = mg_live()
    assert engine.scan(f"KEY = '{key}'  # {marker}\n".encode()) == []
    # The marker only covers its own line.
    assert len(engine.scan(f"# {marker}\nKEY = '{key}'\n".encode())) == 1


def test_an_allow_comment_far_along_a_minified_line_does_not_hide_a_key(engine: Engine) -> None:
    """The marker is looked for at most 4 KiB along the key's line each way: one comment
    at the start of a minified bundle does not allow every key on its one line."""
    key = mg_live()
    near = f"/* gitleaks:allow */ {'x' * 100} k='{key}'".encode()
    assert engine.scan(near) == []
    far = f"/* gitleaks:allow */ {'x' * 5000} k='{key}'".encode()
    (m,) = engine.scan(far)
    assert m.secret == key.encode()


def test_checksum_failure_dropped_or_low_confidence() -> None:
    good = github_token()
    bad = good[:-6] + ("0" if good[-6] != "0" else "1") + good[-5:]
    assert Engine(RULES).scan(bad.encode()) == []
    (m,) = Engine(RULES, low_confidence=True).scan(bad.encode())
    assert m.confidence == "low"
    (m,) = Engine(RULES).scan(good.encode())
    assert m.confidence == "high"


def test_placeholders_are_not_findings(engine: Engine) -> None:
    assert engine.scan(b"mg_live_" + b"x" * 32) == []
    assert engine.scan(b"mg_live_EXAMPLEEXAMPLEEXAMPLEEXAMPLE12") == []


def test_catastrophic_pattern_times_out_and_the_scan_goes_on() -> None:
    from scanner.rules import rule_from_dict

    evil = rule_from_dict(
        {
            "id": "evil",
            "prefixes": ["aaaa"],
            "pattern": "(?:aa|a)+[a-z]\\d",
            "max_length": 60,
            "positive": [],
            "negative": [],
        }
    )
    eng = Engine([*RULES, evil], regex_timeout=0.05)
    key = mg_live()
    data = ("a" * 40 + "\n" + key + "\n").encode()
    matches = eng.scan(data)
    assert eng.stats.regex_timeouts >= 1  # the window, then each hit alone, bounded
    assert [m.secret for m in matches] == [key.encode()]


def test_prefilters_agree_on_random_text_with_planted_prefixes() -> None:
    rng = random.Random(7)
    literals = sorted({p for r in RULES for p in r.prefixes})
    pieces = []
    for _ in range(3000):
        pieces.append(bytes(rng.randrange(32, 127) for _ in range(rng.randrange(0, 80))))
        if rng.random() < 0.3:
            lit = rng.choice(literals)
            pieces.append((lit.upper() if rng.random() < 0.1 else lit).encode())
    data = b"".join(pieces)
    assert HyperscanPrefilter(RULES).regions(data) == PythonPrefilter(RULES).regions(data)


def test_engines_agree_on_keys() -> None:
    keys = [mg_live(), mg_test(), github_token()]
    data = "\n".join(f"line {i} {k}" for i, k in enumerate(keys * 20)).encode()
    hs = [(m.rule.id, m.start, m.secret) for m in Engine(RULES, prefilter="hyperscan").scan(data)]
    py = [(m.rule.id, m.start, m.secret) for m in Engine(RULES, prefilter="python").scan(data)]
    assert hs == py and len(hs) == 60


def test_aws_companion_is_the_nearest_secret(engine: Engine) -> None:
    from scanner.examples import expand

    ids_ = [expand("AKIA{upper32:16}") for _ in range(2)]
    secrets = [expand("{b64:40}") for _ in range(2)]
    text = "".join(
        f"[profile{i}]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n\n"
        for i, (k, s) in enumerate(zip(ids_, secrets, strict=True))
    )
    found = {m.secret.decode(): m.companion for m in engine.scan(text.encode())}
    assert found == {ids_[0]: secrets[0].encode(), ids_[1]: secrets[1].encode()}
