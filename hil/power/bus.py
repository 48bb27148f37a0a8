"""Request handling shared by the RTU and TCP links: which unit answers, and how.

A decoded request goes to pymodbus's own request handling (the request PDU's
`datastore_update` against a SimCore of all units' SimDevices), as pymodbus's
server does; around it sit the things a bus of real devices does and pymodbus's
server cannot be told to do: a dead unit keeps silent while the others answer,
an unknown unit id is silence on RTU (no such slave on the line) and exception
0x0B on a TCP gateway, function codes a device lacks answer 0x01, a broadcast
(unit 0 on RTU) write reaches every unit and nobody answers, and the next N
responses can leave with a broken CRC.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerBase
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.simulator import SimDevice
from pymodbus.simulator.simcore import SimCore

from .model import PowerSystem
from .registers import register_view

log = logging.getLogger(__name__)

WRITE_FUNCTIONS = frozenset({5, 6, 15, 16})


@dataclass
class Unit:
    """One simulated device on the bus: its model, its registers, what it answers."""
    id: int
    kind: str
    model: PowerSystem
    device: SimDevice
    functions: frozenset[int]
    dead: bool = False
    requests: Counter[int] = field(default_factory=Counter)
    exceptions: Counter[int] = field(default_factory=Counter)
    ignored: int = 0
    registers_read: int = 0     # registers in the answers to FC03/FC04 reads (what a poller got)

    def values(self) -> dict[str, Any]:
        v = self.model.update()
        regs = register_view(self.kind, self.model)
        return {**v.to_json(), "settings": asdict(self.model.settings), "pv_pinned": self.model.pv_pin,
                "temp_pinned": self.model.temp_pin, "load_setting_w": self.model.load_w,
                "load_switch": self.model.load_switch,
                "registers": {table: {f"0x{a:04X}" if a > 999 else str(a): r for a, r in rs.items()}
                              for table, rs in regs.items()}}

    def stats(self) -> dict[str, Any]:
        return {"dead": self.dead, "requests": _keys(self.requests), "exceptions": _keys(self.exceptions),
                "ignored_while_dead": self.ignored, "registers_read": self.registers_read,
                "values": self.model.update().to_json()}

    def reads(self) -> dict[str, Any]:
        return {"requests": sum(self.requests.values()), "registers": self.registers_read}


def _keys(counter: Counter[int]) -> dict[str, int]:
    return {str(k): n for k, n in sorted(counter.items())}


class Bus:
    """The units behind one link, and how a request frame becomes a response frame."""

    def __init__(self, units: list[Unit], framer: type[FramerBase], *, unknown_unit: ExcCodes | None,
                 broadcast: bool, aliases: dict[int, int] | None = None) -> None:
        self.units = {u.id: u for u in units}
        self.core = SimCore([u.device for u in units])
        self.decoder = DecodePDU(True)
        self.framer = framer(self.decoder)
        self.unknown_unit = unknown_unit
        self.broadcast = broadcast
        self.aliases = aliases or {}
        self.corrupt_next = 0
        self.requests: Counter[int] = Counter()
        self.exceptions: Counter[int] = Counter()
        self.counters: Counter[str] = Counter()

    async def answer(self, dev_id: int, tid: int, frame: bytes) -> bytes | None:
        """The response ADU to one request PDU (`frame`: function code + data), or None for silence."""
        if not frame:
            self.counters["bad_frames"] += 1
            return None
        fc = frame[0]
        self.requests[fc] += 1
        if dev_id == 0 and self.broadcast:
            await self._broadcast(fc, frame)
            return None
        unit = self.units.get(self.aliases.get(dev_id, dev_id))
        if unit is None:
            self.counters["unknown_unit"] += 1
            response: ModbusPDU | None = None if self.unknown_unit is None else ExceptionResponse(fc, self.unknown_unit)
        elif unit.dead:
            unit.ignored += 1
            response = None
        else:
            response = await self._execute(unit, fc, frame)
        if response is None:
            return None
        if response.isError():
            self.exceptions[response.exception_code] += 1
            if unit is not None:
                unit.exceptions[response.exception_code] += 1
        response.dev_id, response.transaction_id = dev_id, tid
        adu = self.framer.buildFrame(response)
        if self.corrupt_next > 0:
            self.corrupt_next -= 1
            self.counters["crc_corrupted"] += 1
            adu = adu[:-2] + bytes(b ^ 0xFF for b in adu[-2:])
        return adu

    async def _execute(self, unit: Unit, fc: int, frame: bytes) -> ModbusPDU:
        unit.requests[fc] += 1
        if fc not in unit.functions:
            return ExceptionResponse(fc, ExcCodes.ILLEGAL_FUNCTION)
        request = self.decoder.decode(frame)
        if request is None:     # a function pymodbus knows, with a count or length it refuses
            return ExceptionResponse(fc, ExcCodes.ILLEGAL_VALUE)
        try:
            response = await request.datastore_update(self.core, unit.id)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - what pymodbus's server does: a device failure, logged
            log.exception("unit %d: request %s failed", unit.id, request)
            return ExceptionResponse(fc, ExcCodes.DEVICE_FAILURE)
        if fc in (3, 4) and not response.isError():
            unit.registers_read += len(response.registers)
        return response

    async def _broadcast(self, fc: int, frame: bytes) -> None:
        self.counters["broadcasts"] += 1
        request = self.decoder.decode(frame) if fc in WRITE_FUNCTIONS else None
        if request is None:
            return
        for unit in self.units.values():
            if not unit.dead and fc in unit.functions:
                unit.requests[fc] += 1
                try:
                    await request.datastore_update(self.core, unit.id)  # type: ignore[arg-type]
                except Exception:  # noqa: BLE001
                    log.exception("unit %d: broadcast %s failed", unit.id, request)

    def stats(self) -> dict[str, Any]:
        return {"requests": _keys(self.requests), "exceptions": _keys(self.exceptions),
                "crc_pending": self.corrupt_next, **{k: self.counters[k] for k in
                ("bad_frames", "unknown_unit", "broadcasts", "crc_corrupted")},
                "units": {str(u.id): u.stats() for u in self.units.values()}}
