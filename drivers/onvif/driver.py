"""ONVIF cameras (Profile S): stream URI to the media relay, PTZ, status, encoder settings. One camera per link.

Transport `onvif://HOST:PORT`: the device service at http://HOST:PORT/onvif/device_service (the kit
names the camera's address; WS-Discovery is not used). Options: `user`, `password` (WS-UsernameToken,
password digest, stamped in the camera's own time), `profile` (a media profile token; default the
first with a video encoder), `stream` (the stream id offered; default DEVICE-video), `offer_stream`
(true; false when the kit's `streams:` names the camera's stream itself), `rtsp_credentials` (true: the
user and password go into the RTSP URL for the relay when the camera's URI has none), `status_s`
(GetStatus every 2 s), `move_timeout_s` (5: every ContinuousMove carries this Timeout, so a lost
ptz_stop never leaves the camera turning), `timeout_s` (5, per request), `max_failures` (2 status
calls without an answer and the camera is offline).

Lifecycle: connect (session.py) → online, StreamOffer, encoder audit against the profile
(`config_drift`) → status polled until it fails → the supervisor reconnects with backoff; a camera
that rebooted comes back online and its stream is offered again. Wrong credentials: the camera never
goes online; status `auth` says why and one `auth_failed` event is published per streak of refusals.
GPS: a `GeoLocation` element in PTZStatus (vendor-specific, session.geolocation) becomes the camera's
Position (`source: "onvif"`) whenever it changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit, urlunsplit

from drivers.common.stream import tcp_address
from drivers.onvif import encoder
from drivers.onvif.session import AuthError, CameraSession, Facts, Geo, OnvifError
from gateway.driver_api import CommandError, ConfigDiff, Driver, DriverContext, LinkSpec
from gateway.model import Event, Position, StatusUpdate, StreamOffer, now_ms

log = logging.getLogger(__name__)

Loc = tuple[str | int, ...]
PTZ_COMMANDS = ["ptz_move", "ptz_stop", "ptz_preset"]
NUMBERS: dict[str, tuple[float, float, float]] = {"status_s": (0.2, 300.0, 2.0), "move_timeout_s": (0.5, 60.0, 5.0),
                                                  "timeout_s": (0.5, 60.0, 5.0), "max_failures": (1, 20, 2)}
STRINGS = ("user", "password", "profile", "stream")
BOOLS = {"offer_stream": True, "rtsp_credentials": True}


def parse_address(transport: str) -> tuple[str, int]:
    usage = "an ONVIF camera's transport is onvif://HOST:PORT (its HTTP address)"
    parts = urlsplit(transport)
    if parts.scheme != "onvif" or parts.path not in ("", "/"):
        raise ValueError(usage)
    return tcp_address(parts, usage)


def with_credentials(uri: str, user: str, password: str) -> str:
    parts = urlsplit(uri)
    if not user or parts.username is not None:
        return uri
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc}"
    return urlunsplit(parts._replace(netloc=netloc))


class OnvifDriver(Driver):
    name: ClassVar[str] = "onvif"
    default_kind: ClassVar[str] = "camera"
    transport_schemes: ClassVar[tuple[str, ...]] = ("onvif",)

    def __init__(self, link: LinkSpec, ctx: DriverContext) -> None:
        super().__init__(link, ctx)
        self.host, self.port = parse_address(link.transport)
        self.device = link.devices[0]
        o = self.device.options
        self.user, self.password = str(o.get("user", "")), str(o.get("password", ""))
        self.opt = {k: float(o.get(k, d)) for k, (_, _, d) in NUMBERS.items()}
        self.flags = {k: bool(o.get(k, d)) for k, d in BOOLS.items()}
        self.stream_id = str(o.get("stream") or f"{self.device.id}-video")
        self.want = encoder.wanted(self.device.profile)
        self.counts: Counter[str] = Counter()
        self.session: CameraSession | None = None
        self.facts: Facts | None = None
        self._auth_refused = False
        self._ptz: dict[str, Any] = {}
        self._geo: Geo | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- kit checks ------------------------------------------------------------------------
    @classmethod
    def check_device(cls, options: dict[str, Any], transport: str) -> list[tuple[Loc, str]]:
        problems: list[tuple[Loc, str]] = []
        try:
            parse_address(transport)
        except ValueError as exc:
            problems.append(((), f"transport {transport!r}: {exc}"))
        known = {*NUMBERS, *STRINGS, *BOOLS}
        for name in sorted(set(options) - known):
            problems.append(((name,), f"unknown option {name!r}; the onvif driver takes {', '.join(sorted(known))}"))
        for name, (lo, hi, _) in NUMBERS.items():
            v = options.get(name)
            if name in options and (isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi):
                problems.append(((name,), f"{name} must be a number {lo:g}..{hi:g}"))
        for name in STRINGS:
            if name in options and not isinstance(options[name], str):
                problems.append(((name,), f"{name} must be a string (quote it in YAML)"))
        for name in BOOLS:
            if name in options and not isinstance(options[name], bool):
                problems.append(((name,), f"{name} must be true or false"))
        if "password" in options and "user" not in options:
            problems.append((("user",), "a password needs its user"))
        return problems

    @classmethod
    def check_link(cls, devices: list[dict[str, Any]]) -> list[tuple[int, Loc, str]]:
        return [(i, (), f"one camera per ONVIF address: {dev.get('transport')} is also {devices[0].get('id')!r}'s")
                for i, dev in enumerate(devices) if i > 0]

    @classmethod
    def check_profile(cls, profile: dict[str, Any]) -> list[str]:
        return encoder.check_profile(profile)

    @classmethod
    def commands_for(cls, kind: str) -> list[str]:
        return list(PTZ_COMMANDS) if kind in ("camera", "bodycam") else []

    def check_command(self, device_id: str, command: str, args: dict[str, Any]) -> str | None:
        if command == "ptz_move" and not any(k in args for k in ("pan", "tilt", "zoom")):
            return "ptz_move needs at least one of pan, tilt, zoom (speeds -1..1)"
        if self.facts is not None and not self.facts.has_ptz:
            return f"{device_id} has no PTZ (its ONVIF profile {self.facts.profile.token!r} has no PTZ configuration)"
        return None

    # -- the link ------------------------------------------------------------------------
    async def run(self) -> None:
        session = CameraSession(self.host, self.port, self.user, self.password, self.opt["timeout_s"])
        dev = self.device.id
        try:
            try:
                facts = await session.connect(self.device.options.get("profile"))
            except AuthError as exc:
                self._refused(str(exc))
                raise
            except (OnvifError, ConnectionError) as exc:
                self.counts["connect_failures"] += 1
                self.ctx.publish(StatusUpdate(dev, now_ms(), {"link": f"cannot connect: {exc}"}))
                raise
            self.counts["connects"] += 1
            self._accepted()
            self.session, self.facts = session, facts
            self.ctx.publish(StatusUpdate(dev, now_ms(), {"link": "connected", "onvif": {
                **facts.device, "address": f"{self.host}:{self.port}", "clock_offset_s": round(facts.clock_offset_s, 1),
                "profile": facts.profile.token, "encoding": facts.profile.encoding,
                "resolution": f"{facts.profile.width}x{facts.profile.height}", "ptz": facts.has_ptz,
                "presets": sorted(facts.presets)}}))
            self.ctx.set_online(dev, True, f"ONVIF camera answering at {self.host}:{self.port}")
            if self.flags["offer_stream"]:
                url = with_credentials(facts.stream_uri, self.user, self.password) if self.flags["rtsp_credentials"] \
                    else facts.stream_uri
                self.ctx.publish(StreamOffer(dev, now_ms(), self.stream_id, url, facts.profile.name))
            if self.want:
                self._spawn(self.report_config_drift(dev))
            await self._watch(session, facts)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self.session is session:
                self.ctx.set_online(dev, False, "ONVIF session closed")
            self.session, self.facts, self._ptz, self._geo = None, None, {}, None
            await session.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _refused(self, why: str) -> None:
        self.counts["auth_refused"] += 1
        self.ctx.publish(StatusUpdate(self.device.id, now_ms(), {"auth": f"refused: {why}"}))
        if not self._auth_refused:
            self._auth_refused = True
            log.warning("%s: %s", self.device.id, why)
            self.ctx.publish(Event(self.device.id, now_ms(), "auth_failed", "warning",
                                   f"{self.device.name}: the camera refuses the gateway's ONVIF user or password"))

    def _accepted(self) -> None:
        if self._auth_refused or self.counts["connects"] == 1:
            self.ctx.publish(StatusUpdate(self.device.id, now_ms(), {"auth": "ok"}))
        self._auth_refused = False

    async def _watch(self, session: CameraSession, facts: Facts) -> None:
        """Poll the PTZ status (or, without PTZ, the clock) until the camera stops answering."""
        failures = 0
        while True:
            await asyncio.sleep(self.opt["status_s"])
            try:
                if facts.has_ptz:
                    ptz, geo = await session.ptz_status(facts.profile.token)
                    if ptz != self._ptz:
                        self._ptz = ptz
                        self.ctx.publish(StatusUpdate(self.device.id, now_ms(), {"ptz": ptz}))
                    self._position(geo)
                else:
                    await session.alive()
                failures = 0
            except AuthError:
                raise  # the password was changed on the camera: reconnect (and be refused, visibly)
            except (ConnectionError, OnvifError) as exc:
                failures += 1
                self.counts["status_failures"] += 1
                log.info("%s: status call failed (%d): %s", self.device.id, failures, exc)
                if failures >= self.opt["max_failures"]:
                    raise ConnectionError(f"camera not answering: {exc}") from exc

    def _position(self, geo: Geo | None) -> None:
        """The camera's own GPS (vendor-specific, see session.geolocation): a Position when it moves."""
        if geo == self._geo:
            return
        if geo is None:
            self.ctx.publish(StatusUpdate(self.device.id, now_ms(), {"gps": "no position from the camera"}))
        else:
            if self._geo is None:
                self.ctx.publish(StatusUpdate(self.device.id, now_ms(), {"gps": "camera reports its position"}))
            self.ctx.publish(Position(self.device.id, now_ms(), round(geo.lat, 7), round(geo.lon, 7), geo.elevation_m,
                                      None, None, "2d" if geo.elevation_m is None else "3d", "onvif"))
        self._geo = geo

    # -- commands ------------------------------------------------------------------------
    def _live(self) -> tuple[CameraSession, Facts]:
        if self.session is None or self.facts is None:
            raise CommandError("failed", f"{self.device.id} is not connected")
        return self.session, self.facts

    async def execute(self, device_id: str, command: str, args: dict[str, Any], on_sent: Any) -> str:
        session, facts = self._live()
        token = facts.profile.token
        try:
            if command == "ptz_move":
                on_sent()
                await session.continuous_move(facts.profile, args.get("pan"), args.get("tilt"), args.get("zoom"),
                                              self.opt["move_timeout_s"])
                return f"moving; stops by itself after {self.opt['move_timeout_s']:g} s unless moved again"
            if command == "ptz_stop":
                on_sent()
                await session.stop(token)
                return "stopped"
            if command == "ptz_preset":
                preset = await self._preset(session, facts, int(args["preset"]))
                on_sent()
                await session.goto_preset(token, preset)
                return f"going to preset {preset}"
        except (OnvifError, ConnectionError, AuthError) as exc:
            raise CommandError("failed", str(exc)) from exc
        raise CommandError("rejected", f"the onvif driver has no command {command!r}")

    async def _preset(self, session: CameraSession, facts: Facts, number: int) -> str:
        """Preset n: the one whose token or name is n, else the n-th the camera lists."""
        for attempt in range(2):
            presets = facts.presets
            for token, name in presets.items():
                if token == str(number) or name == str(number):
                    return token
            if 1 <= number <= len(presets):
                return list(presets)[number - 1]
            if attempt == 0:
                facts.presets = await session.presets(facts.profile.token)  # set on the camera since we connected?
        raise CommandError("failed", f"the camera has no preset {number} (it has {len(facts.presets)})")

    # -- configuration profile (fieldgw config audit / apply) -----------------------------------------
    async def _encoder(self) -> tuple[CameraSession, str]:
        if not self.want:
            raise CommandError("rejected", f"{self.device.id}'s profile has no encoder settings")
        session, facts = self._live()
        token = facts.profile.encoder_token
        if token is None:
            raise CommandError("failed", f"media profile {facts.profile.token!r} has no video encoder configuration")
        return session, token

    async def config_audit(self, device_id: str) -> list[ConfigDiff]:
        session, token = await self._encoder()
        try:
            return encoder.differences(self.want, encoder.read(await session.encoder(token)))
        except (OnvifError, ConnectionError, AuthError) as exc:
            raise CommandError("failed", str(exc)) from exc

    async def config_apply(self, device_id: str) -> list[ConfigDiff]:
        session, token = await self._encoder()
        try:
            config = await session.encoder(token)
            if encoder.differences(self.want, encoder.read(config)):
                await session.set_encoder(encoder.patch(config, self.want))
            return encoder.differences(self.want, encoder.read(await session.encoder(token)))
        except (OnvifError, ConnectionError, AuthError) as exc:
            raise CommandError("failed", str(exc)) from exc

    def stats(self) -> dict[str, Any]:
        return {"onvif": dict(self.counts)}
