"""Command line: ``python -m hil.starlink`` / ``hil.starlink.cli.main(argv)``."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys

from . import control as control_mod
from .dish import Dish
from .proto import build as build_api
from .script import Script, ScriptError, load, play
from .server import DishServer

log = logging.getLogger("hil.starlink")


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hil.starlink",
                                description="Starlink dish local status API (gRPC with server reflection), "
                                            "with scripted link states")
    p.add_argument("--listen", type=_hostport, required=True, metavar="HOST:PORT",
                   help="gRPC address (a real dish: 192.168.100.1:9200; port 0: any)")
    p.add_argument("--control", type=_hostport, default=("127.0.0.1", 0), metavar="HOST:PORT",
                   help="line-based control port: state|set|alert|down|stats (default 127.0.0.1:0)")
    p.add_argument("--script", metavar="FILE", help="lines of AT_SECONDS COMMAND..., played from start")
    p.add_argument("--seed", type=int, help="random seed for the status values")
    p.add_argument("--log-level", default="WARNING", type=str.upper,
                   choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    return p


async def run(args: argparse.Namespace) -> int:
    api = build_api()
    dish = Dish(api, seed=args.seed)
    server = DishServer(api, dish, *args.listen)
    script = Script()
    control = control_mod.build(dish, server, script)
    if args.script:
        try:
            script.steps = load(args.script, control.handlers).steps
        except ScriptError as exc:
            print(exc, file=sys.stderr)
            return 2
    try:
        grpc_addr = await server.start()
        control_addr = await control.start(*args.control)
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        await server.stop()
        return 1
    sys.stdout.write(json.dumps({"ready": True, "grpc": list(grpc_addr), "control": list(control_addr)}) + "\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    player = loop.create_task(play(script, control.handle), name="starlink-script") if script.steps else None
    try:
        await stop.wait()
    finally:
        if player is not None:
            player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await player
        await control.close()
        await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0
