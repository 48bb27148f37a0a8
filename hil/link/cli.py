"""Command line: ``python -m hil.link`` / ``hil.link.main(argv)`` (``fieldgw sim link``)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import dataclass
from typing import Any

from ..cliutil import add_log_level, cancel, hostport, non_negative, run_main, until_signalled
from .control import ControlServer
from .emulator import LinkEmulator
from .pipe import QUEUE_LIMIT
from .profile import PROFILES, Profile, ProfileError, named, with_overrides
from .scenario import Scenario, ScenarioError, load, play

log = logging.getLogger("hil.link")


def _queue_limit(text: str) -> int:
    v = int(text)
    if v < 1024:
        raise argparse.ArgumentTypeError("must be at least 1024 bytes")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m hil.link",
        description="TCP link emulator: bandwidth, latency, jitter and outages between a client and a target. "
                    "`python -m hil.link netem --help` for the kernel (tc netem) variant.")
    p.add_argument("--listen", type=hostport, metavar="HOST:PORT", help="where clients connect (port 0: any)")
    p.add_argument("--target", type=hostport, metavar="HOST:PORT", help="where each connection is forwarded")
    p.add_argument("--scenario", metavar="FILE.yaml", help="starting profile and timed outages/profile changes")
    p.add_argument("--profile", choices=sorted(PROFILES), help="named starting profile (replaces the scenario's)")
    p.add_argument("--bandwidth-kbps", type=non_negative, metavar="N",
                   help="kbit/s in each direction, 0 = unlimited (overrides the profile)")
    p.add_argument("--latency-ms", type=non_negative, metavar="N", help="one-way delay in each direction")
    p.add_argument("--jitter-ms", type=non_negative, metavar="N", help="± spread of the one-way delay")
    p.add_argument("--control", type=hostport, metavar="HOST:PORT",
                   help="line-based control port (outage S | up | profile ... | stats | help)")
    p.add_argument("--print-port", action="store_true",
                   help='print {"listen": [host, port]} (and "control") as one JSON line once bound')
    p.add_argument("--queue-limit", type=_queue_limit, default=QUEUE_LIMIT, metavar="BYTES",
                   help=f"bytes each direction of a connection may hold before reading stops (default {QUEUE_LIMIT})")
    p.add_argument("--seed", type=int, help="random seed for jitter (reproducible runs)")
    p.add_argument("--list-profiles", action="store_true", help="print the named profiles and exit")
    add_log_level(p)
    return p


@dataclass
class Options:
    listen: tuple[str, int]
    target: tuple[str, int]
    profile: Profile
    scenario: Scenario
    control: tuple[str, int] | None
    print_port: bool
    queue_limit: int
    seed: int | None


def resolve_profile(scenario: Scenario, name: str | None, overrides: dict[str, Any]) -> Profile:
    """Scenario's profile, replaced by a named one, then the shorthand flags on top."""
    base = named(name) if name else (scenario.profile or Profile())
    return with_overrides(base, {k: v for k, v in overrides.items() if v is not None})


async def run(opts: Options) -> int:
    emu = LinkEmulator(opts.listen, opts.target, opts.profile, queue_limit=opts.queue_limit, seed=opts.seed)
    control = ControlServer(emu, opts.control) if opts.control else None
    try:
        await emu.start()
        if control is not None:
            await control.start()
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        await emu.stop()
        return 1
    report: dict[str, Any] = {"listen": list(emu.address)}
    if control is not None:
        report["control"] = list(control.address)
    player = asyncio.create_task(play(emu, opts.scenario), name="link-scenario") if opts.scenario.steps else None
    try:
        await until_signalled(report if opts.print_port else None)
    finally:
        await cancel(player)
        if control is not None:
            await control.stop()
        await emu.stop()
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "netem":
        from .netem import main as netem_main
        return netem_main(args[1:])
    parser = build_parser()
    a = parser.parse_args(args)
    if a.list_profiles:
        for name, prof in PROFILES.items():
            print(f"{name:10s} {prof.describe()}")
        return 0
    if a.listen is None or a.target is None:
        parser.error("--listen and --target are required")
    try:
        scenario = load(a.scenario) if a.scenario else Scenario()
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        profile = resolve_profile(scenario, a.profile, {"bandwidth_kbps": a.bandwidth_kbps,
                                                        "latency_ms": a.latency_ms, "jitter_ms": a.jitter_ms})
    except ProfileError as exc:
        parser.error(str(exc))
    opts = Options(listen=a.listen, target=a.target, profile=profile, scenario=scenario, control=a.control,
                   print_port=a.print_port, queue_limit=a.queue_limit, seed=a.seed)
    return run_main(run(opts), a.log_level)
