"""Runtime settings of the simulator: set by command-line flags, changed live
through ``POST /_sim/config`` (and ``POST /_sim/rate`` for the generator)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

KINDS = ("live", "test", "third_party", "near_miss")


@dataclass
class SimConfig:
    # /events
    poll_interval: float = 60.0  # X-Poll-Interval, seconds
    # primary rate limit (per token; unauthenticated callers per IP)
    rate_limit: int = 5000
    unauth_rate_limit: int = 60
    rate_window: float = 3600.0
    # secondary rate limits
    max_concurrent: int = 100
    points_per_minute: int = 900  # per token and endpoint
    # size limits
    max_patch_bytes: int = 1 << 20  # a file diff over this has no "patch"
    compare_max_files: int = 300
    commit_max_files: int = 3000
    compare_error_over_files: int = 0  # >0: compares with more files answer an error
    compare_error_status: int = 502
    gist_truncate_bytes: int = 1 << 20
    gist_clone_bytes: int = 10 << 20
    # tokens accepted (None: any token)
    valid_tokens: list[str] | None = None
    # background generator
    rate: float = 0.0  # documents per second
    plant_every: int = 0  # plant one item in every Nth document (0: never)
    plant_kinds: list[str] = field(default_factory=lambda: list(KINDS))
    gist_ratio: float = 0.3
    noise_ratio: float = 0.25  # noise events per document
    public_repo_ratio: float = 0.0  # PublicEvents per document
    third_party_rules: list[str] = field(default_factory=list)  # third-party rules to plant
    key_line_suffix: str = ""  # appended to each planted mg_ key's line ("  # gitleaks:allow")
    new_branch_ratio: float = 0.15
    # memory
    retain_docs: int = 20_000

    def json(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, data: dict[str, Any]) -> None:
        """Apply known settings; raises ValueError naming an unknown or ill-typed one."""
        known = {f.name: f for f in fields(self)}
        staged: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}")
            current = getattr(self, name)
            if name == "valid_tokens":
                if value is not None and (
                    not isinstance(value, list) or not all(isinstance(v, str) for v in value)
                ):
                    raise ValueError("valid_tokens must be null or a list of strings")
            elif name == "third_party_rules":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError("third_party_rules must be a list of rule ids")
            elif name == "key_line_suffix":
                if not isinstance(value, str) or "\n" in value:
                    raise ValueError("key_line_suffix must be a one-line string")
            elif name == "plant_kinds":
                if not isinstance(value, list) or not value or set(value) - set(KINDS):
                    raise ValueError(f"plant_kinds must be a non-empty list of {KINDS}")
            elif isinstance(current, bool) or isinstance(value, bool):
                raise ValueError(f"{name} has the wrong type")
            elif isinstance(current, int) and not isinstance(current, bool):
                if not isinstance(value, int) or value < 0:
                    raise ValueError(f"{name} must be a non-negative integer")
            elif isinstance(current, float):
                if not isinstance(value, int | float) or value < 0:
                    raise ValueError(f"{name} must be a non-negative number")
                value = float(value)
            staged[name] = value
        for name, value in staged.items():
            setattr(self, name, value)
