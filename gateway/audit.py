"""Tamper-evident audit log: who did what, when, from where, with what outcome.

`DATA_DIR/audit.jsonl` holds one JSON record per line in canonical form
(`canonical()`): `seq` (1, 2, ...), `ts` (epoch ms), `user`, `role`, `address`,
`action`, `target`, `detail`, `outcome`, `prev` and `hash`. `hash` is the hex
sha256 of the record's canonical bytes without `hash`; `prev` is the previous
record's `hash` (64 zeros for the first). Editing, deleting or reordering a
record breaks the chain and `verify()` names the line. Removing whole records
from the end cannot be seen from the file alone: anchor `AuditLog.head`
somewhere else (uplink, metrics) when that matters.

Writes never block the event loop: `append()` puts the record on a bounded
queue (`max_pending`, default 10 000); one writer task hands batches to one
worker thread, which writes each record, fsyncs it, and only then resolves the
caller's future. Queue full: `append()` waits (back-pressure, nothing dropped).
A write the disk refuses is cut back off the file and raised to its caller;
the chain goes on from the last durable record. On open the whole file is
verified (in the worker thread); a file that does not verify is never
rewritten: it is renamed `audit.jsonl.broken-<epoch ms>` and the new chain's
first record (`audit_reset`) names it and says why.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GENESIS = "0" * 64
FIELDS = ("seq", "ts", "user", "role", "address", "action", "target", "detail", "outcome", "prev", "hash")
_TEXT = ("user", "role", "address", "action", "target", "outcome")
_BATCH = 256  # records per hand-over to the worker thread (each still fsync'd on its own)
_BLOCK = 65536  # bytes read per step when paging backwards


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in body.items() if k != "hash"})).hexdigest()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _jsonable(value: Any) -> Any:
    """Plain JSON the record will read back as: non-JSON values as str, NaN/inf as str, lone surrogates as '?'."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return json.loads(text.encode("utf-8", "replace"), parse_constant=str)


def make_record(action: str, *, user: str, role: str, address: str, target: str, outcome: str,
                detail: Mapping[str, Any] | None = None, ts: int | None = None) -> dict[str, Any]:
    """A record to append (seq, prev and hash are added by the log)."""
    return {"ts": _now_ms() if ts is None else int(ts), "user": user, "role": role, "address": address,
            "action": action, "target": target, "detail": dict(detail or {}), "outcome": outcome}


def _present(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in detail.items() if v is not None and v != ""}


def command_record(*, user: str, role: str, address: str, device: str, command: str,
                   args: Mapping[str, Any] | None, outcome: str, reason: str = "",
                   cmd_id: str | None = None, ts: int | None = None) -> dict[str, Any]:
    """action `command`, target the device; detail {command, args, id?, reason?}."""
    detail = {"command": command, "args": dict(args or {}), **_present({"id": cmd_id, "reason": reason})}
    return make_record("command", user=user, role=role, address=address, target=device,
                       outcome=outcome, detail=detail, ts=ts)


def dispatch_record(*, user: str, role: str, address: str, targets: list[str] | str, text: str,
                    priority: str, outcome: str, reason: str = "", dispatch_id: str | None = None,
                    ts: int | None = None) -> dict[str, Any]:
    """action `dispatch`, target "all" or the ids joined by commas; detail {targets, text, priority, id?, reason?}."""
    targets = targets if isinstance(targets, str) else list(targets)
    detail = {"targets": targets, "text": text, "priority": priority,
              **_present({"id": dispatch_id, "reason": reason})}
    return make_record("dispatch", user=user, role=role, address=address, outcome=outcome, ts=ts,
                       target=targets if isinstance(targets, str) else ",".join(targets), detail=detail)


@dataclass(slots=True)
class VerifyResult:
    ok: bool
    records: int  # lines that parsed as records
    problems: list[str] = field(default_factory=list)  # "line N: ..."
    last_seq: int = 0  # of the last record (the chain continues from here when ok)
    last_hash: str = GENESIS


def verify(path: Path) -> VerifyResult:
    """Check every line of an audit file: JSON, canonical bytes, hash, seq and prev. A missing file is ok."""
    problems: list[str] = []
    records, want_seq, prev, known = 0, 1, GENESIS, True  # known: the previous line was a readable record
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return VerifyResult(True, 0)
    with f:
        for n, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                problems.append(f"line {n}: incomplete last line (no newline: a write cut short)")
            line = raw.rstrip(b"\n")
            try:
                rec = json.loads(line.decode("utf-8"))
            except ValueError as exc:
                problems.append(f"line {n}: bad JSON ({exc})")
                known = False
                continue
            missing = [k for k in FIELDS if k not in rec] if isinstance(rec, dict) else list(FIELDS)
            if missing or not isinstance(rec["seq"], int) or not isinstance(rec["hash"], str):
                problems.append(f"line {n}: not an audit record (missing or bad: {', '.join(missing) or 'seq/hash'})")
                known = False
                continue
            records += 1
            if _digest(rec) != rec["hash"]:
                problems.append(f"line {n}: hash mismatch (record seq {rec['seq']} altered)")
            elif canonical(rec) != line:
                problems.append(f"line {n}: not canonical JSON (bytes altered)")
            if known and rec["seq"] != want_seq:
                problems.append(f"line {n}: seq {rec['seq']} where {want_seq} was expected (record missing or moved)")
            if known and rec["prev"] != prev:
                problems.append(f"line {n}: prev does not match the hash of the record before it")
            known, want_seq, prev = True, rec["seq"] + 1, rec["hash"]
    return VerifyResult(not problems, records, problems, want_seq - 1, prev)


def _lines_backwards(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        pos, tail = f.seek(0, os.SEEK_END), b""
        while pos > 0:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            lines = (f.read(step) + tail).split(b"\n")
            tail = lines.pop(0)
            yield from (line for line in reversed(lines) if line)
        if tail:
            yield tail


def read(path: Path, limit: int, before_seq: int | None = None) -> list[dict[str, Any]]:
    """Up to `limit` records, newest first, with seq < before_seq when given. Unreadable lines are skipped."""
    out: list[dict[str, Any]] = []
    if limit <= 0 or not path.exists():
        return out
    for line in _lines_backwards(path):
        try:
            rec = json.loads(line.decode("utf-8"))
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("seq"), int) and (before_seq is None or rec["seq"] < before_seq):
            out.append(rec)
            if len(out) >= limit:
                break
    return out


class AuditLog:
    def __init__(self, path: Path, max_pending: int = 10_000) -> None:
        self.path = Path(path)
        self.max_pending = max_pending
        self.reset_notice: str | None = None  # set when a broken file was moved aside at open
        self._head = (0, GENESIS)  # (seq, hash) of the last durable record, replaced whole by the worker
        self._fd = -1
        self._size = 0  # bytes known durable; a failed write is cut back to this
        self._dirty = False
        self._queue: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[dict[str, Any]]] | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last durable record: (0, 64 zeros) before the first."""
        return self._head

    async def __aenter__(self) -> AuditLog:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Verify the file and continue its chain (or set it aside); idempotent. append() calls it."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("audit log is closed")
            if self._task is not None:
                return
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit")
            try:
                await asyncio.get_running_loop().run_in_executor(self._pool, self._open_sync)
            except BaseException:
                self._pool.shutdown(wait=False)
                self._pool = None
                raise
            self._queue = asyncio.Queue(self.max_pending)
            self._task = asyncio.create_task(self._writer(), name="audit-writer")

    async def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write one record (from make_record/command_record/dispatch_record); returns it once fsync'd.

        Waits while `max_pending` records are queued. Raises OSError when the disk refused it.
        A caller cancelled after queueing does not stop the record from being written.
        """
        if self._task is None:
            await self.open()
        if self._closed or self._queue is None:
            raise RuntimeError("audit log is closed")
        body = _jsonable({k: v for k, v in record.items() if k not in ("seq", "prev", "hash")})
        for key in _TEXT:
            body[key] = "" if body.get(key) is None else str(body[key])
        body["ts"] = body["ts"] if isinstance(body.get("ts"), int) else _now_ms()
        detail = body.get("detail")
        body["detail"] = detail if isinstance(detail, dict) else {} if detail is None else {"value": detail}
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        await self._queue.put((body, fut))
        return await fut

    async def close(self) -> None:
        """Write everything queued, then close the file."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._queue is not None and self._task is not None:
                await self._queue.put(None)
                await self._task
            if self._pool is not None:
                await asyncio.get_running_loop().run_in_executor(self._pool, self._close_sync)
                self._pool.shutdown(wait=True)

    async def _writer(self) -> None:
        assert self._queue is not None and self._pool is not None
        loop, done = asyncio.get_running_loop(), False
        while not done:
            item = await self._queue.get()
            batch = []
            while item is not None:
                batch.append(item)
                if len(batch) >= _BATCH or self._queue.empty():
                    break
                item = self._queue.get_nowait()
            done = item is None
            if not batch:
                continue
            results = await loop.run_in_executor(self._pool, self._write_batch, [b for b, _ in batch])
            for (_, fut), result in zip(batch, results):
                if fut.done():
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

    # --- worker thread only below ---

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        reset: dict[str, Any] | None = None
        result = verify(self.path)
        if result.ok:
            self._head = (result.last_seq, result.last_hash)
        else:
            stamp = _now_ms()
            aside = self.path.with_name(f"{self.path.name}.broken-{stamp}")
            while aside.exists():
                stamp += 1
                aside = self.path.with_name(f"{self.path.name}.broken-{stamp}")
            self.path.rename(aside)
            self.reset_notice = (f"audit log {self.path} does not verify ({len(result.problems)} problems, first: "
                                 f"{result.problems[0]}); moved aside to {aside.name}, a new chain started")
            log.error("%s", self.reset_notice)
            reset = make_record("audit_reset", user="gateway", role="system", address="", target=aside.name,
                                outcome="moved_aside", detail={
                                    "file": aside.name, "records": result.records, "last_seq": result.last_seq,
                                    "last_hash": result.last_hash, "problems": result.problems[:20],
                                    "problem_count": len(result.problems)})
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._size = os.fstat(self._fd).st_size
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new name (and a rename aside) survive a power cut
        finally:
            os.close(dir_fd)
        if reset is not None:
            self._write_one(reset)

    def _write_batch(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any] | BaseException]:
        out: list[dict[str, Any] | BaseException] = []
        for body in bodies:
            try:
                out.append(self._write_one(body))
            except Exception as exc:  # noqa: BLE001 - handed to the caller of append()
                out.append(exc)
        return out

    def _write_one(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._dirty:  # a failed write may have left part of a line: cut it off first
            os.ftruncate(self._fd, self._size)
            self._dirty = False
        rec = {**body, "seq": self._head[0] + 1, "prev": self._head[1]}
        rec["hash"] = _digest(rec)
        line = canonical(rec) + b"\n"
        data = memoryview(line)
        self._dirty = True
        while data:
            data = data[os.write(self._fd, data):]
        os.fsync(self._fd)
        self._dirty = False
        self._size += len(line)
        self._head = (rec["seq"], rec["hash"])
        return rec

    def _close_sync(self) -> None:
        if self._fd >= 0:
            if self._dirty:
                os.ftruncate(self._fd, self._size)
            os.close(self._fd)
            self._fd = -1
