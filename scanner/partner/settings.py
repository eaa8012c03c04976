"""Settings of ``keysweep serve`` and of the GitHub token reporter: fields of the
one settings model (``scanner.settings``), so each is a ``KEYSWEEP_*`` variable
(``KEYSWEEP_`` plus the field's name in capitals) validated the same way."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import Field, PositiveFloat, PositiveInt, SecretStr, field_validator

from scanner.settings import ConfigError, Settings, StrList, load_settings


class ServeSettings(Settings):
    serve_host: str = "127.0.0.1"  # 0.0.0.0 in a container
    serve_port: int = Field(default=8080, ge=0, le=65535)  # 0: a free port
    serve_max_body: PositiveInt = 4 << 20  # bytes of one request body
    serve_max_tokens: PositiveInt = 10_000  # tokens in one request
    serve_timeout: PositiveFloat = 20.0  # one request, body upload included (GitHub waits 30 s)
    serve_label_wait: PositiveFloat = 2.0  # how long an answer waits for the key service
    serve_rate_limit: str = "100/second"  # per client address, `limits` notation
    serve_keys_refetch: PositiveFloat = 60.0  # at most one key-list fetch per this many s
    serve_forwarded_allow_ips: str = "127.0.0.1"  # proxies whose X-Forwarded-For is believed
    github_api_url: str = "https://api.github.com"
    github_tokens: StrList = Field(default_factory=list, repr=False)
    gitlab_token: SecretStr | None = None  # pre-shared token GitLab sends in Authorization
    gitlab_token_file: Path | None = None
    gitlab_token_types: StrList = Field(default_factory=lambda: ["mg_live", "mg_test"])

    @field_validator("serve_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError("must look like '100/second' or '6000/minute'") from None
        return value

    @property
    def keys_url(self) -> str:
        return f"{self.github_api_url.rstrip('/')}/meta/public_keys/secret_scanning"

    @property
    def github_token(self) -> str | None:
        """GitHub's key list is rate limited per address: a token avoids that (optional)."""
        return self.github_tokens[0] if self.github_tokens else None

    def gitlab_secret(self) -> str | None:
        if self.gitlab_token and self.gitlab_token.get_secret_value():
            return self.gitlab_token.get_secret_value()
        if self.gitlab_token_file:
            try:
                return self.gitlab_token_file.read_text("utf-8").strip() or None
            except OSError as exc:
                raise ConfigError(
                    f"KEYSWEEP_GITLAB_TOKEN_FILE {self.gitlab_token_file}: cannot read: "
                    f"{exc.strerror or exc}"
                ) from None
        return None


class ReportSettings(Settings):
    report_credentials: bool = False  # on in the background deployment
    report_public_key: str | None = None  # the fetch workers seal with it
    report_private_key: SecretStr | None = None  # the reporter opens with it
    report_private_key_file: Path | None = None
    report_every: PositiveFloat = 60.0  # seconds between requests (sooner when 1,000 wait)
    report_per_hour: PositiveInt = 60  # GitHub's limit for unauthenticated requests
    report_max_pending: PositiveInt = 100_000  # sealed tokens waiting; more are dropped


def serve_settings() -> ServeSettings:
    return load_settings(None, None, ServeSettings)


@cache
def report_settings() -> ReportSettings:
    return load_settings(None, None, ReportSettings)
