"""What goes into the audit log (gateway/audit.py): every command and every dispatch, twice.

- When it is asked for: who (user and role, or `mqtt`), from which address, what,
  and whether it was accepted or refused and why. The HTTP routes wait for this
  record to be on disk before they answer: an accepted command is never missing
  from the log. MQTT has no answer to wait for; its records are queued.
- Every record, once on disk, goes on the bus as `AuditRecorded` and from there
  to `{root}/gateway/audit` through the outbox (never dropped): the command
  centre holds a copy of the chain, so records cut from the end of the file
  (which the file alone cannot show) are seen there.
- When it ends: `command_result` (done, failed, timeout, rejected, with the
  detail) and `dispatch_result` (each delivery's status and channel), from the
  acks on the bus, with the same user.

Queue policy: `MAX_QUEUED` records wait for the writer; when that is full an
MQTT command or dispatch is refused (`audit_busy`) rather than run unrecorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from gateway.audit import AuditLog, command_record, dispatch_record, make_record
from gateway.auth import Principal
from gateway.bus import Bus
from gateway.model import FINAL_STATUSES, Ack, AuditRecorded, DispatchChanged

log = logging.getLogger(__name__)

MAX_QUEUED = 10_000
_REMEMBERED = 10_000  # who asked, per command/dispatch id, for the result record
MQTT = Principal("mqtt", "operator", "broker")


class AuditTrail:
    def __init__(self, audit: AuditLog, bus: Bus) -> None:
        self.audit = audit
        self.bus = bus
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(MAX_QUEUED)
        self._asked: OrderedDict[str, Principal] = OrderedDict()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write_queued(), name="audit-queue"),
                       asyncio.create_task(self._results(), name="audit-results")]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():  # what was still queued is written before the log closes
            await self._append(self._queue.get_nowait())

    @property
    def full(self) -> bool:
        return self._queue.full()

    # -- when asked --------------------------------------------------------------------------------

    async def command(self, who: Principal, device: str, command: Any, args: Any, cmd_id: str | None,
                      refusal: str = "") -> None:
        await self._append(self._command(who, device, command, args, cmd_id, refusal))

    def command_queued(self, who: Principal, device: str, command: Any, args: Any, cmd_id: str | None,
                       refusal: str = "") -> None:
        self._enqueue(self._command(who, device, command, args, cmd_id, refusal))

    async def dispatch(self, who: Principal, body: Any, dispatch_id: str | None, refusal: str = "") -> None:
        await self._append(self._dispatch(who, body, dispatch_id, refusal))

    def dispatch_queued(self, who: Principal, body: Any, dispatch_id: str | None, refusal: str = "") -> None:
        self._enqueue(self._dispatch(who, body, dispatch_id, refusal))

    def _enqueue(self, record: dict[str, Any]) -> None:
        """Callers check `full` before they act; filling up in between is logged, the record is not lost silently."""
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            log.critical("audit queue full: record not written: %s", record)

    def _command(self, who: Principal, device: str, command: Any, args: Any, cmd_id: str | None,
                 refusal: str) -> dict[str, Any]:
        if cmd_id and not refusal:
            self._remember(f"c:{cmd_id}", who)
        return command_record(user=who.name, role=who.role, address=who.address, device=device,
                              command=command if isinstance(command, str) else repr(command),
                              args=args if isinstance(args, dict) else {"value": args}, cmd_id=cmd_id,
                              outcome="refused" if refusal else "accepted", reason=refusal)

    def _dispatch(self, who: Principal, body: Any, dispatch_id: str | None, refusal: str) -> dict[str, Any]:
        body = body if isinstance(body, dict) else {}
        targets = body.get("targets")
        if dispatch_id and not refusal:
            self._remember(f"d:{dispatch_id}", who)
        return dispatch_record(user=who.name, role=who.role, address=who.address,
                               targets=targets if isinstance(targets, (str, list)) else repr(targets),
                               text=str(body.get("text", "")), priority=str(body.get("priority", "routine")),
                               outcome="refused" if refusal else "accepted", reason=refusal, dispatch_id=dispatch_id)

    async def _append(self, record: dict[str, Any]) -> None:
        written = await self.audit.append(record)
        self.bus.publish(AuditRecorded("", written["ts"], written))

    def _remember(self, key: str, who: Principal) -> None:
        self._asked[key] = who
        while len(self._asked) > _REMEMBERED:
            self._asked.popitem(last=False)

    # -- when done ---------------------------------------------------------------------------------

    async def _results(self) -> None:
        sub = self.bus.subscribe("audit", (Ack, DispatchChanged), maxsize=MAX_QUEUED)
        try:
            while True:
                msg = await sub.get()
                record = self._result(msg)
                if record is not None:
                    await self._queue.put(record)
        finally:
            sub.close()

    def _result(self, msg: object) -> dict[str, Any] | None:
        if isinstance(msg, Ack) and msg.status in FINAL_STATUSES:
            who = self._asked.pop(f"c:{msg.command_id}", None)
            if who is None:  # refused before it was accepted: the request record says so already
                return None
            return make_record("command_result", user=who.name, role=who.role, address=who.address, target=msg.device,
                               outcome=msg.status, detail={"id": msg.command_id, "detail": msg.detail}, ts=msg.ts)
        if isinstance(msg, DispatchChanged) and msg.dispatch.get("done"):
            d = msg.dispatch
            # (done before its request record was written, it is still recorded: as its issuer, role unknown)
            who = self._asked.pop(f"d:{d.get('id')}", None) or Principal(str(d.get("issued_by", "")), "", "")
            deliveries = [{k: dl.get(k) for k in ("device", "channel", "status")} for dl in d.get("deliveries", [])]
            failed = sum(1 for dl in deliveries if dl["status"] != "delivered")
            return make_record("dispatch_result", user=who.name, role=who.role, address=who.address,
                               target=str(d.get("id")), outcome="delivered" if not failed else f"{failed} not delivered",
                               detail={"id": d.get("id"), "deliveries": deliveries}, ts=msg.ts)
        return None

    async def _write_queued(self) -> None:
        while True:
            record = await self._queue.get()
            try:
                await self._append(record)
            except OSError:
                log.critical("audit record could not be written: %s", record)
