"""Worker settings, from environment variables (12-factor), read once per process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache


def _list(name: str, default: str = "") -> list[str]:
    return [x.strip() for x in os.environ.get(name, default).split(",") if x.strip()]


def _float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class Settings:
    broker_url: str = "redis://127.0.0.1:6379/0"
    redis_url: str = "redis://127.0.0.1:6379/1"
    github_api_url: str = "https://api.github.com"
    github_tokens: tuple[str, ...] = ()
    github_concurrency: int = 20  # global cap on in-flight GitHub requests (GitHub allows 100)
    poll_every: float = 5.0  # how often beat asks the pollers; they also obey X-Poll-Interval
    dedupe_ttl: int = 7 * 24 * 3600
    negative_cache_ttl: int = 3600
    max_gist_file: int = 10 * 1024 * 1024
    clone_hosts: tuple[str, ...] = ("github.com",)
    clone_http_hosts: tuple[str, ...] = ()  # plain-http clone allowed (the simulator only)
    prefix: str = "keysweep"
    extra: dict[str, str] = field(default_factory=dict)


@cache
def settings() -> Settings:
    return Settings(
        broker_url=os.environ.get("KEYSWEEP_BROKER_URL", Settings.broker_url),
        redis_url=os.environ.get("KEYSWEEP_REDIS_URL", Settings.redis_url),
        github_api_url=os.environ.get("KEYSWEEP_GITHUB_API_URL", Settings.github_api_url).rstrip(
            "/"
        ),
        github_tokens=tuple(_list("KEYSWEEP_GITHUB_TOKENS")),
        github_concurrency=int(_float("KEYSWEEP_GITHUB_CONCURRENCY", 20)),
        poll_every=_float("KEYSWEEP_POLL_EVERY", 5.0),
        clone_hosts=tuple(_list("KEYSWEEP_CLONE_HOSTS", "github.com")),
        clone_http_hosts=tuple(_list("KEYSWEEP_CLONE_HTTP_HOSTS")),
        prefix=os.environ.get("KEYSWEEP_REDIS_PREFIX", "keysweep"),
    )
