"""Generic secrets: a secret-ish name assigned a value that looks like a secret.

The rule (``scanner/rules/generic.toml``) finds a secret-ish name (password,
secret, token, api_key, auth, credential, private_key, access_key, …) followed
by an assignment in any common syntax, and captures the value. This module
decides whether the value looks like a secret. Each filter has a name, so the
cost of each one (false positives removed, true positives lost) is measured by
``bench/corpora.py --generic-filters`` and a rejected candidate says why.

A candidate is kept only when no filter rejects it, in this order:

``name``         the whole name is not secret-ish after all (``tokenizer``,
                 ``author``, ``password_file``, ``token_type``, ``auth_url``…)
``reference``    a variable reference, template or expression, not a literal:
                 ``${X}``, ``$X``, ``{{ x }}``, ``%(x)s``, ``<x>``, ``process.env.X``,
                 ``os.environ[...]``, ``getenv(``, ``secrets.X``, ``self.x``, a call
``placeholder``  a documentation or filler value: ``changeme``, ``your-api-key``,
                 ``xxxx``, ``***``, ``<redacted>``, ``null``, the name itself…
``path``         a file path, or a URL (one with a password is the URL rules' to judge)
``identifier``   a UUID, version string, date, number, IP address, e-mail, host, a
                 property or module name (``fs.s3.cse.enabled``), a constant's name
                 (``HTTP_USER_AGENT``)
``hash``         a lock-file or image hash (``sha512-…`` integrity, ``sha256:…``)
``fixture``      a test fixture constant: the name or the value says test, fake,
                 dummy, mock, sample, example; or the line is an assertion
``shape``        too short, one character class, words, or too little entropy
                 for its length and alphabet; a value named a password is judged
                 as typed by a person (six characters, not a PIN, not one word)
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache

import regex

from scanner.validators import shannon_entropy

# Searched backwards from the keyword: the rest of the name before it (DB_, client_).
NAME_BEFORE = re.compile(rb"[A-Za-z0-9_.$-]*")  # matched on the reversed bytes before it

# Words that make a name secret-ish, and words that, as the name's last word, say
# the value is about the secret rather than the secret itself.
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "passcode",
        "secret",
        "secrets",
        "token",
        "tokens",
        "apikey",
        "auth",
        "credential",
        "credentials",
        "creds",
        "privatekey",
        "accesskey",
        "secretkey",
        "clientsecret",
        "key",
        "pat",
        "pw",
        "bearer",
    }
)
NOT_SECRET_KEY_QUALIFIERS = frozenset(
    """
    primary foreign unique composite partition sort range row column cache lookup dict map
    hash index idempotency routing object bucket s3 storage blob file message translation
    i18n label hot shortcut keyboard menu field json yaml attr attribute property prop meta
    metadata public publishable site recaptcha pub group sequence version config setting
    settings option name type data item entry record family cluster shard tenant redis
    memcache etag cursor page pagination next prev last first order license product serial
    registry query param header dedupe dedup lock state event task job queue stream topic
    client consumer access
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
COMPOUND_TAILS = ("password", "passwd", "secret", "token", "apikey", "credentials", "pwd")
NOT_SECRET_LAST = frozenset(
    {
        "id",
        "ids",
        "name",
        "names",
        "file",
        "files",
        "path",
        "paths",
        "dir",
        "url",
        "uri",
        "urls",
        "endpoint",
        "host",
        "type",
        "types",
        "kind",
        "length",
        "len",
        "size",
        "count",
        "field",
        "fields",
        "header",
        "headers",
        "param",
        "params",
        "prompt",
        "label",
        "hint",
        "placeholder",
        "policy",
        "policies",
        "regex",
        "pattern",
        "format",
        "min",
        "max",
        "enabled",
        "required",
        "mode",
        "method",
        "methods",
        "expiry",
        "expires",
        "expiration",
        "ttl",
        "timeout",
        "lifetime",
        "age",
        "version",
        "provider",
        "providers",
        "scheme",
        "strategy",
        "class",
        "module",
        "service",
        "manager",
        "handler",
        "helper",
        "util",
        "utils",
        "validator",
        "validation",
        "reset",
        "changed",
        "updated",
        "created",
        "at",
        "date",
        "time",
        "index",
        "idx",
        "position",
        "pos",
        "offset",
        "prefix",
        "suffix",
        "separator",
        "delimiter",
        "location",
        "region",
        "status",
        "state",
        "error",
        "errors",
        "message",
        "msg",
        "text",
        "description",
        "desc",
        "title",
        "help",
        "example",
        "sample",
        "env",
        "var",
        "variable",
        "key_name",
        "ref",
        "reference",
        "store",
        "vault",
        "cache",
        "cookie",
        "callback",
        "redirect",
        "server",
        "issuer",
        "audience",
        "scope",
        "scopes",
        "user",
        "username",
        "login",
        "email",
        "mail",
        "address",
        "account",
        "owner",
        "hash",
        "hashed",
        "digest",
        "salt",
        "algorithm",
        "algo",
        "cipher",
        "encoding",
        "encoded",
        "strength",
        "complexity",
        "rules",
        "rule",
        "question",
        "confirm",
        "confirmation",
        "repeat",
        "again",
        "input",
        "box",
        "button",
        "form",
        "dialog",
        "visible",
        "visibility",
        "show",
        "hidden",
        "hide",
        "toggle",
        "icon",
        "style",
        "color",
        "width",
        "height",
        "image",
        "img",
        "config",
        "configuration",
        "settings",
        "options",
        "option",
        "request",
        "response",
        "result",
        "results",
        "list",
        "map",
        "dict",
        "set",
        "table",
        "column",
        "schema",
        "model",
        "entity",
        "factory",
        "builder",
        "generator",
        "parser",
        "reader",
        "writer",
        "loader",
        "source",
        "sources",
        "value_from",
        "exchange",
        "introspection",
        "revocation",
        "refresh_url",
        "usage",
        "used",
        "limit",
        "limits",
        "bucket",
        "buckets",
        "budget",
        "pool",
        "ring",
        "test",
        "tests",
        "command",
        "cmd",
        "st",
        "struct",
        "key_st",
        "fn",
        "func",
        "function",
        "callable",
        "check",
    }
)
NOT_SECRET_NAMES = re.compile(
    r"(?i)^(?:author\w*|authori[sz]\w*|authentic\w*|authority|oauth_?(?:version|flow)|"
    r"token(?:i[sz]\w*|type|_type|s?_?count|kind|s)|tokenizer\w*|next_?token|page_?token|"
    r"continuation_?token|pagination_?token|sync_?token|csrf_?token|xsrf_?token|"
    r"cancellation_?token|cancel_?token|ct|token_?pattern|passthrough|bypass\w*|compass\w*|"
    r"passenger\w*|passive\w*|passport\w*|(?:old)?pwd|password_?(?:less|field|input|policy|strength|"
    r"reset|confirm\w*|again|hash\w*|length)|.*_?keyring)$"
)

REFERENCE = re.compile(
    r"""(?x)
    \$\{ | \$\( | ^\$[A-Za-z_] | \{\{ | \}\} | \{%  | %\( | %[sd]$ | ^%[A-Za-z_]+%$
    | ['"`]                       # a quote inside: code around a string, not data
    | ^[A-Za-z_][A-Za-z0-9_]*=[^=]  # another assignment (prose: "Secret: X=...")
    | ^<[^>]*>$ | ^\#\{ | ^@[A-Za-z_] | ^!(?:Ref|Sub|GetAtt|ImportValue)
    | \{[A-Za-z_][^{}\s]{0,60}\}               # {name}, {name:fmt}, {call()} templates
    | process\.env | import\.meta\.env | os\.environ | os\.getenv | getenv\( | System\.getenv
    | ENV\[ | ENV\.fetch | env\( | \benv\. | secrets\. | vars\. | settings\. | config\[
    | Deno\.env | \bSecret(?:s)?Manager | vault: | \bref\+ | ^arn:aws:secretsmanager
    | ^(?:self|this|cls|ctx|context|req|request|props|opts|options|params|args|kwargs|
         config|conf|cfg|settings|env)\. | ^\w+\(|\)$
    """
)
# Every REFERENCE alternative holds one of these characters (or "Manager"): a value
# with none is no reference, and its search (one try per alternative at every
# character) is skipped.
REFERENCE_MARK = re.compile(r"""[${}%'"`=<#@!.(\[:+)]""")
DOTTED_IDENTIFIER = re.compile(r"^[A-Za-z_$][\w$]*(?:(?:\.|::|->)[A-Za-z_$][\w$]*)+(?:\(\))?$")
# kebab-case or snake_case of three parts or more: an identifier (sendgrid-api-key).
IDENTIFIER_CHAIN = re.compile(r"^[a-z]+(?:-[a-z]+){2,}$|^[a-z]+(?:_[a-z]+){2,}$")
# An unquoted value that is a name in code (get_token, DB_PASSWORD, myPassword), not data.
CODE_NAME = re.compile(
    r"^(?:[a-z]{2,}(?:_[a-z0-9]{2,})+|[A-Z]{2,}(?:_[A-Z0-9]{2,})+|[a-z]{2,}(?:[A-Z][a-z]{2,})+)$"
)

# Filler words, matched only as written by a person (lower, UPPER or Title case), so a
# random string that happens to hold "tBd" or "XxX" is not taken for one.
PLACEHOLDER_WORDS = re.compile(
    r"""(?ix)
    example|sample|dummy|placeholder|changeme|change[_-]?(?:me|this|it)|replace|your[_-]|
    (?<![a-z])your(?=[A-Z]|$)|^your|insert[_-]|enter[_-]|redacted|removed|masked|
    secret[_-]?here|_here$|-here$|(?<![a-z0-9])(?:todo|tbd|fixme|none|null|nil)(?![a-z0-9])|
    x{4,}|\*{3,}|\.{3,}|\u2026|^my[_-]?(?:secret|password|pass|token|key|api)|
    (?<![a-z])(?:password|passwd|secret|token)(?![a-z])
    """
)
# Every PLACEHOLDER_WORDS alternative holds one of these (lower case): an ASCII value
# whose lower case holds none cannot match it, and its search (every alternative tried
# at every character, ~2 us) is skipped (tests/test_generic.py checks the superset).
PLACEHOLDER_MARK = re.compile(
    r"example|sample|dummy|placeholder|change|replace|your|insert|enter|redacted|removed|"
    r"masked|secret|here|todo|tbd|fixme|none|null|nil|xxxx|\*\*\*|\.\.\.|my|passw|token"
)
PLACEHOLDER_VALUES = re.compile(
    r"""(?ix)^(?:
    none|null|nil|undefined|true|false|yes|no|empty|default|required|optional|string|str|
    text|value|secret|password|passwd|token|key|apikey|api[_-]?key|pass|admin|root|user|guest|
    test|demo|foo|bar|baz|qux|hunter2|letmein|qwerty\w*|welcome\d*|password\d*|pa\$\$w0rd|
    p@ssw0rd|abc123|123456\d*|secret\d*|iloveyou|trustno1|dragon|monkey|master|sunshine
    )$"""
)
FILLER_STEMS = frozenset(
    {"password", "passwd", "secret", "changeme", "example", "test", "token", "sample", "dummy"}
)
SEQUENTIAL = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl")

URL = re.compile(r"(?i)^[a-z][a-z0-9+.-]*://")
PATH = re.compile(
    r"""(?x)
    ^(?:~|\.{1,2})?/(?:etc|var|usr|home|Users|opt|tmp|run|srv|mnt|root|app|data|dev|proc|
                     secrets?|config|certs?|keys?|ssl|private|workspace|builds?)(?:/|$)
    | ^(?:~|\.{1,2})/                                  # ~/x, ./x, ../x
    | ^[A-Za-z]:\\                                     # C:\x
    | \.(?:pem|key|crt|cer|der|p12|pfx|jks|json|ya?ml|toml|ini|cfg|conf|txt|env|log|
         properties|xml|html?|js|ts|py|rb|go|java|php|sh|gpg|asc|pub|db|sqlite\d?)$
    """
)
WORDLIKE_SEGMENT = re.compile(r"^(?:[A-Za-z][a-z0-9_.@~+-]*|[a-z0-9_.@~+-]+|\$\{?\w+\}?)$")
UUID = re.compile(r"(?i)^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
IDENTIFIER_LIKE = re.compile(
    r"""(?x)
    ^v?\d+(?:\.\d+){1,3}(?:[-+.][\w.]+)?$              # version 1.2.3-beta
    | ^\d{4}-\d{2}-\d{2}(?:[T ][\d:.]+Z?)?$             # a date
    | ^[+-]?\d+(?:\.\d+)?$                              # a number
    | ^(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?$                # an IPv4 address
    | ^[\w.+-]+@[\w-]+(?:\.[\w-]+)+$                    # an e-mail address
    | ^(?:[a-z0-9-]+\.)+(?:com|net|org|io|dev|local|internal|cloud|app|co|uk|de)(?::\d+)?$
    | ^(?:[0-9a-f]{2}:){5}[0-9a-f]{2}$                  # a MAC address
    | ^[A-Z]{1,12}(?:_[A-Z]{1,12})+$                     # a constant's name: HTTP_USER_AGENT
    """
)
HASH = re.compile(
    r"(?i)^(?:sha(?:1|224|256|384|512)|md5|blake2b?|xxh\d*)[-:=][A-Za-z0-9+/=_-]{16,}$"
)
FIXTURE_WORDS = re.compile(
    r"(?i)(?:^|[^a-z])(?:test(?:ing|s)?|fake|dummy|mock(?:ed)?|stub|sample|example|fixture|"
    r"bogus|invalid|wrong|incorrect|expired|foobar)(?:[^a-z]|$)"
)
ASSERTION = re.compile(
    rb"(?i)^[ \t+-]*(?:assert|expect\(|self\.assert|assertEquals|should|it\(|describe\()"
)


@dataclass(frozen=True)
class GenericVerdict:
    name: str
    value: str
    rejected_by: str | None
    entropy: float | None  # None: rejected before any filter measured it


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def _joined_words(words: list[str]) -> set[str]:
    """Single words and adjacent pairs joined (api+key -> apikey)."""
    out = set(words)
    out.update(a + b for a, b in itertools.pairwise(words))
    return out


@lru_cache(maxsize=4096)  # names repeat in code (self.password, cache_key): judge each once
def name_is_not_secret(name: str) -> bool:
    if name.startswith("::"):
        return True
    bare = name.lstrip("$@:").strip("'\"")
    last = re.split(r"[.\->:]+", bare)[-1] or bare
    if NOT_SECRET_NAMES.match(last):
        return True
    words = _words(last)
    joined = _joined_words(words)
    if words and not joined & SECRET_WORDS:
        # one lower-case compound: dbpasswd, mysqlpassword, apitoken
        joined |= {sw for w in words for sw in COMPOUND_TAILS if w.endswith(sw) and w != sw}
    if not words or not (joined & SECRET_WORDS):
        return True
    if words[-1] in NOT_SECRET_LAST or "_".join(words[-2:]) in NOT_SECRET_LAST:
        return True
    if words[-2:] in (["access", "key"], ["accesskey"]) and "secret" not in words:
        return True  # the access key's id (S3, AWS); its secret is the "secret key"
    if words[-1] == "key" and len(words) >= 2 and not joined & (SECRET_WORDS - {"key"}):
        # <qualifier>_key: a provider's key (censys_key), unless the qualifier says what
        # else it is (cache_key, primary_key, public_key)
        return words[-2] in NOT_SECRET_KEY_QUALIFIERS
    return words == ["key"]  # "key" alone is no secret's name; api key, secret key are


def is_reference(value: str, quoted: bool = True, call: bool = False) -> bool:
    """A template, an environment lookup, an expression; ``call``: the value is the
    argument of a call that is no setter (``get_token("x")``)."""
    if call:
        return True
    if (REFERENCE_MARK.search(value) or "Manager" in value) and REFERENCE.search(value):
        return True
    if quoted:
        return False
    if DOTTED_IDENTIFIER.match(value):
        return True
    if _is_words(value.lstrip("_")) or IDENTIFIER_CHAIN.match(value):
        return True  # a type or a name in code: HiddenText, FilterOrBool, Callable
    if CODE_NAME.match(value) is None:
        return False
    # Every part of a name in code is a word, and words have vowels (getToken, db_password)
    parts = [p for p in _CODE_PARTS.split(value) if p]
    return 2 * sum(1 for p in parts if _VOWEL.search(p)) >= len(parts)


def _written(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return not letters or text.islower() or text.isupper() or text.istitle()


LEET = str.maketrans("0134578@$!", "oieastbasi")


def unleet(text: str) -> str:
    """s3cr3t -> secret, p@$$w0rd -> password: how people write a filler they think clever."""
    return text.lower().translate(LEET)


def is_placeholder(value: str, name: str) -> bool:
    v = value.lower()
    plain = unleet(value)
    if PLACEHOLDER_VALUES.match(value) or PLACEHOLDER_VALUES.match(plain):
        return True
    if unleet(value.rstrip(TRAILING_NUMBER)) in FILLER_STEMS:  # p@ssw0rd123, secret42
        return True
    marked = not value.isascii() or PLACEHOLDER_MARK.search(v) is not None
    if marked and any(_written(m.group(0)) for m in PLACEHOLDER_WORDS.finditer(value)):
        return True
    if (
        plain != v
        and (not value.isascii() or PLACEHOLDER_MARK.search(plain) is not None)
        and PLACEHOLDER_WORDS.search(plain)
    ):
        return True
    if len(set(v)) <= 2:
        return True  # "aaaaaaaa", "abababab"
    if len(v) < 12 and any(v.rstrip("!") in seq for seq in SEQUENTIAL):
        return True
    bare = _NOT_ALNUM.sub("", v)
    return bool(bare) and bare == _bare_name(name)


@lru_cache(maxsize=4096)
def _bare_name(name: str) -> str:
    return _NOT_ALNUM.sub("", name.lower())


def is_path_or_plain_url(value: str) -> bool:
    """A path, or any URL: a URL with a password is the URL rules' to judge."""
    if URL.match(value) or "://" in value:
        return True
    if PATH.search(value):
        return True
    segments = [p for p in value.split("/") if p]
    # a/b/c of word-like segments is a path; base64 holds "/" between random runs
    return value.count("/") >= 2 and all(WORDLIKE_SEGMENT.match(p) for p in segments)


# A property or module name (fs.s3.cse.enabled, spring.datasource.url): three or more
# dotted segments, each a short token or words (is_property_name).
PROPERTY = re.compile(r"^[a-z][a-z0-9]*(?:\.[A-Za-z][A-Za-z0-9]*){2,}$")


def is_property_name(value: str) -> bool:
    """fs.s3.cse.kms.keyId: each dotted segment four characters at most, lower-case
    letters, or camel-case words (each part pronounceable or short); a token's random
    segments are none of these."""
    if PROPERTY.match(value) is None:
        return False
    for segment in value.split("."):
        if len(segment) <= 4 or (segment.isalpha() and segment.islower()):
            continue  # s3, spring, datasource
        parts = [p for p in _WORD_PARTS.split(segment) if p]
        if not all(_is_word(p) for p in parts):
            return False
    return True


def is_identifier_like(value: str) -> bool:
    return bool(UUID.match(value) or IDENTIFIER_LIKE.match(value) or is_property_name(value))


def is_hash(value: str, name: str) -> bool:
    return bool(HASH.match(value)) or "integrity" in name.lower()


def is_fixture(value: str, name: str, line: bytes) -> bool:
    return bool(FIXTURE_WORDS.search(name) or FIXTURE_WORDS.search(value) or ASSERTION.match(line))


def _classes(value: str) -> int:
    """Character classes present: lower, upper, digit, other (each counts once)."""
    if value.isascii():  # the usual value: str methods in C, no loop over characters
        return (
            (value.upper() != value)
            + (value.lower() != value)
            + (_DIGIT.search(value) is not None)
            + (bool(value) and not value.isalnum())
        )
    chars = set(value)  # each distinct character once
    return (
        any(c.islower() for c in chars)
        + any(c.isupper() for c in chars)
        + any(c.isdigit() for c in chars)
        + any(not c.isalnum() for c in chars)
    )


_NO_VOWELS = str.maketrans("", "", "aeiouyAEIOUY")
CONSONANT_RUN = re.compile(r"[b-df-hj-np-tv-xzB-DF-HJ-NP-TV-XZ]{4,}")


def _is_word(part: str) -> bool:
    """Pronounceable: a quarter of its letters vowels, no four consonants in a row."""
    if not part.isalpha():
        return False
    if len(part) <= 3:
        return True
    vowels = len(part) - len(part.translate(_NO_VOWELS))
    return vowels * 4 >= len(part) and not CONSONANT_RUN.search(part)


def _is_words(value: str) -> bool:
    """Words joined as names are (copy_context, GetCallerIdentity, Whitespace, new-keys)."""
    parts = [p for p in _WORD_PARTS.split(value) if p]
    return bool(parts) and all(_is_word(p) for p in parts) and any(len(p) >= 4 for p in parts)


PASSWORD_WORDS = frozenset({"password", "passwd", "pwd", "pass", "passphrase", "passcode", "pw"})


@lru_cache(maxsize=4096)
def is_password_name(name: str) -> bool:
    words = _words(name)
    if _joined_words(words) & PASSWORD_WORDS:
        return True
    return any(w.endswith(("password", "passwd", "pwd")) for w in words)  # dbpasswd


def lacks_password_shape(value: str) -> bool:
    """A password is whatever a person typed: admin123 and hunter22 are real (weak)
    passwords. Only what no one types as one is out: too short, a PIN, one word."""
    n = len(value)
    if n < 6 or n > 512 or value.isdigit() or value != value.strip() or value.startswith("--"):
        return True
    if " " in value and len(value.split()) > 2:
        return True
    return _is_words(value) or bool(IDENTIFIER_CHAIN.match(value))


def lacks_secret_shape(value: str, entropy: float, password: bool = False) -> bool:
    """Too short, too plain or too orderly to be a generated secret or a real password.
    A value named a password is judged as one a person typed (lacks_password_shape)."""
    if password:
        return lacks_password_shape(value)
    n = len(value)
    if n < 8 or n > 512 or value != value.strip() or value.startswith("--"):
        return True
    if _SPACE.search(value):
        return True  # a generated token never holds a space (a password may)
    if IDENTIFIER_CHAIN.match(value):
        return True
    if " " in value and len(value.split()) > 2:
        return True  # a sentence, not a secret
    classes = _classes(value)
    is_hex = _HEX.fullmatch(value) is not None
    if value.isdigit() or _is_words(value):
        return True
    if is_hex:
        alphabet = 16
        if n < 16:
            return True
    elif classes < 2:
        return True  # one case of letters only: a word or words
    else:
        alphabet = {2: 36, 3: 62}.get(classes, 80)
    word_and_number = _WORD_AND_NUMBER.fullmatch(value)
    if word_and_number and n < 16 and _is_words(word_and_number.group(1)):
        return True  # a word and a number (worker-1, Summer2024): too weak a signal
    ceiling = math.log2(min(n, alphabet))
    return entropy < 0.75 * ceiling


@cache
def provider_prefixes() -> tuple[str, ...]:
    """The value prefixes of the shipped providers' formats (``xai-``, ``AKIA``,
    ``glpat-``…), four characters or more. A generic value that starts with one and that
    the provider's own rule did not report is that provider's near miss (a truncated or
    mistyped key): the format's owner knows better than a name and an entropy."""
    from scanner.rules import pack_rules

    out = {
        p
        for r in pack_rules()
        if r.confidence == "high" and not r.case_insensitive
        for p in r.prefixes
        if len(p) >= 4
        and (VALUE_PREFIX.fullmatch(p) or re.fullmatch(r"[A-Z0-9]{4,}", p))
        and re.sub(r"[^a-z]", "", p.lower()) not in PREFIX_WORDS
    }
    return tuple(sorted(out, key=len, reverse=True))


# A provider's value prefix ends in a separator (xai-, glpat-, sk-proj-, ghp_) or is an
# upper-case tag (AKIA); a keyword the rule anchors on (SECRET_KEY, machine) is not one.
VALUE_PREFIX = re.compile(r"[A-Za-z0-9]+(?:[-_.][A-Za-z0-9]+)*[-_.]")
PREFIX_WORDS = frozenset({"secret", "api", "pat", "key", "token", "auth", "password", "sig"})


def is_provider_near_miss(value: str) -> bool:
    return value.startswith(provider_prefixes())


def value_filters(
    name: str,
    value: str,
    line: bytes,
    entropy: float,
    quoted: bool = True,
    call: bool = False,
    first_only: bool = False,
) -> list[str]:
    """The filters that reject this (name, value); empty when it looks like a secret.
    The bench asks for every one (to price each filter); ``judge`` stops at the first."""
    return _filters(name, value, lambda: line, lambda: entropy, quoted, call, first_only)


def _filters(
    name: str,
    value: str,
    line: Callable[[], bytes],
    entropy: Callable[[], float],
    quoted: bool,
    call: bool,
    first_only: bool,
    why: bool = True,
) -> list[str]:
    """``value_filters`` with the line and the entropy measured only by the filters
    that read them (most candidates are rejected before either is needed). ``why=False``
    with ``first_only`` (the engine's way: only whether a filter rejects matters, not
    which comes first): the order that decides soonest on source code (``DECIDE_ORDER``)."""
    if first_only:
        # judge's way (every keyword candidate): the first that rejects, in FILTER_NAMES
        # order (or DECIDE_ORDER: shape third), each filter called directly
        if name_is_not_secret(name):
            return ["name"]
        if is_reference(value, quoted, call):
            return ["reference"]
        if not why and lacks_secret_shape(value, entropy(), is_password_name(name)):
            return ["shape"]
        if is_placeholder(value, name):
            return ["placeholder"]
        if is_path_or_plain_url(value):
            return ["path"]
        if is_identifier_like(value):
            return ["identifier"]
        if is_hash(value, name):
            return ["hash"]
        if is_provider_near_miss(value):
            return ["provider"]
        if is_fixture(value, name, line()):
            return ["fixture"]
        if why and lacks_secret_shape(value, entropy(), is_password_name(name)):
            return ["shape"]
        return []
    out: list[str] = []
    # In FILTER_NAMES order, written out: this runs on every candidate.
    for label in FILTER_NAMES:
        if label == "name":
            hit = name_is_not_secret(name)
        elif label == "reference":
            hit = is_reference(value, quoted, call)
        elif label == "placeholder":
            hit = is_placeholder(value, name)
        elif label == "path":
            hit = is_path_or_plain_url(value)
        elif label == "identifier":
            hit = is_identifier_like(value)
        elif label == "hash":
            hit = is_hash(value, name)
        elif label == "provider":
            hit = is_provider_near_miss(value)
        elif label == "fixture":
            hit = is_fixture(value, name, line())
        else:
            hit = lacks_secret_shape(value, entropy(), is_password_name(name))
        if hit:
            out.append(label)
            if first_only:
                break
    return out


FILTER_NAMES = (
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
# The order in which the engine asks (``judge(why=False)``): on the standard library,
# "shape" rejects three in five of the candidates that reach it and "placeholder" one in
# ten, at about the same cost, so shape is asked third there; what is kept is the same.
DECIDE_ORDER = (*FILTER_NAMES[:2], "shape", *FILTER_NAMES[2:-1])


# Compiled once: judge runs on every keyword candidate.
_CODE_PARTS = re.compile(r"_|(?=[A-Z][a-z])")
_VOWEL = re.compile(r"[aeiouyAEIOUY]")
TRAILING_NUMBER = "0123456789!?."  # stripped from a filler's end (secret42, p@ssw0rd!)
_SPACE = re.compile(r"\s")  # str.isspace's characters
_DIGIT = re.compile(r"[0-9]")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_WORD_PARTS = re.compile(r"[_\-.\s/:]+|(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_HEX = re.compile(r"[0-9a-fA-F]+")
_WORD_AND_NUMBER = re.compile(r"([A-Za-z][A-Za-z_.-]*?)[-_.]?[0-9]{1,4}[!?.]?")
_NAME_CHARS = re.compile(rb"[A-Za-z0-9_.-]*")
_NAME_PARTS = re.compile(r"[.:>-]+")

SETTER = re.compile(r"^(?:set|with|put|add)(?![a-z])")


def name_span(data: bytes, anchor: int, value_start: int) -> tuple[int, int]:
    """The whole name around the keyword the rule is anchored on (DB_ + PASSWORD)."""
    head = NAME_BEFORE.match(data[max(0, anchor - 64) : anchor][::-1])
    start = anchor - (head.end() if head is not None else 0)
    if start < anchor and data[start - 1 : start] == b"\\" and data[start : start + 1] in b"ntr":
        start += 1  # "\nKEY = ...": the n belongs to an escape, not to the name
    tail = _NAME_CHARS.match(data, anchor, value_start)  # always matches (maybe empty)
    return start, tail.end() if tail is not None else anchor


def line_of(data: bytes, pos: int) -> bytes:
    """The line up to ``pos``: at most 512 bytes of it."""
    nl = data.rfind(b"\n", max(0, pos - 512), pos)
    return data[nl + 1 if nl != -1 else max(0, pos - 512) : pos]


def judge(
    secret: bytes, data: bytes, match: regex.Match[bytes], every: bool = False, why: bool = True
) -> GenericVerdict:
    """The first filter that rejects this candidate (``every``: all of them, joined by
    commas: what bench/corpora.py --generic-filters prices). ``why=False``: the first
    in ``DECIDE_ORDER``, which decides sooner (the engine only asks whether one does)."""
    group = match.re.groups if "name" in match.re.groupindex else 1
    value_start = match.start(group)
    if "name" in match.re.groupindex:  # the rule says where the name is (ENV NAME value)
        start, end = match.span("name")
    else:
        start, end = name_span(data, match.start(), value_start)
    name = data[start:end].decode("latin-1")
    if data[max(0, start - 2) : start] == b"::":
        name = "::" + name  # AWS::SecretsManager::Secret: a type's path, not a variable
    between = data[end:value_start]
    quoted = data[value_start - 1 : value_start] in (b'"', b"'", b"`")
    last = _NAME_PARTS.split(name)[-1]
    # A call is an assignment only as a setter or builder: setPassword("x"), b.password("x")
    call = b"(" in between and not ("." in name or SETTER.match(last))
    value = secret.decode("utf-8", "replace")
    measured: list[float] = []

    def entropy() -> float:
        if not measured:
            measured.append(shannon_entropy(secret))
        return measured[0]

    rejected = _filters(
        name,
        value,
        lambda: line_of(data, match.start()),
        entropy,
        quoted=quoted,
        call=call,
        first_only=not every,
        why=why or every,
    )
    # A rejected candidate's entropy is measured only if a filter read it.
    kept = not rejected
    return GenericVerdict(
        name, value, ",".join(rejected) or None, entropy() if kept else next(iter(measured), None)
    )
