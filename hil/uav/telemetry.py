"""Builds the MAVLink messages a vehicle reports, from its current state."""
from __future__ import annotations

import math
import time
from typing import Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from .flight import Autopilot
from .geo import GeoPoint

M = mavlink2
FIRMWARE_VERSION = (4, 5, 7)
# ArduPilot packs major.minor.patch.type into flight_sw_version
FLIGHT_SW_VERSION = ((FIRMWARE_VERSION[0] << 24) | (FIRMWARE_VERSION[1] << 16) | (FIRMWARE_VERSION[2] << 8)
                     | M.FIRMWARE_VERSION_TYPE_OFFICIAL)

_SENSORS = (
    M.MAV_SYS_STATUS_SENSOR_3D_GYRO | M.MAV_SYS_STATUS_SENSOR_3D_ACCEL | M.MAV_SYS_STATUS_SENSOR_3D_MAG
    | M.MAV_SYS_STATUS_SENSOR_ABSOLUTE_PRESSURE | M.MAV_SYS_STATUS_SENSOR_GPS
    | M.MAV_SYS_STATUS_SENSOR_ANGULAR_RATE_CONTROL | M.MAV_SYS_STATUS_SENSOR_ATTITUDE_STABILIZATION
    | M.MAV_SYS_STATUS_SENSOR_YAW_POSITION | M.MAV_SYS_STATUS_SENSOR_Z_ALTITUDE_CONTROL
    | M.MAV_SYS_STATUS_SENSOR_XY_POSITION_CONTROL | M.MAV_SYS_STATUS_SENSOR_MOTOR_OUTPUTS
    | M.MAV_SYS_STATUS_AHRS | M.MAV_SYS_STATUS_SENSOR_BATTERY | M.MAV_SYS_STATUS_PREARM_CHECK
)
_CAPABILITIES = (
    M.MAV_PROTOCOL_CAPABILITY_MISSION_FLOAT | M.MAV_PROTOCOL_CAPABILITY_PARAM_FLOAT
    | M.MAV_PROTOCOL_CAPABILITY_MISSION_INT | M.MAV_PROTOCOL_CAPABILITY_COMMAND_INT
    | M.MAV_PROTOCOL_CAPABILITY_SET_POSITION_TARGET_GLOBAL_INT | M.MAV_PROTOCOL_CAPABILITY_MAVLINK2
    | M.MAV_PROTOCOL_CAPABILITY_COMPASS_CALIBRATION
)


def _cdeg(rad: float) -> int:
    return int(round(math.degrees(rad) * 100.0)) % 36000


class Telemetry:
    def __init__(self, sysid: int, ap: Autopilot, home: Callable[[], GeoPoint], clock: Callable[[], float]) -> None:
        self.sysid = sysid
        self.ap = ap
        self.home = home
        self.clock = clock
        self.boot = clock()
        self.builders: dict[int, Callable[[], M.MAVLink_message]] = {
            M.MAVLINK_MSG_ID_HEARTBEAT: self.heartbeat,
            M.MAVLINK_MSG_ID_SYS_STATUS: self.sys_status,
            M.MAVLINK_MSG_ID_SYSTEM_TIME: self.system_time,
            M.MAVLINK_MSG_ID_GPS_RAW_INT: self.gps_raw_int,
            M.MAVLINK_MSG_ID_ATTITUDE: self.attitude,
            M.MAVLINK_MSG_ID_LOCAL_POSITION_NED: self.local_position_ned,
            M.MAVLINK_MSG_ID_GLOBAL_POSITION_INT: self.global_position_int,
            M.MAVLINK_MSG_ID_VFR_HUD: self.vfr_hud,
            M.MAVLINK_MSG_ID_BATTERY_STATUS: self.battery_status,
            M.MAVLINK_MSG_ID_AUTOPILOT_VERSION: self.autopilot_version,
            M.MAVLINK_MSG_ID_HOME_POSITION: self.home_position,
            M.MAVLINK_MSG_ID_EXTENDED_SYS_STATE: self.extended_sys_state,
        }
        self.video_uri: str | None = None

    def video_stream_information(self) -> M.MAVLink_message:
        """Stream 1 of 1: an RTSP H.264 camera (MAVLink camera protocol, message 269)."""
        uri = (self.video_uri or "").encode()[:160]
        return M.MAVLink_video_stream_information_message(
            1, 1, M.VIDEO_STREAM_TYPE_RTSP, M.VIDEO_STREAM_STATUS_FLAGS_RUNNING, 30.0, 1280, 720,
            2000, 0, 90, b"main", uri, M.VIDEO_STREAM_ENCODING_H264)

    # ------------------------------------------------------------- helpers
    def boot_ms(self) -> int:
        return int((self.clock() - self.boot) * 1000.0) & 0xFFFFFFFF

    def position(self) -> GeoPoint:
        k = self.ap.kin
        return self.home().offset(k.n, k.e, k.alt)

    def system_status(self) -> int:
        if self.ap.battery.critical:
            return M.MAV_STATE_CRITICAL
        return M.MAV_STATE_ACTIVE if self.ap.armed else M.MAV_STATE_STANDBY

    def throttle_pct(self) -> int:
        ap, k = self.ap, self.ap.kin
        if not ap.armed:
            return 0
        if not ap.flying:
            return 8
        thr = 38.0 + 12.0 * k.vu / ap.limits.climb + 6.0 * min(1.0, k.groundspeed / 10.0)
        return int(max(10.0, min(100.0, thr)))

    # ------------------------------------------------------------- messages
    def heartbeat(self) -> M.MAVLink_message:
        base = M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | M.MAV_MODE_FLAG_STABILIZE_ENABLED
        if self.ap.mode in (3, 4, 5, 6, 7, 9, 17):
            base |= M.MAV_MODE_FLAG_GUIDED_ENABLED
        if self.ap.armed:
            base |= M.MAV_MODE_FLAG_SAFETY_ARMED
        return M.MAVLink_heartbeat_message(M.MAV_TYPE_QUADROTOR, M.MAV_AUTOPILOT_ARDUPILOTMEGA, base,
                                           int(self.ap.mode), self.system_status(), 3)

    def sys_status(self) -> M.MAVLink_message:
        b = self.ap.battery
        enabled = _SENSORS if self.ap.armed else _SENSORS & ~M.MAV_SYS_STATUS_SENSOR_MOTOR_OUTPUTS
        health = _SENSORS & ~(M.MAV_SYS_STATUS_SENSOR_BATTERY if b.critical else 0)
        load = 220 + int(30 * math.sin(self.clock() / 7.0))
        return M.MAVLink_sys_status_message(_SENSORS, enabled, health, load, b.voltage_mv, b.current_ca,
                                            b.percent, 0, 0, 0, 0, 0, 0)

    def system_time(self) -> M.MAVLink_message:
        return M.MAVLink_system_time_message(int(time.time() * 1e6), self.boot_ms())

    def gps_raw_int(self) -> M.MAVLink_message:
        k, p = self.ap.kin, self.position()
        t = self.clock()
        sats = 14 + int(round(2.0 * math.sin(t / 41.0)))
        eph = 80 + int(round(6.0 * math.sin(t / 23.0)))
        cog = _cdeg(k.course) if k.groundspeed > 0.2 else _cdeg(k.yaw)
        return M.MAVLink_gps_raw_int_message(
            int(time.time() * 1e6), M.GPS_FIX_TYPE_3D_FIX, int(round(p.lat * 1e7)), int(round(p.lon * 1e7)),
            int(round(p.alt * 1000.0)), eph, 120, int(round(k.groundspeed * 100.0)), cog, sats,
            int(round((p.alt + 30.0) * 1000.0)), 600, 900, 150, 0, 0)

    def global_position_int(self) -> M.MAVLink_message:
        k, p = self.ap.kin, self.position()
        return M.MAVLink_global_position_int_message(
            self.boot_ms(), int(round(p.lat * 1e7)), int(round(p.lon * 1e7)), int(round(p.alt * 1000.0)),
            int(round(k.alt * 1000.0)), int(round(k.vn * 100.0)), int(round(k.ve * 100.0)),
            int(round(-k.vu * 100.0)), _cdeg(k.yaw))

    def local_position_ned(self) -> M.MAVLink_message:
        k = self.ap.kin
        return M.MAVLink_local_position_ned_message(self.boot_ms(), k.n, k.e, -k.alt, k.vn, k.ve, -k.vu)

    def attitude(self) -> M.MAVLink_message:
        k = self.ap.kin
        yaw = k.yaw if k.yaw <= math.pi else k.yaw - 2.0 * math.pi
        return M.MAVLink_attitude_message(self.boot_ms(), k.roll, k.pitch, yaw, k.rollspeed, k.pitchspeed, k.yawspeed)

    def vfr_hud(self) -> M.MAVLink_message:
        k, p = self.ap.kin, self.position()
        heading = int(round(math.degrees(k.yaw))) % 360
        return M.MAVLink_vfr_hud_message(k.groundspeed, k.groundspeed, heading, self.throttle_pct(), p.alt, k.vu)

    def battery_status(self) -> M.MAVLink_message:
        b = self.ap.battery
        voltages = [b.voltage_mv] + [65535] * 9
        if b.percent < 15:
            charge = M.MAV_BATTERY_CHARGE_STATE_CRITICAL
        elif b.percent < 30:
            charge = M.MAV_BATTERY_CHARGE_STATE_LOW
        else:
            charge = M.MAV_BATTERY_CHARGE_STATE_OK
        return M.MAVLink_battery_status_message(
            0, M.MAV_BATTERY_FUNCTION_ALL, M.MAV_BATTERY_TYPE_LIPO, 3150, voltages, b.current_ca,
            int(round(b.consumed_mah)), int(round(b.consumed_wh * 36.0)), b.percent, b.seconds_remaining(),
            charge, [0, 0, 0, 0], 0, 0)

    def home_position(self) -> M.MAVLink_message:
        h = self.home()
        return M.MAVLink_home_position_message(
            int(round(h.lat * 1e7)), int(round(h.lon * 1e7)), int(round(h.alt * 1000.0)), 0.0, 0.0, 0.0,
            [1.0, 0.0, 0.0, 0.0], 0.0, 0.0, 0.0, int(time.time() * 1e6))

    def extended_sys_state(self) -> M.MAVLink_message:
        return M.MAVLink_extended_sys_state_message(M.MAV_VTOL_STATE_UNDEFINED, self.ap.landed_state())

    def autopilot_version(self) -> M.MAVLink_message:
        git = list(b"6b4b0b3d")
        uid2 = [(self.sysid * 7 + i) & 0xFF for i in range(18)]
        return M.MAVLink_autopilot_version_message(
            _CAPABILITIES, FLIGHT_SW_VERSION, 0, 0, 0, git, [0] * 8, [0] * 8, 0x1209, 0x5741,
            0x5349_4D00 + self.sysid, uid2)

    def statustext(self, severity: int, text: str) -> M.MAVLink_message:
        return M.MAVLink_statustext_message(severity, text.encode("ascii", "replace")[:50], 0, 0)
