"""The SNMP agent: a pysnmp engine with a UDP command responder (v2c community and/or v3 USM
authPriv SHA+AES128) over `RouterMib`, and a notification originator for traps.

Wrong community: pysnmp drops the message (snmpInBadCommunityNames), so the manager times out.
Wrong v3 credentials: pysnmp answers with a Report PDU (usmStatsWrongDigests, or
usmStatsDecryptionErrors for a bad privacy key), which the manager reports as an error
indication; no data is returned.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.hlapi.v3arch.asyncio import (CommunityData, ContextData, ObjectIdentity, ObjectType,
                                         UdpTransportTarget, UsmUserData, send_notification)
from pysnmp.proto import rfc1902

from . import mib
from .mib import RouterMib
from .router import Router
from .ups import Ups

log = logging.getLogger("hil.snmp.agent")


@dataclass
class V3User:
    name: str
    auth_key: str   # HMAC-SHA-96
    priv_key: str   # AES-128 (CFB)


class Agent:
    def __init__(self, router: Router | Ups, community: str | None, v3: V3User | None,
                 trap_to: tuple[str, int] | None = None, trap_v3: bool = False, mib: RouterMib | None = None) -> None:
        if community is None and v3 is None:
            raise ValueError("need a community or a v3 user")
        self.router = router
        self.community = community
        self.v3 = v3
        self.trap_to = trap_to
        self.trap_v3 = trap_v3 and v3 is not None
        self.mib = mib or RouterMib(router)   # `router` needs only uptime_ticks() for traps then
        self.engine: engine.SnmpEngine | None = None
        self.traps_sent = 0
        self.trap_errors = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Bind UDP HOST:PORT (IPv4) and answer there; returns the bound address."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        addr = sock.getsockname()[:2]
        eng = self.engine = engine.SnmpEngine()
        config.add_transport(eng, udp.DOMAIN_NAME, udp.UdpAsyncioTransport().open_server_mode(sock=sock))
        if self.community is not None:
            config.add_v1_system(eng, "hil-area", self.community)
        if self.v3 is not None:
            config.add_v3_user(eng, self.v3.name, config.USM_AUTH_HMAC96_SHA, self.v3.auth_key,
                               config.USM_PRIV_CFB128_AES, self.v3.priv_key)
        ctx = context.SnmpContext(eng)
        ctx.context_names[b""] = self.mib  # type: ignore[assignment]  # duck-typed instrumentation
        for responder in (cmdrsp.GetCommandResponder, cmdrsp.NextCommandResponder,
                          cmdrsp.BulkCommandResponder, cmdrsp.SetCommandResponder):
            responder(eng, ctx)
        await asyncio.sleep(0)  # let the datagram endpoint attach
        return addr[0], addr[1]

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.engine is not None:
            self.engine.close_dispatcher()
            self.engine = None

    # -- traps -------------------------------------------------------------------------------

    def link_trap(self, index: int) -> None:
        """linkDown/linkUp for interface `index` (ifIndex, ifAdminStatus, ifOperStatus)."""
        assert isinstance(self.router, Router)
        itf = self.router.interface(index)
        trap = mib.LINK_UP if itf.up else mib.LINK_DOWN
        self._trap(trap, [(mib.IF_ENTRY + (mib.IF_INDEX, index), rfc1902.Integer32(index)),
                          (mib.IF_ENTRY + (mib.IF_ADMIN, index), rfc1902.Integer32(1)),
                          (mib.IF_ENTRY + (mib.IF_OPER, index), rfc1902.Integer32(1 if itf.up else 2))])

    def cold_start_trap(self) -> None:
        self._trap(mib.COLD_START, [])

    def trap(self, trap_oid: mib.Oid, extra: list[tuple[mib.Oid, Any]]) -> None:
        """Send a notification (sysUpTime, snmpTrapOID, then `extra`) to --trap-to, if set."""
        self._trap(trap_oid, extra)

    def _trap(self, trap_oid: mib.Oid, extra: list[tuple[mib.Oid, Any]]) -> None:
        if self.trap_to is None or self.engine is None:
            return
        varbinds = [(mib.SYS_UPTIME, rfc1902.TimeTicks(self.router.uptime_ticks())),
                    (mib.SNMP_TRAP_OID, rfc1902.ObjectIdentifier(trap_oid)), *extra]
        task = asyncio.get_running_loop().create_task(self._send(varbinds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, varbinds: list[tuple[mib.Oid, Any]]) -> None:
        assert self.engine is not None and self.trap_to is not None
        if self.trap_v3:
            assert self.v3 is not None
            auth: CommunityData | UsmUserData = UsmUserData(
                self.v3.name, self.v3.auth_key, self.v3.priv_key,
                authProtocol=config.USM_AUTH_HMAC96_SHA, privProtocol=config.USM_PRIV_CFB128_AES)
        else:
            auth = CommunityData(self.community or "public", mpModel=1)
        try:
            target = await UdpTransportTarget.create(self.trap_to, timeout=1, retries=0)
            err, status, _idx, _vbs = await send_notification(
                self.engine, auth, target, ContextData(), "trap",
                *(ObjectType(ObjectIdentity(oid), value) for oid, value in varbinds))
        except Exception as exc:  # noqa: BLE001 — a trap that cannot go out is logged, not fatal
            err, status = exc, 0
        if err or status:
            self.trap_errors += 1
            log.warning("trap to %s failed: %s %s", self.trap_to, err, status)
        else:
            self.traps_sent += 1
            log.info("trap %s sent to %s", varbinds[1][1], self.trap_to)

    def stats(self) -> dict[str, Any]:
        return {"requests": self.mib.requests, "traps_sent": self.traps_sent, "trap_errors": self.trap_errors}
