"""The outbox's SQLite file: one writer, WAL, fsync on every group commit.

All calls run on the outbox's single writer thread (never on the event
loop). A database that is corrupt or not ours is moved aside with a clear
reason and a fresh one started: never silently discarded, never a crash.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
APPLICATION_ID = 0x46475742  # "FGWB": tells our file from any other SQLite file
ROW_OVERHEAD = 48  # bytes counted per row on top of topic and payload (ids, class, timestamps)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,          -- global enqueue order
    class INTEGER NOT NULL,          -- 0 acks/critical, 1 positions, 2 telemetry/events, 3 bulk
    device TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    ts INTEGER NOT NULL              -- enqueue time, epoch ms
);
CREATE INDEX IF NOT EXISTS outbox_by_class ON outbox(class, id);
CREATE TABLE IF NOT EXISTS position_seq (device TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(slots=True)
class Row:
    id: int
    cls: int
    device: str
    topic: str
    payload: bytes
    qos: int
    ts: int

    @property
    def size(self) -> int:
        return len(self.payload) + len(self.topic) + ROW_OVERHEAD


class DiskFull(Exception):
    """The disk (or the file system quota) refused a write."""


class OutboxStore:
    def __init__(self, path: Path | None, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self.moved_aside: str | None = None  # a notice when a bad file was set aside at open
        self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        if self.path is None:
            return self._init(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))
        try:
            return self._init(sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False))
        except (sqlite3.DatabaseError, ValueError) as exc:
            aside = self.path.with_name(f"{self.path.name}.bad-{time.strftime('%Y%m%dT%H%M%S')}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(self.path) + suffix)
                if src.exists():
                    src.rename(Path(str(aside) + suffix))
            self.moved_aside = f"outbox database {self.path} was unreadable ({exc}); moved aside to {aside}, a fresh outbox started"
            log.error("%s", self.moved_aside)
            return self._init(sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False))

    def _init(self, db: sqlite3.Connection) -> sqlite3.Connection:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and app_id != APPLICATION_ID:
            db.close()
            raise ValueError("not a fieldgw outbox (foreign SQLite file)")
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            db.close()
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            db.close()
            raise ValueError(f"outbox schema {version} is from a newer fieldgw (this one knows {SCHEMA_VERSION})")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return db

    # --- reads at start -------------------------------------------------------
    def position_seqs(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT device, value FROM position_seq").fetchall())

    def next_id(self) -> int:
        return (self.db.execute("SELECT MAX(id) FROM outbox").fetchone()[0] or 0) + 1

    def totals(self) -> dict[int, tuple[int, int]]:
        """Per class: (rows, bytes)."""
        rows = self.db.execute(
            f"SELECT class, COUNT(*), SUM(LENGTH(payload) + LENGTH(topic) + {ROW_OVERHEAD}) FROM outbox GROUP BY class")
        return {cls: (n, size or 0) for cls, n, size in rows}

    def oldest_ts(self) -> dict[int, int]:
        return dict(self.db.execute("SELECT class, MIN(ts) FROM outbox GROUP BY class").fetchall())

    def page(self, cls: int, after_id: int, limit: int) -> list[Row]:
        cur = self.db.execute(
            "SELECT id, class, device, topic, payload, qos, ts FROM outbox WHERE class=? AND id>? ORDER BY id LIMIT ?",
            (cls, after_id, limit))
        return [Row(*r) for r in cur]

    def oldest_ids(self, cls: int, limit: int, exclude: set[int]) -> list[tuple[int, str, int]]:
        """(id, device, size) of the oldest rows of a class, skipping rows in flight."""
        cur = self.db.execute(
            f"SELECT id, device, LENGTH(payload) + LENGTH(topic) + {ROW_OVERHEAD} FROM outbox WHERE class=? ORDER BY id LIMIT ?",
            (cls, limit + len(exclude)))
        return [r for r in cur if r[0] not in exclude][:limit]

    # --- the group commit -------------------------------------------------------
    def commit(self, rows: list[Row], delete_ids: list[int], seqs: dict[str, int]) -> None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            if rows:
                self.db.executemany(
                    "INSERT INTO outbox(id, class, device, topic, payload, qos, ts) VALUES (?,?,?,?,?,?,?)",
                    [(r.id, r.cls, r.device, r.topic, r.payload, r.qos, r.ts) for r in rows])
            if delete_ids:
                self.db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in delete_ids])
            if seqs:
                self.db.executemany(
                    "INSERT INTO position_seq(device, value) VALUES (?, ?) "
                    "ON CONFLICT(device) DO UPDATE SET value=excluded.value", list(seqs.items()))
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            if "full" in str(exc).lower() or "disk" in str(exc).lower():
                raise DiskFull(str(exc)) from None
            raise

    def close(self) -> None:
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self.db.close()
