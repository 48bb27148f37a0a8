"""A small ArduCopter-like parameter table (per vehicle)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

INT8 = mavlink2.MAV_PARAM_TYPE_INT8
INT16 = mavlink2.MAV_PARAM_TYPE_INT16
INT32 = mavlink2.MAV_PARAM_TYPE_INT32
REAL32 = mavlink2.MAV_PARAM_TYPE_REAL32

_INT_RANGES = {INT8: (-128, 127), INT16: (-32768, 32767), INT32: (-(2**31), 2**31 - 1)}


@dataclass
class Param:
    name: str
    value: float
    ptype: int


def coerce(value: float, ptype: int) -> float | None:
    """Value as stored for ``ptype`` (ints rounded and clamped); None for NaN/inf."""
    if math.isnan(value) or math.isinf(value):
        return None
    if ptype in _INT_RANGES:
        lo, hi = _INT_RANGES[ptype]
        return float(min(hi, max(lo, int(round(value)))))
    # REAL32 round-trips through float32 on the wire anyway
    return value


def default_table(sysid: int, speed_mps: float, radius_m: float, rate_scale: float) -> list[Param]:
    def rate(hz: float) -> float:
        return float(max(0, min(50, round(hz * rate_scale))))

    return [
        Param("SYSID_THISMAV", float(sysid), INT16),
        Param("SYSID_MYGCS", 255.0, INT16),
        Param("FRAME_CLASS", 1.0, INT8),
        Param("ARMING_CHECK", 1.0, INT32),
        Param("DISARM_DELAY", 10.0, INT8),
        Param("RTL_ALT", 1500.0, INT32),
        Param("RTL_SPEED", 0.0, INT16),
        Param("WPNAV_SPEED", float(round(speed_mps * 100.0)), REAL32),
        Param("WPNAV_SPEED_UP", 250.0, REAL32),
        Param("WPNAV_SPEED_DN", 150.0, REAL32),
        Param("WPNAV_ACCEL", 250.0, REAL32),
        Param("CIRCLE_RADIUS", float(round(radius_m * 100.0)), REAL32),
        Param("BATT_MONITOR", 4.0, INT8),
        Param("BATT_CAPACITY", 5200.0, INT32),
        Param("FS_BATT_ENABLE", 0.0, INT8),
        Param("FS_BATT_VOLTAGE", 14.0, REAL32),
        Param("FS_BATT_MAH", 0.0, REAL32),
        Param("FENCE_ENABLE", 0.0, INT8),
        Param("FENCE_ALT_MAX", 100.0, REAL32),
        Param("FENCE_RADIUS", 300.0, REAL32),
        Param("SR0_EXT_STAT", rate(1), INT16),
        Param("SR0_POSITION", rate(5), INT16),
        Param("SR0_EXTRA1", rate(10), INT16),
        Param("SR0_EXTRA2", rate(4), INT16),
        Param("SR0_EXTRA3", rate(1), INT16),
    ]


class ParamTable:
    """Ordered parameters with name/index lookup and a change hook."""

    def __init__(self, params: list[Param]) -> None:
        self._params = params
        self._by_name = {p.name: i for i, p in enumerate(params)}
        self.on_change: Callable[[Param], None] | None = None

    def __len__(self) -> int:
        return len(self._params)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._params)

    def index_of(self, name: str) -> int:
        return self._by_name[name]

    def by_index(self, index: int) -> Param | None:
        return self._params[index] if 0 <= index < len(self._params) else None

    def by_name(self, name: str) -> Param | None:
        i = self._by_name.get(name)
        return None if i is None else self._params[i]

    def get(self, name: str) -> float:
        return self._params[self._by_name[name]].value

    def set(self, name: str, value: float) -> Param | None:
        """Store a value; None for unknown names or invalid values (no change)."""
        p = self.by_name(name)
        if p is None:
            return None
        v = coerce(value, p.ptype)
        if v is None:
            return None
        changed = v != p.value
        p.value = v
        if changed and self.on_change is not None:
            self.on_change(p)
        return p
