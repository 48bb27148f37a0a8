"""Command line: ``python -m hil.nmea`` / ``hil.nmea.main(argv)``."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from .. import script as script_mod
from ..cliutil import (add_control, add_log_level, arg_type, hostport, hostport_any, non_negative, positive,
                       run_main, until_signalled)
from ..serialport import ControlPort
from .control import handlers
from .outputs import Output, PtyOut, TcpClientOut, TcpServerOut, UdpOut
from .receiver import SENTENCE_TYPES, Receiver, ReceiverConfig
from .sentences import TALKERS
from .walk import Walker, parse_latlon

log = logging.getLogger("hil.nmea")

COMMANDS = ("status", "no_fix", "bad_checksum", "garbage", "stop", "start", "speed", "heading", "unplug", "stats")


def _types(text: str) -> tuple[str, ...]:
    types = tuple(t.strip().upper() for t in text.split(",") if t.strip())
    bad = [t for t in types if t not in SENTENCE_TYPES]
    if not types or bad:
        raise ValueError(f"sentence types are a comma list of {', '.join(SENTENCE_TYPES)}; got {text!r}")
    return types


def _rate(text: str) -> float:
    v = positive(text, "Hz")
    if not 0.1 <= v <= 10:
        raise argparse.ArgumentTypeError("must be 0.1..10 Hz")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hil.nmea",
        description="A body-worn transmitter's GPS output: NMEA 0183 RMC/VTG/GGA (and GSA/GSV) for a walking "
                    "team, over TCP (client or server), UDP or a pty. See docs/onvif-nmea-simulators.md.")
    o = p.add_argument_group("outputs (at least one; several at once are allowed)")
    o.add_argument("--tcp-connect", type=hostport, metavar="HOST:PORT", action="append", default=[],
                   help="dial a receiver; reconnect with backoff 0.5..10 s")
    o.add_argument("--tcp-listen", type=hostport_any, metavar="HOST:PORT", action="append", default=[],
                   help="serve receivers (port 0: any free port, named in the ready line)")
    o.add_argument("--udp", type=hostport, metavar="HOST:PORT", action="append", default=[],
                   help="send datagrams to this address")
    o.add_argument("--udp-mode", choices=["epoch", "sentence"], default="epoch",
                   help="one datagram per epoch (all sentences of a fix, default) or per sentence")
    o.add_argument("--pty", type=Path, metavar="LINK", help="a pty serial line, its slave linked at LINK")
    r = p.add_argument_group("receiver")
    r.add_argument("--rate", type=_rate, default=1.0, help="epochs per second, 0.1..10 (default 1)")
    r.add_argument("--talker", choices=TALKERS, default="GP",
                   help="GP (GPS), GN (multi-system), BD (BeiDou, Chinese receivers) or GB (BeiDou, NMEA 4.11)")
    r.add_argument("--sentences", type=arg_type(_types), default=("RMC", "VTG", "GGA"),
                   help="comma list of RMC,VTG,GGA,GSA,GSV (default RMC,VTG,GGA)")
    r.add_argument("--noise-m", type=non_negative, default=1.5, help="position noise, metres 1-sigma (default 1.5)")
    r.add_argument("--satellites", type=int, default=9, choices=range(4, 13), metavar="4..12",
                   help="satellites used (GGA; default 9)")
    r.add_argument("--hdop", type=positive, default=0.9)
    r.add_argument("--seed", type=int, help="random seed (noise, GSV SNRs)")
    w = p.add_argument_group("the walk")
    w.add_argument("--start", type=arg_type(parse_latlon), default=(30.6586, 104.0648), metavar="LAT,LON",
                   help="start point (default 30.6586,104.0648)")
    w.add_argument("--altitude", type=float, default=500.0, help="metres above mean sea level (default 500)")
    w.add_argument("--speed-kmh", type=non_negative, default=4.5, help="walking speed (default 4.5)")
    w.add_argument("--heading", type=float, default=90.0, help="initial heading, degrees true (default 90)")
    w.add_argument("--turn-deg", type=float, default=90.0, help="turn by this much ... (default 90)")
    w.add_argument("--turn-every", type=non_negative, default=60.0, metavar="S",
                   help="... every S seconds (default 60: a square; 0: straight on)")
    w.add_argument("--waypoint", type=arg_type(parse_latlon), action="append", default=[], metavar="LAT,LON",
                   help="walk through these points and back to the start, looping (overrides heading/turns)")
    add_control(p, "line-based control port (default 127.0.0.1:0); see hil/nmea/control.py")
    p.add_argument("--script", metavar="FILE", help="control commands to play at given times (hil/script.py)")
    add_log_level(p)
    return p


def outputs_of(a: argparse.Namespace) -> list[Output]:
    outs: list[Output] = [TcpClientOut(h, port) for h, port in a.tcp_connect]
    outs += [TcpServerOut(h or "0.0.0.0", port) for h, port in a.tcp_listen]
    outs += [UdpOut(h, port, a.udp_mode == "sentence") for h, port in a.udp]
    if a.pty is not None:
        outs.append(PtyOut(a.pty))
    return outs


async def run(a: argparse.Namespace, script: script_mod.Script) -> int:
    walker = Walker(a.start[0], a.start[1], alt_m=a.altitude, speed_kmh=a.speed_kmh, heading=a.heading % 360.0,
                    turn_deg=a.turn_deg, turn_every_s=a.turn_every, waypoints=list(a.waypoint))
    outs = outputs_of(a)
    cfg = ReceiverConfig(talker=a.talker, rate_hz=a.rate, types=a.sentences, noise_m=a.noise_m,
                         satellites=a.satellites, hdop=a.hdop, seed=a.seed)
    rx = Receiver(cfg, walker, outs)
    pty = next((o.port for o in outs if isinstance(o, PtyOut)), None)
    control = ControlPort(pty, handlers(rx), lambda: {"sentences_sent": rx.sentences, "epochs": rx.epochs})
    try:
        for out in outs:
            await out.start()
        chost, cport = await control.start(*a.control)
    except OSError as exc:
        log.error("cannot open a port: %s", exc)
        for out in outs:
            await out.close()
        return 1
    rx.start()
    ready: dict[str, Any] = {"ready": True, "control": [chost, cport], "talker": a.talker, "rate_hz": a.rate}
    for out in outs:
        if isinstance(out, TcpServerOut):
            ready.setdefault("tcp_listen", []).append(out.address)
        elif isinstance(out, PtyOut):
            ready["link"] = str(out.port.link)
            ready["tty"] = out.port.slave_path
        elif isinstance(out, UdpOut):
            ready.setdefault("udp", []).append([out.host, out.port])
        elif isinstance(out, TcpClientOut):
            ready.setdefault("tcp_connect", []).append([out.host, out.port])
    player = script_mod.play_task(script, control.handle, "nmea-script")
    try:
        await until_signalled(ready)
    finally:
        if player is not None:
            player.cancel()
        await rx.stop()
        await control.close()
        for out in outs:
            await out.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    if not (a.tcp_connect or a.tcp_listen or a.udp or a.pty):
        parser.error("name at least one output: --tcp-connect, --tcp-listen, --udp or --pty")
    script = script_mod.Script()
    if not script_mod.load_into(script, a.script, COMMANDS):
        return 2
    return run_main(run(a, script), a.log_level)
