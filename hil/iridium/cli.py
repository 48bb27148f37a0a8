"""Command line: ``python -m hil.iridium`` / ``hil.iridium.main(argv)``."""
from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..cliutil import add_control, add_link, add_log_level, arg_type, non_negative, positive, run_main, until_signalled
from ..serialport import ControlPort
from .atcmd import ModemConfig
from .control import Controls
from .modem import Modem
from .network import Network
from .peers import SPEC, Peer, PeerReporter, parse_peer
from .port import UNPLUG_MODES, ModemPort

log = logging.getLogger("hil.iridium")


def _imei(text: str) -> str:
    if len(text) != 15 or not text.isdigit():
        raise argparse.ArgumentTypeError(f"IMEI must be 15 digits, got {text!r}")
    return text


def _seconds(text: str) -> float:
    return non_negative(text, "seconds")


def _delay_range(text: str) -> tuple[float, float]:
    low, sep, high = text.partition("-")
    lo = _seconds(low)
    hi = _seconds(high) if sep else lo
    if hi < lo:
        raise argparse.ArgumentTypeError(f"MIN-MAX with MIN <= MAX, got {text!r}")
    return lo, hi


def _csq(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 5:
        raise argparse.ArgumentTypeError(f"signal must be 0..5, got {text!r}")
    return int(text)


_peer = arg_type(parse_peer)


def _interval(text: str) -> float:
    return positive(text, "seconds")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hil.iridium",
                                description="Iridium 9603 SBD modem on a pty (AT commands, MO/MT buffers, "
                                            "sessions with random delays, injectable MO status codes)")
    add_link(p, "symlink to the pty's slave side, what the driver opens (like /dev/serial/by-id/...)")
    add_control(p, "line-based control port (port 0: any; default 127.0.0.1:0)")
    p.add_argument("--imei", type=_imei, default="300434063000001", help="15 digits, answered to AT+CGSN")
    p.add_argument("--session-delay", type=_delay_range, default=(0.5, 3.0), metavar="MIN-MAX",
                   help="seconds each AT+SBDIX/SBDIXA session takes, uniformly random (default 0.5-3)")
    p.add_argument("--csq", type=_csq, default=5, metavar="N", help="signal bars 0..5 (default 5)")
    p.add_argument("--csq-delay", type=_seconds, default=2.0, metavar="S",
                   help="seconds AT+CSQ takes to answer (default 2; AT+CSQF answers at once)")
    p.add_argument("--sbdwb-timeout", type=_seconds, default=60.0, metavar="S",
                   help="seconds the message bytes may take after READY (AT+SBDWB/SBDWT; default 60)")
    p.add_argument("--unplug-mode", choices=UNPLUG_MODES, default="power",
                   help="what `unplug` does to the modem: power = it restarts (USB-powered, the default), "
                        "serial = only the serial link drops, the modem keeps its state")
    p.add_argument("--peer", type=_peer, action="append", default=[], metavar=SPEC,
                   help="a team's own Iridium unit (ID: 1..32 of A-Z a-z 0-9 -) that sends this modem its "
                        "0x03 position report as an MT message (mailbox, ring alert); with HEADING_DEG and "
                        "SPEED_KMH it moves, else it stands still (course, speed unknown). Repeatable")
    p.add_argument("--peer-interval", type=_interval, default=60.0, metavar="S",
                   help="seconds between each peer's reports (default 60)")
    p.add_argument("--seed", type=int, help="random seed for the session delays (reproducible runs)")
    add_log_level(p)
    return p


@dataclass
class Options:
    link: Path
    control: tuple[str, int]
    csq: int
    unplug_mode: str
    modem: ModemConfig
    peers: list[Peer] = field(default_factory=list)
    peer_interval: float = 60.0


async def run(opts: Options) -> int:
    network = Network(csq=opts.csq)
    modem = Modem(network, opts.modem)
    port = ModemPort(opts.link, modem, opts.unplug_mode)
    controls = Controls(network, modem)
    peers = PeerReporter(opts.peers, opts.peer_interval, controls.deliver)
    control = ControlPort(port, controls.handlers(),
                          lambda: {**modem.stats(), **network.stats(), **peers.stats()})
    try:
        port.plug()
        host, cport = await control.start(*opts.control)
    except OSError as exc:
        log.error("cannot start: %s", exc)
        port.unplug_now()
        await modem.stop()
        return 1
    peers.start()
    try:
        await until_signalled({"ready": True, "link": str(opts.link), "control": [host, cport],
                               "imei": opts.modem.imei})
    finally:
        await peers.stop()
        await control.close()
        await modem.stop()
        port.unplug_now()
    log.info("stopped")
    return 0


def parse_options(argv: list[str] | None) -> tuple[Options, str]:
    p = build_parser()
    a = p.parse_args(argv)
    ids = [peer.unit_id for peer in a.peer]
    if len(set(ids)) != len(ids):
        p.error(f"argument --peer: the same ID twice: {sorted({i for i in ids if ids.count(i) > 1})}")
    config = ModemConfig(imei=a.imei, session_delay=a.session_delay, csq_delay=a.csq_delay,
                         write_timeout=a.sbdwb_timeout, seed=a.seed)
    return Options(link=a.link, control=a.control, csq=a.csq, unplug_mode=a.unplug_mode, modem=config,
                   peers=a.peer, peer_interval=a.peer_interval), a.log_level


def main(argv: list[str] | None = None) -> int:
    opts, level = parse_options(sys.argv[1:] if argv is None else argv)
    return run_main(run(opts), level)
