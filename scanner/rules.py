"""The rule model: rules are data (TOML), loaded and validated at start.

A rule says how to find one kind of secret: literal prefixes for the stage-1
prefilter, a full pattern for stage 2, which group is the secret, and the
filters (checksum, entropy, validator, context) that confirm it. ``owner``
says what may be done with a match: ``keyservice`` keys are ours (looked up,
revoked); ``third_party`` keys are reported and alerted only.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import regex

from scanner.checksums import SCHEMES

OWNERS = ("keyservice", "third_party")
SEVERITIES = ("critical", "high", "medium", "low")
VALIDATORS = ("jwt",)
DEFAULT_BEFORE = 64
DEFAULT_MAX_LENGTH = 256


class RuleError(ValueError):
    """A rule file is malformed; the message names the rule and the field."""


@dataclass(frozen=True)
class Companion:
    """A second secret that belongs with the first (an AWS secret key near its id)."""

    name: str
    pattern: regex.Pattern[bytes]
    window: int


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    owner: str
    severity: str
    prefixes: tuple[str, ...]
    pattern: regex.Pattern[bytes]
    secret_group: int = 1
    case_insensitive: bool = False
    before: int = DEFAULT_BEFORE
    max_length: int = DEFAULT_MAX_LENGTH
    checksum: str | None = None
    min_entropy: float | None = None
    validator: str | None = None
    context: regex.Pattern[bytes] | None = None
    context_window: int = 512
    companion: Companion | None = None
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())

    @property
    def source(self) -> str:
        return self.pattern.pattern.decode()


def _compile(rule_id: str, what: str, text: Any, insensitive: bool = False) -> regex.Pattern[bytes]:
    if not isinstance(text, str) or not text:
        raise RuleError(f"rule {rule_id!r}: {what} must be a non-empty string")
    flags = regex.VERSION1 | (regex.IGNORECASE if insensitive else 0)
    try:
        return regex.compile(text.encode(), flags)
    except regex.error as exc:
        raise RuleError(f"rule {rule_id!r}: {what} does not compile: {exc}") from None


def _strs(rule_id: str, name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RuleError(f"rule {rule_id!r}: {name} must be a list of non-empty strings")
    return tuple(value)


KNOWN_KEYS = {
    "id",
    "description",
    "owner",
    "severity",
    "prefixes",
    "pattern",
    "secret_group",
    "case_insensitive",
    "before",
    "max_length",
    "checksum",
    "min_entropy",
    "validator",
    "context",
    "context_window",
    "companion",
    "positive",
    "negative",
    "tags",
}


def rule_from_dict(d: dict[str, Any]) -> Rule:
    rule_id = d.get("id")
    if not isinstance(rule_id, str) or not regex.fullmatch(r"[a-z0-9][a-z0-9._-]*", rule_id):
        raise RuleError(f"rule id {rule_id!r}: ids are lower-case letters, digits, '.', '_', '-'")
    unknown = set(d) - KNOWN_KEYS
    if unknown:
        raise RuleError(f"rule {rule_id!r}: unknown field(s) {', '.join(sorted(unknown))}")
    owner = d.get("owner", "third_party")
    if owner not in OWNERS:
        raise RuleError(f"rule {rule_id!r}: owner must be one of {OWNERS}, not {owner!r}")
    severity = d.get("severity", "high")
    if severity not in SEVERITIES:
        raise RuleError(f"rule {rule_id!r}: severity must be one of {SEVERITIES}")
    prefixes = _strs(rule_id, "prefixes", d.get("prefixes"))
    if not prefixes:
        raise RuleError(
            f"rule {rule_id!r}: at least one prefix literal is needed for the prefilter"
        )
    insensitive = bool(d.get("case_insensitive", False))
    pattern = _compile(rule_id, "pattern", d.get("pattern"), insensitive)
    group = d.get("secret_group", 1 if pattern.groups else 0)
    if not isinstance(group, int) or not 0 <= group <= pattern.groups:
        raise RuleError(f"rule {rule_id!r}: secret_group {group!r} is not a group of the pattern")
    checksum = d.get("checksum")
    if checksum is not None and checksum not in SCHEMES:
        raise RuleError(f"rule {rule_id!r}: unknown checksum {checksum!r} (known: {list(SCHEMES)})")
    validator = d.get("validator")
    if validator is not None and validator not in VALIDATORS:
        raise RuleError(f"rule {rule_id!r}: unknown validator {validator!r}")
    companion = None
    if (c := d.get("companion")) is not None:
        if not isinstance(c, dict) or "pattern" not in c or "name" not in c:
            raise RuleError(f"rule {rule_id!r}: companion needs name and pattern")
        companion = Companion(
            name=str(c["name"]),
            pattern=_compile(rule_id, "companion.pattern", c["pattern"], True),
            window=int(c.get("window", 512)),
        )
    context = d.get("context")
    min_entropy = d.get("min_entropy")
    return Rule(
        id=rule_id,
        description=str(d.get("description", "")),
        owner=owner,
        severity=severity,
        prefixes=prefixes,
        pattern=pattern,
        secret_group=group,
        case_insensitive=insensitive,
        before=int(d.get("before", DEFAULT_BEFORE)),
        max_length=int(d.get("max_length", DEFAULT_MAX_LENGTH)),
        checksum=checksum,
        min_entropy=float(min_entropy) if min_entropy is not None else None,
        validator=validator,
        context=_compile(rule_id, "context", context, True) if context else None,
        context_window=int(d.get("context_window", 512)),
        companion=companion,
        positive=_strs(rule_id, "positive", d.get("positive")),
        negative=_strs(rule_id, "negative", d.get("negative")),
        tags=_strs(rule_id, "tags", d.get("tags")),
    )


def parse_rules(text: str, origin: str) -> list[Rule]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{origin}: not valid TOML: {exc}") from None
    items = data.get("rules", [])
    if not isinstance(items, list):
        raise RuleError(f"{origin}: [[rules]] must be an array of tables")
    rules = [rule_from_dict(item) for item in items]
    seen: set[str] = set()
    for r in rules:
        if r.id in seen:
            raise RuleError(f"{origin}: rule id {r.id!r} is defined twice")
        seen.add(r.id)
    return rules


def default_rules_text() -> str:
    return resources.files("scanner").joinpath("rules/default.toml").read_text("utf-8")


def load_rules(
    extra: list[dict[str, Any]] | None = None,
    disabled: list[str] | tuple[str, ...] = (),
    extra_files: list[Path] | None = None,
) -> list[Rule]:
    """The default pack, plus extra rules (config tables or files), minus disabled ids."""
    rules = parse_rules(default_rules_text(), "scanner/rules/default.toml")
    for path in extra_files or []:
        rules.extend(parse_rules(path.read_text("utf-8"), str(path)))
    rules.extend(rule_from_dict(d) for d in (extra or []))
    by_id: dict[str, Rule] = {}
    for r in rules:
        by_id[r.id] = r  # a later definition overrides an earlier one with the same id
    unknown = set(disabled) - set(by_id)
    if unknown:
        raise RuleError(f"disabled rule(s) not found: {', '.join(sorted(unknown))}")
    return [r for r in by_id.values() if r.id not in set(disabled)]
