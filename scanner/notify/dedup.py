"""What was already said: at most one alert per (key, channel) for the same leak.

``claim`` is atomic (set-if-absent), so two workers cannot both send; a
delivery that finally fails ``release``s its claim so a later run tries again.
In-process for tests, SQLite for the command line (survives repeated runs),
Redis for the workers (``workers.state``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol


class DedupStore(Protocol):
    def claim(self, key: str) -> bool: ...

    def release(self, key: str) -> None: ...


class MemoryDedup:
    def __init__(self) -> None:
        self.keys: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, key: str) -> bool:
        with self._lock:
            if key in self.keys:
                return False
            self.keys.add(key)
            return True

    def release(self, key: str) -> None:
        with self._lock:
            self.keys.discard(key)


def default_state_dir(explicit: Path | None = None) -> Path:
    """``KEYSWEEP_STATE_DIR`` (the settings' ``state_dir``), else the XDG state home."""
    if explicit is not None:
        return explicit
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return Path(base) / "keysweep"


class SqliteDedup:
    """A small SQLite table of claimed keys (hashes of ids, never a secret)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_state_dir() / "notified.sqlite3"
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, at REAL)")
        self._lock = threading.Lock()

    def claim(self, key: str) -> bool:
        with self._lock:
            cur = self._db.execute("INSERT OR IGNORE INTO claims VALUES (?, ?)", (key, time.time()))
            return cur.rowcount == 1

    def release(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM claims WHERE key = ?", (key,))
