"""Command line: ``python -m hil.tetra`` / ``hil.tetra.main(argv)``."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import signal
import sys
from pathlib import Path
from typing import Any

from ..serialport import ControlPort
from .control import handlers
from .radio import Radio, RadioConfig
from .team import Team, parse_ssi, parse_team

log = logging.getLogger("hil.tetra")


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _non_negative(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not v >= 0 or math.isinf(v):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def _ssi(text: str) -> int:
    try:
        return parse_ssi(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _team(text: str) -> Team:
    try:
        return parse_team(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _csq(text: str) -> int:
    v = int(text)
    if not (0 <= v <= 31 or v == 99):
        raise argparse.ArgumentTypeError("rssi must be 0..31 or 99 (unknown)")
    return v


def _creg(text: str) -> int:
    v = int(text)
    if not 0 <= v <= 5:
        raise argparse.ArgumentTypeError("stat must be 0..5 (1 registered, 0 not, 2 searching, 3 denied)")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hil.tetra",
        description="TETRA radio on PEI (serial AT) on a pty: SDS-TL text, delivery reports, LIP positions "
                    "of the team radios it hears. See docs/serial-protocols.md.")
    p.add_argument("--link", required=True, type=Path, metavar="PATH",
                   help="symlink to create for the pty's slave side (what the driver opens)")
    p.add_argument("--control", type=_hostport, default=("127.0.0.1", 0), metavar="HOST:PORT",
                   help="line-based control port (default 127.0.0.1:0, any free port)")
    p.add_argument("--issi", type=_ssi, default=2001, metavar="N", help="this radio's ISSI (default 2001)")
    p.add_argument("--team", type=_team, action="append", default=[], metavar="ISSI:LAT,LON[:HEADING_DEG:SPEED_KMH]",
                   help="a radio this one hears; moves along its heading and sends LIP reports (repeatable)")
    p.add_argument("--group", type=_ssi, action="append", default=[], metavar="GSSI",
                   help="a talk group that exists (repeatable); SDS to it get no delivery report")
    p.add_argument("--lip-interval", type=_non_negative, default=5.0, metavar="S",
                   help="seconds between a team's LIP reports (default 5; 0 = none)")
    p.add_argument("--text-interval", type=_non_negative, default=0.0, metavar="S",
                   help="every S seconds a team radio (in turn) sends a text SDS (default 0 = never)")
    p.add_argument("--report-delay", type=_non_negative, default=0.2, metavar="S",
                   help="delay before a team's SDS-REPORT comes back (default 0.2)")
    p.add_argument("--csq", type=_csq, default=25, metavar="N", help="rssi for +CSQ (0..31, 99; default 25)")
    p.add_argument("--creg", type=_creg, default=1, metavar="N", help="registration stat for +CREG (default 1)")
    p.add_argument("--log-level", default="WARNING", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    return p


def _quiet_cancelled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Control clients still connected at exit are cancelled; that is not an error worth a traceback."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


async def run(cfg: RadioConfig, control_at: tuple[str, int]) -> int:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_cancelled)
    radio = Radio(cfg)
    control = ControlPort(radio.port, handlers(radio), radio.stats)
    try:
        await radio.start()
        host, port = await control.start(*control_at)
    except OSError as exc:
        log.error("cannot start: %s", exc)
        await radio.stop()
        await control.close()
        return 1
    sys.stdout.write(json.dumps({"ready": True, "link": str(cfg.link), "control": [host, port],
                                 "issi": cfg.issi}) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await control.close()
        await radio.stop()
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(sys.argv[1:] if argv is None else argv)
    issis = [t.issi for t in a.team]
    if len(set(issis)) != len(issis) or a.issi in issis:
        parser.error("--team ISSIs must be unique and differ from --issi")
    if set(a.group) & ({a.issi} | set(issis)):
        parser.error("a --group GSSI cannot also be a radio's ISSI")
    logging.basicConfig(level=a.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = RadioConfig(link=a.link, issi=a.issi, teams=a.team, groups=set(a.group), lip_interval=a.lip_interval,
                      text_interval=a.text_interval, report_delay=a.report_delay, csq=a.csq, creg=a.creg)
    try:
        return asyncio.run(run(cfg, a.control))
    except KeyboardInterrupt:  # SIGINT before the handler was installed
        return 0
