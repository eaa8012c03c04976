"""Configuration for a scan: the settings model (``scanner.settings``) loaded for
one root, and the baseline it points at.

``Config`` is the settings model itself: a bare ``Config()`` is the defaults
plus the environment, without reading any file.
"""

from __future__ import annotations

from pathlib import Path

from scanner.settings import ConfigError, Settings, load_settings

Config = Settings
__all__ = ["DEFAULT_BASELINE", "Config", "ConfigError", "load_config", "resolve_baseline"]


def load_config(explicit: Path | None, root: Path | None) -> Settings:
    """``explicit`` (--config) wins over the repository's own ``.keysweep.toml`` or
    ``[tool.keysweep]``; the operator's file and the environment apply either way.
    Without --config, the repository's own ``.gitleaks.toml`` / ``.gitleaksignore``
    come along (scanner.gitleaks_compat): a team keeps its gitleaks tuning."""
    settings = load_settings(explicit, root)
    if explicit is None and root is not None:
        base = root if root.is_dir() else root.parent
        if (base / ".gitleaks.toml").is_file() or (base / ".gitleaksignore").is_file():
            from scanner.gitleaks_compat import load as load_gitleaks

            settings._gitleaks = load_gitleaks(base)
    return settings


DEFAULT_BASELINE = ".keysweep-baseline.json"


def resolve_baseline(explicit: Path | None, config: Settings, root: Path | None) -> Path | None:
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
