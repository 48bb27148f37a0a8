"""One vehicle (a MAVLink system id) mapped onto the normalized model.

HEARTBEAT → mode, armed, system status, online; GLOBAL_POSITION_INT (or
GPS_RAW_INT when that is all there is) → Position; GPS_RAW_INT → fix;
ATTITUDE, VFR_HUD, SYS_STATUS, BATTERY_STATUS → telemetry (sent at most once
per `telemetry_interval_s`) and battery status; HOME_POSITION → status;
STATUSTEXT → events with mapped severity.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from pymavlink.dialects.v20 import ardupilotmega as m2

from drivers.mavlink.profile import VehicleProfile
from gateway.driver_api import DriverContext
from gateway.model import Event, Position, StatusUpdate, StreamOffer, Telemetry, now_ms

OFFLINE_AFTER_S = 3.0

_FIX = {0: "none", 1: "none", 2: "2d", 3: "3d", 4: "3d", 5: "rtk", 6: "rtk", 7: "3d", 8: "3d"}
_SEVERITY = {0: "critical", 1: "critical", 2: "critical", 3: "warning", 4: "warning", 5: "info", 6: "info", 7: "info"}
_STATE_NAME = {k: v.name.removeprefix("MAV_STATE_").lower() for k, v in m2.enums["MAV_STATE"].items()}


class Vehicle:
    def __init__(self, device_id: str, system_id: int, profile: VehicleProfile, ctx: DriverContext,
                 position_interval_s: float = 0.0, telemetry_interval_s: float = 1.0) -> None:
        self.device_id = device_id
        self.system_id = system_id
        self.profile = profile
        self.ctx = ctx
        self.position_interval_s = position_interval_s
        self.telemetry_interval_s = telemetry_interval_s
        self.online = False
        self.last_heartbeat = 0.0
        self.status: dict[str, Any] = {}
        self.values: dict[str, float] = {}
        self.values_dirty = False
        self.home: tuple[float, float, float] | None = None
        self.fix = "none"
        self._last_global_pos = 0.0
        self._last_position_sent = 0.0
        self._last_telemetry_sent = 0.0
        self._statustext: dict[int, list[str]] = {}
        self.on_online: Callable[[Vehicle], None] | None = None
        self.handlers: dict[type, Callable[[Any], None]] = {
            m2.MAVLink_heartbeat_message: self._heartbeat,
            m2.MAVLink_global_position_int_message: self._global_position,
            m2.MAVLink_gps_raw_int_message: self._gps_raw,
            m2.MAVLink_attitude_message: self._attitude,
            m2.MAVLink_vfr_hud_message: self._vfr_hud,
            m2.MAVLink_sys_status_message: self._sys_status,
            m2.MAVLink_battery_status_message: self._battery_status,
            m2.MAVLink_home_position_message: self._home,
            m2.MAVLink_statustext_message: self._statustext_msg,
            m2.MAVLink_video_stream_information_message: self._video_stream,
        }
        self.offered_streams: dict[int, str] = {}

    # --- status / online -------------------------------------------------------
    def _set_status(self, **changes: Any) -> None:
        diff = {k: v for k, v in changes.items() if self.status.get(k) != v}
        if diff:
            self.status.update(diff)
            self.ctx.publish(StatusUpdate(self.device_id, now_ms(), diff))

    def _event(self, kind: str, severity: str, text: str, **extra: Any) -> None:
        self.ctx.publish(Event(self.device_id, now_ms(), kind, severity, text, extra))  # type: ignore[arg-type]

    def check_timeout(self, now: float) -> None:
        if self.online and now - self.last_heartbeat > OFFLINE_AFTER_S:
            self.online = False
            self.ctx.set_online(self.device_id, False, f"no HEARTBEAT for {OFFLINE_AFTER_S:g} s")

    def go_offline(self, reason: str) -> None:
        if self.online:
            self.online = False
            self.ctx.set_online(self.device_id, False, reason)

    # --- messages --------------------------------------------------------------
    def _heartbeat(self, msg: Any) -> None:
        if msg.autopilot == m2.MAV_AUTOPILOT_INVALID:
            return  # a gimbal, camera or ground station speaking for this system id
        self.last_heartbeat = time.monotonic()
        armed = bool(msg.base_mode & m2.MAV_MODE_FLAG_SAFETY_ARMED)
        mode = self.profile.mode_name(msg.custom_mode) if msg.base_mode & m2.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED else "UNKNOWN"
        old_mode, old_armed = self.status.get("mode"), self.status.get("armed")
        self._set_status(mode=mode, armed=armed, system_status=_STATE_NAME.get(msg.system_status, str(msg.system_status)),
                         mav_type=int(msg.type), autopilot=int(msg.autopilot))
        if not self.online:
            self.online = True
            self.ctx.set_online(self.device_id, True)
            if self.on_online is not None:
                self.on_online(self)
        elif old_mode != mode:
            self._event("mode", "info", f"mode {old_mode} → {mode}", mode=mode)
        if old_armed is not None and old_armed != armed:
            self._event("armed" if armed else "disarmed", "info", "armed" if armed else "disarmed")

    def _global_position(self, msg: Any) -> None:
        if msg.lat == 0 and msg.lon == 0:
            return  # no position estimate yet
        self._last_global_pos = time.monotonic()
        self.values["alt_rel_m"] = msg.relative_alt / 1000.0
        self.values_dirty = True
        heading = None if msg.hdg == 65535 else msg.hdg / 100.0
        self._position(msg.lat / 1e7, msg.lon / 1e7, msg.alt / 1000.0, heading, math.hypot(msg.vx, msg.vy) / 100.0)

    def _position(self, lat: float, lon: float, alt: float, heading: float | None, speed: float | None) -> None:
        now = time.monotonic()
        if self.position_interval_s and now - self._last_position_sent < self.position_interval_s:
            return
        self._last_position_sent = now
        self.ctx.publish(Position(self.device_id, now_ms(), lat, lon, alt, heading, speed, self.fix, "mavlink"))  # type: ignore[arg-type]

    def _gps_raw(self, msg: Any) -> None:
        fix = _FIX.get(msg.fix_type, "none")
        self.fix = fix
        self._set_status(gps_fix=fix, gps_sats=int(msg.satellites_visible))
        if msg.eph != 65535:
            self.values["gps_hdop"] = msg.eph / 100.0
        self.values["gps_sats"] = float(msg.satellites_visible)
        self.values_dirty = True
        # Only when there is no fused position: some autopilots send GPS_RAW_INT alone.
        if fix != "none" and time.monotonic() - self._last_global_pos > 2.0 and (msg.lat or msg.lon):
            cog = None if msg.cog == 65535 else msg.cog / 100.0
            vel = None if msg.vel == 65535 else msg.vel / 100.0
            self._position(msg.lat / 1e7, msg.lon / 1e7, msg.alt / 1000.0, cog, vel)

    def _attitude(self, msg: Any) -> None:
        v = self.values
        v["roll_deg"] = round(math.degrees(msg.roll), 2)
        v["pitch_deg"] = round(math.degrees(msg.pitch), 2)
        v["yaw_deg"] = round(math.degrees(msg.yaw) % 360.0, 2)
        self.values_dirty = True

    def _vfr_hud(self, msg: Any) -> None:
        v = self.values
        v["groundspeed_mps"] = round(msg.groundspeed, 2)
        v["airspeed_mps"] = round(msg.airspeed, 2)
        v["climb_mps"] = round(msg.climb, 2)
        v["throttle_pct"] = float(msg.throttle)
        self.values_dirty = True

    def _battery(self, pct: int, volts: float | None, amps: float | None) -> None:
        v = self.values
        if pct >= 0:
            v["battery_pct"] = float(pct)
            self._set_status(battery_pct=int(pct))
        if volts is not None:
            v["battery_v"] = round(volts, 3)
        if amps is not None:
            v["battery_a"] = round(amps, 2)
        self.values_dirty = True

    def _sys_status(self, msg: Any) -> None:
        volts = None if msg.voltage_battery in (0, 65535) else msg.voltage_battery / 1000.0
        amps = None if msg.current_battery == -1 else msg.current_battery / 100.0
        self._battery(msg.battery_remaining, volts, amps)

    def _battery_status(self, msg: Any) -> None:
        cells = [c for c in msg.voltages if c not in (65535, 0)]
        volts = sum(cells) / 1000.0 if cells else None
        amps = None if msg.current_battery == -1 else msg.current_battery / 100.0
        self._battery(msg.battery_remaining, volts, amps)
        if msg.current_consumed >= 0:
            self.values["battery_used_mah"] = float(msg.current_consumed)

    def _home(self, msg: Any) -> None:
        home = (msg.latitude / 1e7, msg.longitude / 1e7, msg.altitude / 1000.0)
        self.home = home
        self._set_status(home={"lat": home[0], "lon": home[1], "alt_m": home[2]})

    def _statustext_msg(self, msg: Any) -> None:
        text = msg.text if isinstance(msg.text, str) else msg.text.decode("utf-8", "replace")
        text = text.rstrip("\x00")
        chunk_id = getattr(msg, "id", 0)
        if chunk_id:
            parts = self._statustext.setdefault(chunk_id, [])
            parts.append(text)
            if len(text) == 50 and len(parts) < 8:
                return  # more chunks follow
            text = "".join(self._statustext.pop(chunk_id))
        self._event("statustext", _SEVERITY.get(msg.severity, "info"), text, mav_severity=int(msg.severity))

    def _video_stream(self, msg: Any) -> None:
        uri = msg.uri if isinstance(msg.uri, str) else msg.uri.decode("utf-8", "replace")
        uri = uri.rstrip("\x00").strip()
        if not uri or self.offered_streams.get(msg.stream_id) == uri:
            return
        if msg.type not in (m2.VIDEO_STREAM_TYPE_RTSP, m2.VIDEO_STREAM_TYPE_RTPUDP, m2.VIDEO_STREAM_TYPE_TCP_MPEG,
                            m2.VIDEO_STREAM_TYPE_MPEG_TS):
            return
        self.offered_streams[msg.stream_id] = uri
        name = msg.name if isinstance(msg.name, str) else msg.name.decode("utf-8", "replace")
        self.ctx.publish(StreamOffer(self.device_id, now_ms(), f"{self.device_id}-video{msg.stream_id}", uri,
                                     name.rstrip("\x00")))

    def flush_telemetry(self, now: float) -> None:
        if self.values_dirty and self.online and now - self._last_telemetry_sent >= self.telemetry_interval_s:
            self._last_telemetry_sent = now
            self.values_dirty = False
            self.ctx.publish(Telemetry(self.device_id, now_ms(), dict(self.values)))
