"""One typed settings model for every part of keysweep (pydantic-settings).

Where a value comes from, the strongest first:

1. ``KEYSWEEP_*`` environment variables (one per field: ``KEYSWEEP_`` plus the
   field's name in capitals; lists are comma-separated or a JSON array);
2. ``--config FILE`` when given, else the scanned repository's own
   ``.keysweep.toml`` (or ``[tool.keysweep]`` in its ``pyproject.toml``);
3. the operator's file: ``$KEYSWEEP_CONFIG``, else
   ``$XDG_CONFIG_HOME/keysweep/config.toml`` (``~/.config/keysweep/config.toml``);
4. the defaults below.

Whose rules apply: a repository's own file may narrow or extend *detection*
only (the ``Trust.REPO`` keys). Where keysweep sends data and which credentials
it reads (``[keyservice]``, ``[notify]``, ``[policy]``, ``allowed_hosts``) come
from the environment, ``--config`` or the operator's file; in a repository's
file they are ignored with a warning that says where they belong. An unknown
key, a wrong type or a bad value is refused with a message naming the file (or
variable), the key and what was expected.
"""

from __future__ import annotations

import difflib
import enum
import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    BeforeValidator,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    SecretStr,
    ValidationError,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from scanner.errors import KeysweepError
from scanner.sources.files import DEFAULT_ARCHIVE_DEPTH, DEFAULT_MAX_FILE_SIZE

ENV_PREFIX = "KEYSWEEP_"


class ConfigError(KeysweepError, ValueError):
    pass


def _split_list(value: Any) -> Any:
    """``a,b`` or ``["a", "b"]`` from the environment; lists from a file as they are."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [x.strip() for x in text.split(",") if x.strip()]
    return value


StrList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]
Mode = Literal["revoke", "alert", "ignore"]


class Trust(enum.Enum):
    REPO = "repo"  # a scanned repository's own config may set it
    OPERATOR = "operator"  # only the environment, --config or the operator's file


class Settings(BaseSettings):
    """Everything the library, the CLI and the hooks read. ``workers`` extends it."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_default=True, case_sensitive=False
    )

    # --- detection: a repository's own config may set these -------------------------------
    disabled_rules: StrList = Field(default_factory=list)
    exclude_paths: StrList = Field(default_factory=list)
    allowlist_regexes: StrList = Field(default_factory=list)
    max_file_size: PositiveInt = DEFAULT_MAX_FILE_SIZE
    archive_depth: NonNegativeInt = DEFAULT_ARCHIVE_DEPTH
    baseline: str | None = None
    rules: list[dict[str, Any]] = Field(default_factory=list)

    # --- the operator's: where keysweep connects, what it sends, which credentials ---------
    allowed_hosts: StrList = Field(default_factory=list)
    keyservice_url: str | None = None
    keyservice_token: SecretStr | None = None  # the environment only, never a file's text
    keyservice_token_file: Path | None = None
    policy_live: Mode = "revoke"
    policy_test: Mode = "revoke"
    notify_webhook_url: str | None = None
    notify_webhook_secret: SecretStr | None = None
    notify_slack_url: str | None = None
    smtp_url: SecretStr | None = None  # may carry a password
    notify_from: str = "keysweep <keysweep@localhost>"
    state_dir: Path | None = None
    cache_dir: Path | None = None  # read by the hook's fast path itself, too
    prefilter: Literal["auto", "hyperscan", "python"] = "auto"
    # Seconds one regex may run on one window (a rule's pattern beyond the shipped
    # linear ones, a context, an allowlist); the environment only, never a scanned
    # repository's file: a larger value is a way to hang a scan.
    regex_timeout: PositiveFloat = 2.0

    # Where each key may stand in a TOML file: (table, key) -> (field, trust). A key
    # missing here is refused in a file (an environment variable may still set it).
    FILE_KEYS: ClassVar[dict[tuple[str, ...], tuple[str, Trust]]] = {
        ("disabled_rules",): ("disabled_rules", Trust.REPO),
        ("exclude_paths",): ("exclude_paths", Trust.REPO),
        ("allowlist_regexes",): ("allowlist_regexes", Trust.REPO),
        ("max_file_size",): ("max_file_size", Trust.REPO),
        ("archive_depth",): ("archive_depth", Trust.REPO),
        ("baseline",): ("baseline", Trust.REPO),
        ("rules",): ("rules", Trust.REPO),
        ("allowed_hosts",): ("allowed_hosts", Trust.OPERATOR),
        ("keyservice", "url"): ("keyservice_url", Trust.OPERATOR),
        ("keyservice", "token_file"): ("keyservice_token_file", Trust.OPERATOR),
        ("policy", "live"): ("policy_live", Trust.OPERATOR),
        ("policy", "test"): ("policy_test", Trust.OPERATOR),
        ("notify", "webhook_url"): ("notify_webhook_url", Trust.OPERATOR),
        ("notify", "webhook_secret"): ("notify_webhook_secret", Trust.OPERATOR),
        ("notify", "slack_url"): ("notify_slack_url", Trust.OPERATOR),
        ("notify", "smtp_url"): ("smtp_url", Trust.OPERATOR),
        ("notify", "from"): ("notify_from", Trust.OPERATOR),
    }
    _warnings: list[str] = PrivateAttr(default_factory=list)
    _origin: str | None = PrivateAttr(default=None)
    # A scanned repository's own .gitleaks.toml / .gitleaksignore (scanner.gitleaks_compat),
    # attached by scanner.config.load_config: detection only, as a repository's config.
    _gitleaks: Any = PrivateAttr(default=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment beats the files (which arrive as init values); no .env files.
        return env_settings, init_settings

    # --- what the rest of keysweep asks ----------------------------------------------------

    @property
    def warnings(self) -> list[str]:
        """Things in a config file that were ignored, and why (the CLI prints them)."""
        return self._warnings

    @property
    def origin(self) -> str | None:
        """The file the detection settings came from, if any."""
        return self._origin

    def keyservice(self) -> tuple[str | None, str | None]:
        """(url, token): the token from ``KEYSWEEP_KEYSERVICE_TOKEN`` or the token file."""
        token = self.keyservice_token.get_secret_value() if self.keyservice_token else None
        if not token and self.keyservice_token_file:
            try:
                token = self.keyservice_token_file.read_text("utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"keyservice token_file {self.keyservice_token_file}: cannot read: "
                    f"{exc.strerror or exc}"
                ) from None
        return self.keyservice_url, token or None

    def policy(self) -> tuple[str, str]:
        return self.policy_live, self.policy_test

    @classmethod
    def env_name(cls, field: str) -> str:
        return ENV_PREFIX + field.upper()

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Every variable this model reads -> its field."""
        return {cls.env_name(f): f for f in cls.model_fields}


S = TypeVar("S", bound=Settings)


# --- files ----------------------------------------------------------------------------------


def user_config_path() -> Path:
    explicit = os.environ.get("KEYSWEEP_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "keysweep" / "config.toml"


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def repo_config(root: Path) -> tuple[dict[str, Any], str] | None:
    """A repository's own config: ``.keysweep.toml``, else ``[tool.keysweep]``."""
    base = root if root.is_dir() else root.parent
    candidate = base / ".keysweep.toml"
    if candidate.is_file():
        return read_toml(candidate), str(candidate)
    pyproject = base / "pyproject.toml"
    if pyproject.is_file():
        section = read_toml(pyproject).get("tool", {}).get("keysweep")
        if isinstance(section, dict):
            return section, f"{pyproject} [tool.keysweep]"
    return None


def _describe(key: tuple[str, ...]) -> str:
    return f"[{key[0]}] {key[1]}" if len(key) == 2 else key[0]


def flatten_file(
    cls: type[Settings], data: dict[str, Any], origin: str, trust: Trust
) -> tuple[dict[str, Any], list[str]]:
    """A file's tables as field values, checked against ``FILE_KEYS`` and ``trust``.

    Returns (values, warnings). Unknown keys raise ConfigError with a suggestion.
    """
    known = cls.FILE_KEYS
    tables = {k[0] for k in known if len(k) == 2}
    values: dict[str, Any] = {}
    warnings: list[str] = []
    ignored: list[str] = []
    for top, value in data.items():
        if top in tables:
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: [{top}] must be a table")
            items = [((top, k), v) for k, v in value.items()]
        else:
            items = [((top,), value)]
        for key, v in items:
            if key == ("keyservice", "token"):
                raise ConfigError(
                    f"{origin}: put no token in a config file; use KEYSWEEP_KEYSERVICE_TOKEN "
                    "or [keyservice] token_file"
                )
            if key not in known:
                names = [_describe(k) for k in known]
                close = difflib.get_close_matches(_describe(key), names, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(f"{origin}: unknown key {_describe(key)}{hint}")
            field, needs = known[key]
            if cls.model_fields[field].annotation == list[str] and not isinstance(v, list):
                raise ConfigError(
                    f"{origin}: {_describe(key)}: Input should be a valid list (got {v!r})"
                )
            if needs is Trust.OPERATOR and trust is Trust.REPO:
                ignored.append(_describe(key))
                continue
            values[field] = v
    if ignored:
        warnings.append(
            f"{origin}: ignored {', '.join(ignored)}: a repository's own config may only "
            "change what is detected; set these in ~/.config/keysweep/config.toml "
            "($KEYSWEEP_CONFIG), with --config FILE or in KEYSWEEP_* variables"
        )
    return values, warnings


def _field_of(cls: type[Settings], loc: tuple[Any, ...]) -> str:
    return str(loc[0]) if loc else "?"


def _format_errors(
    cls: type[Settings], exc: ValidationError, origins: dict[str, str], env: set[str]
) -> str:
    lines = []
    for err in exc.errors():
        field = _field_of(cls, err["loc"])
        if field in env:
            where = cls.env_name(field)
        else:
            file_key = next((k for k, (f, _) in cls.FILE_KEYS.items() if f == field), (field,))
            where = f"{origins.get(field, 'settings')}: {_describe(file_key)}"
        got = err.get("input")
        shown = (
            ""
            if isinstance(got, dict | list) or field.endswith(("token", "secret"))
            else (f" (got {got!r})")
        )
        lines.append(f"{where}: {err['msg']}{shown}")
    return "; ".join(lines)


def load_settings(
    explicit: Path | None = None,
    root: Path | None = None,
    cls: type[S] = Settings,  # type: ignore[assignment]
) -> S:
    """The settings for one command: the operator's file, then ``--config`` or the
    repository's own config, then the environment (see the module docstring)."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    warnings: list[str] = []
    detection_origin = None

    def layer(data: dict[str, Any], origin: str, trust: Trust) -> None:
        flat, warn = flatten_file(cls, data, origin, trust)
        values.update(flat)
        origins.update(dict.fromkeys(flat, origin))
        warnings.extend(warn)

    user = user_config_path()
    if user.is_file():
        layer(read_toml(user), str(user), Trust.OPERATOR)
    elif os.environ.get("KEYSWEEP_CONFIG"):
        raise ConfigError(f"KEYSWEEP_CONFIG: {user}: no such file")
    if explicit is not None:
        data = read_toml(explicit)
        if explicit.name == "pyproject.toml":
            data = data.get("tool", {}).get("keysweep", {})
        layer(data, str(explicit), Trust.OPERATOR)
        detection_origin = str(explicit)
    elif root is not None:
        found = repo_config(root)
        if found is not None:
            layer(found[0], found[1], Trust.REPO)
            detection_origin = found[1]
    env = {f for name, f in cls.env_names().items() if name in os.environ}
    try:
        settings = cls(**values)
    except ValidationError as exc:
        raise ConfigError(_format_errors(cls, exc, origins, env)) from None
    settings._warnings = warnings
    settings._origin = detection_origin
    return settings
