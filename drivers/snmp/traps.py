"""A notification receiver (v2c traps and informs, v3 authPriv) on one UDP address.

Traps are handed to `on_trap(source_host, trap_oid, {oid: value})` on the
event loop; the driver turns them into events. v3 traps from an agent are
authenticated with the agent's own engine id, which the driver learns by
polling snmpEngineID and registers here (`add_v3_agent`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import ntfrcv
from pysnmp.proto.api import v2c

from drivers.snmp.client import Credentials

log = logging.getLogger(__name__)

SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
OnTrap = Callable[[str, str, dict[str, Any]], None]


class TrapListener:
    def __init__(self, host: str, port: int, on_trap: OnTrap) -> None:
        self.host, self.port = host, port
        self.on_trap = on_trap
        self.received = 0
        self.bad = 0
        self.engine = engine.SnmpEngine()
        self._communities: set[str] = set()
        self._v3: set[tuple[str, bytes]] = set()
        self._receiver: ntfrcv.NotificationReceiver | None = None

    def open(self) -> None:
        """Bind the address (OSError when it cannot) and start receiving."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        transport = udp.UdpAsyncioTransport().open_server_mode(sock=sock)
        config.add_transport(self.engine, udp.DOMAIN_NAME, transport)
        self._receiver = ntfrcv.NotificationReceiver(self.engine, self._received)

    def add_community(self, community: str) -> None:
        if community not in self._communities:
            self._communities.add(community)
            config.add_v1_system(self.engine, f"c{len(self._communities)}", community)

    def add_v3_agent(self, creds: Credentials, engine_id: bytes) -> None:
        """Accept v3 traps from the agent with this engine id, under these credentials."""
        key = (creds.user, engine_id)
        if key in self._v3:
            return
        self._v3.add(key)
        config.add_v3_user(self.engine, creds.user, config.USM_AUTH_HMAC96_SHA, creds.auth_key,
                           config.USM_PRIV_CFB128_AES, creds.priv_key,
                           securityEngineId=v2c.OctetString(engine_id))

    def _received(self, snmp_engine: Any, state_ref: Any, ctx_engine_id: Any, ctx_name: Any,
                  var_binds: Any, cb_ctx: Any) -> None:
        try:
            _, address = snmp_engine.message_dispatcher.get_transport_info(state_ref)
            source = str(address[0])
        except Exception:  # noqa: BLE001 - the source is a hint only
            source = ""
        binds = {str(oid): value for oid, value in var_binds}
        trap_oid = binds.pop(SNMP_TRAP_OID, None)
        if trap_oid is None:
            self.bad += 1
            log.debug("notification without snmpTrapOID from %s", source)
            return
        self.received += 1
        try:
            self.on_trap(source, str(trap_oid), binds)
        except Exception:  # noqa: BLE001 - one odd trap must not stop the receiver
            self.bad += 1
            log.exception("trap from %s not handled", source)

    def close(self) -> None:
        if self._receiver is not None:
            self._receiver.close(self.engine)
            self._receiver = None
        try:
            self.engine.close_dispatcher()
        except Exception:  # noqa: BLE001
            pass
