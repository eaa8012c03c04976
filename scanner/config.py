"""Configuration: ``.keysweep.toml`` or ``[tool.keysweep]`` in ``pyproject.toml``.

Keys (all optional)::

    disabled_rules = ["jwt"]                # rule ids to switch off
    exclude_paths = ["tests/fixtures/*"]    # fnmatch globs, relative to the scan root
    allowlist_regexes = ["^mg_test_0+"]     # a secret matching one is ignored
    allowed_hosts = ["git.example.com"]     # extra hosts `keysweep scan URL` may clone from
    max_file_size = 26214400                # bytes; larger files are skipped and counted
    baseline = ".keysweep-baseline.json"    # default: that file, when it exists
    [keyservice]
    url = "https://keys.example.com"        # or KEYSWEEP_KEYSERVICE_URL
    token_file = "/run/secrets/keyservice"  # or KEYSWEEP_KEYSERVICE_TOKEN (never the token itself)
    [policy]                                # per key environment: revoke | alert | ignore
    live = "revoke"                         # or KEYSWEEP_POLICY_LIVE
    test = "revoke"                         # or KEYSWEEP_POLICY_TEST
    [notify]                                # or the KEYSWEEP_NOTIFY_* / KEYSWEEP_SMTP_URL variables
    webhook_url = "https://hooks.example.com/keysweep"
    slack_url = "…"                         # a Slack incoming webhook
    smtp_url = "smtp://user:pass@mail.example.com:587"
    from = "keysweep <security@example.com>"
    [[rules]]                               # extra rules, same fields as the rule pack
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.errors import KeysweepError
from scanner.sources.files import DEFAULT_MAX_FILE_SIZE


class ConfigError(KeysweepError, ValueError):
    pass


@dataclass
class Config:
    disabled_rules: list[str] = field(default_factory=list)
    exclude_paths: list[str] = field(default_factory=list)
    allowlist_regexes: list[str] = field(default_factory=list)
    allowed_hosts: list[str] = field(default_factory=list)
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    rules: list[dict[str, Any]] = field(default_factory=list)
    baseline: str | None = None
    keyservice_url: str | None = None
    keyservice_token_file: str | None = None
    policy_live: str = "revoke"
    policy_test: str = "revoke"
    notify: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None
    gitleaks: Any = None  # scanner.gitleaks_compat.GitleaksPolicy, from the scanned repository

    def keyservice(self) -> tuple[str | None, str | None]:
        """(url, token): the environment wins over the file; the token is never in a file's text."""
        url = os.environ.get("KEYSWEEP_KEYSERVICE_URL") or self.keyservice_url
        token = os.environ.get("KEYSWEEP_KEYSERVICE_TOKEN")
        if not token and self.keyservice_token_file:
            try:
                token = Path(self.keyservice_token_file).read_text("utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"keyservice.token_file: cannot read: {exc.strerror}") from None
        return url, token

    def policy(self) -> tuple[str, str]:
        return (
            os.environ.get("KEYSWEEP_POLICY_LIVE") or self.policy_live,
            os.environ.get("KEYSWEEP_POLICY_TEST") or self.policy_test,
        )


def _list_of_str(d: dict[str, Any], key: str, origin: str) -> list[str]:
    v = d.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{origin}: {key} must be a list of strings")
    return list(v)


def from_mapping(d: dict[str, Any], origin: str) -> Config:
    known = {
        "disabled_rules",
        "exclude_paths",
        "allowlist_regexes",
        "allowed_hosts",
        "max_file_size",
        "rules",
    }
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"{origin}: unknown key(s) {', '.join(sorted(unknown))}")
    rules = d.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise ConfigError(f"{origin}: [[rules]] must be tables")
    size = d.get("max_file_size", DEFAULT_MAX_FILE_SIZE)
    if not isinstance(size, int) or size <= 0:
        raise ConfigError(f"{origin}: max_file_size must be a positive integer")
    ks = d.get("keyservice", {})
    policy = d.get("policy", {})
    notify = d.get("notify", {})
    if not all(isinstance(t, dict) for t in (ks, policy, notify)):
        raise ConfigError(f"{origin}: [keyservice], [policy] and [notify] must be tables")
    if "token" in ks:
        raise ConfigError(
            f"{origin}: put no token in a config file; use "
            "KEYSWEEP_KEYSERVICE_TOKEN or keyservice.token_file"
        )
    return Config(
        keyservice_url=ks.get("url"),
        keyservice_token_file=ks.get("token_file"),
        policy_live=str(policy.get("live", "revoke")),
        policy_test=str(policy.get("test", "revoke")),
        notify=notify,
        disabled_rules=_list_of_str(d, "disabled_rules", origin),
        exclude_paths=_list_of_str(d, "exclude_paths", origin),
        allowlist_regexes=_list_of_str(d, "allowlist_regexes", origin),
        allowed_hosts=_list_of_str(d, "allowed_hosts", origin),
        max_file_size=size,
        rules=rules,
        baseline=str(d["baseline"]) if d.get("baseline") else None,
        origin=origin,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_config(explicit: Path | None, root: Path | None) -> Config:
    """``explicit`` (--config) wins; else ``.keysweep.toml``, else pyproject's [tool.keysweep].
    A scanned directory's own ``.gitleaks.toml`` / ``.gitleaksignore`` come along
    (scanner.gitleaks_compat): a team keeps its gitleaks tuning."""
    config = _load_config(explicit, root)
    if root is not None:
        from scanner.gitleaks_compat import load as load_gitleaks

        config.gitleaks = load_gitleaks(root if root.is_dir() else root.parent)
    return config


def _load_config(explicit: Path | None, root: Path | None) -> Config:
    if explicit is not None:
        data = _read_toml(explicit)
        if explicit.name == "pyproject.toml":
            data = data.get("tool", {}).get("keysweep", {})
        return from_mapping(data, str(explicit))
    if root is None:
        return Config()
    base = root if root.is_dir() else root.parent
    candidate = base / ".keysweep.toml"
    if candidate.is_file():
        return from_mapping(_read_toml(candidate), str(candidate))
    pyproject = base / "pyproject.toml"
    if pyproject.is_file():
        section = _read_toml(pyproject).get("tool", {}).get("keysweep")
        if isinstance(section, dict):
            return from_mapping(section, f"{pyproject} [tool.keysweep]")
    return Config()


DEFAULT_BASELINE = ".keysweep-baseline.json"


def resolve_baseline(explicit: Path | None, config: Config, root: Path | None) -> Path | None:
    """--baseline, else the config's ``baseline``, else ``.keysweep-baseline.json`` if present."""
    if explicit is not None:
        return explicit
    if root is None:
        return None
    base = root if root.is_dir() else root.parent
    if config.baseline:
        return base / config.baseline
    default = base / DEFAULT_BASELINE
    return default if default.is_file() else None
