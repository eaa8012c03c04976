"""Resolve: which of our keys were found, and whose are they.

Only findings of ``owner = "keyservice"`` rules are looked up, by SHA-256,
never by cleartext; third-party hashes never reach our key service. Hashes the
service does not know are remembered for a while (negative cache) so the same
unknown candidate is not asked about again and again: in-process here, in
Redis for the workers.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from scanner.findings import Finding

if TYPE_CHECKING:
    from scanner.keyservice import KeyRecord, KeyServiceClient


class NegativeCache(Protocol):
    def known_unknown(self, hashes: list[str]) -> set[str]: ...

    def remember_unknown(self, hashes: Iterable[str]) -> None: ...


class MemoryNegativeCache:
    """Bounded (LRU) and expiring: a key issued later is found after ``ttl`` seconds."""

    def __init__(
        self,
        maxsize: int = 100_000,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maxsize = maxsize
        self.ttl = ttl
        self.clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def known_unknown(self, hashes: list[str]) -> set[str]:
        now = self.clock()
        out = set()
        for h in hashes:
            expires = self._seen.get(h)
            if expires is None:
                continue
            if expires <= now:
                del self._seen[h]
                continue
            self._seen.move_to_end(h)
            out.add(h)
        return out

    def remember_unknown(self, hashes: Iterable[str]) -> None:
        expires = self.clock() + self.ttl
        for h in hashes:
            self._seen[h] = expires
            self._seen.move_to_end(h)
        while len(self._seen) > self.maxsize:
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)


@dataclass
class Owned:
    """One of our keys found by a scan, and what the key service says about it."""

    finding: Finding
    record: KeyRecord | None  # None: well-formed but never issued (or not ours)


def resolve(
    findings: list[Finding], client: KeyServiceClient, cache: NegativeCache | None = None
) -> list[Owned]:
    """A run-on key (``run_sha256``: KEY_old, KEY-backup) is asked about twice in the
    same batch, as the key and as the whole run; the service's answer decides: a record
    for the run's hash means the run is the key (its key_id is the one acted on)."""
    ours = [f for f in findings if f.owner == "keyservice"]
    hashes = sorted({h for f in ours for h in (f.secret_sha256, f.run_sha256) if h})
    skip = cache.known_unknown(hashes) if cache is not None else set()
    ask = [h for h in hashes if h not in skip]
    records = client.lookup(ask) if ask else {}
    if cache is not None:
        cache.remember_unknown(h for h in ask if h not in records)
    return [Owned(f, _record(f, records)) for f in ours]


def _record(f: Finding, records: dict[str, KeyRecord]) -> KeyRecord | None:
    if f.run_sha256 and f.run_sha256 in records:
        return records[f.run_sha256]
    return records.get(f.secret_sha256)
