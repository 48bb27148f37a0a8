"""Command line: ``python -m hil.snmp`` / ``hil.snmp.cli.main(argv)``."""
from __future__ import annotations

import argparse
import asyncio
import logging

from ..cliutil import add_control, add_log_level, hostport, positive, run_main, until_signalled
from . import control as control_mod
from .agent import Agent, V3User
from .mib import RouterMib
from .router import Router
from .ups import Ups
from .ups import snapshot as ups_snapshot
from .ups import watch as ups_watch

log = logging.getLogger("hil.snmp")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hil.snmp",
                                description="SNMP agent of an LTE router (v2c and v3 authPriv SHA/AES128), "
                                            "MIB-II + LTE signal OIDs, linkUp/linkDown traps; or (--profile ups) "
                                            "a UPS with UPS-MIB (RFC 1628), a battery model and upsTrapOnBattery")
    p.add_argument("--profile", choices=("router", "ups"), default="router",
                   help="the device behind the agent (default router)")
    p.add_argument("--trap-repeat", type=positive, default=60.0, metavar="S",
                   help="ups: resend upsTrapOnBattery every S seconds while on battery (RFC 1628: 60)")
    p.add_argument("--listen", type=hostport, required=True, metavar="HOST:PORT",
                   help="UDP address of the agent, IPv4 (a real router: 0.0.0.0:161; port 0: any)")
    add_control(p, "line-based control port: link|rate|counter|reset|signal|stats (default 127.0.0.1:0)")
    p.add_argument("--community", default="public", help="v2c read community (default public)")
    p.add_argument("--no-v2c", action="store_true", help="answer SNMPv3 only")
    p.add_argument("--v3-user", metavar="NAME", help="USM user (authPriv: HMAC-SHA-96 + AES-128)")
    p.add_argument("--v3-auth-key", metavar="K", help="auth passphrase, 8+ characters")
    p.add_argument("--v3-priv-key", metavar="K", help="privacy passphrase, 8+ characters")
    p.add_argument("--trap-to", type=hostport, metavar="HOST:PORT", help="where to send traps (none if unset)")
    p.add_argument("--trap-v3", action="store_true", help="send traps as SNMPv3 authPriv with --v3-user")
    p.add_argument("--time-scale", type=positive, default=1.0, metavar="X",
                   help="simulated seconds per real second for uptime, counters and signal drift")
    p.add_argument("--sys-name", help="sysName.0 (default lte-router, or ups)")
    add_log_level(p)
    return p


def _v3(args: argparse.Namespace, p: argparse.ArgumentParser) -> V3User | None:
    if args.v3_user is None:
        if args.v3_auth_key or args.v3_priv_key or args.trap_v3:
            p.error("--v3-auth-key/--v3-priv-key/--trap-v3 need --v3-user")
        return None
    if not args.v3_auth_key or not args.v3_priv_key:
        p.error("--v3-user needs --v3-auth-key and --v3-priv-key (authPriv)")
    if len(args.v3_auth_key) < 8 or len(args.v3_priv_key) < 8:
        p.error("v3 keys must be at least 8 characters")
    return V3User(args.v3_user, args.v3_auth_key, args.v3_priv_key)


async def run(args: argparse.Namespace, v3: V3User | None) -> int:
    community = None if args.no_v2c else args.community
    watcher: asyncio.Task[None] | None = None
    if args.profile == "ups":
        ups = Ups(time_scale=args.time_scale, name=args.sys_name or "ups")
        agent = Agent(ups, community, v3, args.trap_to, args.trap_v3, mib=RouterMib(None, lambda: ups_snapshot(ups)))
        control = control_mod.build_ups(ups, agent)
    else:
        router = Router(time_scale=args.time_scale, name=args.sys_name or "lte-router")
        agent = Agent(router, community, v3, args.trap_to, args.trap_v3)
        control = control_mod.build(router, agent)
    try:
        snmp_addr = await agent.start(*args.listen)
        control_addr = await control.start(*args.control)
    except OSError as exc:
        log.error("cannot listen: %s", exc)
        await agent.stop()
        return 1
    if args.profile == "ups":
        watcher = asyncio.create_task(ups_watch(ups, agent.trap, args.trap_repeat))
    try:
        await until_signalled({"ready": True, "listen": list(snmp_addr), "control": list(control_addr),
                               "profile": args.profile})
    finally:
        if watcher is not None:
            watcher.cancel()
        await control.close()
        await agent.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    v3 = _v3(args, p)
    if args.no_v2c and v3 is None:
        p.error("--no-v2c needs --v3-user")
    return run_main(run(args, v3), args.log_level)
