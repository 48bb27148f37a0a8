"""Command line: ``python -m hil.tetra`` / ``hil.tetra.main(argv)``."""
from __future__ import annotations

import argparse
import logging
import sys

from ..cliutil import add_control, add_link, add_log_level, arg_type, non_negative, run_main, until_signalled
from ..serialport import ControlPort
from .control import handlers
from .radio import Radio, RadioConfig
from .team import parse_ssi, parse_team

log = logging.getLogger("hil.tetra")

_ssi = arg_type(parse_ssi)
_team = arg_type(parse_team)


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
    add_link(p, "symlink to create for the pty's slave side (what the driver opens)")
    add_control(p, "line-based control port (default 127.0.0.1:0, any free port)")
    p.add_argument("--issi", type=_ssi, default=2001, metavar="N", help="this radio's ISSI (default 2001)")
    p.add_argument("--team", type=_team, action="append", default=[], metavar="ISSI:LAT,LON[:HEADING_DEG:SPEED_KMH]",
                   help="a radio this one hears; moves along its heading and sends LIP reports (repeatable)")
    p.add_argument("--group", type=_ssi, action="append", default=[], metavar="GSSI",
                   help="a talk group that exists (repeatable); SDS to it get no delivery report")
    p.add_argument("--lip-interval", type=non_negative, default=5.0, metavar="S",
                   help="seconds between a team's LIP reports (default 5; 0 = none), until a LIP basic "
                        "location parameters request or the control port changes it")
    p.add_argument("--text-interval", type=non_negative, default=0.0, metavar="S",
                   help="every S seconds a team radio (in turn) sends a text SDS (default 0 = never)")
    p.add_argument("--report-delay", type=non_negative, default=0.2, metavar="S",
                   help="delay before a team's SDS-REPORT comes back (default 0.2)")
    p.add_argument("--csq", type=_csq, default=25, metavar="N", help="rssi for +CSQ (0..31, 99; default 25)")
    p.add_argument("--creg", type=_creg, default=1, metavar="N", help="registration stat for +CREG (default 1)")
    add_log_level(p)
    return p


async def run(cfg: RadioConfig, control_at: tuple[str, int]) -> int:
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
    try:
        await until_signalled({"ready": True, "link": str(cfg.link), "control": [host, port], "issi": cfg.issi})
    finally:
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
    cfg = RadioConfig(link=a.link, issi=a.issi, teams=a.team, groups=set(a.group), lip_interval=a.lip_interval,
                      text_interval=a.text_interval, report_delay=a.report_delay, csq=a.csq, creg=a.creg)
    return run_main(run(cfg, a.control), a.log_level)
