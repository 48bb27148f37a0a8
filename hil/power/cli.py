"""Command line: ``python -m hil.power epever|victron ...`` / ``hil.power.main(argv)``."""
from __future__ import annotations

import argparse
import logging
import random
import sys
from pathlib import Path
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerRTU, FramerSocket

from ..cliutil import add_control, add_log_level, hostport, non_negative, positive, run_main, until_signalled
from ..serialport import ControlPort
from .bus import Bus, Unit
from .control import handlers
from .links import RtuLink, TcpLink
from .model import Clock, PowerSystem, SystemConfig
from .registers import EPEVER_FUNCTIONS, VICTRON_FUNCTIONS, epever_device, victron_device

log = logging.getLogger("hil.power")

DEFAULTS = {   # a 12 V Tracer 4210AN with one panel and a 100 Ah battery; a 48 V GX system
    "epever": SystemConfig(nominal_v=12.0, capacity_ah=100.0, pv_peak_w=400.0, load_w=60.0, max_charge_a=40.0),
    "victron": SystemConfig(nominal_v=48.0, capacity_ah=200.0, pv_peak_w=3000.0, load_w=400.0, max_charge_a=70.0),
}


def _unit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 247:
        raise argparse.ArgumentTypeError(f"a unit id is 1..247, got {text!r}")
    return int(text)


def _hour(text: str) -> float:
    v = non_negative(text, "hours")
    if v >= 24:
        raise argparse.ArgumentTypeError(f"an hour of the day is 0..24, got {text}")
    return v


def _percent(text: str) -> float:
    v = non_negative(text, "%")
    if v > 100:
        raise argparse.ArgumentTypeError(f"must be 0..100 %, got {text}")
    return v


def _common(p: argparse.ArgumentParser, kind: str) -> None:
    d = DEFAULTS[kind]
    add_control(p, "line-based control port (default 127.0.0.1:0, any free port)")
    p.add_argument("--time-scale", type=positive, default=1.0, metavar="X",
                   help="simulated seconds per real second (600: a day in 2.4 min; default 1)")
    p.add_argument("--start-hour", type=_hour, default=10.0, metavar="H", help="time of day at start (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the clouds, load noise and temperature drift")
    p.add_argument("--pv-peak", type=positive, default=d.pv_peak_w, metavar="W",
                   help=f"PV power at clear-sky noon (default {d.pv_peak_w:g})")
    p.add_argument("--load", type=non_negative, default=d.load_w, metavar="W", help=f"load (default {d.load_w:g})")
    p.add_argument("--capacity", type=positive, default=d.capacity_ah, metavar="AH",
                   help=f"battery capacity (default {d.capacity_ah:g} Ah, {d.nominal_v:g} V)")
    p.add_argument("--soc", type=_percent, default=d.soc, metavar="PCT", help=f"state of charge at start ({d.soc:g})")
    add_log_level(p)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hil.power",
        description="Power equipment on Modbus: an EPEVER Tracer charge controller (RTU on a pty) or a Victron GX "
                    "(Modbus TCP), each unit a model of sun, charger, battery and load.")
    sub = p.add_subparsers(dest="device", required=True, metavar="epever|victron")
    e = sub.add_parser("epever", help="EPEVER Tracer solar charge controller(s), Modbus RTU on a pty (or TCP)")
    where = e.add_mutually_exclusive_group(required=True)
    where.add_argument("--link", type=Path, metavar="PATH",
                       help="symlink to create for the pty's slave side (what the driver opens, 115200 8N1)")
    where.add_argument("--listen", type=hostport, metavar="HOST:PORT",
                       help="Modbus TCP instead: the controllers behind an RS-485/Ethernet gateway (unit ids as on "
                            "the bus; an unknown unit answers exception 0x0B)")
    e.add_argument("--unit", type=_unit, action="append", metavar="ID",
                   help="a controller's slave id on the bus (repeatable; default 1)")
    _common(e, "epever")
    v = sub.add_parser("victron", help="Victron GX device, Modbus TCP")
    v.add_argument("--listen", type=hostport, default=("127.0.0.1", 0), metavar="HOST:PORT",
                   help="Modbus TCP address (default 127.0.0.1:0, any free port; a GX uses 502)")
    v.add_argument("--unit", type=_unit, action="append", metavar="ID",
                   help="a unit id with a battery system behind it (repeatable; default 100; unit 0 = 100)")
    _common(v, "victron")
    return p


def build_units(a: argparse.Namespace, clock: Clock) -> list[Unit]:
    d = DEFAULTS[a.device]
    cfg = SystemConfig(nominal_v=d.nominal_v, capacity_ah=a.capacity, pv_peak_w=a.pv_peak, load_w=a.load, soc=a.soc,
                       max_charge_a=d.max_charge_a)
    build, functions = (epever_device, EPEVER_FUNCTIONS) if a.device == "epever" else (victron_device,
                                                                                      VICTRON_FUNCTIONS)
    units = []
    for uid in a.unit:
        model = PowerSystem(cfg, clock, random.Random(f"{a.seed}:{uid}"))
        units.append(Unit(uid, a.device, model, build(uid, model), functions))
    return units


async def run(a: argparse.Namespace) -> int:
    clock = Clock(a.start_hour, a.time_scale)
    units = build_units(a, clock)
    link: RtuLink | TcpLink
    ready: dict[str, Any] = {"ready": True, "device": a.device}
    if a.device == "epever" and a.link is not None:
        bus = Bus(units, FramerRTU, unknown_unit=None, broadcast=True)
        link = RtuLink(bus, a.link)
        control = ControlPort(link.port, handlers(bus, clock), link.stats)
    else:
        aliases = {0: 100 if 100 in a.unit else a.unit[0]} if a.device == "victron" else {}   # a GX: unit 0 is 100
        bus = Bus(units, FramerSocket, unknown_unit=ExcCodes.GATEWAY_NO_RESPONSE, broadcast=False, aliases=aliases)
        link = TcpLink(bus)
        control = ControlPort(None, handlers(bus, clock), link.stats)
    try:
        if isinstance(link, RtuLink):
            await link.start()
            ready["link"] = str(a.link)
        else:
            ready["listen"] = list(await link.start(*a.listen))
        ready["control"] = list(await control.start(*a.control))
    except OSError as exc:
        log.error("cannot start: %s", exc)
        await link.stop()
        await control.close()
        return 1
    ready["units"] = [u.id for u in units]
    try:
        await until_signalled(ready)
    finally:
        await control.close()
        await link.stop()
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(sys.argv[1:] if argv is None else argv)
    a.unit = a.unit or [1 if a.device == "epever" else 100]
    if len(set(a.unit)) != len(a.unit):
        parser.error("--unit ids must be unique")
    return run_main(run(a), a.log_level)
