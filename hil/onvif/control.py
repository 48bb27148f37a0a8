"""Control-port commands of the ONVIF camera simulator (added to ControlPort's `stats`).

status                  PTZ position and motion, presets, encoder configurations and streams, requests
                        counted per operation, SOAP faults by subcode, auth failures (and the last reason)
reboot [SECONDS]        HTTP and RTSP go away for SECONDS (default --reboot-s), then come back;
                        settings and presets persist, PTZ stops
set_password PASSWORD [USER]
                        change a user's password (default the first user): clients with the old one
                        are refused from the next request on
clock SECONDS           the camera's clock runs SECONDS ahead of (negative: behind) this host's
gps LAT LON [ELEV] | gps off
                        move the camera's GPS position / lose the fix
ptz PAN TILT ZOOM       put the dome there at once (as if turned by hand), in the generic spaces
"""
from __future__ import annotations

import math
from typing import Any

from ..serialport import Handler
from .camera import Camera
from .server import OnvifServer


def _num(text: str, lo: float, hi: float, what: str) -> float:
    v = float(text)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{what} must be {lo:g}..{hi:g}, got {text}")
    return v


def handlers(camera: Camera, server: OnvifServer, extra: dict[str, Any]) -> dict[str, Handler]:
    async def status(args: list[str]) -> dict[str, Any]:
        if args:
            raise ValueError("usage: status")
        return {"ok": True, **camera.to_json(), "http": {"serving": server.http.serving,
                                                         "requests": server.http.requests,
                                                         "bad_requests": server.http.bad_requests,
                                                         "soap_faults": server.soap_faults}, **extra}

    async def reboot(args: list[str]) -> dict[str, Any]:
        if len(args) > 1:
            raise ValueError("usage: reboot [SECONDS]")
        seconds = _num(args[0], 0, 3600, "seconds") if args else camera.cfg.reboot_s
        camera.reboot(seconds)
        return {"ok": True, "reboot_s": seconds}

    async def set_password(args: list[str]) -> dict[str, Any]:
        if len(args) not in (1, 2):
            raise ValueError("usage: set_password PASSWORD [USER]")
        user = args[1] if len(args) == 2 else next(iter(camera.auth.users))
        if user not in camera.auth.users:
            raise ValueError(f"no user {user!r}")
        camera.auth.users[user] = args[0]
        return {"ok": True, "user": user}

    async def clock(args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise ValueError("usage: clock SECONDS")
        camera.clock_offset_s = _num(args[0], -1e9, 1e9, "offset")
        return {"ok": True, "clock_offset_s": camera.clock_offset_s}

    async def gps(args: list[str]) -> dict[str, Any]:
        if args == ["off"]:
            camera.gps = None
        elif len(args) in (2, 3):
            camera.gps = (_num(args[0], -90, 90, "lat"), _num(args[1], -180, 180, "lon"),
                          _num(args[2], -1000, 10000, "elevation") if len(args) == 3 else 0.0)
        else:
            raise ValueError("usage: gps LAT LON [ELEVATION] | gps off")
        return {"ok": True, "gps": camera.gps}

    async def ptz(args: list[str]) -> dict[str, Any]:
        if len(args) != 3:
            raise ValueError("usage: ptz PAN TILT ZOOM")
        camera.ptz.stop()
        camera.ptz.pan.pos = _num(args[0], -1, 1, "pan")
        camera.ptz.tilt.pos = _num(args[1], -1, 1, "tilt")
        camera.ptz.zoom.pos = _num(args[2], 0, 1, "zoom")
        return {"ok": True, "ptz": camera.ptz.to_json()}

    return {"status": status, "reboot": reboot, "set_password": set_password, "clock": clock, "gps": gps,
            "ptz": ptz}
