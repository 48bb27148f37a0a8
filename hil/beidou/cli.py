"""Command line: ``python -m hil.beidou`` / ``hil.beidou.main(argv)``."""

from __future__ import annotations

import argparse
import logging
import sys

from ..cliutil import add_control, add_link, add_log_level, arg_type, non_negative, positive, run_main, until_signalled
from ..serialport import ControlPort
from .card import CAPACITY_BITS, valid_address
from .control import Commands
from .dialect import DIALECTS
from .rnss import parse_position
from .terminal import Config, Peer, Terminal

log = logging.getLogger("hil.beidou")


def _address(text: str) -> str:
    if not valid_address(text):
        raise argparse.ArgumentTypeError(f"a card address is 7 digits, got {text!r}")
    return text


_position = arg_type(parse_position)


def _peer(text: str) -> Peer:
    addr, sep, pos = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected ADDR:LAT,LON, got {text!r}")
    lat, lon, _ = _position(pos)
    return Peer(_address(addr), lat, lon)


def _non_negative_int(text: str) -> int:
    v = int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hil.beidou",
        description="BeiDou RDSS short-message terminal on a pty (2.1 or BDS-3 sentences). "
                    "Prints one JSON line when ready; control port: `help` lists the commands.")
    add_link(p, "symlink to the pty slave the driver opens (stable across unplugs)")
    add_control(p, "line-based control port (default 127.0.0.1:0, any free port)")
    p.add_argument("--dialect", choices=sorted(DIALECTS), default="2.1")
    p.add_argument("--address", type=_address, default="0123456", help="this card's 7-digit address")
    p.add_argument("--level", type=int, choices=sorted(CAPACITY_BITS), default=2,
                   help="card level: " + ", ".join(f"{k} = {v} bits" for k, v in CAPACITY_BITS.items()))
    p.add_argument("--interval", type=_non_negative_int, default=60, metavar="S",
                   help="service interval between accepted sends, whole seconds (default 60)")
    p.add_argument("--beam-hz", type=non_negative, default=1.0, metavar="HZ",
                   help="beam power sentence rate ($BDBSI / $BDPWI), 0 = off (default 1)")
    p.add_argument("--position", type=_position, metavar="LAT,LON[,ALT]",
                   help="own RNSS fix: $GNRMC and $GNGGA once a second (none without it)")
    p.add_argument("--peer", type=_peer, action="append", default=[], metavar="ADDR:LAT,LON",
                   help="a team card that sends this one a 0x01 position report (repeatable)")
    p.add_argument("--peer-interval", type=positive, default=10.0, metavar="S",
                   help="seconds between each peer's reports (default 10)")
    add_log_level(p)
    return p


async def run(cfg: Config, control: tuple[str, int]) -> int:
    terminal = Terminal(cfg)
    try:
        terminal.start()
    except OSError as exc:
        log.error("cannot create the serial link %s: %s", cfg.link, exc)
        await terminal.stop()
        return 1
    ctl = ControlPort(terminal.port, Commands(terminal).handlers(), terminal.stats)
    try:
        host, port = await ctl.start(*control)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", *control, exc)
        await terminal.stop()
        return 1
    try:
        await until_signalled({"ready": True, "link": str(cfg.link), "control": [host, port],
                               "address": cfg.address, "dialect": cfg.dialect, "tty": terminal.port.slave_path})
    finally:
        await ctl.close()
        await terminal.stop()
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    cfg = Config(link=a.link, dialect=a.dialect, address=a.address, level=a.level, interval_s=a.interval,
                 beam_hz=a.beam_hz, position=a.position, peers=a.peer, peer_interval=a.peer_interval)
    return run_main(run(cfg, a.control), a.log_level)
