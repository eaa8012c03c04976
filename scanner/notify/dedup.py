"""What was already said: at most one alert per (key, channel) for the same leak.

A claim is taken in two steps, so a worker that dies between them loses nothing:

* ``claim(key, holder)`` marks the key *pending* for one ``notify`` call (the holder)
  for ``pending_ttl`` seconds. It is atomic (set-if-absent across holders), so two
  workers cannot both send; a pending claim whose holder died lapses and the redone
  work takes it. The same holder claiming again gets it: a call retried after its
  reply was lost (Redis restarting) must not lose its own claim. (A ``notify`` call
  never claims one key twice; it keeps its own set.) The answer says which:
  ``Claim.TAKEN`` (true), ``Claim.SENT`` (said already: skip it) or ``Claim.BUSY``
  (pending for another holder, who may yet die without sending: not said, so the
  caller must come back after ``pending_ttl``, never count it as said).
* ``hold(keys, holder)`` renews the holder's claims just before a message leaves
  (and retakes any that lapsed and nobody took); anything but ``TAKEN`` means one
  is sent or pending for another holder now: the caller gives its claims back and
  comes again (the rest may be unsaid).
* ``confirm(keys)`` marks them *sent* (kept: in Redis for ``SENT_TTL``); ``release(keys, holder)``
  gives back a pending claim after a delivery that finally failed, so a later run
  tries again.

In-process for tests, SQLite for the command line (survives repeated runs), Redis
for the workers (``workers.state``). Keys are hashes of ids, never a secret.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Protocol

SENT_TTL = 90 * 24 * 3600  # seconds a sent claim is kept where keys expire (Redis)
PENDING_TTL = 15.0  # seconds a pending claim holds where no ledger lease sets it


class Claim(Enum):
    """What ``claim`` found: true only when the claim is the caller's now."""

    TAKEN = "taken"
    SENT = "sent"  # said already
    BUSY = "busy"  # pending for another holder: not said yet, maybe never

    def __bool__(self) -> bool:
        return self is Claim.TAKEN


class DedupStore(Protocol):
    def claim(self, key: str, holder: str) -> Claim: ...

    def hold(self, keys: Iterable[str], holder: str) -> Claim: ...

    def confirm(self, keys: Iterable[str]) -> None: ...

    def release(self, keys: Iterable[str], holder: str) -> None: ...


def _first_refusal(claims: list[Claim]) -> Claim:
    """TAKEN when every claim is; else the first that is not."""
    return next((c for c in claims if not c), Claim.TAKEN)


class MemoryDedup:
    def __init__(self, pending_ttl: float = PENDING_TTL) -> None:
        self.pending_ttl = pending_ttl
        self.claims: dict[str, tuple[str | None, float]] = {}  # key -> (holder or None, at)
        self._lock = threading.Lock()

    def _take(self, key: str, holder: str, now: float, renew: bool) -> Claim:
        got = self.claims.get(key)
        if (
            got is None
            or (renew and got[0] == holder)
            or (got[0] is not None and now - got[1] > self.pending_ttl)
        ):
            self.claims[key] = (holder, now)
            return Claim.TAKEN
        return Claim.SENT if got[0] is None else Claim.BUSY

    def claim(self, key: str, holder: str) -> Claim:
        with self._lock:
            return self._take(key, holder, time.monotonic(), renew=True)

    def hold(self, keys: Iterable[str], holder: str) -> Claim:
        with self._lock:
            now = time.monotonic()
            return _first_refusal([self._take(k, holder, now, renew=True) for k in keys])

    def confirm(self, keys: Iterable[str]) -> None:
        with self._lock:
            for k in keys:
                self.claims[k] = (None, time.monotonic())

    def release(self, keys: Iterable[str], holder: str) -> None:
        with self._lock:
            for k in keys:
                if self.claims.get(k, (None, 0.0))[0] == holder:
                    del self.claims[k]


def default_state_dir(explicit: Path | None = None) -> Path:
    """``KEYSWEEP_STATE_DIR`` (the settings' ``state_dir``), else the XDG state home."""
    if explicit is not None:
        return explicit
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "keysweep"


class SqliteDedup:
    """A small SQLite table of claimed keys: ``holder`` is set while pending, NULL once sent."""

    def __init__(self, path: Path | None = None, pending_ttl: float = PENDING_TTL) -> None:
        self.path = path or default_state_dir() / "notified.sqlite3"
        self.pending_ttl = pending_ttl
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, at REAL)")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(claims)")}
        if "holder" not in columns:  # a table from before two-step claims: all were sent
            self._db.execute("ALTER TABLE claims ADD COLUMN holder TEXT")
        self._lock = threading.Lock()

    def _take(self, key: str, holder: str, renew: bool) -> Claim:
        now = time.time()
        cur = self._db.execute(
            "INSERT INTO claims (key, at, holder) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE"
            " SET at = excluded.at, holder = excluded.holder"
            " WHERE (? AND claims.holder = excluded.holder)"
            " OR (claims.holder IS NOT NULL AND claims.at < ?)",
            (key, now, holder, renew, now - self.pending_ttl),
        )
        if cur.rowcount == 1:
            return Claim.TAKEN
        row = self._db.execute("SELECT holder FROM claims WHERE key = ?", (key,)).fetchone()
        # No row: its holder gave it back between the two statements; not said, so busy.
        return Claim.SENT if row is not None and row[0] is None else Claim.BUSY

    def claim(self, key: str, holder: str) -> Claim:
        with self._lock:
            return self._take(key, holder, renew=True)

    def hold(self, keys: Iterable[str], holder: str) -> Claim:
        with self._lock:
            return _first_refusal([self._take(k, holder, renew=True) for k in keys])

    def confirm(self, keys: Iterable[str]) -> None:
        with self._lock:
            now = time.time()
            self._db.executemany(
                "INSERT INTO claims (key, at, holder) VALUES (?, ?, NULL) ON CONFLICT(key)"
                " DO UPDATE SET at = excluded.at, holder = NULL",
                [(k, now) for k in keys],
            )

    def release(self, keys: Iterable[str], holder: str) -> None:
        with self._lock:
            self._db.executemany(
                "DELETE FROM claims WHERE key = ? AND holder = ?", [(k, holder) for k in keys]
            )
