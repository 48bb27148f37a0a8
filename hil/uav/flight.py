"""ArduCopter-like flight modes on top of the kinematic model."""
from __future__ import annotations

import math
from enum import IntEnum
from typing import Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from . import physics
from .battery import Battery
from .params import ParamTable

RESULT_ACCEPTED = mavlink2.MAV_RESULT_ACCEPTED
RESULT_DENIED = mavlink2.MAV_RESULT_DENIED
RESULT_FAILED = mavlink2.MAV_RESULT_FAILED

SEV_EMERGENCY = mavlink2.MAV_SEVERITY_EMERGENCY
SEV_CRITICAL = mavlink2.MAV_SEVERITY_CRITICAL
SEV_WARNING = mavlink2.MAV_SEVERITY_WARNING
SEV_INFO = mavlink2.MAV_SEVERITY_INFO

PATTERN_SPEED = 5.0  # m/s around the circle
MAX_SPEED = 30.0  # m/s, cap on any commanded horizontal speed
MAX_ALT = 3000.0  # m above home, cap on any commanded altitude
LAND_DISARM_DELAY = 1.0  # s after touchdown in LAND/RTL
BRAKE_DECEL = 7.5  # m/s^2, ArduCopter BRAKE mode's hard stop


class Mode(IntEnum):
    STABILIZE = 0
    ALT_HOLD = 2
    AUTO = 3
    GUIDED = 4
    LOITER = 5
    RTL = 6
    CIRCLE = 7
    LAND = 9
    BRAKE = 17


ARMABLE = {Mode.STABILIZE, Mode.ALT_HOLD, Mode.GUIDED, Mode.LOITER}
HOLDING = {Mode.STABILIZE, Mode.ALT_HOLD, Mode.LOITER, Mode.BRAKE}

Notify = Callable[[int, str], None]


class Autopilot:
    """Mode logic; ``tick(dt)`` runs the controller, physics and battery."""

    def __init__(self, params: ParamTable, battery: Battery, notify: Notify, takeoff_alt: float) -> None:
        self.params = params
        self.battery = battery
        self.notify = notify
        self.takeoff_alt = takeoff_alt
        self.kin = physics.KinState()
        self.limits = physics.Limits()
        self.mode = Mode.STABILIZE
        self.armed = False
        self.phase = "ground"
        self.time = 0.0
        self.target = (0.0, 0.0, 0.0)  # n, e, alt for the current phase
        self.center = (0.0, 0.0)
        self.speed_override: float | None = None
        self.paused: tuple[Mode, str, tuple[float, float, float], tuple[float, float], float | None] | None = None
        self.pause_brake = False
        self.auto_after_takeoff = False
        self.disarm_at: float | None = None
        self.ground_since = 0.0
        self.batt_failsafe = False
        self.on_rehome: Callable[[float, float], None] | None = None

    # ---------------------------------------------------------------- queries
    @property
    def flying(self) -> bool:
        return not self.kin.on_ground

    def cruise_speed(self) -> float:
        speed = self.speed_override or self.params.get("WPNAV_SPEED") / 100.0
        return min(MAX_SPEED, max(0.2, speed))

    def rtl_speed(self) -> float:
        rtl = self.params.get("RTL_SPEED")
        return min(MAX_SPEED, rtl / 100.0) if rtl > 0 and not self.speed_override else self.cruise_speed()

    def _circle_radius(self) -> float:
        return min(10_000.0, max(1.0, self.params.get("CIRCLE_RADIUS") / 100.0))

    def landed_state(self) -> int:
        if not self.flying:
            return mavlink2.MAV_LANDED_STATE_ON_GROUND
        if self.phase == "takeoff":
            return mavlink2.MAV_LANDED_STATE_TAKEOFF
        if self.phase == "descend":
            return mavlink2.MAV_LANDED_STATE_LANDING
        return mavlink2.MAV_LANDED_STATE_IN_AIR

    # --------------------------------------------------------------- commands
    def arm(self, force: bool = False) -> int:
        if self.armed:
            return RESULT_ACCEPTED
        if not force:
            if self.mode not in ARMABLE:
                self.notify(SEV_CRITICAL, "Arm: Mode not armable")
                return RESULT_FAILED
            if self.params.get("ARMING_CHECK") != 0 and self.battery.critical:
                self.notify(SEV_CRITICAL, "PreArm: Battery below minimum arming capacity")
                return RESULT_FAILED
        if math.hypot(self.kin.n, self.kin.e) > 0.5 and self.on_rehome is not None:
            self.on_rehome(self.kin.n, self.kin.e)  # like ArduPilot: home = where it arms
            self.kin.n = self.kin.e = 0.0
        self.armed = True
        self.ground_since = self.time
        self.disarm_at = None
        self.notify(SEV_INFO, "Arming motors")
        return RESULT_ACCEPTED

    def disarm(self, force: bool = False) -> int:
        if not self.armed:
            return RESULT_ACCEPTED
        if self.flying and not force:
            self.notify(SEV_CRITICAL, "Disarm: vehicle is flying")
            return RESULT_FAILED
        self.armed = False
        self.disarm_at = None
        self.auto_after_takeoff = False
        self.notify(SEV_INFO, "Disarming motors")
        if self.flying:
            self.phase = "freefall"
        return RESULT_ACCEPTED

    def set_mode(self, mode_number: int, from_gcs: bool = True) -> int:
        try:
            mode = Mode(mode_number)
        except ValueError:
            return RESULT_DENIED
        if mode in (Mode.RTL, Mode.LAND) and not self.flying:
            return RESULT_FAILED
        if from_gcs:
            self.paused = None
            self.pause_brake = False
            self.auto_after_takeoff = False
        if mode == self.mode:
            return RESULT_ACCEPTED  # re-selecting a mode does not restart it
        self._enter(mode)
        return RESULT_ACCEPTED

    def takeoff(self, alt: float) -> int:
        if self.mode != Mode.GUIDED or not self.armed or not 0.0 < alt <= MAX_ALT:
            return RESULT_FAILED
        if self.flying:
            if self.phase == "takeoff" or (self.phase == "hold" and abs(self.kin.alt - alt) < 1.0):
                if self.phase == "takeoff":
                    self.target = (self.target[0], self.target[1], alt)
                return RESULT_ACCEPTED  # retransmission of the takeoff in progress
            return RESULT_FAILED
        self._start_takeoff(alt)
        return RESULT_ACCEPTED

    def goto(self, n: float, e: float, alt: float, speed: float | None) -> int:
        if not self.flying or not self.armed:
            return RESULT_FAILED
        self.paused = None
        self.pause_brake = False
        self.auto_after_takeoff = False
        if self.mode != Mode.GUIDED:
            self._enter(Mode.GUIDED)
        self.phase = "goto"
        self.target = (n, e, min(MAX_ALT, max(0.0, alt)))
        self.speed_override = min(MAX_SPEED, speed) if speed and speed > 0 else None
        return RESULT_ACCEPTED

    def change_speed(self, speed: float) -> int:
        if not 0.0 < speed < math.inf:
            return RESULT_DENIED
        self.speed_override = min(MAX_SPEED, speed)
        return RESULT_ACCEPTED

    def pause(self) -> int:
        if not self.flying or not self.armed:
            return RESULT_FAILED
        if self.paused is not None:
            return RESULT_ACCEPTED
        self.paused = (self.mode, self.phase, self.target, self.center, self.speed_override)
        self.auto_after_takeoff = False
        self.pause_brake = True
        self._enter(Mode.BRAKE)
        return RESULT_ACCEPTED

    def resume(self) -> int:
        if self.paused is None:
            return RESULT_ACCEPTED if self.mode in (Mode.GUIDED, Mode.AUTO) and self.flying else RESULT_FAILED
        mode, phase, target, center, speed = self.paused
        self.paused = None
        self.pause_brake = False
        self._set_mode_raw(mode)
        self.phase, self.target, self.center, self.speed_override = phase, target, center, speed
        return RESULT_ACCEPTED

    def start_mission(self) -> None:
        """Autostart: GUIDED, arm, take off, then AUTO when the takeoff completes."""
        if self.armed or self.flying:
            return
        self.set_mode(Mode.GUIDED)
        if self.arm() == RESULT_ACCEPTED and self.takeoff(self.takeoff_alt) == RESULT_ACCEPTED:
            self.auto_after_takeoff = True

    # --------------------------------------------------------------- internals
    def _set_mode_raw(self, mode: Mode) -> None:
        if mode != self.mode:
            self.mode = mode
            self.notify(SEV_INFO, f"Mode {mode.name}")

    def _hold_here(self) -> None:
        self._update_limits()
        n, e = self.kin.stopping_point(self.limits.accel_xy)
        self.target = (n, e, self.kin.alt)

    def _start_circle(self, center: tuple[float, float]) -> None:
        self.phase = "circle"
        self.center = center
        self.target = (center[0], center[1], self.kin.alt)

    def _start_takeoff(self, alt: float) -> None:
        self.kin.on_ground = False
        self.phase = "takeoff"
        self.target = (self.kin.n, self.kin.e, alt)
        self.disarm_at = None
        self.notify(SEV_INFO, f"Takeoff to {alt:.1f} m")

    def _enter(self, mode: Mode) -> None:
        self._set_mode_raw(mode)
        self.speed_override = None if mode != Mode.GUIDED else self.speed_override
        if not self.flying:
            if mode == Mode.AUTO and self.armed:
                self._start_takeoff(self.takeoff_alt)
            else:
                self.phase = "ground"
            return
        if self.phase == "freefall":
            return
        if mode in HOLDING or mode == Mode.GUIDED:
            self.phase = "hold"
            self._hold_here()
        elif mode == Mode.AUTO:
            self._start_circle((0.0, 0.0))  # the pattern: a circle around home
        elif mode == Mode.CIRCLE:
            r = self._circle_radius()  # centre is one radius ahead
            self._start_circle((self.kin.n + r * math.cos(self.kin.yaw), self.kin.e + r * math.sin(self.kin.yaw)))
        elif mode == Mode.RTL:
            self.phase = "climb"
            self._hold_here()
            rtl_alt = max(self.kin.alt, min(MAX_ALT, self.params.get("RTL_ALT") / 100.0))
            self.target = (self.target[0], self.target[1], rtl_alt)
            self.notify(SEV_INFO, "RTL: returning to launch")
        elif mode == Mode.LAND:
            self.phase = "descend"
            self._hold_here()
            self.notify(SEV_INFO, "Landing")

    def _setpoint(self) -> physics.Setpoint:
        n, e, alt = self.target
        ph = self.phase
        if ph in ("ground", "landed"):
            return physics.Setpoint(kind="idle")
        if ph == "freefall":
            return physics.Setpoint(kind="freefall")
        if ph == "circle":
            return physics.Setpoint(kind="circle", alt=alt, speed=self.cruise_speed(),
                                    center_n=self.center[0], center_e=self.center[1],
                                    radius=self._circle_radius(),
                                    circle_speed=PATTERN_SPEED)
        if ph == "descend":
            return physics.Setpoint(kind="land", n=n, e=e, speed=self.cruise_speed())
        speed = self.rtl_speed() if ph == "return" else self.cruise_speed()
        return physics.Setpoint(kind="goto" if ph in ("goto", "return") else "hold", n=n, e=e, alt=alt, speed=speed)

    def _update_limits(self) -> None:
        p = self.params
        self.limits.climb = min(10.0, max(0.1, p.get("WPNAV_SPEED_UP") / 100.0))
        self.limits.descent = min(10.0, max(0.1, p.get("WPNAV_SPEED_DN") / 100.0))
        self.limits.accel_xy = min(10.0, max(0.5, p.get("WPNAV_ACCEL") / 100.0))
        if self.mode == Mode.BRAKE:
            self.limits.accel_xy = BRAKE_DECEL

    def _advance_phase(self) -> None:
        k, alt = self.kin, self.target[2]
        if self.phase == "takeoff" and abs(k.alt - alt) < 0.5:
            self.phase = "hold"
            self.notify(SEV_INFO, "Takeoff complete")
            if self.auto_after_takeoff:
                self.auto_after_takeoff = False
                self._enter(Mode.AUTO)
            elif self.mode == Mode.AUTO:
                self._start_circle((0.0, 0.0))
            self.target = (self.target[0], self.target[1], alt)  # keep the takeoff altitude
        elif self.phase == "climb" and abs(k.alt - alt) < 0.5:
            self.phase = "return"
            self.target = (0.0, 0.0, alt)
        elif self.phase == "return" and math.hypot(k.n, k.e) < 1.0 and k.groundspeed < 0.5:
            self.phase = "descend"
        elif self.mode == Mode.BRAKE and self.pause_brake and k.groundspeed < 0.2:
            self.pause_brake = False
            self._set_mode_raw(Mode.LOITER)
            self._hold_here()

    def _battery(self, dt: float) -> None:
        k = self.kin
        load = 0.9 + 0.25 * max(0.0, k.vu) / self.limits.climb + 0.15 * min(1.0, k.groundspeed / 8.0)
        self.battery.capacity_mah = self.params.get("BATT_CAPACITY")
        for ev in self.battery.step(dt, self.flying and self.armed, load):
            if ev.level == "low":
                self.notify(SEV_WARNING, "Battery low")
            elif ev.level == "critical":
                self.notify(SEV_CRITICAL, "Battery critical")
            elif ev.level == "empty" and self.flying and self.armed:
                self.notify(SEV_EMERGENCY, "Battery depleted: landing")
                self.batt_failsafe = True
                if self.mode != Mode.LAND:
                    self.set_mode(Mode.LAND, from_gcs=False)
        action = int(self.params.get("FS_BATT_ENABLE"))
        low = self.battery.critical or self.battery.voltage < self.params.get("FS_BATT_VOLTAGE")
        if action in (1, 2) and low and not self.batt_failsafe and self.flying and self.armed:
            self.batt_failsafe = True
            self.notify(SEV_CRITICAL, "Battery failsafe")
            target = Mode.LAND if action == 1 else Mode.RTL
            if self.mode not in (Mode.LAND, Mode.RTL):
                self.set_mode(target, from_gcs=False)

    def tick(self, dt: float) -> None:
        self.time += dt
        self._update_limits()
        was_freefall = self.phase == "freefall"
        touchdown = physics.step(self.kin, self._setpoint(), self.limits, dt)
        if touchdown:
            self.phase = "landed"
            self.ground_since = self.time
            if was_freefall:
                self.notify(SEV_CRITICAL, "Crash: impact with ground")
            else:
                self.notify(SEV_INFO, "Landed")
            if self.armed and self.mode in (Mode.LAND, Mode.RTL):
                self.disarm_at = self.time + LAND_DISARM_DELAY
        elif self.flying:
            self._advance_phase()
        self._battery(dt)
        if self.armed and not self.flying:
            delay = self.params.get("DISARM_DELAY")
            if self.disarm_at is None and delay > 0 and self.time - self.ground_since >= delay:
                self.disarm_at = self.time
            if self.disarm_at is not None and self.time >= self.disarm_at:
                self.disarm()
