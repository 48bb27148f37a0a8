"""COMMAND_LONG / COMMAND_INT handling (MAV_CMD_*), answered honestly with COMMAND_ACK."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from .flight import RESULT_ACCEPTED, RESULT_DENIED, RESULT_FAILED, Mode

if TYPE_CHECKING:
    from .vehicle import Vehicle

M = mavlink2
log = logging.getLogger(__name__)

RESULT_UNSUPPORTED = M.MAV_RESULT_UNSUPPORTED
FORCE_MAGIC = (2989.0, 21196.0)  # ArduPilot's force-arm / force-disarm values for param2
_AMSL_FRAMES = {M.MAV_FRAME_GLOBAL, M.MAV_FRAME_GLOBAL_INT}
_REL_FRAMES = {M.MAV_FRAME_GLOBAL_RELATIVE_ALT, M.MAV_FRAME_GLOBAL_RELATIVE_ALT_INT}


@dataclass
class Command:
    """A command from either message type, location already in degrees."""

    command: int
    p1: float
    p2: float
    p3: float
    p4: float
    lat: float  # degrees (COMMAND_LONG param5 / COMMAND_INT x*1e-7); raw value for non-location use
    lon: float
    alt: float  # param7 / z
    frame: int  # COMMAND_LONG is taken as MAV_FRAME_GLOBAL_RELATIVE_ALT

    @classmethod
    def from_long(cls, m: M.MAVLink_command_long_message) -> "Command":
        return cls(m.command, m.param1, m.param2, m.param3, m.param4, m.param5, m.param6, m.param7,
                   M.MAV_FRAME_GLOBAL_RELATIVE_ALT)

    @classmethod
    def from_int(cls, m: M.MAVLink_command_int_message) -> "Command":
        return cls(m.command, m.param1, m.param2, m.param3, m.param4, m.x / 1e7, m.y / 1e7, m.z, m.frame)


def _msg_id(value: float) -> int | None:
    # MESSAGE_INTERVAL.message_id is a uint16, so larger ids cannot be served (ArduPilot: DENIED)
    if not 0 <= value <= 0xFFFF or value != int(value):
        return None
    return int(value)


class CommandHandler:
    def __init__(self, vehicle: "Vehicle") -> None:
        self.v = vehicle
        self._table: dict[int, Callable[[Command], int]] = {
            M.MAV_CMD_NAV_RETURN_TO_LAUNCH: lambda c: self.v.ap.set_mode(Mode.RTL),
            M.MAV_CMD_NAV_LAND: lambda c: self.v.ap.set_mode(Mode.LAND),
            M.MAV_CMD_NAV_TAKEOFF: self._takeoff,
            M.MAV_CMD_DO_SET_MODE: self._set_mode,
            M.MAV_CMD_DO_CHANGE_SPEED: lambda c: self.v.ap.change_speed(c.p2),
            M.MAV_CMD_DO_REPOSITION: self._reposition,
            M.MAV_CMD_DO_PAUSE_CONTINUE: self._pause_continue,
            M.MAV_CMD_COMPONENT_ARM_DISARM: self._arm_disarm,
            M.MAV_CMD_GET_MESSAGE_INTERVAL: self._get_interval,
            M.MAV_CMD_SET_MESSAGE_INTERVAL: self._set_interval,
            M.MAV_CMD_REQUEST_MESSAGE: self._request_message,
            M.MAV_CMD_REQUEST_AUTOPILOT_CAPABILITIES: self._autopilot_capabilities,
        }

    def handle(self, cmd: Command, sender_sys: int, sender_comp: int) -> None:
        fn = self._table.get(cmd.command)
        if fn is None:
            result = RESULT_UNSUPPORTED
        else:
            try:
                result = fn(cmd)
            except Exception:  # never let a malformed command take the vehicle down
                log.exception("sysid %d: command %d failed", self.v.sysid, cmd.command)
                result = RESULT_FAILED
        log.info("sysid %d: command %d -> result %d", self.v.sysid, cmd.command, result)
        self.v.send(M.MAVLink_command_ack_message(cmd.command, result, 0, 0, sender_sys, sender_comp))

    # ------------------------------------------------------------ handlers
    def _takeoff(self, c: Command) -> int:
        if c.frame not in _REL_FRAMES:
            return RESULT_DENIED
        return self.v.ap.takeoff(c.alt)

    def _set_mode(self, c: Command) -> int:
        if not (math.isfinite(c.p1) and math.isfinite(c.p2)) or not 0 <= c.p2 < 2**32:
            return RESULT_DENIED
        if not int(c.p1) & M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED:
            return RESULT_DENIED
        return self.v.ap.set_mode(int(c.p2))

    def _reposition(self, c: Command) -> int:
        if math.isnan(c.lat) or math.isnan(c.lon) or not -90.0 <= c.lat <= 90.0 or not -180.0 <= c.lon <= 180.0:
            return RESULT_DENIED
        if c.frame in _AMSL_FRAMES:
            alt_rel = c.alt - self.v.home.alt
        elif c.frame in _REL_FRAMES:
            alt_rel = c.alt
        else:
            return RESULT_DENIED
        ap = self.v.ap
        if not ap.flying:
            return RESULT_FAILED
        if math.isnan(alt_rel) or math.isinf(alt_rel):
            alt_rel = ap.kin.alt  # NaN altitude: keep the current one
        n, e = self.v.home.ne_of(c.lat, c.lon)
        speed = c.p1 if c.p1 > 0 and not math.isinf(c.p1) else None
        return ap.goto(n, e, alt_rel, speed)

    def _pause_continue(self, c: Command) -> int:
        if c.p1 == 0:
            return self.v.ap.pause()
        if c.p1 == 1:
            return self.v.ap.resume()
        return RESULT_DENIED

    def _arm_disarm(self, c: Command) -> int:
        force = c.p2 in FORCE_MAGIC
        if c.p1 == 1:
            return self.v.ap.arm(force)
        if c.p1 == 0:
            return self.v.ap.disarm(force)
        return RESULT_DENIED

    def _get_interval(self, c: Command) -> int:
        mid = _msg_id(c.p1)
        if mid is None:
            return RESULT_DENIED
        self.v.send(M.MAVLink_message_interval_message(mid, self.v.streams.interval_us(mid)))
        return RESULT_ACCEPTED

    def _set_interval(self, c: Command) -> int:
        mid = _msg_id(c.p1)
        if mid is None or not math.isfinite(c.p2) or not self.v.streams.set_interval_us(mid, c.p2):
            return RESULT_DENIED
        return RESULT_ACCEPTED

    def _request_message(self, c: Command) -> int:
        mid = _msg_id(c.p1)
        builder = self.v.telemetry.builders.get(mid) if mid is not None else None
        if mid == M.MAVLINK_MSG_ID_VIDEO_STREAM_INFORMATION and self.v.telemetry.video_uri:
            builder = self.v.telemetry.video_stream_information
        if builder is None:
            return RESULT_DENIED
        self.v.send(builder())
        return RESULT_ACCEPTED

    def _autopilot_capabilities(self, c: Command) -> int:
        if c.p1 != 1:
            return RESULT_ACCEPTED
        self.v.send(self.v.telemetry.autopilot_version())
        return RESULT_ACCEPTED
