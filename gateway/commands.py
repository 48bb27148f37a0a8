"""The command router: checks, tracks and times out every command to a device.

API or MQTT → `submit()` → checks (device known, kind's command and argument
rules, device online, the driver's own refusal) → record `accepted` → the
driver sends it (`sent`) → `done` | `failed` | `timeout`. Every transition is
published as an Ack on the bus. Nothing reaches a driver before every check
has passed. Records are kept for `GET /api/v1/commands/{id}` (the newest
`max_records`; older ones are forgotten first).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from gateway.bus import Bus
from gateway.command_specs import check_args
from gateway.driver_api import CommandError, Driver
from gateway.model import FINAL_STATUSES, Ack, CommandRecord, new_id, now_ms
from gateway.registry import DeviceRegistry

log = logging.getLogger(__name__)

# A client's own command id (MQTT `commands` payload), kept so acks correlate.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class CommandRefused(Exception):
    """A command refused before it was accepted: `code` and the HTTP status that goes with it."""

    def __init__(self, http_status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message


class CommandRouter:
    def __init__(
        self,
        bus: Bus,
        registry: DeviceRegistry,
        driver_for: Callable[[str], Driver | None],
        timeout_s: float = 15.0,
        max_records: int = 10_000,
    ) -> None:
        self.bus = bus
        self.registry = registry
        self.driver_for = driver_for
        self.timeout_s = timeout_s
        self.max_records = max_records
        self.records: OrderedDict[str, CommandRecord] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, cmd_id: str) -> CommandRecord | None:
        return self.records.get(cmd_id)

    def submit(self, device_id: str, command: Any, args: Any, issued_by: str, cmd_id: str | None = None) -> CommandRecord:
        """Check and start a command; raises CommandRefused when it cannot be accepted."""
        if cmd_id is not None:
            if not isinstance(cmd_id, str) or not _CLIENT_ID.match(cmd_id):
                raise CommandRefused(400, "bad_command_id", "a command id is 1-64 characters of A-Z a-z 0-9 . _ : -")
            existing = self.records.get(cmd_id)
            if existing is not None:
                if existing.device != device_id or existing.command != command:
                    raise CommandRefused(409, "duplicate_command_id", f"command id {cmd_id} is already used by another command")
                return existing  # a redelivered message (MQTT QoS 1): same command, never run twice
        dev = self.registry.get(device_id)
        if dev is None:
            raise CommandRefused(404, "no_device", f"no device {device_id!r}")
        if not isinstance(command, str) or command not in dev.commands:
            raise CommandRefused(400, "unknown_command", f"{device_id} ({dev.kind}) accepts {', '.join(dev.commands) or 'no commands'}; not {command!r}")
        clean, problem = check_args(dev.kind, command, args)
        if clean is None:
            raise CommandRefused(400, "bad_args", problem)
        driver = self.driver_for(device_id)
        if driver is None:
            raise CommandRefused(409, "no_driver", f"{device_id} has no running driver")
        refusal = driver.check_command(device_id, command, clean)
        if refusal:
            raise CommandRefused(400, "bad_args", refusal)
        if not dev.online:
            raise CommandRefused(409, "device_offline", f"{device_id} is offline")
        record = CommandRecord(
            id=cmd_id or new_id(), device=device_id, command=command, args=clean,
            status="accepted", detail="", issued_by=issued_by, ts_issued=now_ms(),
        )
        self._remember(record)
        self._announce(record)
        task = asyncio.create_task(self._run(record, driver), name=f"cmd:{record.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return record

    def reject(self, device_id: str, cmd_id: str | None, command: Any, args: Any, issued_by: str, reason: str) -> CommandRecord:
        """Record and announce a command refused on a channel with no synchronous answer (MQTT)."""
        record = CommandRecord(
            id=cmd_id if isinstance(cmd_id, str) and _CLIENT_ID.match(cmd_id) else new_id(),
            device=device_id, command=command if isinstance(command, str) else "",
            args=args if isinstance(args, dict) else {}, status="rejected", detail=reason,
            issued_by=issued_by, ts_issued=now_ms(), ts_done=now_ms(),
        )
        if record.id not in self.records:
            self._remember(record)
        self._announce(record)
        return record

    async def _run(self, record: CommandRecord, driver: Driver) -> None:
        def on_sent() -> None:
            if record.status == "accepted":
                self._set(record, "sent", "")

        timeout = driver.command_timeout(record.command) or self.timeout_s
        try:
            detail = await asyncio.wait_for(
                driver.execute(record.device, record.command, dict(record.args), on_sent), timeout
            )
            self._set(record, "done", detail or "")
        except TimeoutError:
            self._set(record, "timeout", f"no answer from {record.device} within {timeout:g} s")
        except CommandError as exc:
            self._set(record, exc.status if exc.status in FINAL_STATUSES else "failed", exc.detail)
        except asyncio.CancelledError:
            self._set(record, "failed", "gateway stopping")
            raise
        except Exception as exc:
            log.exception("driver failed on command %s", record.id)
            self._set(record, "failed", f"driver error: {type(exc).__name__}: {exc}")

    def _set(self, record: CommandRecord, status: str, detail: str) -> None:
        if record.status in FINAL_STATUSES:
            return
        record.status = status  # type: ignore[assignment]
        record.detail = detail
        if status in FINAL_STATUSES:
            record.ts_done = now_ms()
        self._announce(record)

    def _announce(self, record: CommandRecord) -> None:
        self.bus.publish(Ack(record.device, record.id, record.status, record.detail, now_ms()))

    def _remember(self, record: CommandRecord) -> None:
        self.records[record.id] = record
        while len(self.records) > self.max_records:
            self.records.popitem(last=False)

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
