"""One simulated copter: its MAVLink identity, message handling and schedules."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

from . import signing
from .battery import Battery
from .commands import Command, CommandHandler
from .flight import RESULT_DENIED, Autopilot
from .geo import GeoPoint
from .params import Param, ParamTable, default_table
from .scheduler import Periodic
from .streams import DATA_STREAM_PARAM, StreamManager
from .telemetry import Telemetry

M = mavlink2
log = logging.getLogger(__name__)

PHYSICS_DT = 0.05  # 20 Hz
COMPONENT_ID = M.MAV_COMP_ID_AUTOPILOT1


@dataclass
class VehicleConfig:
    sysid: int
    home: GeoPoint
    takeoff_alt: float = 30.0
    takeoff_delay: float = 2.0
    autostart: bool = True
    radius: float = 80.0
    speed_mps: float = 8.0
    battery_minutes: float = 25.0
    rate_scale: float = 1.0
    signing_key: bytes | None = None
    video_uri: str | None = None  # answered in VIDEO_STREAM_INFORMATION (a camera on board)


class Vehicle:
    def __init__(self, cfg: VehicleConfig, output: Callable[[bytes], None]) -> None:
        self.cfg = cfg
        self.sysid = cfg.sysid
        self.home = cfg.home
        self._output = output
        self.mav = M.MAVLink(None, srcSystem=cfg.sysid, srcComponent=COMPONENT_ID)
        if cfg.signing_key is not None:
            signing.enable(self.mav, cfg.signing_key)
        self.params = ParamTable(default_table(cfg.sysid, cfg.speed_mps, cfg.radius, cfg.rate_scale))
        self.battery = Battery(cfg.battery_minutes, self.params.get("BATT_CAPACITY"))
        self.ap = Autopilot(self.params, self.battery, self._notify, cfg.takeoff_alt)
        self.ap.on_rehome = self._rehome
        self.telemetry = Telemetry(cfg.sysid, self.ap, lambda: self.home, time.monotonic)
        self.telemetry.video_uri = cfg.video_uri
        self.streams = StreamManager(cfg.sysid, cfg.rate_scale, self._emit_stream)
        self.params.on_change = self.streams.on_param
        self.commands = CommandHandler(self)
        self._physics = Periodic(f"uav{cfg.sysid}-physics", self._physics_tick, PHYSICS_DT)
        self._sim_time = 0.0
        self._autostart: asyncio.TimerHandle | None = None

    # ----------------------------------------------------------- lifecycle
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._sim_time = loop.time()
        self._physics.start(first_delay=PHYSICS_DT)
        self.streams.start()
        if self.cfg.autostart:
            self._autostart = loop.call_later(max(0.0, self.cfg.takeoff_delay), self.ap.start_mission)

    def stop(self) -> None:
        if self._autostart is not None:
            self._autostart.cancel()
        self._physics.stop()
        self.streams.stop()

    def _physics_tick(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._sim_time > 1.0:  # loop stalled (e.g. suspended): don't replay the gap
            self._sim_time = now - PHYSICS_DT
        while self._sim_time + PHYSICS_DT <= now + 1e-6:
            self.ap.tick(PHYSICS_DT)
            self._sim_time += PHYSICS_DT

    # ------------------------------------------------------------- output
    def send(self, msg: M.MAVLink_message) -> None:
        if self.mav.signing.sign_outgoing:
            signing.refresh_timestamp(self.mav)
        try:
            buf = msg.pack(self.mav)
        except Exception:
            log.exception("sysid %d: cannot pack %s", self.sysid, msg.get_type())
            return
        self.mav.seq = (self.mav.seq + 1) % 256
        self._output(buf)

    def _emit_stream(self, msgid: int) -> None:
        self.send(self.telemetry.builders[msgid]())

    def _notify(self, severity: int, text: str) -> None:
        log.info("sysid %d: %s", self.sysid, text)
        self.send(self.telemetry.statustext(severity, text))

    def _rehome(self, north: float, east: float) -> None:
        self.home = self.home.offset(north, east)
        self.send(self.telemetry.home_position())

    # -------------------------------------------------------------- input
    def _addressed_to_me(self, msg: M.MAVLink_message) -> bool:
        tsys = getattr(msg, "target_system", None)
        if tsys is None or tsys not in (0, self.sysid):
            return False
        tcomp = getattr(msg, "target_component", 0)
        return tcomp in (0, COMPONENT_ID)

    def handle(self, msg: M.MAVLink_message) -> None:
        """Act on one decoded frame (any link); ignores frames not for this vehicle."""
        if not self._addressed_to_me(msg):
            return
        if not signing.verify(self.mav, msg):
            log.info("sysid %d: dropped %s (unsigned or bad signature)", self.sysid, msg.get_type())
            return
        hdr = msg.get_header()
        if isinstance(msg, M.MAVLink_command_long_message):
            self.commands.handle(Command.from_long(msg), hdr.srcSystem, hdr.srcComponent)
        elif isinstance(msg, M.MAVLink_command_int_message):
            self.commands.handle(Command.from_int(msg), hdr.srcSystem, hdr.srcComponent)
        elif isinstance(msg, M.MAVLink_set_mode_message):
            ok = msg.base_mode & M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED
            result = self.ap.set_mode(msg.custom_mode) if ok else RESULT_DENIED
            # ArduPilot acks the legacy SET_MODE message with command = its message id
            self.send(M.MAVLink_command_ack_message(M.MAVLINK_MSG_ID_SET_MODE, result, 0, 0,
                                                   hdr.srcSystem, hdr.srcComponent))
        elif isinstance(msg, M.MAVLink_param_request_list_message):
            for p in self.params:
                self._send_param(p)
        elif isinstance(msg, M.MAVLink_param_request_read_message):
            p = self.params.by_name(msg.param_id) if msg.param_index < 0 else self.params.by_index(msg.param_index)
            if p is not None:
                self._send_param(p)
        elif isinstance(msg, M.MAVLink_param_set_message):
            p = self.params.set(msg.param_id, msg.param_value)
            if p is not None:  # unknown name or NaN: no change and, like ArduPilot, no answer
                self._send_param(p)
        elif isinstance(msg, M.MAVLink_request_data_stream_message):
            self._request_data_stream(msg)

    def _send_param(self, p: Param) -> None:
        self.send(M.MAVLink_param_value_message(p.name.encode("ascii"), p.value, p.ptype, len(self.params),
                                                self.params.index_of(p.name)))

    def _request_data_stream(self, msg: M.MAVLink_request_data_stream_message) -> None:
        rate = float(msg.req_message_rate) if msg.start_stop else 0.0
        if msg.req_stream_id == M.MAV_DATA_STREAM_ALL:
            names = list(DATA_STREAM_PARAM.values())
        elif msg.req_stream_id in DATA_STREAM_PARAM:
            names = [DATA_STREAM_PARAM[msg.req_stream_id]]
        else:
            return
        for name in names:
            p = self.params.set(name, rate)
            if p is not None:
                self.streams.on_param(p)  # also applies when the value is unchanged
