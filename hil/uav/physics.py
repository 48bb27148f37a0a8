"""Multicopter kinematics: position/velocity controller with acceleration limits.

Local frame: north/east metres from the vehicle's home, ``alt`` metres above
home (up positive). Velocities: vn, ve (m/s), vu (m/s, up positive).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .geo import wrap_2pi, wrap_pi

GRAVITY = 9.80665
DRAG_TILT = 0.17  # m/s^2 of tilt per m/s of airspeed (~8 deg at 8 m/s)
KP_POS = 1.0  # 1/s
K_VEL = 4.0  # 1/s velocity tracking bandwidth
ATT_TAU = 0.15  # s attitude response


@dataclass
class Limits:
    accel_xy: float = 2.5
    accel_z: float = 2.5
    climb: float = 2.5
    descent: float = 1.5
    yaw_rate: float = math.radians(90.0)


@dataclass
class Setpoint:
    """What the position controller is asked to do this tick."""

    kind: str = "idle"  # idle | hold | goto | circle | land | freefall
    n: float = 0.0
    e: float = 0.0
    alt: float = 0.0
    speed: float = 8.0  # horizontal cruise (m/s)
    center_n: float = 0.0
    center_e: float = 0.0
    radius: float = 80.0
    circle_speed: float = 5.0


@dataclass
class KinState:
    n: float = 0.0
    e: float = 0.0
    alt: float = 0.0
    vn: float = 0.0
    ve: float = 0.0
    vu: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0
    pitch: float = 0.0
    rollspeed: float = 0.0
    pitchspeed: float = 0.0
    yawspeed: float = 0.0
    on_ground: bool = True

    @property
    def groundspeed(self) -> float:
        return math.hypot(self.vn, self.ve)

    @property
    def course(self) -> float:
        return wrap_2pi(math.atan2(self.ve, self.vn))

    def stopping_point(self, accel: float) -> tuple[float, float]:
        """Where the vehicle ends up if it brakes at ``accel`` from now."""
        v = self.groundspeed
        if v < 0.05:
            return self.n, self.e
        d = v * v / (2.0 * accel)
        return self.n + self.vn / v * d, self.e + self.ve / v * d


def _approach_speed(dist: float, cruise: float, accel: float) -> float:
    """Speed toward a target so the vehicle can stop on it (sqrt profile near, P at the end)."""
    return min(cruise, KP_POS * dist, math.sqrt(2.0 * accel * dist))


def _desired_xy(st: KinState, sp: Setpoint, lim: Limits) -> tuple[float, float]:
    if sp.kind in ("hold", "goto", "land"):
        dn, de = sp.n - st.n, sp.e - st.e
        d = math.hypot(dn, de)
        if d < 1e-3:
            return 0.0, 0.0
        v = _approach_speed(d, sp.speed, lim.accel_xy)
        return dn / d * v, de / d * v
    if sp.kind == "circle":
        rn, re = st.n - sp.center_n, st.e - sp.center_e
        r = math.hypot(rn, re)
        if r < 0.5:
            hn, he = math.cos(st.yaw), math.sin(st.yaw)
        else:
            hn, he = rn / r, re / r
        err = sp.radius - r  # >0: need to move outward
        v_rad = max(-sp.speed, min(sp.speed, KP_POS * err))
        v_tan = sp.circle_speed * max(0.0, 1.0 - abs(err) / 15.0)
        # clockwise seen from above: tangent = (-sin, cos) of the bearing from centre
        return hn * v_rad - he * v_tan, he * v_rad + hn * v_tan
    return 0.0, 0.0  # idle / freefall: no horizontal demand


def _desired_z(st: KinState, sp: Setpoint, lim: Limits) -> float:
    if sp.kind == "land":
        return -lim.descent
    err = sp.alt - st.alt
    v = _approach_speed(abs(err), lim.climb if err > 0 else lim.descent, lim.accel_z)
    return math.copysign(v, err)


def step(st: KinState, sp: Setpoint, lim: Limits, dt: float) -> bool:
    """Advance the state by ``dt``; returns True on touchdown this step."""
    if st.on_ground:
        st.vn = st.ve = st.vu = 0.0
        _settle_attitude(st, 0.0, 0.0, dt)
        st.yawspeed = 0.0
        return False

    vn0, ve0 = st.vn, st.ve
    if sp.kind == "freefall":
        st.vu = max(-25.0, st.vu - GRAVITY * dt)
        decay = max(0.0, 1.0 - 0.3 * dt)
        st.vn *= decay
        st.ve *= decay
    else:
        dvn_t, dve_t = _desired_xy(st, sp, lim)
        gain = min(1.0, K_VEL * dt)
        dvn, dve = (dvn_t - st.vn) * gain, (dve_t - st.ve) * gain
        dv = math.hypot(dvn, dve)
        max_dv = lim.accel_xy * dt
        if dv > max_dv:
            dvn, dve = dvn / dv * max_dv, dve / dv * max_dv
        st.vn += dvn
        st.ve += dve
        dvu = (_desired_z(st, sp, lim) - st.vu) * gain
        st.vu += max(-lim.accel_z * dt, min(lim.accel_z * dt, dvu))

    st.n += st.vn * dt
    st.e += st.ve * dt
    st.alt += st.vu * dt

    # heading: multicopter faces its direction of travel when moving
    if st.groundspeed > 1.0:
        diff = wrap_pi(st.course - st.yaw)
        turn = max(-lim.yaw_rate * dt, min(lim.yaw_rate * dt, diff))
        st.yaw = wrap_2pi(st.yaw + turn)
        st.yawspeed = turn / dt
    else:
        st.yawspeed = 0.0

    an, ae = (st.vn - vn0) / dt, (st.ve - ve0) / dt
    tn = (an + DRAG_TILT * st.vn) / GRAVITY
    te = (ae + DRAG_TILT * st.ve) / GRAVITY
    fwd = tn * math.cos(st.yaw) + te * math.sin(st.yaw)
    right = -tn * math.sin(st.yaw) + te * math.cos(st.yaw)
    _settle_attitude(st, math.atan(right), -math.atan(fwd), dt)

    if st.alt <= 0.0 and st.vu <= 0.0:
        st.alt = 0.0
        st.vn = st.ve = st.vu = 0.0
        st.on_ground = True
        return True
    return False


def _settle_attitude(st: KinState, roll_t: float, pitch_t: float, dt: float) -> None:
    k = min(1.0, dt / ATT_TAU)
    new_roll = st.roll + (roll_t - st.roll) * k
    new_pitch = st.pitch + (pitch_t - st.pitch) * k
    st.rollspeed = (new_roll - st.roll) / dt if dt > 0 else 0.0
    st.pitchspeed = (new_pitch - st.pitch) / dt if dt > 0 else 0.0
    st.roll, st.pitch = new_roll, new_pitch
