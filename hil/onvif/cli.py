"""Command line: ``python -m hil.onvif`` / ``hil.onvif.main(argv)``."""
from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from .. import script as script_mod
from ..cliutil import (add_control, add_log_level, hostport, hostport_any, int_range, non_negative, positive,
                       run_main, until_signalled)
from ..serialport import ControlPort
from .camera import RESOLUTIONS, Camera, CameraConfig, Encoder, Profile
from .control import handlers
from .discovery import Discovery
from .server import OnvifServer
from .video import VideoSource

log = logging.getLogger("hil.onvif")

COMMANDS = ("status", "reboot", "set_password", "clock", "gps", "ptz", "stats")


def _user(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError(f"expected USER:PASSWORD, got {text!r}")
    return user, password


def _gps(text: str) -> tuple[float, float, float] | None:
    if text == "off":
        return None
    parts = text.split(",")
    try:
        vals = [float(x) for x in parts]
    except ValueError:
        vals = []
    if len(vals) not in (2, 3) or not (-90 <= vals[0] <= 90 and -180 <= vals[1] <= 180):
        raise argparse.ArgumentTypeError(f"expected LAT,LON[,ELEVATION] or off, got {text!r}")
    return vals[0], vals[1], vals[2] if len(vals) == 3 else 0.0


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    if not (w.isdigit() and h.isdigit()) or (int(w), int(h)) not in RESOLUTIONS:
        raise argparse.ArgumentTypeError(f"one of {', '.join(f'{a}x{b}' for a, b in RESOLUTIONS)}; got {text!r}")
    return int(w), int(h)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hil.onvif",
        description="ONVIF Profile S dome camera with PTZ: SOAP 1.2 device/media/PTZ services with "
                    "WS-UsernameToken, RTSP video from hil.camera. See docs/onvif-nmea-simulators.md.")
    p.add_argument("--listen", type=hostport_any, default=("127.0.0.1", 0), metavar="HOST:PORT",
                   help="HTTP (SOAP) address (default 127.0.0.1:0: a free port, named in the ready line)")
    p.add_argument("--advertise", metavar="HOST", help="address in XAddrs and stream URIs (default the listen host)")
    p.add_argument("--user", type=_user, action="append", default=[], metavar="USER:PASSWORD",
                   help="an ONVIF user (default admin:admin123); repeat for more")
    p.add_argument("--max-skew", type=non_negative, default=5.0, metavar="S",
                   help="refuse a UsernameToken whose Created is more than S s from the camera's clock (default 5)")
    p.add_argument("--auth-fail-status", type=int, choices=[400, 401], default=400,
                   help="HTTP status of a ter:NotAuthorized fault (default 400, as SOAP 1.2 maps env:Sender)")
    p.add_argument("--clock-offset", type=float, default=0.0, metavar="S",
                   help="the camera's clock is S s ahead of this host's (default 0)")
    p.add_argument("--profiles", type=int_range(1, 2), default=2,
                   help="media profiles: 1 (main stream) or 2 (main + sub stream; default)")
    p.add_argument("--main", type=_size, default=(1280, 720), metavar="WxH", help="main stream size (default 1280x720)")
    p.add_argument("--fps", type=int_range(1, 30), default=25, help="main stream frame rate (default 25)")
    p.add_argument("--rtsp-url", action="append", default=[], metavar="URL",
                   help="use this RTSP URL for a profile (in profile order) instead of running hil.camera")
    p.add_argument("--ptz-timeout", type=positive, default=10.0, metavar="S",
                   help="DefaultPTZTimeout: a ContinuousMove without Timeout stops after S s (default 10)")
    p.add_argument("--gps", type=_gps, default=(30.6586, 104.0648, 500.0), metavar="LAT,LON[,ELEV]|off",
                   help="the camera's position (GetGeoLocation, GetStatus extension); default 30.6586,104.0648,500")
    p.add_argument("--reboot-s", type=non_negative, default=5.0, help="how long a reboot takes (default 5 s)")
    p.add_argument("--discovery", type=hostport, metavar="HOST:PORT",
                   help="answer WS-Discovery Probes on this UDP address (off by default; port 3702 also joins "
                        "239.255.255.250 on HOST's interface)")
    p.add_argument("--manufacturer", default="fieldgw-hil")
    p.add_argument("--model", default="SIM-PTZ-DOME")
    p.add_argument("--serial", default="SIM0001")
    add_control(p, "line-based control port (default 127.0.0.1:0); see hil/onvif/control.py")
    p.add_argument("--script", metavar="FILE", help="control commands to play at given times (hil/script.py)")
    add_log_level(p)
    return p


def build(a: argparse.Namespace) -> Camera:
    host = a.listen[0] or "0.0.0.0"
    advertise = a.advertise or (host if host not in ("0.0.0.0", "::") else "127.0.0.1")
    w, h = a.main
    encoders = [Encoder("VideoEncoder_1", "MainStream", w, h, a.fps, 2048, a.fps * 2),
                Encoder("VideoEncoder_2", "SubStream", 640, 360, 15, 512, 30)][: a.profiles]
    names, paths = ["mainStream", "subStream"], ["/main", "/sub"]
    rtsp_host = host if host not in ("0.0.0.0", "::") else "0.0.0.0"
    profiles = []
    for i, enc in enumerate(encoders):
        fixed = a.rtsp_url[i] if i < len(a.rtsp_url) else None
        profiles.append(Profile(f"Profile_{i + 1}", names[i], enc, VideoSource(rtsp_host, paths[i], fixed)))
    cfg = CameraConfig(host=host, advertise=advertise, users=dict(a.user or [("admin", "admin123")]),
                       max_skew_s=a.max_skew, auth_fail_status=a.auth_fail_status, clock_offset_s=a.clock_offset,
                       manufacturer=a.manufacturer, model=a.model, serial=a.serial, ptz_timeout_s=a.ptz_timeout,
                       gps=a.gps, reboot_s=a.reboot_s)
    return Camera(cfg, profiles)


async def run(a: argparse.Namespace, script: script_mod.Script) -> int:
    camera = build(a)
    server = OnvifServer(camera, camera.cfg.host, a.listen[1])
    discovery = Discovery(camera) if a.discovery else None
    extra: dict[str, Any] = {}
    control = ControlPort(None, handlers(camera, server, extra),
                          lambda: {"requests_total": sum(camera.requests.values()), "auth_failures": camera.auth.failures})
    try:
        await asyncio.gather(*(p.video.start(p.encoder.settings()) for p in camera.profiles.values()))
        host, port = await server.start()
        chost, cport = await control.start(*a.control)
        disc = await discovery.start(*a.discovery) if discovery is not None else None
    except (OSError, RuntimeError) as exc:
        log.error("cannot start: %s", exc)
        await server.close()
        return 1
    if discovery is not None:
        extra["discovery"] = discovery.stats()
    ready: dict[str, Any] = {
        "ready": True, "http": [host, port], "device_service": camera.xaddr("/onvif/device_service"),
        "control": [chost, cport], "profiles": {p.token: p.video.uri(camera.cfg.advertise)
                                                 for p in camera.profiles.values()},
        "users": sorted(camera.auth.users)}
    if disc is not None:
        ready["discovery"] = list(disc)
    player = script_mod.play_task(script, control.handle, "onvif-script")
    try:
        await until_signalled(ready)
    finally:
        if player is not None:
            player.cancel()
        if discovery is not None:
            discovery.close()
        await control.close()
        await server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if len(a.rtsp_url) > a.profiles:
        parser.error("more --rtsp-url than --profiles")
    script = script_mod.Script()
    if not script_mod.load_into(script, a.script, COMMANDS):
        return 2
    return run_main(run(a, script), a.log_level)
