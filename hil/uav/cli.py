"""Command line: ``python -m hil.uav`` / ``hil.uav.main(argv)``."""
from __future__ import annotations

import argparse

from ..cliutil import add_log_level, arg_type, hostport_any, non_negative, positive, run_main
from . import signing
from .geo import GeoPoint, parse_home
from .sim import SimOptions, run
from .vehicle import VehicleConfig

HOME_SPACING_M = 30.0  # vehicle k starts k*30 m east of --home

_home = arg_type(parse_home)


def _sysid(text: str) -> int:
    v = int(text)
    if not 1 <= v <= 255:
        raise argparse.ArgumentTypeError("sysid must be 1..255")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hil.uav",
                                description="MAVLink 2 ArduCopter-like multi-vehicle simulator")
    p.add_argument("--sysid", type=_sysid, action="append", help="vehicle system id (repeatable; default 1)")
    p.add_argument("--udp-out", type=hostport_any, action="append", default=[], metavar="HOST:PORT",
                   help="send to HOST:PORT from an ephemeral socket, read replies on it")
    p.add_argument("--udp-listen", type=hostport_any, action="append", default=[], metavar="HOST:PORT",
                   help="bind HOST:PORT, send to the most recent peers (up to 8)")
    p.add_argument("--tcp-listen", type=hostport_any, action="append", default=[], metavar="HOST:PORT",
                   help="accept TCP clients on HOST:PORT")
    p.add_argument("--home", type=_home, default=GeoPoint(30.6586, 104.0648, 500.0), metavar="LAT,LON,ALT")
    p.add_argument("--takeoff-alt", type=positive, default=30.0, metavar="M")
    p.add_argument("--takeoff-delay", type=non_negative, default=2.0, metavar="S")
    p.add_argument("--autostart", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--pattern", choices=["circle"], default="circle")
    p.add_argument("--radius", type=positive, default=80.0, metavar="M")
    p.add_argument("--speed-mps", type=positive, default=8.0)
    p.add_argument("--battery-minutes", type=positive, default=25.0)
    p.add_argument("--rate-scale", type=positive, default=1.0)
    p.add_argument("--signing-key", action="append", default=[], metavar="[SYSID:]HEX",
                   help="64-hex-char key for all vehicles, or SYSID:HEX for one (repeatable)")
    p.add_argument("--video-uri", metavar="URI", help="the on-board camera's stream, announced in VIDEO_STREAM_INFORMATION")
    p.add_argument("--print-port", action="store_true", help="print bound addresses as one JSON line")
    add_log_level(p)
    return p


def _signing_keys(parser: argparse.ArgumentParser, specs: list[str], sysids: list[int]) -> dict[int, bytes]:
    common: bytes | None = None
    per: dict[int, bytes] = {}
    for spec in specs:
        sysid_text, sep, hexkey = spec.rpartition(":")
        try:
            key = signing.parse_key(hexkey)
            if sep:
                per[_sysid(sysid_text)] = key
            else:
                common = key
        except (ValueError, argparse.ArgumentTypeError) as exc:
            parser.error(f"--signing-key {spec!r}: {exc}")
    unknown = set(per) - set(sysids)
    if unknown:
        parser.error(f"--signing-key for unknown sysid(s) {sorted(unknown)}")
    return {s: per.get(s, common) for s in sysids if per.get(s, common) is not None}  # type: ignore[misc]


def parse_options(argv: list[str] | None) -> tuple[SimOptions, str]:
    parser = build_parser()
    a = parser.parse_args(argv)
    if not (a.udp_out or a.udp_listen or a.tcp_listen):
        parser.error("need at least one of --udp-out, --udp-listen, --tcp-listen")
    sysids: list[int] = a.sysid or [1]
    if len(set(sysids)) != len(sysids):
        parser.error("--sysid values must be unique")
    keys = _signing_keys(parser, a.signing_key, sysids)
    vehicles = [
        VehicleConfig(
            sysid=s, home=a.home.offset(0.0, HOME_SPACING_M * k), takeoff_alt=a.takeoff_alt,
            takeoff_delay=a.takeoff_delay, autostart=a.autostart, radius=a.radius, speed_mps=a.speed_mps,
            battery_minutes=a.battery_minutes, rate_scale=a.rate_scale, signing_key=keys.get(s),
            video_uri=a.video_uri)
        for k, s in enumerate(sysids)
    ]
    opts = SimOptions(vehicles=vehicles, udp_out=a.udp_out, udp_listen=a.udp_listen, tcp_listen=a.tcp_listen,
                      print_port=a.print_port)
    return opts, a.log_level


def main(argv: list[str] | None = None) -> int:
    opts, level = parse_options(argv)
    return run_main(run(opts), level)
