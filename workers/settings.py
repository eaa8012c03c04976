"""The background deployment's settings: the one settings model (``scanner.settings``)
plus what only the workers read. Environment first (12-factor), then the
operator's file (``$KEYSWEEP_CONFIG``); read once per process."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import ClassVar

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

from scanner.settings import Settings, StrList, load_settings


class WorkerSettings(Settings):
    broker_url: str = "redis://127.0.0.1:6379/0"
    redis_url: str = "redis://127.0.0.1:6379/1"
    redis_prefix: str = Field(default="keysweep", pattern=r"^[A-Za-z0-9_.-]+$")
    github_api_url: str = "https://api.github.com"
    github_tokens: StrList = Field(default_factory=list, repr=False)
    github_concurrency: PositiveInt = 20  # global cap on in-flight GitHub requests
    poll_every: PositiveFloat = 5.0  # scheduler tick; the pollers also obey X-Poll-Interval
    clone_hosts: StrList = Field(default_factory=lambda: ["github.com"])
    clone_http_hosts: StrList = Field(default_factory=list)  # plain http: a local simulator only
    metrics_port: NonNegativeInt = Field(default=9808, le=65535)  # 0: no exporter
    heartbeat_file: Path = Path("/tmp/keysweep-worker-alive")

    # Fixed by design, not configuration.
    dedupe_ttl: ClassVar[int] = 7 * 24 * 3600
    negative_cache_ttl: ClassVar[int] = 3600
    max_gist_file: ClassVar[int] = 10 * 1024 * 1024

    @property
    def prefix(self) -> str:
        return self.redis_prefix


@cache
def settings() -> WorkerSettings:
    s = load_settings(None, None, WorkerSettings)
    return s.model_copy(update={"github_api_url": s.github_api_url.rstrip("/")})
