"""Decoding on costs one pass: with hyperscan, the decoder's triggers (the encoded
forms of the rules' prefixes) share the engine's stage-1 database, and what a scan
finds is what the engine and a separate trigger pass find."""

from __future__ import annotations

import base64
import secrets
import urllib.parse
from typing import Any

import pytest

from scanner.decode import Decoder
from scanner.engine import Engine, Match
from scanner.examples import expand
from scanner.prefilter import HyperscanPrefilter
from scanner.rules import at_confidence, load_rules

pytest.importorskip("hyperscan")

RULES = at_confidence(load_rules(), "medium")


def key() -> str:
    return "mg_live_" + secrets.token_urlsafe(24)


def leaks() -> tuple[bytes, list[str]]:
    """Real-looking text with keys in every form a leak takes, plain and encoded, two
    layers deep, a generic secret and a UTF-16 document (a NUL in the buffer)."""
    keys = [key() for _ in range(8)]
    parts = [
        "import os\n\nDEBUG = True\n",
        f"MG_KEY={keys[0]}\n",
        f"  token: {base64.b64encode(keys[1].encode()).decode()}\n",
        f"url = 'https://x.example/cb?k={keys[2].replace('_', '%5F')}'\n",
        '"k": "' + "".join(f"\\u{ord(c):04x}" for c in keys[3]) + '"\n',
        "<a>" + "".join(f"&#{ord(c)};" for c in keys[4]) + "</a>\n",
        "v=" + urllib.parse.quote(base64.b64encode(b"key=" + keys[5].encode()).decode()) + "\n",
        expand('DB_PASSWORD = "9{base62:14}x"\n'),
        "ok = 'token' in words  # no secret\n",
    ]
    text = "".join(parts).encode()
    text += f"{keys[6]}\n".encode("utf-16-le") + b"\n" + f"k: {keys[7]}".encode("utf-16-be")
    return text, keys


def summary(matches: list[Match]) -> list[tuple[Any, ...]]:
    return [(m.rule.id, m.start, m.end, m.secret, m.decoded) for m in matches]


def test_the_decoder_rides_on_the_engines_pass() -> None:
    engine = Engine(RULES, prefilter="hyperscan")
    decoder = Decoder(engine)
    assert decoder.joint() is not None
    text, keys = leaks()
    found = decoder.scan(text)
    assert {k.encode() for k in keys} <= {m.secret for m in found}
    assert any(m.rule.id == "generic-secret" for m in found)
    # The triggers' own database is never needed (nor compiled): the joint one served.
    assert decoder._scanner._plain_db is None


def test_one_pass_finds_what_two_passes_find() -> None:
    engine = Engine(RULES, prefilter="hyperscan")
    joint = Decoder(engine)
    separate = Decoder(engine)
    separate._joint_wanted = False  # the engine's pass, then the triggers' own pass
    for _ in range(3):
        text, _ = leaks()
        assert summary(joint.scan(text)) == summary(separate.scan(text))
        assert summary(joint.scan(text, patch=True)) == summary(separate.scan(text, patch=True))
    assert separate._scanner._plain_db is not None


def test_the_fallback_prefilter_decodes_the_same() -> None:
    text, _ = leaks()
    fast = Decoder(Engine(RULES, prefilter="hyperscan")).scan(text)
    slow_decoder = Decoder(Engine(RULES, prefilter="python"))
    assert slow_decoder.joint() is None
    assert summary(slow_decoder.scan(text)) == summary(fast)


def test_one_database_scan_per_buffer_without_encoded_text() -> None:
    """Text with no encoded prefix: one hyperscan scan of it, however many rules."""
    engine = Engine(RULES, prefilter="hyperscan")
    decoder = Decoder(engine)
    joint = decoder.joint()
    assert joint is not None
    text = b"def f(token):\n    return token.upper()\n" * 200
    decoder.scan(text)  # scratch space made

    class Counting:
        def __init__(self, db: object) -> None:
            self.db, self.scans = db, 0

        def scan(self, *args: Any, **kwargs: Any) -> object:
            self.scans += 1
            return self.db.scan(*args, **kwargs)  # type: ignore[attr-defined]

    counting = Counting(joint.db)
    joint.db = counting
    own = engine.prefilter
    assert isinstance(own, HyperscanPrefilter)
    engine_counting = Counting(own.db)
    own.db = engine_counting
    assert decoder.scan(text) == []
    assert (counting.scans, engine_counting.scans) == (1, 0)
