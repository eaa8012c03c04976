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
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from re import _constants as _sre
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


# What may stand right before a key as the end of an escape sequence: a key written in
# a JSON or JavaScript string after "\n", "\t", "\u003e" or "\"", in a URL after "%3D"
# or "%20", in HTML after "&quot;" or "&#61;", in C or Python after "\x3d" or "\075".
# A boundary look-behind such as (?<![A-Za-z0-9]) sees the "n" of "\n" (the "D" of
# "%3D", the "e" of "\u003e") and would drop the key: the key starts right after it.
AFTER_ESCAPE = (
    r"(?<=\\[abfnrtv0'\"/\\`$]"
    r"|\\u[0-9A-Fa-f]{4}|\\u\{[0-9A-Fa-f]{1,6}\}|\\U[0-9A-Fa-f]{8}"
    r"|\\x[0-9A-Fa-f]{2}|\\[0-7]{3}|%[0-9A-Fa-f]{2}"
    r"|&\#[0-9]{1,7};|&\#[xX][0-9A-Fa-f]{1,6};|&[A-Za-z][A-Za-z0-9]{1,30};)"
)
# The "+" a diff writes before each added line (``git log -p``, the staged diff the
# pre-commit hook reads, a push's patch): a key at the start of an added line
# (``+https://user:pass@host`` in a .git-credentials, a base64 token alone on its line)
# starts right after it, though "+" is one of the key's own characters.
AFTER_DIFF_PLUS = r"(?<=(?:^|\n)\+)"
# A boundary look-behind over a character class, anywhere (the pack writes them first,
# or first in a leading alternation), and a leading \b (imported gitleaks rules).
_BOUNDARY = re.compile(r"\(\?<!\[(?:\\.|[^\]\\])+\]\)")
_LEADING_B = re.compile(r"^((?:\(\?[a-zA-Z]+\))?)\\b")


def escape_aware(pattern: str) -> str:
    """The rule's pattern with every boundary look-behind also accepting the end of an
    escape sequence (``AFTER_ESCAPE``) and a diff's "+" at a line's start
    (``AFTER_DIFF_PLUS``): decided here, once, for every rule (the pack's, a config's,
    an imported gitleaks file's), so no pattern spells it out."""
    after = f"{AFTER_ESCAPE}|{AFTER_DIFF_PLUS}"
    pattern = _BOUNDARY.sub(lambda m: f"(?:{m.group(0)}|{after})", pattern)
    return _LEADING_B.sub(lambda m: f"{m.group(1)}(?:\\b|{after})", pattern, count=1)


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
    # Run-on keys (the mg_ format): the pattern's group "run" holds the key characters
    # that follow the fixed-length secret. A run that starts with ``run_separator``
    # (KEY_old, KEY-backup) is the key plus a suffix: the secret, and the whole run (at
    # most ``run_max`` more characters) looked up too. A run of 1..run_max with no
    # separator is low confidence; a longer one is no key.
    run_separator_text: str | None = None
    run_max: int = 32
    # An anchored rule's stage-1 gate: a Python ``re`` pattern tried (``match``) where
    # each literal hit starts, over the window stage 2 would read. A hit it rejects makes
    # no region, so a keyword in prose or code ("token = None") costs one C-level match
    # (~0.4 us) instead of a stage-2 try. It must accept wherever ``pattern`` matches
    # from that start (a superset: recall never depends on it); tests/test_precheck.py
    # checks the shipped ones against their patterns.
    precheck_text: str | None = None
    # Stage 1's heads: (stem, regex) pairs; a prefix that starts with ``stem`` is entered
    # in the hyperscan database as ``(?:regex)`` + the prefix, so a hit with no such
    # bytes right before it never reaches Python (the generic rule's ``key`` keyword is
    # taken only after a name character: ``api_key =``, not ``key =``). It must match
    # wherever the pattern can match from such a hit (a superset, checked for the shipped
    # rules by tests/test_precheck.py); a plain class regex (no group, no look-around),
    # read the same way by hyperscan and Python's ``re``.
    heads: tuple[tuple[str, str], ...] = ()

    @property
    def source(self) -> str:
        return self.pattern_text

    @cached_property
    def pattern(self) -> regex.Pattern[bytes]:
        return compile_pattern(
            self.id, "pattern", escape_aware(self.pattern_text), self.case_insensitive
        )

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
    def shape(self) -> Shape:
        # The escape-aware boundary adds zero-width alternatives only: the same shape.
        return pattern_shape(self.pattern_text, self.prefixes, self.case_insensitive)

    @cached_property
    def run_separator(self) -> regex.Pattern[bytes] | None:
        if self.run_separator_text is None:
            return None
        return compile_pattern(self.id, "run_separator", self.run_separator_text)

    @cached_property
    def precheck(self) -> re.Pattern[bytes] | None:
        if self.precheck_text is None:
            return None
        try:
            return re.compile(
                self.precheck_text.encode(), re.IGNORECASE if self.case_insensitive else 0
            )
        except (re.error, UnicodeEncodeError) as exc:
            raise RuleError(f"rule {self.id!r}: precheck does not compile: {exc}") from None

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
        _ = self.precheck
        if self.run_separator is not None and "run" not in self.pattern.groupindex:
            raise RuleError(f"rule {self.id!r}: run_separator needs a group named 'run'")
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
    "run_separator",
    "run_max",
    "precheck",
    "stage1_heads",
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
    precheck = _opt_str(rule_id, "precheck", d.get("precheck"))
    if precheck is not None and not anchored:
        raise RuleError(f"rule {rule_id!r}: precheck is for anchored rules only")
    insensitive = bool(d.get("case_insensitive", False))
    heads = _heads(rule_id, d.get("stage1_heads"), insensitive)
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
        run_separator_text=_opt_str(rule_id, "run_separator", d.get("run_separator")),
        run_max=int(d.get("run_max", 32)),
        precheck_text=precheck,
        heads=heads,
    )


# A head is a run of byte classes and literal characters, with ? * + {m,n} counts: no
# group, alternation or look-around (hyperscan and re must read it the same way, and a
# hit's start stays len(prefix) before where hyperscan reports it).
_HEAD = re.compile(
    r"(?:(?:\[(?:\\.|[^\]\\])+\]|\\[^0-9A-Za-z]|[A-Za-z0-9_ ])(?:[?*+]|\{\d+(?:,\d*)?\})?)+"
)


def _heads(rule_id: str, value: Any, insensitive: bool) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not value:
        raise RuleError(f"rule {rule_id!r}: stage1_heads must be a table of stem = regex")
    out = []
    for stem, head in value.items():
        if not isinstance(head, str) or not _HEAD.fullmatch(head):
            raise RuleError(
                f"rule {rule_id!r}: stage1_heads[{stem!r}] must be byte classes and "
                "characters with counts (no group, alternation or look-around)"
            )
        try:
            re.compile(head.encode())
        except re.error as exc:
            raise RuleError(f"rule {rule_id!r}: stage1_heads[{stem!r}]: {exc}") from None
        out.append((stem.lower() if insensitive else stem, head))
    return tuple(out)


def _opt_str(rule_id: str, name: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise RuleError(f"rule {rule_id!r}: {name} must be a non-empty string")
    return value


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
    """The shipped pack, every file; an id defined in two files is an error. Parsed once
    per process (rules are frozen; a scan, its generic filter and its alerts all ask)."""
    return list(_pack())


@cache
def _pack() -> tuple[Rule, ...]:
    rules: list[Rule] = []
    where: dict[str, str] = {}
    for name, text in pack_files():
        origin = f"scanner/rules/{name}"
        for r in parse_rules(text, origin):
            if r.id in where:
                raise RuleError(f"{origin}: rule id {r.id!r} is also defined in {where[r.id]}")
            where[r.id] = origin
            rules.append(r)
    return tuple(rules)


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


# --- a pattern's shape: where its matches start, and what must follow the literal ------

MAX_TAIL = 24  # byte classes after a literal that stage 1 checks (enough to reject near misses)
MAX_PATHS = 64  # alternatives followed through leading alternations
_ALL = frozenset(range(256))


@dataclass(frozen=True)
class Shape:
    """What stage 1 may know of a rule from its pattern alone.

    ``led``: every match starts with one of the rule's literals (after zero-width
    assertions such as the boundary look-behind), so stage 2 tries the pattern once
    where each literal starts (``match``, a few hundred bytes) instead of searching a
    merged window. ``tails``: per literal, the byte classes the pattern requires right
    after it (``mg_live_`` then 32 of ``[A-Za-z0-9_-]``, capped at ``MAX_TAIL``): stage
    1 looks for literal + tail in one pass, so a near miss (``mg_live_`` + 20
    characters) never reaches Python."""

    led: bool = False
    tails: tuple[tuple[str, Tail], ...] = ()

    def tail(self, prefix: str) -> Tail:
        return next((t for p, t in self.tails if p == prefix), ())


class _Stop(Exception):
    pass


@dataclass(frozen=True)
class Var:
    """A run of ``lo`` to ``hi`` bytes of ``chars`` (``hi`` None: no bound) in a tail."""

    chars: frozenset[int]
    lo: int
    hi: int | None


Tail = tuple["frozenset[int] | Var", ...]


def _fold(chars: frozenset[int], ci: bool) -> frozenset[int]:
    if not ci:
        return chars
    more = {ord(chr(c).swapcase()) for c in chars if chr(c).isalpha() and c < 128}
    return chars | frozenset(more)


def _class_set(items: list[Any], ci: bool) -> frozenset[int]:
    c = _sre

    negate = False
    out: set[int] = set()
    cats = {
        c.CATEGORY_DIGIT: set(range(48, 58)),
        c.CATEGORY_SPACE: {9, 10, 11, 12, 13, 32},
        c.CATEGORY_WORD: set(range(48, 58)) | set(range(65, 91)) | set(range(97, 123)) | {95},
    }
    for op, av in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            out.add(av)
        elif op is c.RANGE:
            out.update(range(av[0], av[1] + 1))
        elif op is c.CATEGORY and av in cats:
            out.update(cats[av])
        elif op is c.CATEGORY and str(av).startswith("CATEGORY_NOT_"):
            base = getattr(c, str(av).replace("NOT_", ""), None)
            if base not in cats:
                raise _Stop
            out.update(_ALL - cats[base])
        else:
            raise _Stop
    chars = _fold(frozenset(b for b in out if b < 256), ci)
    return _ALL - chars if negate else chars


def _one(op: Any, av: Any, ci: bool) -> frozenset[int] | None:
    """The byte set of a one-character item, or None."""
    c = _sre

    if op is c.LITERAL:
        return _fold(frozenset([av]), ci) if av < 256 else frozenset()
    if op is c.NOT_LITERAL:
        return _ALL - _fold(frozenset([av]), ci)
    if op is c.IN:
        return _class_set(av, ci)
    if op is c.ANY:
        return _ALL
    return None


def _paths(
    items: list[Any], ci: bool, rest: list[Any], limit: int = 48
) -> list[tuple[list[Any], bool]]:
    """Every way the pattern can start, as byte sets (cut at MAX_TAIL after the longest
    literal), each with whether the walk was cut short by a construct it does not follow."""
    c = _sre

    seq = list(items) + list(rest)
    out: list[Any] = []
    for i, (op, av) in enumerate(seq):
        if len(out) >= limit:
            return [(out, True)]
        if op in (c.ASSERT, c.ASSERT_NOT, c.AT):
            continue  # zero-width
        one = _one(op, av, ci)
        if one is not None:
            out.append(one)
            continue
        if op is c.SUBPATTERN:
            _group, add, _del, sub = av
            inner_ci = ci or bool(add & c.SRE_FLAG_IGNORECASE)
            tails = _paths(list(sub), inner_ci, [], limit - len(out))
            if len(tails) != 1:
                return [(out + t, True) for t, _ in tails]
            t, cut = tails[0]
            out.extend(t)
            if cut:
                return [(out, True)]
            continue
        if op is c.BRANCH:
            _, alternatives = av
            if len(alternatives) > MAX_PATHS:
                return [(out, True)]
            found = []
            for alt in alternatives:
                for t, cut in _paths(list(alt), ci, seq[i + 1 :], limit - len(out)):
                    found.append((out + t, cut))
            return found[:MAX_PATHS] if len(found) <= MAX_PATHS else [(out, True)]
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            lo, hi, sub = av
            sub = list(sub)
            one = _one(*sub[0], ci) if len(sub) == 1 else None
            if one is None:
                return [(out, True)]
            if hi == lo:
                out.extend([one] * min(lo, limit))
            else:
                out.append(Var(one, lo, None if hi > 64 else hi))
            continue
        return [(out, True)]
    return [(out, False)]


# Syntax the ``regex`` module (VERSION1) reads otherwise than Python's parser: set
# operations and nested sets, properties, branch reset, fuzzy and other flags. A
# pattern using one gets no shape (slower, never wrong).
_REGEX_ONLY = (
    "--",
    "&&",
    "||",
    "~~",
    "[[",
    "\\p",
    "\\P",
    "\\N",
    "\\X",
    "\\L<",
    "\\m",
    "\\M",
    "\\G",
    "\\K",
    "(?|",
    "(?r",
    "(?f",
    "(?V",
    "(?e",
    "(?b",
    "(?w",
    "(?(",
    "{e",
    "{i",
    "{d",
    "{s",
)


def _trim(tail: tuple[Any, ...]) -> Tail:
    """No trailing byte that could be anything, and a trailing run becomes its minimum
    (so stage 1 reports a match once, where that minimum ends)."""
    out = list(tail)
    while out:
        last = out[-1]
        if isinstance(last, Var):
            out[-1:] = [last.chars] * min(last.lo, MAX_TAIL)
            continue
        if last == _ALL:
            out.pop()
            continue
        break
    return tuple(out)


def pattern_shape(pattern: str, prefixes: tuple[str, ...], insensitive: bool) -> Shape:
    """The rule's ``Shape``; an empty one (neither led nor tails) for any pattern this
    walk does not follow (it reads Python's own regex parser; the ``regex`` module's
    extensions make it give up, which only costs speed)."""
    from re import _constants as c
    from re import _parser

    if not prefixes or any(v in pattern for v in _REGEX_ONLY):
        return Shape()
    try:
        parsed = _parser.parse(pattern, 0)
        ci = insensitive or bool(parsed.state.flags & c.SRE_FLAG_IGNORECASE)
        longest = max(len(p.encode("latin-1", "replace")) for p in prefixes)
        paths = _paths(list(parsed), ci, [], longest + MAX_TAIL + 1)
    except Exception:  # a construct Python's parser does not know: no shape
        return Shape()
    lits = [p.lower() if ci else p for p in prefixes]
    lit_set = set(lits)
    lengths = sorted({len(p) for p in lits})

    def spelled(path: list[Any]) -> tuple[int, set[str]]:
        """(n, the literals the path's first n bytes spell) when they spell literals
        only; (0, set()) when the path may start otherwise."""
        for n in lengths:
            if len(path) < n or any(isinstance(s, Var) for s in path[:n]):
                continue
            combos = 1
            for s in path[:n]:
                combos *= len(s)
            if combos > 256:
                continue
            words = [b""]
            for s in path[:n]:
                words = [w + bytes([ch]) for w in words for ch in sorted(s)]
            texts = {w.decode("latin-1") for w in words}
            if ci:
                texts = {t.lower() for t in texts}
            if texts <= lit_set:
                return n, texts
        return 0, set()

    spelt = [(spelled(path), path) for path, _ in paths]
    led = all(n for (n, _), _ in spelt)
    tails = []
    for p in prefixes if led else ():
        lp = p.lower() if ci else p
        ways = dict.fromkeys(tuple(path[n:]) for (n, t), path in spelt if lp in t)
        after = [list(a) for a in ways]
        if not after:
            continue
        if len(after) == 1:
            tail = tuple(after[0][:MAX_TAIL])
        else:  # several ways on: what they share, byte by byte, up to a run
            n = min(MAX_TAIL, *(len(a) for a in after))
            n = next((i for i in range(n) if any(isinstance(a[i], Var) for a in after)), n)
            tail = tuple(frozenset().union(*(a[i] for a in after)) for i in range(n))
        tail = _trim(tail)
        if tail:
            tails.append((p, tail))
    return Shape(led=led, tails=tuple(tails))
