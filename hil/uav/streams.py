"""Per-vehicle telemetry streams: default rates, SRx groups, SET_MESSAGE_INTERVAL overrides."""
from __future__ import annotations

from functools import partial
from typing import Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from .params import Param
from .scheduler import Periodic

M = mavlink2
MIN_INTERVAL_S = 0.005
MAX_INTERVAL_S = (2**31 - 1) / 1e6  # MESSAGE_INTERVAL.interval_us is an int32

# Hz at --rate-scale 1. HEARTBEAT is fixed at 1 Hz and not scaled.
DEFAULT_HZ: dict[int, float] = {
    M.MAVLINK_MSG_ID_HEARTBEAT: 1.0,
    M.MAVLINK_MSG_ID_GLOBAL_POSITION_INT: 5.0,
    M.MAVLINK_MSG_ID_GPS_RAW_INT: 2.0,
    M.MAVLINK_MSG_ID_ATTITUDE: 10.0,
    M.MAVLINK_MSG_ID_VFR_HUD: 4.0,
    M.MAVLINK_MSG_ID_SYS_STATUS: 1.0,
    M.MAVLINK_MSG_ID_BATTERY_STATUS: 1.0,
    M.MAVLINK_MSG_ID_HOME_POSITION: 0.2,
    # available on request / via SET_MESSAGE_INTERVAL, off by default
    M.MAVLINK_MSG_ID_SYSTEM_TIME: 0.0,
    M.MAVLINK_MSG_ID_LOCAL_POSITION_NED: 0.0,
    M.MAVLINK_MSG_ID_EXTENDED_SYS_STATE: 0.0,
}

# ArduPilot SR0_* stream groups (subset): setting the parameter (or REQUEST_DATA_STREAM)
# sets the rate of every message in the group.
GROUPS: dict[str, tuple[int, ...]] = {
    "SR0_EXT_STAT": (M.MAVLINK_MSG_ID_SYS_STATUS, M.MAVLINK_MSG_ID_GPS_RAW_INT),
    "SR0_POSITION": (M.MAVLINK_MSG_ID_GLOBAL_POSITION_INT, M.MAVLINK_MSG_ID_LOCAL_POSITION_NED),
    "SR0_EXTRA1": (M.MAVLINK_MSG_ID_ATTITUDE,),
    "SR0_EXTRA2": (M.MAVLINK_MSG_ID_VFR_HUD,),
    "SR0_EXTRA3": (M.MAVLINK_MSG_ID_BATTERY_STATUS, M.MAVLINK_MSG_ID_SYSTEM_TIME),
}
DATA_STREAM_PARAM: dict[int, str] = {
    M.MAV_DATA_STREAM_EXTENDED_STATUS: "SR0_EXT_STAT",
    M.MAV_DATA_STREAM_POSITION: "SR0_POSITION",
    M.MAV_DATA_STREAM_EXTRA1: "SR0_EXTRA1",
    M.MAV_DATA_STREAM_EXTRA2: "SR0_EXTRA2",
    M.MAV_DATA_STREAM_EXTRA3: "SR0_EXTRA3",
}
_GROUP_OF = {mid: name for name, mids in GROUPS.items() for mid in mids}

_DISABLED = -1.0  # override value meaning "stream off"


class StreamManager:
    def __init__(self, sysid: int, rate_scale: float, emit: Callable[[int], None]) -> None:
        self.rate_scale = rate_scale
        self._emit = emit
        self._overrides: dict[int, float] = {}  # msgid -> interval s, or _DISABLED
        self._group_hz: dict[str, float] = {}
        self._streams = {
            mid: Periodic(f"uav{sysid}-msg{mid}", partial(self._emit, mid), None) for mid in DEFAULT_HZ
        }

    def supports(self, msgid: int) -> bool:
        return msgid in self._streams

    def interval(self, msgid: int) -> float | None:
        """Effective interval in seconds, None when the stream is off."""
        if msgid in self._overrides:
            o = self._overrides[msgid]
            return None if o == _DISABLED else o
        group = _GROUP_OF.get(msgid)
        if group in self._group_hz:
            hz = self._group_hz[group]
        elif msgid == M.MAVLINK_MSG_ID_HEARTBEAT:
            hz = DEFAULT_HZ[msgid]
        else:
            hz = DEFAULT_HZ.get(msgid, 0.0) * self.rate_scale
        return max(MIN_INTERVAL_S, 1.0 / hz) if hz > 0 else None

    def interval_us(self, msgid: int) -> int:
        """MESSAGE_INTERVAL semantics: -1 disabled, 0 not available, else microseconds."""
        if msgid not in self._streams:
            return 0
        iv = self.interval(msgid)
        return -1 if iv is None else int(round(iv * 1e6))

    def set_interval_us(self, msgid: int, interval_us: float) -> bool:
        if msgid not in self._streams or interval_us < -1:
            return False
        if interval_us == -1:
            self._overrides[msgid] = _DISABLED
        elif interval_us == 0:
            self._overrides.pop(msgid, None)
        else:
            self._overrides[msgid] = min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, interval_us / 1e6))
        self._apply(msgid)
        return True

    def on_param(self, p: Param) -> None:
        if p.name in GROUPS:
            self._group_hz[p.name] = max(0.0, p.value)
            for mid in GROUPS[p.name]:
                self._apply(mid)

    def _apply(self, msgid: int) -> None:
        self._streams[msgid].set_period(self.interval(msgid))

    def start(self) -> None:
        for i, (mid, s) in enumerate(self._streams.items()):
            iv = self.interval(mid)
            s.set_period(iv)
            if iv is not None:
                s.start(first_delay=(0.011 * i) % iv)  # spread streams out, no bursts

    def stop(self) -> None:
        for s in self._streams.values():
            s.stop()
