"""The rule model: rules are data (TOML), loaded and validated at start.

A rule says how to find one kind of secret: literal prefixes for the stage-1
prefilter, a full pattern for stage 2, which group is the secret, and the
filters (checksum, entropy, validator, context) that confirm it. ``owner``
says what may be done with a match: ``keyservice`` keys are ours (looked up,
revoked); ``third_party`` keys are reported and alerted only.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.checksums import SCHEMES
from scanner.errors import KeysweepError

if TYPE_CHECKING:
    import regex

OWNERS = ("keyservice", "third_party")
SEVERITIES = ("critical", "high", "medium", "low")
VALIDATORS = (
    "jwt",  # header and claims decode, not alg "none"; expiry kept
    "github_jwt",  # ghs_<app id>_<JWT>: the JWT part decodes
    "pypi_macaroon",  # pypi-<base64url macaroon v2>: the whole macaroon parses
    "base64_json",  # the body after the last prefix separator is base64 of a JSON object
    "basic_auth",  # base64 of "user:password" (Docker `auths`, .npmrc `_auth`)
    "discord_bot",  # the first part is base64 of a numeric user id
    "literal_value",  # not a reference, template or documentation filler
    "url_password",  # literal_value, and not a development default or the user's name
    "generic",  # scanner.generic: the value looks like a secret (see that module)
)
DEFAULT_BEFORE = 64
DEFAULT_MAX_LENGTH = 256


# Named pieces a pattern may use, written once: ``{ASSIGN}`` is the rest of a name and
# an assignment in any common syntax (env, shell, YAML, JSON, TOML, INI, code), up to
# an optional opening quote; ``{END}`` is the end of an unquoted or quoted value.
PATTERN_MACROS = {
    "{ASSIGN}": r"""[A-Za-z0-9_.-]{0,40}?\\?["'`]?\]?[ \t]*+(?:=>|:=|=|:)[ \t]*+\\?["'`]?""",
    "{END}": r"""(?![A-Za-z0-9_+/=.-])""",
}


def expand_macros(pattern: str) -> str:
    for name, text in PATTERN_MACROS.items():
        pattern = pattern.replace(name, text)
    return pattern


class RuleError(KeysweepError, ValueError):
    """A rule file is malformed; the message names the rule and the field."""


def compile_pattern(
    rule_id: str, what: str, text: Any, insensitive: bool = False
) -> regex.Pattern[bytes]:
    """Compile a rule's pattern (``regex`` is imported only when one is needed:
    a hook run over clean text never pays for it)."""
    import regex

    if not isinstance(text, str) or not text:
        raise RuleError(f"rule {rule_id!r}: {what} must be a non-empty string")
    flags = regex.VERSION1 | (regex.IGNORECASE if insensitive else 0)
    try:
        return regex.compile(text.encode(), flags)
    except regex.error as exc:
        raise RuleError(f"rule {rule_id!r}: {what} does not compile: {exc}") from None


@dataclass(frozen=True)
class Companion:
    """A second secret that belongs with the first (an AWS secret key near its id)."""

    rule_id: str
    name: str
    pattern_text: str
    window: int

    @cached_property
    def pattern(self) -> regex.Pattern[bytes]:
        return compile_pattern(self.rule_id, "companion.pattern", self.pattern_text, True)


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    owner: str
    severity: str
    prefixes: tuple[str, ...]
    pattern_text: str
    secret_group: int | None = None  # None: 1 when the pattern has a group, else 0
    case_insensitive: bool = False
    before: int = DEFAULT_BEFORE
    max_length: int = DEFAULT_MAX_LENGTH
    checksum: str | None = None
    min_entropy: float | None = None
    validator: str | None = None
    context_text: str | None = None
    context_window: int = 512
    companion: Companion | None = None
    remediation: str | None = None  # one short line: what to do, where (the provider's page)
    rotate_url: str | None = None  # where the issuer lets an owner revoke or rotate it
    confidence: str = "high"  # "medium": generic rules, shown with --confidence medium
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())
    # Keyword rules: the pattern is tried only where a literal starts (``match`` at each
    # hit, ~0.4 us) instead of searched through a window (~20 us), so a common word such
    # as "token" costs almost nothing where it is not a secret's name.
    anchored: bool = False
    provider: str = ""  # who issues it ("GitHub"), for reports and `rules list --filter`
    origin: str = ""  # the pack file (or config) the rule came from

    @property
    def source(self) -> str:
        return self.pattern_text

    @cached_property
    def pattern(self) -> regex.Pattern[bytes]:
        return compile_pattern(self.id, "pattern", self.pattern_text, self.case_insensitive)

    @cached_property
    def group(self) -> int:
        """The group that holds the secret."""
        if self.secret_group is not None:
            return self.secret_group
        return 1 if self.pattern.groups else 0

    @cached_property
    def literal_bytes(self) -> tuple[bytes, ...]:
        return tuple(p.encode() for p in self.prefixes)

    @cached_property
    def context(self) -> regex.Pattern[bytes] | None:
        if self.context_text is None:
            return None
        return compile_pattern(self.id, "context", self.context_text, True)

    def validate(self) -> None:
        """Compile every pattern now: raises RuleError naming the rule and the field."""
        if not 0 <= self.group <= self.pattern.groups:
            raise RuleError(
                f"rule {self.id!r}: secret_group {self.group} is not a group of the pattern"
            )
        _ = self.context
        if self.companion is not None:
            _ = self.companion.pattern


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
    "remediation",
    "rotate_url",
    "confidence",
    "anchored",
    "provider",
}
CONFIDENCES = ("high", "medium", "low")


def rule_from_dict(d: dict[str, Any], origin: str = "", need_prefix: bool = True) -> Rule:
    """One rule from its TOML table. ``need_prefix=False`` accepts a rule with no
    literal (an imported gitleaks rule): stage 2 then searches every byte for it,
    which ``bench/engine.py`` counts and prices."""
    rule_id = d.get("id")
    if not isinstance(rule_id, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", rule_id):
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
    if not prefixes and need_prefix:
        raise RuleError(
            f"rule {rule_id!r}: at least one prefix literal is needed for the prefilter"
        )
    anchored = bool(d.get("anchored", False))
    if anchored and not prefixes:
        raise RuleError(f"rule {rule_id!r}: an anchored rule needs prefix literals")
    insensitive = bool(d.get("case_insensitive", False))
    pattern = d.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise RuleError(f"rule {rule_id!r}: pattern must be a non-empty string")
    pattern = expand_macros(pattern)
    group = d.get("secret_group")
    if group is not None and (not isinstance(group, int) or group < 0):
        raise RuleError(f"rule {rule_id!r}: secret_group must be a group number")
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
            rule_id=rule_id,
            name=str(c["name"]),
            pattern_text=expand_macros(str(c["pattern"])),
            window=int(c.get("window", 512)),
        )
    context = d.get("context")
    if context is not None and (not isinstance(context, str) or not context):
        raise RuleError(f"rule {rule_id!r}: context must be a non-empty string")
    min_entropy = d.get("min_entropy")
    confidence = d.get("confidence", "high")
    if confidence not in CONFIDENCES:
        raise RuleError(f"rule {rule_id!r}: confidence must be one of {CONFIDENCES}")
    for name in ("remediation", "rotate_url"):
        if d.get(name) is not None and not isinstance(d.get(name), str):
            raise RuleError(f"rule {rule_id!r}: {name} must be a string")
    return Rule(
        id=rule_id,
        description=str(d.get("description", "")),
        owner=owner,
        severity=severity,
        prefixes=prefixes,
        pattern_text=pattern,
        secret_group=group,
        case_insensitive=insensitive,
        before=int(d.get("before", DEFAULT_BEFORE)),
        max_length=int(d.get("max_length", DEFAULT_MAX_LENGTH)),
        checksum=checksum,
        min_entropy=float(min_entropy) if min_entropy is not None else None,
        validator=validator,
        context_text=context,
        context_window=int(d.get("context_window", 512)),
        companion=companion,
        remediation=d.get("remediation"),
        rotate_url=d.get("rotate_url"),
        confidence=confidence,
        positive=_strs(rule_id, "positive", d.get("positive")),
        negative=_strs(rule_id, "negative", d.get("negative")),
        tags=_strs(rule_id, "tags", d.get("tags")),
        anchored=anchored,
        provider=str(d.get("provider", "")),
        origin=origin,
    )


def parse_rules(text: str, origin: str) -> list[Rule]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{origin}: not valid TOML: {exc}") from None
    items = data.get("rules", [])
    if not isinstance(items, list):
        raise RuleError(f"{origin}: [[rules]] must be an array of tables")
    rules = [rule_from_dict(item, origin) for item in items]
    seen: set[str] = set()
    for r in rules:
        if r.id in seen:
            raise RuleError(f"{origin}: rule id {r.id!r} is defined twice")
        seen.add(r.id)
    return rules


PACK_DIR = "rules"


def pack_files() -> list[tuple[str, str]]:
    """Every ``scanner/rules/*.toml`` file of the shipped pack as (name, text), by name;
    ``default.toml`` first (our own keys). Every file in that folder is part of the pack."""
    folder = resources.files("scanner").joinpath(PACK_DIR)
    names = sorted(
        (e.name for e in folder.iterdir() if e.name.endswith(".toml")),
        key=lambda n: (n != "default.toml", n),
    )
    return [(n, folder.joinpath(n).read_text("utf-8")) for n in names]


def default_rules_text() -> str:
    return resources.files("scanner").joinpath("rules/default.toml").read_text("utf-8")


def pack_rules() -> list[Rule]:
    """The shipped pack, every file; an id defined in two files is an error."""
    rules: list[Rule] = []
    where: dict[str, str] = {}
    for name, text in pack_files():
        origin = f"scanner/rules/{name}"
        for r in parse_rules(text, origin):
            if r.id in where:
                raise RuleError(f"{origin}: rule id {r.id!r} is also defined in {where[r.id]}")
            where[r.id] = origin
            rules.append(r)
    return rules


CONFIDENCE_RANK = {"high": 0, "medium": 1, "low": 2}


def at_confidence(rules: list[Rule], level: str) -> list[Rule]:
    """The rules a scan at ``level`` runs: ``high`` only high-confidence rules,
    ``medium`` adds the generic ones, ``low`` everything."""
    if level not in CONFIDENCE_RANK:
        raise RuleError(f"confidence must be one of {CONFIDENCES}, not {level!r}")
    top = CONFIDENCE_RANK[level]
    return [r for r in rules if CONFIDENCE_RANK[r.confidence] <= top]


def load_rules(
    extra: list[dict[str, Any]] | None = None,
    disabled: list[str] | tuple[str, ...] = (),
    extra_files: list[Path] | None = None,
    validate_pack: bool = True,
    imported: list[Rule] | None = None,
) -> list[Rule]:
    """The default pack, plus extra rules (config tables or files), minus disabled ids.

    User-supplied rules are always compiled at once, so a broken one is reported
    before any scan. ``validate_pack=False`` leaves the shipped pack (validated by
    this project's tests) to compile each pattern on first use: the hook's path.
    ``imported`` are rules already built elsewhere (a team's ``.gitleaks.toml``).
    """
    rules = pack_rules()
    if validate_pack:
        for r in rules:
            r.validate()
    user: list[Rule] = list(imported or [])
    for path in extra_files or []:
        user.extend(parse_rules(path.read_text("utf-8"), str(path)))
    user.extend(rule_from_dict(d, "config") for d in (extra or []))
    for r in user:
        r.validate()
    rules.extend(user)
    by_id: dict[str, Rule] = {}
    for r in rules:
        by_id[r.id] = r  # a later definition overrides an earlier one with the same id
    unknown = set(disabled) - set(by_id)
    if unknown:
        raise RuleError(f"disabled rule(s) not found: {', '.join(sorted(unknown))}")
    return [r for r in by_id.values() if r.id not in set(disabled)]
