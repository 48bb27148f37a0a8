"""Command line: ``python -m hil.bgan`` / ``hil.bgan.cli.main(argv)``."""
from __future__ import annotations

import argparse
import logging
from typing import Any

from ..cliutil import add_control, add_link, add_log_level, cancel, hostport, run_main, until_signalled
from ..script import Script, load_into, play_task
from . import control as control_mod
from .device import BganDevice
from .terminal import Terminal

log = logging.getLogger("hil.bgan")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hil.bgan",
                                description="Inmarsat BGAN terminal: AT status/registration/PDP responder on a pty "
                                            "(and TCP), with scripted link states")
    add_link(p, "symlink to the pty the driver opens (kept across unplugs)")
    add_control(p, "line-based control port: reg|pdp|cn0|gps|noise|unplug|stats (default 127.0.0.1:0)")
    p.add_argument("--tcp", type=hostport, metavar="HOST:PORT", help="also answer AT over TCP here (port 0: any)")
    p.add_argument("--script", metavar="FILE", help="lines of AT_SECONDS COMMAND..., played from start")
    p.add_argument("--seed", type=int, help="random seed for the C/N0 noise")
    add_log_level(p)
    return p


async def run(args: argparse.Namespace) -> int:
    device = BganDevice(Terminal(seed=args.seed), args.link)
    script = Script()
    control = control_mod.build(device, lambda: {"script": script.stats()})
    if not load_into(script, args.script, control.handlers):
        return 2
    try:
        device.port.plug()
        control_addr = await control.start(*args.control)
        tcp_addr = await device.start_tcp(*args.tcp) if args.tcp else None
    except OSError as exc:
        log.error("cannot start: %s", exc)
        await control.close()
        await device.close()
        return 1
    ready: dict[str, Any] = {"ready": True, "link": str(args.link), "control": list(control_addr),
                             "tcp": list(tcp_addr) if tcp_addr else None}
    player = play_task(script, control.handle, "bgan-script")
    try:
        await until_signalled(ready)
    finally:
        await cancel(player)
        await control.close()
        await device.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(run(args), args.log_level)
