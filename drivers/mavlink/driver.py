"""The MAVLink driver: one link (UDP/TCP/serial), one or more vehicles told apart by system id.

The gateway is a ground-control component of its own (system 245,
component 190 by default): it sends HEARTBEAT at 1 Hz, sets stream rates
from the vehicle's profile when the vehicle comes online, and sends its
commands under its own ids. Vehicle frames are copied to every configured
ground station and ground-station frames go back to the vehicles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, ClassVar

from pymavlink.dialects.v20 import ardupilotmega as m2

from drivers.mavlink.commanding import AckWaiter, MavCommand, translate
from drivers.mavlink.framing import FrameCounts, FrameParser
from drivers.mavlink.gcs import GroundStationRouter
from drivers.mavlink.params import ParamExchange, same
from drivers.mavlink.profile import VehicleProfile, check_profile, load_profile
from drivers.mavlink.signing import SignatureChecker, make_encoder, now_timestamp, parse_key
from drivers.mavlink.transport import Transport, open_transport
from drivers.mavlink.vehicle import Vehicle
from gateway.driver_api import CommandError, ConfigDiff, DeviceSpec, Driver, DriverContext, LinkSpec, OnSent
from gateway.model import StatusUpdate, now_ms

log = logging.getLogger(__name__)

GATEWAY_SYSTEM_ID = 245
GATEWAY_COMPONENT_ID = m2.MAV_COMP_ID_MISSIONPLANNER  # 190: a ground-control component
STREAM_IDLE_FLUSH_S = 0.5
# Positions to the uplink at most every 80 ms per vehicle (a 10 Hz stream passes whole, with jitter);
# ground stations still get every frame. `position_interval_s: 0` sends every position.
DEFAULT_POSITION_INTERVAL_S = 0.08
LINK_STATUS_EVERY_S = 10.0

_INT_OPTIONS = {"system_id": (1, 255), "gateway_system_id": (1, 255), "gateway_component_id": (1, 255)}
_FLOAT_OPTIONS = {"position_interval_s": (0.0, 3600.0), "telemetry_interval_s": (0.1, 3600.0)}


class _VehicleLink:
    """What the driver keeps per vehicle besides its normalized state."""

    def __init__(self, vehicle: Vehicle, key: bytes | None, gw_system: int, gw_component: int) -> None:
        self.vehicle = vehicle
        self.acks = AckWaiter()
        self.params = ParamExchange()
        self.checker = SignatureChecker(key) if key else None
        self.encoder = make_encoder(gw_system, gw_component, key)
        self.signed = key is not None


class MavlinkDriver(Driver):
    name: ClassVar[str] = "mavlink"
    default_kind: ClassVar[str] = "uav"
    transport_schemes: ClassVar[tuple[str, ...]] = ("udp-listen", "udp", "tcp", "serial")

    def __init__(self, link: LinkSpec, ctx: DriverContext) -> None:
        super().__init__(link, ctx)
        first = link.devices[0].options
        self.gw_system = int(first.get("gateway_system_id", GATEWAY_SYSTEM_ID))
        self.gw_component = int(first.get("gateway_component_id", GATEWAY_COMPONENT_ID))
        self.counts = FrameCounts()
        self.by_system: dict[int, _VehicleLink] = {}
        self.by_device: dict[str, _VehicleLink] = {}
        for dev in link.devices:
            self._add_vehicle(dev)
        self._unsigned_hb = make_encoder(self.gw_system, self.gw_component, None)
        self._transport: Transport | None = None
        self._gcs: GroundStationRouter | None = None

    def _add_vehicle(self, dev: DeviceSpec) -> None:
        opts = dev.options
        key = parse_key(opts["signing_key"]) if opts.get("signing_key") else None
        vehicle = Vehicle(dev.id, int(opts.get("system_id", 1)), load_profile(dev.profile), self.ctx,
                          float(opts.get("position_interval_s", DEFAULT_POSITION_INTERVAL_S)), float(opts.get("telemetry_interval_s", 1.0)))
        vehicle.on_online = self._vehicle_online
        vl = _VehicleLink(vehicle, key, self.gw_system, self.gw_component)
        self.by_system[vehicle.system_id] = vl
        self.by_device[dev.id] = vl

    # --- kit checks -------------------------------------------------------------
    @classmethod
    def check_device(cls, options: dict[str, Any], transport: str) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        known = set(_INT_OPTIONS) | set(_FLOAT_OPTIONS) | {"signing_key"}
        for name in sorted(set(options) - known):
            problems.append(((name,), f"unknown MAVLink option (known: {', '.join(sorted(known))})"))
        for name, (lo, hi) in _INT_OPTIONS.items():
            if name in options and (not isinstance(options[name], int) or isinstance(options[name], bool) or not lo <= options[name] <= hi):
                problems.append(((name,), f"must be an integer {lo}..{hi}"))
        for name, (lo, hi) in _FLOAT_OPTIONS.items():
            value = options.get(name)
            if name in options and (isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi):
                problems.append(((name,), f"must be a number {lo:g}..{hi:g}"))
        if "signing_key" in options:
            try:
                parse_key(str(options["signing_key"]))
            except ValueError:
                problems.append((("signing_key",), "a MAVLink signing key is 32 bytes written as 64 hex characters"))
        return problems

    @classmethod
    def check_link(cls, devices: list[dict[str, Any]]) -> list[tuple[int, tuple[str | int, ...], str]]:
        seen: dict[int, str] = {}
        problems: list[tuple[int, tuple[str | int, ...], str]] = []
        for i, dev in enumerate(devices):
            sysid = dev.get("options", {}).get("system_id", 1)
            if sysid in seen:
                problems.append((i, ("system_id",), f"system id {sysid} is also {seen[sysid]!r} on the same link {dev['transport']}"))
            else:
                seen[sysid] = dev["id"]
        return problems

    @classmethod
    def check_profile(cls, profile: dict[str, Any]) -> list[str]:
        return check_profile(profile)

    @classmethod
    def commands_for(cls, kind: str) -> list[str]:
        return ["rtl", "land", "hold", "goto", "set_mode"] if kind == "uav" else []

    def check_command(self, device_id: str, command: str, args: dict[str, Any]) -> str | None:
        vl = self.by_device.get(device_id)
        if vl is None:
            return f"{device_id} is not on this MAVLink link"
        profile = vl.vehicle.profile
        if command == "set_mode" and args["mode"].upper() not in profile.modes:
            return f"unknown mode {args['mode']!r}; this vehicle's modes: {', '.join(profile.modes)}"
        if command == "goto" and vl.vehicle.home is not None and args["alt_m"] < vl.vehicle.home[2] + 2.0:
            return (f"alt_m {args['alt_m']:g} is below the vehicle's home altitude {vl.vehicle.home[2]:.1f} m + 2 m "
                    "(alt_m is above mean sea level, like positions)")
        return None

    # --- running ----------------------------------------------------------------
    async def run(self) -> None:
        transport = open_transport(self.link.transport)
        await transport.open()
        self._transport = transport
        self._gcs = GroundStationRouter(self.link.ground_stations, self._from_ground_station)
        self._gcs.start()
        tasks = [asyncio.create_task(self._heartbeats(), name="mavlink-heartbeat"),
                 asyncio.create_task(self._housekeeping(), name="mavlink-housekeeping")]
        try:
            await self._receive(transport)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._gcs.stop()
            await transport.close()
            self._transport = None
            for vl in self.by_system.values():
                vl.vehicle.go_offline("link closed")

    async def _receive(self, transport: Transport) -> None:
        parser = FrameParser(self.counts)
        gcs = self._gcs
        while True:
            if parser.pending() and not transport.datagram:
                # A partial frame on a byte stream: if the line goes quiet it never completes.
                try:
                    chunk = await asyncio.wait_for(transport.receive(), STREAM_IDLE_FLUSH_S)
                except TimeoutError:
                    self._handle(parser.flush(), transport, gcs)
                    continue
            else:
                chunk = await transport.receive()
            msgs = parser.feed(chunk.data)
            if chunk.datagram and parser.pending():
                msgs.extend(parser.flush())  # frames never continue in the next datagram
            self._handle(msgs, transport, gcs)

    def _handle(self, msgs: list[Any], transport: Transport, gcs: GroundStationRouter | None) -> None:
        forward: list[bytes] = []
        counts = self.counts
        for msg in msgs:
            header = msg._header
            src = header.srcSystem
            vl = self.by_system.get(src)
            if vl is not None and vl.checker is not None:
                if not vl.checker.accept(msg._msgbuf, src, header.srcComponent):
                    if msg._msgbuf[2] & m2.MAVLINK_IFLAG_SIGNED:
                        counts.bad_signature += 1
                    else:
                        counts.unsigned += 1
                    continue
            forward.append(msg._msgbuf)
            if vl is None:
                continue
            transport.learn(src)
            handler = vl.vehicle.handlers.get(type(msg))
            if handler is not None:
                handler(msg)
            elif type(msg) is m2.MAVLink_command_ack_message:
                vl.acks.deliver(msg, self.gw_system)
            elif type(msg) is m2.MAVLink_param_value_message:
                vl.params.deliver(msg)
        if forward and gcs is not None and gcs.stations:
            gcs.forward(b"".join(forward), len(forward))

    def _from_ground_station(self, data: bytes, target: int | None) -> None:
        if self._transport is not None:
            self._transport.send(data, target)

    async def _heartbeats(self) -> None:
        while True:
            self._send_heartbeats()
            await asyncio.sleep(1.0)

    def _send_heartbeats(self) -> None:
        transport = self._transport
        if transport is None:
            return
        unsigned_needed = False
        for sysid, vl in self.by_system.items():
            if vl.signed:
                transport.send(self._encode(vl.encoder, _heartbeat(vl.encoder)), sysid)
            else:
                unsigned_needed = True
        if unsigned_needed:
            transport.send(self._encode(self._unsigned_hb, _heartbeat(self._unsigned_hb)))

    async def _housekeeping(self) -> None:
        last_status = 0.0
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for vl in self.by_system.values():
                vl.vehicle.check_timeout(now)
                vl.vehicle.flush_telemetry(now)
            if now - last_status >= LINK_STATUS_EVERY_S:
                last_status = now
                self._publish_link_status()

    def _publish_link_status(self) -> None:
        link: dict[str, Any] = {"frames": self.counts.as_dict()}
        if self._transport is not None:
            link["dropped_datagrams"] = self._transport.dropped
            link["kernel_drops"] = self._transport.kernel_drops()
        for vl in self.by_system.values():
            self.ctx.publish(StatusUpdate(vl.vehicle.device_id, now_ms(), {"link": link}))

    # --- sending ----------------------------------------------------------------
    @staticmethod
    def _encode(encoder: m2.MAVLink, msg: Any) -> bytes:
        if encoder.signing.sign_outgoing:
            encoder.signing.timestamp = max(encoder.signing.timestamp, now_timestamp())
        buf = msg.pack(encoder)
        encoder.seq = (encoder.seq + 1) % 256
        return buf

    def _send_command(self, vl: _VehicleLink, cmd: MavCommand, attempt: int) -> None:
        if self._transport is None:
            raise CommandError("failed", "the MAVLink link is down")
        enc = vl.encoder
        target = vl.vehicle.system_id
        p = cmd.params
        if cmd.frame is None:
            msg = enc.command_long_encode(target, 1, cmd.command, attempt, *p)
        else:
            msg = enc.command_int_encode(target, 1, cmd.frame, cmd.command, 0, 0, p[0], p[1], p[2], p[3], int(p[4]), int(p[5]), p[6])
        self._transport.send(self._encode(enc, msg), target)

    async def execute(self, device_id: str, command: str, args: dict[str, Any], on_sent: OnSent) -> str:
        vl = self.by_device[device_id]
        cmd = translate(command, args, vl.vehicle.profile)
        return await vl.acks.run(cmd, lambda c, n: self._send_command(vl, c, n), on_sent)

    def _vehicle_online(self, vehicle: Vehicle) -> None:
        vl = self.by_system[vehicle.system_id]
        task = asyncio.get_running_loop().create_task(self._configure(vl, vehicle.profile))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _configure(self, vl: _VehicleLink, profile: VehicleProfile) -> None:
        """Stream rates from the profile, then the home position (each acked or reported)."""
        denied: list[str] = []
        for msg_id, interval in profile.stream_intervals_us():
            cmd = MavCommand(m2.MAV_CMD_SET_MESSAGE_INTERVAL, (float(msg_id), float(interval), 0, 0, 0, 0, 0))
            try:
                await vl.acks.run(cmd, lambda c, n: self._send_command(vl, c, n), lambda: None, attempts=2, retry_interval_s=1.0)
            except CommandError as exc:
                denied.append(f"{m2.mavlink_map[msg_id].msgname}: {exc.detail}")
        for msg_id in (m2.MAVLINK_MSG_ID_HOME_POSITION, m2.MAVLINK_MSG_ID_VIDEO_STREAM_INFORMATION):
            ask = MavCommand(m2.MAV_CMD_REQUEST_MESSAGE, (float(msg_id), 0, 0, 0, 0, 0, 0))
            with contextlib.suppress(CommandError):  # a vehicle without a camera says DENIED: fine
                await vl.acks.run(ask, lambda c, n: self._send_command(vl, c, n), lambda: None, attempts=2, retry_interval_s=1.0)
        state = "applied" if not denied else "partly applied"
        self.ctx.publish(StatusUpdate(vl.vehicle.device_id, now_ms(), {"stream_rates": state, "stream_rates_errors": denied}))
        if profile.params:  # the audit at start: drift from the profile is reported, not corrected
            await self.report_config_drift(vl.vehicle.device_id)

    # --- configuration profiles (fieldgw config audit / apply) ----------------------
    def _send_param(self, vl: _VehicleLink, name: str, value: float | None) -> None:
        if self._transport is None:
            raise CommandError("failed", "the MAVLink link is down")
        enc, target = vl.encoder, vl.vehicle.system_id
        pid = name.encode("ascii")
        msg = (enc.param_request_read_encode(target, 1, pid, -1) if value is None
               else enc.param_set_encode(target, 1, pid, value, m2.MAV_PARAM_TYPE_REAL32))
        self._transport.send(self._encode(enc, msg), target)

    async def config_audit(self, device_id: str) -> list[ConfigDiff]:
        vl = self.by_device[device_id]
        diffs = []
        for name, want in vl.vehicle.profile.params.items():
            have = await vl.params.read(name, lambda n: self._send_param(vl, n, None))
            if have is None or not same(want, have):
                diffs.append(ConfigDiff(name, want, have))
        return diffs

    async def config_apply(self, device_id: str) -> list[ConfigDiff]:
        vl = self.by_device[device_id]
        for name, want in vl.vehicle.profile.params.items():
            await vl.params.set(name, want, lambda n, v: self._send_param(vl, n, v))
        return await self.config_audit(device_id)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"frames": self.counts.as_dict()}
        if self._transport is not None:
            out["bytes_in"] = self._transport.bytes_in
            out["bytes_out"] = self._transport.bytes_out
            out["frames"] = out["frames"] | {"dropped_queue": self._transport.dropped,
                                             "dropped_kernel": self._transport.kernel_drops() or 0}
        if self._gcs is not None:
            out["ground_stations"] = self._gcs.stats()
        return out


def _heartbeat(encoder: m2.MAVLink) -> Any:
    return encoder.heartbeat_encode(m2.MAV_TYPE_GCS, m2.MAV_AUTOPILOT_INVALID, 0, 0, m2.MAV_STATE_ACTIVE)
