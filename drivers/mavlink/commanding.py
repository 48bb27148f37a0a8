"""Commands to a vehicle: contract names → MAVLink, sent until COMMAND_ACK.

COMMAND_LONG / COMMAND_INT are retransmitted every `retry_interval_s` (the
`confirmation` field counts retransmissions) until a COMMAND_ACK for the
same command, addressed to the gateway, comes back. ACCEPTED → done;
IN_PROGRESS keeps waiting; any other MAV_RESULT → failed, naming it; no ack
after every attempt → timeout. Acks carry only the command number, so one
command of each MAV_CMD number is in flight at a time per vehicle.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as m2

from drivers.mavlink.profile import VehicleProfile
from gateway.driver_api import CommandError, OnSent

_RESULT_NAME = {k: v.name for k, v in m2.enums["MAV_RESULT"].items()}


@dataclass(frozen=True)
class MavCommand:
    """One MAVLink command ready to send: COMMAND_INT when `frame` is set, else COMMAND_LONG."""

    command: int
    params: tuple[float, ...]  # param1..param7 (for COMMAND_INT: param1..4, x, y, z)
    frame: int | None = None

    @property
    def name(self) -> str:
        entry = m2.enums["MAV_CMD"].get(self.command)
        return entry.name if entry else str(self.command)


def translate(command: str, args: dict[str, Any], profile: VehicleProfile) -> MavCommand:
    """The MAVLink command for a contract command (arguments already range-checked)."""
    set_mode = m2.MAV_CMD_DO_SET_MODE
    custom = float(m2.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED)
    if command == "rtl":
        return MavCommand(m2.MAV_CMD_NAV_RETURN_TO_LAUNCH, (0, 0, 0, 0, 0, 0, 0))
    if command == "land":
        return MavCommand(m2.MAV_CMD_NAV_LAND, (0, 0, 0, math.nan, 0, 0, 0))
    if command == "hold":
        return MavCommand(set_mode, (custom, float(profile.modes[profile.hold_mode]), 0, 0, 0, 0, 0))
    if command == "set_mode":
        return MavCommand(set_mode, (custom, float(profile.modes[args["mode"].upper()]), 0, 0, 0, 0, 0))
    if command == "goto":
        return MavCommand(
            m2.MAV_CMD_DO_REPOSITION,
            (-1.0, float(m2.MAV_DO_REPOSITION_FLAGS_CHANGE_MODE), 0.0, math.nan,
             int(round(args["lat"] * 1e7)), int(round(args["lon"] * 1e7)), float(args["alt_m"])),
            frame=m2.MAV_FRAME_GLOBAL,
        )
    raise CommandError("rejected", f"the MAVLink driver has no command {command!r}")


class _Pending:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.acks: asyncio.Queue[int] = asyncio.Queue(16)
        self.active = False


class AckWaiter:
    """Matches COMMAND_ACKs from one vehicle to the commands in flight.

    An ack names only the command number, so one command of each number is
    in flight at a time; different numbers (a stream-rate request and an
    operator's RTL) run side by side.
    """

    def __init__(self) -> None:
        self._pending: dict[int, _Pending] = {}

    def deliver(self, msg: Any, gateway_system: int) -> None:
        pending = self._pending.get(msg.command)
        if pending is None or not pending.active:
            return
        if msg.target_system not in (0, gateway_system):
            return  # an ack for the operator's own ground station
        if not pending.acks.full():
            pending.acks.put_nowait(int(msg.result))

    async def run(self, cmd: MavCommand, send: Callable[[MavCommand, int], None], on_sent: OnSent,
                  attempts: int = 4, retry_interval_s: float = 1.5) -> str:
        pending = self._pending.setdefault(cmd.command, _Pending())
        async with pending.lock:
            while not pending.acks.empty():
                pending.acks.get_nowait()
            pending.active = True
            try:
                return await _exchange(pending.acks, cmd, send, on_sent, attempts, retry_interval_s)
            finally:
                pending.active = False


async def _exchange(acks: asyncio.Queue[int], cmd: MavCommand, send: Callable[[MavCommand, int], None],
                    on_sent: OnSent, attempts: int, retry_interval_s: float) -> str:
    attempt = 0
    in_progress = False
    while attempt < attempts:
        if not in_progress:
            send(cmd, attempt)
            if attempt == 0:
                on_sent()
            attempt += 1
        try:
            result = await asyncio.wait_for(acks.get(), retry_interval_s * (4 if in_progress else 1))
        except TimeoutError:
            in_progress = False
            continue
        if result == m2.MAV_RESULT_ACCEPTED:
            return f"{cmd.name}: MAV_RESULT_ACCEPTED"
        if result == m2.MAV_RESULT_IN_PROGRESS:
            in_progress = True
            continue
        raise CommandError("failed", f"{cmd.name}: {_RESULT_NAME.get(result, f'MAV_RESULT {result}')}")
    raise CommandError("timeout", f"{cmd.name}: no COMMAND_ACK after {attempts} attempts")
