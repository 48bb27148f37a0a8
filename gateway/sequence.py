"""Per-device position sequence numbers that survive restarts (CONTRACT.md §3 `seq`).

Kept in SQLite (WAL, synchronous=NORMAL) in the data directory: a counter is
written in the same step that hands it out, so a restart, even kill -9,
continues where it stopped and a consumer can prove nothing is missing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class SequenceStore:
    def __init__(self, path: Path | None) -> None:
        self._db = sqlite3.connect(str(path) if path else ":memory:", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seq (device TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        self._cache: dict[str, int] = dict(self._db.execute("SELECT device, value FROM seq").fetchall())

    def next(self, device: str) -> int:
        value = self._cache.get(device, 0) + 1
        self._db.execute(
            "INSERT INTO seq(device, value) VALUES(?, ?) ON CONFLICT(device) DO UPDATE SET value=excluded.value",
            (device, value),
        )
        self._cache[device] = value
        return value

    def current(self, device: str) -> int:
        return self._cache.get(device, 0)

    def close(self) -> None:
        self._db.close()
