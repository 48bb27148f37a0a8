"""The dome's simulated pan/tilt/zoom, in ONVIF's generic spaces.

* Position: pan x and tilt y in -1..1 (PositionGenericSpace), zoom in 0..1. Pan is endless (a 360°
  dome): x = 1 and x = -1 are the same bearing and a pan past one end comes in at the other. Tilt and
  zoom stop at their limits.
* ContinuousMove velocities are in -1..1 (VelocityGenericSpace); 1 means the fastest the dome goes:
  ``PAN_RATE`` / ``TILT_RATE`` / ``ZOOM_RATE`` generic units per second. A move lasts until Stop, the
  request's Timeout or the configuration's DefaultPTZTimeout, whichever comes first.
* AbsoluteMove, RelativeMove, GotoPreset and GotoHomePosition travel to a target (pan by the shorter
  way round) at Speed (GenericSpeedSpace 0..1, default DefaultPTZSpeed) × the fastest rate, each axis on
  its own; MoveStatus is MOVING until every axis has arrived.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

PAN_RATE = 0.5   # generic units per second at velocity 1: 90°/s on a 360° dome
TILT_RATE = 0.5
ZOOM_RATE = 0.25  # the whole zoom range in 4 s


def wrap(x: float) -> float:
    """Pan into -1..1 (1 stays 1: both ends are the same bearing)."""
    if -1.0 <= x <= 1.0:
        return x
    return (x + 1.0) % 2.0 - 1.0


def clamp(v: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, v))


@dataclass
class Axis:
    """One axis: a velocity (continuous) or a target with a speed (absolute); never both."""
    pos: float
    lo: float
    hi: float
    rate: float
    endless: bool = False
    velocity: float = 0.0
    target: float | None = None
    speed: float = 0.0  # units per second toward the target

    @property
    def moving(self) -> bool:
        return self.velocity != 0.0 or self.target is not None

    def stop(self) -> None:
        self.velocity, self.target = 0.0, None

    def advance(self, dt: float) -> None:
        if self.target is not None:
            delta = self.target - self.pos
            if self.endless:  # the shorter way round
                delta = (delta + 1.0) % 2.0 - 1.0
            step = self.speed * dt
            if abs(delta) <= step or self.speed <= 0:
                self.pos, self.target = self.target, None
            else:
                self.pos += math.copysign(step, delta)
                if self.endless:
                    self.pos = wrap(self.pos)
        elif self.velocity:
            self.pos += self.velocity * self.rate * dt
            if self.endless:
                self.pos = wrap(self.pos)
            elif not self.lo <= self.pos <= self.hi:  # at the mechanical limit: the axis stops there
                self.pos = clamp(self.pos, self.lo, self.hi)
                self.velocity = 0.0

    def go(self, target: float, speed: float) -> None:
        """Travel to `target` at `speed` (0..1 of the axis' fastest rate; 0 means the fastest)."""
        self.velocity = 0.0
        self.target = wrap(target) if self.endless else clamp(target, self.lo, self.hi)
        self.speed = (speed if speed > 0 else 1.0) * self.rate
        if self.target == self.pos:
            self.target = None


@dataclass
class Ptz:
    pan: Axis = field(default_factory=lambda: Axis(0.0, -1.0, 1.0, PAN_RATE, endless=True))
    tilt: Axis = field(default_factory=lambda: Axis(0.0, -1.0, 1.0, TILT_RATE))
    zoom: Axis = field(default_factory=lambda: Axis(0.0, 0.0, 1.0, ZOOM_RATE))
    deadline: float | None = None  # monotonic time a continuous move ends
    moves: int = 0
    _last: float = field(default_factory=time.monotonic)

    def update(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        end = now if self.deadline is None else min(now, self.deadline)
        if end > self._last:
            for axis in (self.pan, self.tilt, self.zoom):
                axis.advance(end - self._last)
        if self.deadline is not None and now >= self.deadline:  # the move's Timeout: continuous axes stop
            for axis in (self.pan, self.tilt, self.zoom):
                axis.velocity = 0.0
            self.deadline = None
        self._last = now

    def continuous(self, pan: float | None, tilt: float | None, zoom: float | None, timeout_s: float) -> None:
        """Velocities in -1..1; None leaves that axis as it is (ONVIF: an omitted vector does not affect it)."""
        self.update()
        self.moves += 1
        for axis, v in ((self.pan, pan), (self.tilt, tilt), (self.zoom, zoom)):
            if v is not None:
                axis.target = None
                axis.velocity = v
        self.deadline = time.monotonic() + timeout_s

    def absolute(self, pan: float | None, tilt: float | None, zoom: float | None,
                 pt_speed: float, zoom_speed: float) -> None:
        self.update()
        self.moves += 1
        if pan is not None:
            self.pan.go(pan, pt_speed)
        if tilt is not None:
            self.tilt.go(tilt, pt_speed)
        if zoom is not None:
            self.zoom.go(zoom, zoom_speed)

    def stop(self, pan_tilt: bool = True, zoom: bool = True) -> None:
        self.update()
        if pan_tilt:
            self.pan.stop()
            self.tilt.stop()
        if zoom:
            self.zoom.stop()
        if not any(a.velocity for a in (self.pan, self.tilt, self.zoom)):
            self.deadline = None

    def position(self) -> tuple[float, float, float]:
        self.update()
        return self.pan.pos, self.tilt.pos, self.zoom.pos

    @property
    def pan_tilt_moving(self) -> bool:
        return self.pan.moving or self.tilt.moving

    def to_json(self) -> dict[str, Any]:
        p, t, z = self.position()
        return {"pan": round(p, 4), "tilt": round(t, 4), "zoom": round(z, 4),
                "pan_deg": round(p * 180.0, 2), "tilt_deg": round(t * 90.0, 2),
                "moving": {"pan_tilt": self.pan_tilt_moving, "zoom": self.zoom.moving},
                "velocity": {"pan": self.pan.velocity, "tilt": self.tilt.velocity, "zoom": self.zoom.velocity},
                "moves": self.moves}
