"""``keysweep serve`` settings, from the environment (12-factor), read once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from scanner.errors import KeysweepError

DEFAULT_GITLAB_TYPES = ("mg_live", "mg_test")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise KeysweepError(f"{name} must be a whole number, not {raw!r}") from None
    if value <= 0:
        raise KeysweepError(f"{name} must be positive")
    return value


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise KeysweepError(f"{name} must be a number of seconds, not {raw!r}") from None
    if value <= 0:
        raise KeysweepError(f"{name} must be positive")
    return value


@dataclass(frozen=True)
class ServeSettings:
    max_body: int = 4 << 20  # bytes of one request body
    max_tokens: int = 10_000  # tokens in one request
    request_timeout: float = 20.0  # the whole request, body upload included (GitHub waits 30 s)
    label_wait: float = 2.0  # how long an answer may wait for the key service's labels
    rate_limit: str = "100/second"  # per client address, `limits` notation
    github_api_url: str = "https://api.github.com"
    github_token: str | None = None  # optional: GitHub's key list is rate limited per IP
    keys_refetch: float = 60.0  # at most one key-list fetch per this many seconds
    gitlab_token: str | None = None  # pre-shared token GitLab sends in Authorization
    gitlab_types: tuple[str, ...] = DEFAULT_GITLAB_TYPES
    keyservice_url: str | None = None
    keyservice_token: str | None = None

    @property
    def keys_url(self) -> str:
        return f"{self.github_api_url}/meta/public_keys/secret_scanning"

    @classmethod
    def from_env(cls) -> ServeSettings:
        from limits import parse

        rate = os.environ.get("KEYSWEEP_SERVE_RATE_LIMIT") or cls.rate_limit
        try:
            parse(rate)
        except ValueError:
            raise KeysweepError(
                f"KEYSWEEP_SERVE_RATE_LIMIT must look like '100/second' or '6000/minute', "
                f"not {rate!r}"
            ) from None
        gitlab_token = os.environ.get("KEYSWEEP_GITLAB_TOKEN") or None
        token_file = os.environ.get("KEYSWEEP_GITLAB_TOKEN_FILE")
        if not gitlab_token and token_file:
            try:
                gitlab_token = Path(token_file).read_text("utf-8").strip() or None
            except OSError as exc:
                raise KeysweepError(
                    f"KEYSWEEP_GITLAB_TOKEN_FILE: cannot read {token_file}: {exc.strerror}"
                ) from None
        types = tuple(
            t.strip()
            for t in os.environ.get("KEYSWEEP_GITLAB_TOKEN_TYPES", "").split(",")
            if t.strip()
        )
        tokens = [t for t in os.environ.get("KEYSWEEP_GITHUB_TOKENS", "").split(",") if t.strip()]
        return cls(
            max_body=_int("KEYSWEEP_SERVE_MAX_BODY", cls.max_body),
            max_tokens=_int("KEYSWEEP_SERVE_MAX_TOKENS", cls.max_tokens),
            request_timeout=_float("KEYSWEEP_SERVE_TIMEOUT", cls.request_timeout),
            label_wait=_float("KEYSWEEP_SERVE_LABEL_WAIT", cls.label_wait),
            rate_limit=rate,
            github_api_url=os.environ.get("KEYSWEEP_GITHUB_API_URL", cls.github_api_url).rstrip(
                "/"
            ),
            github_token=tokens[0].strip() if tokens else None,
            keys_refetch=_float("KEYSWEEP_SERVE_KEYS_REFETCH", cls.keys_refetch),
            gitlab_token=gitlab_token,
            gitlab_types=types or DEFAULT_GITLAB_TYPES,
            keyservice_url=os.environ.get("KEYSWEEP_KEYSERVICE_URL") or None,
            keyservice_token=os.environ.get("KEYSWEEP_KEYSERVICE_TOKEN") or None,
        )
