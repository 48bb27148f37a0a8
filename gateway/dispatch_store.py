"""The dispatch records' SQLite file in the data directory (survives a restart).

Every call runs on the dispatcher's one worker thread, never on the event
loop. Each dispatch is one row of JSON, rewritten whole when it changed; the
dispatcher batches changes (at most one write every 0.5 s).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict
from pathlib import Path

from gateway.dispatch_model import Delivery, Dispatch

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dispatch (
    id TEXT PRIMARY KEY,
    ts INTEGER NOT NULL,
    done INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dispatch_open ON dispatch(done, ts);
"""


class DispatchStore:
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def save_many(self, batch: list[Dispatch]) -> None:
        """Write these dispatches whole, in one transaction (one fsync)."""
        rows = [(d.id, d.ts, int(d.done), json.dumps(asdict(d), ensure_ascii=False)) for d in batch]
        self._db.execute("BEGIN")
        try:
            self._db.executemany("INSERT OR REPLACE INTO dispatch(id, ts, done, body) VALUES (?, ?, ?, ?)", rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def load(self, dispatch_id: str) -> Dispatch | None:
        row = self._db.execute("SELECT body FROM dispatch WHERE id = ?", (dispatch_id,)).fetchone()
        return _from_json(row[0]) if row else None

    def open_dispatches(self) -> list[Dispatch]:
        return [_from_json(r[0]) for r in self._db.execute("SELECT body FROM dispatch WHERE done = 0 ORDER BY ts")]

    def recent(self, limit: int) -> list[Dispatch]:
        return [_from_json(r[0]) for r in self._db.execute("SELECT body FROM dispatch ORDER BY ts DESC LIMIT ?", (limit,))]

    def close(self) -> None:
        self._db.close()


def _from_json(text: str) -> Dispatch:
    raw = json.loads(text)
    raw["deliveries"] = [Delivery(**d) for d in raw["deliveries"]]
    return Dispatch(**raw)
