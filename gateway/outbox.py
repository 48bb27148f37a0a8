"""The durable store-and-forward outbox: nothing published from data is lost.

- `put()` is synchronous and cheap; a writer task commits what arrived in
  one transaction (group commit, fsync'd). An ack, a critical event or a
  position is committed as soon as the previous commit finished (waiting 2 ms
  more when messages stream in), taking everything pending with it; other
  telemetry, info events and bulk wait at most LAZY_WITHIN_S (50 ms) for a
  commit to share, so a steady telemetry stream costs a few commits a second
  instead of one per message. A message becomes sendable only once it is on
  disk, and leaves the disk only after the broker's PUBACK (`acked()`; the
  deletes go with the next commit, at the latest DELETE_WITHIN_S later).
- Classes drain in order: 0 command acks and critical events, 1 positions,
  2 other telemetry and events, 3 bulk; inside a class, enqueue order, which
  keeps per-device order.
- Memory holds at most `MEM_PER_CLASS` sendable messages per class; a longer
  backlog stays on disk and is paged in as the queue drains.
- Disk is capped (`cap_bytes`): when over, the oldest messages of the lowest
  class present go first (never class 0), each counted and reported.
- Optional position thinning: once the position backlog is older than
  `thin_after_s`, at most one position per device per `thin_every_s` is
  admitted.
- If the disk refuses a write, messages are kept (and sent) from memory and
  the commit is retried with backoff; when memory fills, the lowest class
  is dropped first, counted, never class 0.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.backoff import Backoff
from gateway.model import now_ms
from gateway.outbox_store import DiskFull, OutboxStore, Row

log = logging.getLogger(__name__)

URGENT, POSITIONS, TELEMETRY, BULK = 0, 1, 2, 3
CLASS_NAMES = ("urgent", "positions", "telemetry", "bulk")
MEM_PER_CLASS = 20_000
PAGE = 2_000
MEM_UNWRITTEN_LIMIT = 100_000  # messages held in memory while the disk refuses writes
DEFAULT_CAP_BYTES = 512 * 1024 * 1024
BUSY_WITHIN_S = 0.005  # a commit this soon after the last one means messages are streaming in …
GATHER_S = 0.002  # … so wait this long to batch them (bounded added latency, far fewer fsyncs)
DELETE_WITHIN_S = 0.05  # acknowledged messages leave the disk at the latest this long after their PUBACK
LAZY_WITHIN_S = 0.05  # telemetry, info events and bulk may wait this long for a commit to share (see put())

DropReport = Callable[[str, int, int, str], None]  # device, class, count, reason


@dataclass(slots=True)
class Item:
    row: Row
    replayed: bool


@dataclass
class _Class:
    ready: deque[Item] = field(default_factory=deque)
    tail_id: int = 0  # rows of this class with a higher id are on disk only while `spilled`
    spilled: bool = False
    spill_gen: int = 0
    paging: asyncio.Task[None] | None = None
    rows: int = 0
    bytes: int = 0
    dropped: int = 0


class Outbox:
    def __init__(self, path: Path | None, cap_bytes: int = DEFAULT_CAP_BYTES, thin_every_s: float | None = None,
                 thin_after_s: float = 60.0, on_drop: DropReport | None = None, synchronous: str = "FULL") -> None:
        self.path = path
        self.cap_bytes = cap_bytes
        self.thin_every_s = thin_every_s
        self.thin_after_s = thin_after_s
        self.on_drop = on_drop
        self.synchronous = synchronous
        self.online = False  # set by the uplink manager: messages put while offline are flagged `replayed`
        self.classes = [_Class() for _ in CLASS_NAMES]
        self.thinned = 0
        self.sent = 0
        self.disk_full: str | None = None
        self.notice: str | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-writer")
        self._store: OutboxStore | None = None
        self._next_id = 1
        self._seqs: dict[str, int] = {}
        self._seqs_dirty: dict[str, int] = {}
        self._pending: list[Item] = []  # put, not yet committed
        self._unwritten: dict[int, Item] = {}  # refused by a full disk, kept in memory
        self._acked: list[int] = []
        self._inflight: dict[int, Item] = {}
        self._last_admitted: dict[str, int] = {}
        self._wake_writer = asyncio.Event()
        self._ready = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._delete_timer: asyncio.TimerHandle | None = None
        self._lazy_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._store = store = await self._run(OutboxStore, self.path, self.synchronous)
        self.notice = store.moved_aside
        self._seqs = await self._run(store.position_seqs)
        self._next_id = await self._run(store.next_id)
        for cls, (rows, size) in (await self._run(store.totals)).items():
            c = self.classes[cls]
            c.rows, c.bytes, c.spilled = rows, size, rows > 0
        self._writer = asyncio.create_task(self._write_loop(), name="outbox-writer")

    # --- producers ----------------------------------------------------------
    def next_position_seq(self, device: str) -> int:
        value = self._seqs.get(device, 0) + 1
        self._seqs[device] = value
        self._seqs_dirty[device] = value
        return value

    def admit_position(self, device: str, ts: int) -> bool:
        """False when thinning is on, the backlog is long and this device had a position recently."""
        if not self.thin_every_s:
            return True
        oldest = self.oldest_ts(POSITIONS)
        if oldest is None or now_ms() - oldest < self.thin_after_s * 1000:
            self._last_admitted[device] = ts
            return True
        if ts - self._last_admitted.get(device, 0) >= self.thin_every_s * 1000:
            self._last_admitted[device] = ts
            return True
        self.thinned += 1
        return False

    def put(self, topic: str, payload: bytes, cls: int, device: str, qos: int = 1) -> None:
        row = Row(self._next_id, cls, device, topic, payload, qos, now_ms())
        self._next_id += 1
        c = self.classes[cls]
        c.rows += 1
        c.bytes += row.size
        self._pending.append(Item(row, replayed=not self.online))
        if cls < TELEMETRY or self._loop is None:
            self._wake_writer.set()  # acks, critical events, positions: committed at once
        elif self._lazy_timer is None:
            # The rest shares a commit with whatever arrives within LAZY_WITHIN_S (or with the next urgent
            # message): at 100 telemetry messages/s this is ~20 commits/s instead of ~100, each commit costing
            # a thread hand-off and SQLite's own work. Nothing is sent before its commit, as for every class.
            self._lazy_timer = self._loop.call_later(LAZY_WITHIN_S, self._lazy_due)

    # --- the writer -----------------------------------------------------------
    async def _write_loop(self) -> None:
        assert self._store is not None
        backoff = Backoff(initial=0.5, maximum=30.0, reset_after=0.0)
        loop = asyncio.get_running_loop()
        last_commit = 0.0
        wake = self._wake_writer
        while True:
            if self._closing and not self._pending and not self._acked and not self._seqs_dirty:
                return
            if not (self._unwritten or self._closing):
                await wake.wait()  # a put, a drop, close(), or pending deletes due (`acked` arms a 50 ms timer)
            wake.clear()
            if not (self._pending or self._acked or self._seqs_dirty or self._unwritten or self._closing):
                continue
            if loop.time() - last_commit < BUSY_WITHIN_S and not self._closing:
                await asyncio.sleep(GATHER_S)  # under load: let a few more messages share this commit
            batch, self._pending = self._pending, []
            if self._lazy_timer is not None:
                self._lazy_timer.cancel()
                self._lazy_timer = None
            retry = [i for i in self._unwritten.values()]
            deletes, self._acked = self._acked, []
            seqs, self._seqs_dirty = self._seqs_dirty, {}
            try:
                await self._run(self._store.commit, [i.row for i in retry + batch], deletes, seqs)
            except DiskFull as exc:
                self._disk_refused(batch, deletes, seqs, str(exc))
                if self._closing:
                    return
                await asyncio.sleep(backoff.next_delay())
                wake.set()  # try again (deletes and seqs too) even if nothing new arrives
                continue
            last_commit = loop.time()
            if self.disk_full:
                log.warning("outbox: the disk takes writes again (%d messages written from memory)", len(retry))
                self.disk_full = None
            self._unwritten.clear()
            backoff.connected()
            for item in batch:
                self._make_ready(item)
            if self._over_cap():
                await self._enforce_cap()

    def _lazy_due(self) -> None:
        self._lazy_timer = None
        self._wake_writer.set()

    def _deletes_due(self) -> None:
        self._delete_timer = None
        if self._acked:
            self._wake_writer.set()

    def _disk_refused(self, batch: list[Item], deletes: list[int], seqs: dict[str, int], reason: str) -> None:
        if not self.disk_full:
            log.error("outbox: disk full (%s); keeping messages in memory and sending them", reason)
        self.disk_full = reason
        self._acked = deletes + self._acked
        self._seqs_dirty = {**seqs, **self._seqs_dirty}
        for item in batch:
            self._unwritten[item.row.id] = item
            self._make_ready(item, force_memory=True)
        while len(self._unwritten) > MEM_UNWRITTEN_LIMIT:
            victim = next((i for i in self._unwritten.values() if i.row.cls != URGENT and i.row.id not in self._inflight), None)
            if victim is None:
                break
            self._forget(victim, "memory full while the disk refuses writes")

    def _make_ready(self, item: Item, force_memory: bool = False) -> None:
        c = self.classes[item.row.cls]
        if (c.spilled or len(c.ready) >= MEM_PER_CLASS) and not force_memory:
            c.spilled = True
            c.spill_gen += 1
            return
        c.ready.append(item)
        c.tail_id = max(c.tail_id, item.row.id)
        self._ready.set()

    # --- the sender side --------------------------------------------------------
    async def take(self) -> Item:
        """The next message to send: the most urgent class first, oldest first."""
        while True:
            for cls, c in enumerate(self.classes):
                if c.ready:
                    item = c.ready.popleft()
                    self._inflight[item.row.id] = item
                    if c.spilled and len(c.ready) < PAGE // 2 and c.paging is None:
                        c.paging = asyncio.get_running_loop().create_task(self._page_in(cls, c))  # read ahead
                    return item
                if c.spilled:
                    if c.paging is None:
                        c.paging = asyncio.get_running_loop().create_task(self._page_in(cls, c))
                    await asyncio.shield(c.paging)
                    if c.ready:
                        break
            else:
                self._ready.clear()
                await self._ready.wait()

    async def _page_in(self, cls: int, c: _Class) -> None:
        assert self._store is not None
        try:
            gen = c.spill_gen
            rows: list[Row] = await self._run(self._store.page, cls, c.tail_id, PAGE)
            for row in rows:
                if row.id not in self._inflight and row.id > c.tail_id:
                    c.ready.append(Item(row, replayed=True))
                    c.tail_id = row.id
            if len(rows) < PAGE and c.spill_gen == gen:
                c.spilled = False
            if rows:
                self._ready.set()
        finally:
            c.paging = None

    def acked(self, item: Item) -> None:
        if self._inflight.pop(item.row.id, None) is None:
            return
        c = self.classes[item.row.cls]
        c.rows -= 1
        c.bytes -= item.row.size
        self.sent += 1
        if self._unwritten.pop(item.row.id, None) is None:
            self._acked.append(item.row.id)
            if self._delete_timer is None:  # deleted with the next commit, at the latest in 50 ms
                self._delete_timer = self._loop.call_later(DELETE_WITHIN_S, self._deletes_due)  # type: ignore[union-attr]

    def park(self, item: Item) -> None:
        """A message the broker refused: kept (on disk, counted) but out of the queue until `unpark`."""
        self._inflight.pop(item.row.id, None)

    def discard(self, item: Item, reason: str) -> None:
        """Give up on a parked message: deleted and counted as a drop of its class."""
        self._drop(item.row.cls, [(item.row.id, item.row.device, item.row.size)], reason)

    def unpark(self, items: list[Item]) -> None:
        for item in sorted(items, key=lambda i: i.row.id, reverse=True):
            item.replayed = True
            self.classes[item.row.cls].ready.appendleft(item)
        if items:
            self._ready.set()

    def rewind(self) -> None:
        """Put everything in flight back in front of its class, in order, flagged `replayed`."""
        for item_id in sorted(self._inflight, reverse=True):
            item = self._inflight[item_id]
            item.replayed = True
            self.classes[item.row.cls].ready.appendleft(item)
        if self._inflight:
            self._ready.set()
        self._inflight.clear()

    # --- the disk cap -------------------------------------------------------------
    def _over_cap(self) -> bool:
        return sum(c.bytes for c in self.classes) > self.cap_bytes

    async def _enforce_cap(self) -> None:
        assert self._store is not None
        for cls in (BULK, TELEMETRY, POSITIONS):
            c = self.classes[cls]
            while self._over_cap() and c.rows > 0:
                excess = sum(x.bytes for x in self.classes) - self.cap_bytes
                victims: list[tuple[int, str, int]] = []
                while c.ready and excess > 0:
                    item = c.ready.popleft()
                    victims.append((item.row.id, item.row.device, item.row.size))
                    excess -= item.row.size
                if not victims and c.spilled:
                    victims = await self._run(self._store.oldest_ids, cls, 500, set(self._inflight))
                    c.tail_id = max([c.tail_id] + [v[0] for v in victims])
                if not victims:
                    break  # only messages in flight are left in this class
                self._drop(cls, victims, "outbox over its disk cap")
        if self._over_cap():
            log.warning("outbox over its cap with only urgent messages (acks, critical events): keeping them")

    def _drop(self, cls: int, victims: list[tuple[int, str, int]], reason: str) -> None:
        c = self.classes[cls]
        per_device: dict[str, int] = {}
        for row_id, device, size in victims:
            c.rows -= 1
            c.bytes -= size
            c.dropped += 1
            self._acked.append(row_id)  # deleted in the next commit
            per_device[device] = per_device.get(device, 0) + 1
        self._wake_writer.set()
        if self.on_drop is not None:
            for device, count in per_device.items():
                self.on_drop(device, cls, count, reason)

    def _forget(self, item: Item, reason: str) -> None:
        del self._unwritten[item.row.id]
        c = self.classes[item.row.cls]
        if item in c.ready:
            c.ready.remove(item)
        self._drop(item.row.cls, [(item.row.id, item.row.device, item.row.size)], reason)

    # --- visibility -----------------------------------------------------------------
    def oldest_ts(self, cls: int) -> int | None:
        c = self.classes[cls]
        if c.rows == 0:
            return None
        candidates = [i.row.ts for i in self._inflight.values() if i.row.cls == cls]
        if c.ready:
            candidates.append(c.ready[0].row.ts)
        candidates += [i.row.ts for i in self._pending[:1] if i.row.cls == cls]
        return min(candidates) if candidates else None

    def stats(self) -> dict[str, Any]:
        now = now_ms()
        backlog = {}
        for name, cls, c in zip(CLASS_NAMES, range(4), self.classes):
            oldest = self.oldest_ts(cls)
            backlog[name] = {"messages": c.rows, "bytes": c.bytes, "dropped": c.dropped,
                             "oldest_age_s": round((now - oldest) / 1000, 1) if oldest else 0.0}
        return {"backlog": backlog, "messages": sum(c.rows for c in self.classes),
                "bytes": sum(c.bytes for c in self.classes), "cap_bytes": self.cap_bytes,
                "thinned": self.thinned, "sent": self.sent, "disk_full": self.disk_full}

    async def close(self) -> None:
        """Commit everything put so far, then close. The writer is asked to finish, never cancelled
        mid-commit (a cancelled wait would lose the batch it had taken)."""
        if self._writer is not None:
            self._closing = True
            self._wake_writer.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), 10.0)
            except TimeoutError:
                log.error("outbox: the writer did not finish within 10 s; %d messages not saved", len(self._pending))
                self._writer.cancel()
            except Exception as exc:
                log.error("outbox: the writer failed while closing: %s", exc)
        for timer in (self._delete_timer, self._lazy_timer):
            if timer is not None:
                timer.cancel()
        self._delete_timer = self._lazy_timer = None
        if self._store is not None:
            await self._run(self._store.close)
        self._pool.shutdown(wait=True)
