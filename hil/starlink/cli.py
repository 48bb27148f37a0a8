"""Command line: ``python -m hil.starlink`` / ``hil.starlink.cli.main(argv)``."""
from __future__ import annotations

import argparse
import logging

from ..cliutil import add_control, add_log_level, cancel, hostport, run_main, until_signalled
from ..script import Script, load_into, play_task
from . import control as control_mod
from .dish import Dish
from .proto import build as build_api
from .server import DishServer

log = logging.getLogger("hil.starlink")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hil.starlink",
                                description="Starlink dish local status API (gRPC with server reflection), "
                                            "with scripted link states")
    p.add_argument("--listen", type=hostport, required=True, metavar="HOST:PORT",
                   help="gRPC address (a real dish: 192.168.100.1:9200; port 0: any)")
    add_control(p, "line-based control port: state|set|alert|down|stats (default 127.0.0.1:0)")
    p.add_argument("--script", metavar="FILE", help="lines of AT_SECONDS COMMAND..., played from start")
    p.add_argument("--seed", type=int, help="random seed for the status values")
    add_log_level(p)
    return p


async def run(args: argparse.Namespace) -> int:
    api = build_api()
    dish = Dish(api, seed=args.seed)
    server = DishServer(api, dish, *args.listen)
    script = Script()
    control = control_mod.build(dish, server, script)
    if not load_into(script, args.script, control.handlers):
        return 2
    try:
        grpc_addr = await server.start()
        control_addr = await control.start(*args.control)
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        await server.stop()
        return 1
    player = play_task(script, control.handle, "starlink-script")
    try:
        await until_signalled({"ready": True, "grpc": list(grpc_addr), "control": list(control_addr)})
    finally:
        await cancel(player)
        await control.close()
        await server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(run(args), args.log_level)
