"""Command line: ``python -m hil.bgan`` / ``hil.bgan.cli.main(argv)``."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from hil.starlink.script import Script, ScriptError, load, play

from . import control as control_mod
from .device import BganDevice
from .terminal import Terminal

log = logging.getLogger("hil.bgan")


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hil.bgan",
                                description="Inmarsat BGAN terminal: AT status/registration/PDP responder on a pty "
                                            "(and TCP), with scripted link states")
    p.add_argument("--link", type=Path, required=True, metavar="PATH",
                   help="symlink to the pty the driver opens (kept across unplugs)")
    p.add_argument("--control", type=_hostport, default=("127.0.0.1", 0), metavar="HOST:PORT",
                   help="line-based control port: reg|pdp|cn0|gps|noise|unplug|stats (default 127.0.0.1:0)")
    p.add_argument("--tcp", type=_hostport, metavar="HOST:PORT", help="also answer AT over TCP here (port 0: any)")
    p.add_argument("--script", metavar="FILE", help="lines of AT_SECONDS COMMAND..., played from start")
    p.add_argument("--seed", type=int, help="random seed for the C/N0 noise")
    p.add_argument("--log-level", default="WARNING", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    return p


async def run(args: argparse.Namespace) -> int:
    device = BganDevice(Terminal(seed=args.seed), args.link)
    script = Script()
    control = control_mod.build(device, lambda: {"script": script.stats()})
    if args.script:
        try:
            script.steps = load(args.script, control.handlers).steps
        except ScriptError as exc:
            print(exc, file=sys.stderr)
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
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    player = loop.create_task(play(script, control.handle), name="bgan-script") if script.steps else None
    try:
        await stop.wait()
    finally:
        if player is not None:
            player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await player
        await control.close()
        await device.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0
