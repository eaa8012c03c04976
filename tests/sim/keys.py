"""What the simulator plants: our keys, other providers' keys and near misses.

* ``live`` / ``test``: ``mg_live_`` / ``mg_test_`` keys minted by the key service
  (``POST /v1/keys``); the caller passes the key service's answer in.
* ``third_party``: a ``positive`` example of a third-party rule of keysweep's
  default pack, expanded at run time (``scanner.examples.expand``).
* ``near_miss``: a ``negative`` example of any rule (half of them from the
  ``mg_`` rules): a string that must *not* be detected.

Every snippet is checked with keysweep's own engine before it is planted: a
positive must give exactly one match, of its rule, whose secret is the recorded
key; a near miss must give no match at all. Ground truth therefore agrees with
the scanner's contract by construction; the simulator's tests re-check it on the
served documents.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from scanner.engine import Engine
from scanner.examples import expand
from scanner.rules import Rule, at_confidence, load_rules
from tests.sim.content import KEY_LINES, THIRD_PARTY_LINES

KINDS = ("live", "test", "third_party", "near_miss")
OURS = ("live", "test")
MG_RULES = {"live": "mg-live-key", "test": "mg-test-key"}


class PlantError(RuntimeError):
    pass


@dataclass
class KeyMaterial:
    """One thing to plant. ``key`` is the secret exactly as the engine reports it
    (for a near miss: the whole expanded negative example)."""

    kind: str
    key: str
    rule_id: str
    key_id: str | None = None
    display_prefix: str | None = None
    org_id: str | None = None
    project_id: str | None = None
    owner: dict[str, str] | None = None
    template: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()

    def record(self) -> dict[str, Any]:
        """The ground-truth fields of ``GET /_sim/planted`` (``doc`` is added later)."""
        return {
            "kind": self.kind,
            "key": self.key,
            "sha256": self.sha256,
            "rule_id": self.rule_id,
            "display_prefix": self.display_prefix,
            "key_id": self.key_id,
            "org_id": self.org_id,
            "project_id": self.project_id,
            "owner": self.owner,
        }


@dataclass
class Snippet:
    """Lines to insert into a file; the key starts on ``lines[offset]``."""

    lines: list[str]
    offset: int
    material: KeyMaterial
    tag: int = field(default=0)


def _usable(template: str) -> bool:
    # CRLF and "+"-prefixed (diff-shaped) examples are for other inputs.
    return "\r" not in template and not template.startswith("+")


class Planter:
    """Picks examples, embeds them in lines of a given file family, validates them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        # What the workers look for: providers' keys (high confidence), not generic secrets.
        self.rules: list[Rule] = at_confidence(load_rules(), "high")
        self.by_id = {r.id: r for r in self.rules}
        # As the workers scan public content: allow comments decide nothing.
        self.engine = Engine(self.rules, honour_allow=False)
        self.third_party = [
            r for r in self.rules if r.owner == "third_party" and any(map(_usable, r.positive))
        ]
        # Rules that look at context nearby (an "app_id" beside a "secret_key") are
        # left out: another planted snippet could turn their near miss into a hit.
        self.negatives = [
            r for r in self.rules if any(map(_usable, r.negative)) and r.context_text is None
        ]
        self.mg_negatives = [r for r in self.negatives if r.id in MG_RULES.values()]
        self.third_party_rules: list[str] = []  # plant only these third-party rules (empty: any)
        self.key_suffix = ""  # appended to each mg_ key's line (an allow comment, say)

    # -- materials ---------------------------------------------------------

    def ours(self, kind: str, minted: dict[str, Any]) -> KeyMaterial:
        owner = minted.get("owner")
        return KeyMaterial(
            kind=kind,
            key=str(minted["key"]),
            rule_id=MG_RULES[kind],
            key_id=minted.get("key_id"),
            display_prefix=minted.get("display_prefix"),
            org_id=minted.get("org_id"),
            project_id=minted.get("project_id"),
            owner=owner if isinstance(owner, dict) else None,
        )

    def _pick_template(self, rules: list[Rule], positive: bool) -> tuple[Rule, str]:
        rule = self.rng.choice(rules)
        templates = [t for t in (rule.positive if positive else rule.negative) if _usable(t)]
        return rule, self.rng.choice(templates)

    # -- snippets ----------------------------------------------------------

    def snippet(self, kind: str, family: str, minted: dict[str, Any] | None = None) -> Snippet:
        """A validated snippet of ``kind`` for a file of ``family`` (see content.FAMILIES)."""
        for _ in range(50):
            made = self._try_snippet(kind, family, minted)
            if made is not None:
                return made
        raise PlantError(f"could not make a valid {kind} snippet for {family}")

    def _try_snippet(self, kind: str, family: str, minted: dict[str, Any] | None) -> Snippet | None:
        if kind in OURS:
            if minted is None:
                raise PlantError(f"a {kind} key needs the key service's answer")
            material = self.ours(kind, minted)
            line = self.rng.choice(KEY_LINES[family]).replace("{k}", material.key)
            return self._checked_positive(material, [line + self.key_suffix])
        if kind == "third_party":
            only = set(self.third_party_rules)
            pool = [r for r in self.third_party if r.id in only] if only else self.third_party
            rule, template = self._pick_template(pool or self.third_party, True)
            text = expand(template, rule.checksum)
            lines = self._embed(text, THIRD_PARTY_LINES[family])
            material = KeyMaterial(kind, "", rule.id, template=template)
            return self._checked_positive(material, lines)
        if kind == "near_miss":
            pool = self.mg_negatives if self.rng.random() < 0.5 else self.negatives
            rule, template = self._pick_template(pool, False)
            text = expand(template, rule.checksum)
            wrappers = (
                KEY_LINES[family] if rule.id in MG_RULES.values() else THIRD_PARTY_LINES[family]
            )
            lines = self._embed(text, wrappers)
            if self.engine.scan("\n".join(lines).encode()):
                return None
            material = KeyMaterial(kind, text, rule.id, template=template)
            return Snippet(lines, self._line_of(lines, text), material)
        raise PlantError(f"unknown kind {kind!r}")

    def _embed(self, text: str, wrappers: tuple[str, ...]) -> list[str]:
        if "\n" in text or any(c in text for c in "=:\"'`"):
            return text.rstrip("\n").split("\n")
        return self.rng.choice(wrappers).replace("{k}", text).split("\n")

    @staticmethod
    def _line_of(lines: list[str], text: str) -> int:
        first = text.split("\n", 1)[0]
        for i, line in enumerate(lines):
            if first in line:
                return i
        return 0

    def _checked_positive(self, material: KeyMaterial, lines: list[str]) -> Snippet | None:
        data = "\n".join(lines).encode()
        matches = self.engine.scan(data)
        if material.kind in OURS and self.key_suffix:  # the suffix may hold more (a JWT)
            matches = [m for m in matches if m.rule.owner == "keyservice"]
        if len(matches) != 1 or matches[0].rule.id != material.rule_id:
            return None
        m = matches[0]
        secret = m.secret.decode()
        if material.kind in OURS and secret != material.key:
            return None
        material.key = secret
        return Snippet(lines, data.count(b"\n", 0, m.start), material)
