"""Command line: ``python -m hil.gb28181`` / ``hil.gb28181.main(argv)``."""
from __future__ import annotations

import argparse
import asyncio
import logging
import socket
from urllib.parse import urlsplit

from .. import script as script_mod
from ..cliutil import (add_control, add_log_level, arg_type, hostport_any, int_range, non_negative, positive,
                       run_main, until_signalled)
from ..serialport import ControlPort
from .channels import DEVICE_TYPE, KINDS, check_id, nth_device
from .control import handlers, summary
from .device import Device, DeviceConfig
from .position import parse_position
from .transport import local_ip_towards
from .video import VideoConfig

log = logging.getLogger("hil.gb28181")

DEFAULT_PLATFORM_ID = "34020000002000000001"
DEFAULT_REALM = "3402000000"
DEFAULT_SIZE = {"h264": (640, 360), "h265": (480, 270)}


def _platform(text: str) -> tuple[str, str, int]:
    u = urlsplit(text)
    try:
        port = u.port or 5060
    except ValueError:
        port = 0
    if u.scheme not in ("udp", "tcp") or not u.hostname or not port:
        raise argparse.ArgumentTypeError(f"expected udp://HOST[:PORT] or tcp://HOST[:PORT], got {text!r}")
    return u.scheme, u.hostname, port


def _seconds(text: str) -> float:
    v = positive(text, "seconds")
    if v > 86_400:
        raise argparse.ArgumentTypeError("must be <= 86400 seconds")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hil.gb28181",
        description="GB/T 28181-2016 device (dome camera or body-worn transmitter): registers to a platform with "
                    "digest auth, keepalives, Catalog/DeviceInfo/DeviceStatus, live MPEG-PS over RTP (UDP/TCP) on "
                    "INVITE, MobilePosition, PTZCmd. See docs/gb28181-simulator.md.")
    g = p.add_argument_group("platform and identity")
    g.add_argument("--platform", type=_platform, required=True, metavar="udp://HOST:PORT|tcp://HOST:PORT",
                   help="the SIP server (platform) and the SIP transport to it")
    g.add_argument("--platform-id", type=arg_type(lambda t: check_id(t, "--platform-id")), default=DEFAULT_PLATFORM_ID)
    g.add_argument("--realm", default=DEFAULT_REALM, help="SIP domain of the platform (default 3402000000)")
    g.add_argument("--device-id", type=arg_type(lambda t: check_id(t, "--device-id")),
                   help="20 digits (default 3402000000<type>0000001: type 132 dome, 138 bodycam)")
    g.add_argument("--password", default="12345678", help="the device's SIP password (digest MD5)")
    g.add_argument("--listen", type=hostport_any, default=("0.0.0.0", 0), metavar="HOST:PORT",
                   help="local SIP address (default 0.0.0.0:0: any free port); with --devices N, port+i each")
    g.add_argument("--local-ip", help="address to put in Via/Contact/SDP (default: the route to the platform)")
    d = p.add_argument_group("device")
    d.add_argument("--kind", choices=KINDS, default="dome", help="dome camera (PTZType 1) or body-worn transmitter")
    d.add_argument("--channels", type=int_range(1, 99), default=1, help="video channels (default 1)")
    d.add_argument("--devices", type=int_range(1, 10_000), default=1,
                   help="simulate N devices with ids in sequence (load tests; default 1)")
    d.add_argument("--register-rate", type=positive, default=100.0, metavar="PER_S",
                   help="with --devices: how many start registering per second (default 100)")
    d.add_argument("--name", default="", help="device/channel name (default 球机 / 执法记录仪)")
    d.add_argument("--manufacturer", default="fieldgw-hil")
    d.add_argument("--model", default="")
    d.add_argument("--charset", choices=["gb2312", "utf-8"], default="gb2312", help="MANSCDP body charset")
    d.add_argument("--expires", type=int_range(10, 86_400), default=3600, help="REGISTER Expires (s)")
    d.add_argument("--keepalive", type=_seconds, default=60.0, metavar="S", help="keepalive period (default 60 s)")
    d.add_argument("--keepalive-misses", type=int_range(1, 100), default=3,
                   help="unanswered keepalives before registering anew (default 3)")
    d.add_argument("--catalog-batch", type=int_range(1, 99), default=4,
                   help="channels per Catalog response MESSAGE (default 4)")
    d.add_argument("--position-mode", choices=["notify", "message"], default="notify",
                   help="MobilePosition as NOTIFY on a SUBSCRIBE (default) or as MESSAGE")
    d.add_argument("--position-interval", type=non_negative, default=5.0, metavar="S",
                   help="message mode: unsolicited MobilePosition MESSAGE every S s (0: only when subscribed)")
    d.add_argument("--position", type=arg_type(parse_position), default=(30.6586, 104.0648), metavar="LAT,LON",
                   help="start of the team's walk (default 30.6586,104.0648)")
    d.add_argument("--speed-kmh", type=non_negative, default=4.5, help="walking speed of a bodycam's team")
    d.add_argument("--reboot-s", type=non_negative, default=5.0, help="silence of a reboot (default 5 s)")
    d.add_argument("--register-retry", type=_seconds, default=5.0, metavar="S",
                   help="first back-off after a refused/failed REGISTER; doubles up to 60 s (default 5)")
    d.add_argument("--sip-timeout", type=_seconds, default=32.0, metavar="S",
                   help="give up on a request after S s (RFC 3261 timer F; default 32)")
    d.add_argument("--max-streams", type=int_range(1, 64), default=8, help="concurrent INVITEs (default 8)")
    v = p.add_argument_group("video")
    v.add_argument("--codec", choices=["h264", "h265"], default="h264")
    v.add_argument("--width", type=int_range(64, 1920), help="default 640 (h264) / 480 (h265)")
    v.add_argument("--height", type=int_range(64, 1080), help="default 360 (h264) / 270 (h265)")
    v.add_argument("--fps", type=int_range(1, 60), default=25)
    v.add_argument("--bitrate-kbps", type=int_range(16, 20_000), default=1000)
    v.add_argument("--gop-s", type=_seconds, default=2.0)
    add_control(p, "line-based control port (default 127.0.0.1:0); see hil/gb28181/control.py")
    p.add_argument("--script", metavar="FILE", help="control commands to play at given times (hil/script.py)")
    add_log_level(p)
    return p


def _free_port(kind: int, host: str) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def configs(a: argparse.Namespace) -> list[DeviceConfig]:
    proto, host, port = a.platform
    first = a.device_id or f"{DEFAULT_REALM}{DEVICE_TYPE[a.kind]}0000001"
    dw, dh = DEFAULT_SIZE[a.codec]
    video = VideoConfig(codec=a.codec, width=a.width or dw, height=a.height or dh, fps=a.fps,
                        bitrate_kbps=a.bitrate_kbps, gop_s=a.gop_s)
    out = []
    for i in range(a.devices):
        bind_port = a.listen[1] + i if a.listen[1] else 0
        out.append(DeviceConfig(
            device_id=nth_device(first, i), platform_id=a.platform_id, realm=a.realm, password=a.password,
            proto=proto, platform=(host, port), bind=(a.listen[0] or "0.0.0.0", bind_port), local_ip=a.local_ip,
            kind=a.kind, channels=a.channels, name=a.name, manufacturer=a.manufacturer, model=a.model,
            expires=a.expires, keepalive=a.keepalive, keepalive_misses=a.keepalive_misses, charset=a.charset,
            catalog_batch=a.catalog_batch, position_mode=a.position_mode, position_interval=a.position_interval,
            position=a.position, speed_kmh=a.speed_kmh, reboot_s=a.reboot_s, register_retry=a.register_retry,
            sip_timeout=a.sip_timeout, max_streams=a.max_streams, video=video))
    return out


async def run(a: argparse.Namespace, cfgs: list[DeviceConfig], script: script_mod.Script) -> int:
    devices = [Device(c) for c in cfgs]
    for dev in devices:  # a port now, so the ready line can name it (the transport binds it again)
        if not dev.sip_port:
            dev.sip_port = _free_port(socket.SOCK_DGRAM if dev.cfg.proto == "udp" else socket.SOCK_STREAM,
                                      dev.cfg.bind[0])
    control = ControlPort(None, handlers(devices, a.reboot_s), lambda: summary(devices))
    try:
        chost, cport = await control.start(*a.control)
    except OSError as exc:
        log.error("cannot open the control port: %s", exc)
        return 1
    for i, dev in enumerate(devices):
        dev.start(delay=i / a.register_rate)
    first = devices[0]
    ready = {"ready": True, "sip": [first.cfg.local_ip or local_ip_towards(first.cfg.platform[0]), first.sip_port],
             "transport": first.cfg.proto, "control": [chost, cport], "device_id": first.id,
             "channels": [c.id for c in first.channels], "kind": first.cfg.kind, "devices": len(devices)}
    player = script_mod.play_task(script, control.handle, "gb28181-script")
    try:
        await until_signalled(ready)
    finally:
        if player is not None:
            player.cancel()
        await control.close()
        await asyncio.gather(*(d.stop() for d in devices), return_exceptions=True)
    log.info("stopped")
    return 0


COMMANDS = ("status", "reboot", "stop_keepalive", "wrong_password", "register", "garbage", "bye", "ptz", "stats")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.device_id and a.devices > 1 and int(a.device_id[14:]) + a.devices - 1 > 999_999:
        parser.error("--devices runs past the last serial of --device-id")
    if a.listen[1] and a.listen[1] + a.devices - 1 > 65535:
        parser.error("--listen port + --devices exceeds 65535")
    script = script_mod.Script()
    if not script_mod.load_into(script, a.script, COMMANDS):
        return 2
    return run_main(run(a, configs(a), script), a.log_level)
