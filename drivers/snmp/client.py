"""A small SNMP manager on pysnmp 7's asyncio API: GET scalars and GETBULK table columns.

Every answer is classified instead of raised: `SnmpError.kind` is
`timeout` (no answer: agent down, or a wrong v2c community, which agents
drop silently), `auth` (a v3 Report: unknown user, wrong digest, cannot
decrypt), `error_status` (the agent refused the request) or `other`.
OIDs are numeric and MIBs are not looked up (lookupMib=False).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.hlapi.v3arch.asyncio import (CommunityData, ContextData, ObjectIdentity, ObjectType, SnmpEngine,
                                         UdpTransportTarget, UsmUserData, bulk_cmd, get_cmd, usmAesCfb128Protocol,
                                         usmHMACSHAAuthProtocol)
from pysnmp.proto import errind
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

_AUTH = (errind.WrongDigest, errind.UnknownUserName, errind.DecryptionError, errind.UnsupportedSecurityLevel,
         errind.AuthenticationError, errind.AuthenticationFailure, errind.NoAuthentication,
         errind.UnsupportedAuthProtocol, errind.UnknownSecurityName, errind.NotInTimeWindow)
MAX_TABLE_REQUESTS = 32


class SnmpError(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Credentials:
    version: str  # "2c" or "3"
    community: str = "public"
    user: str = ""
    auth_key: str = ""
    priv_key: str = ""

    def auth_data(self) -> CommunityData | UsmUserData:
        if self.version == "2c":
            return CommunityData(self.community, mpModel=1)
        return UsmUserData(self.user, self.auth_key, self.priv_key, authProtocol=usmHMACSHAAuthProtocol,
                           privProtocol=usmAesCfb128Protocol)


def missing(value: Any) -> bool:
    """noSuchObject / noSuchInstance / endOfMibView: the agent has no such value."""
    return isinstance(value, NoSuchObject | NoSuchInstance | EndOfMibView)


def _classify(indication: Any, status: Any, index: Any, timeout_s: float) -> SnmpError | None:
    if indication:
        text = str(indication)
        if isinstance(indication, errind.RequestTimedOut):
            return SnmpError("timeout", f"no answer in {timeout_s:g} s")
        if isinstance(indication, _AUTH):
            return SnmpError("auth", f"credentials refused: {text}")
        return SnmpError("other", text)
    if status and int(status):
        return SnmpError("error_status", f"agent answered {status.prettyPrint()} at varbind {int(index)}")
    return None


class Manager:
    """One engine and one target; `close()` releases the socket."""

    def __init__(self, host: str, port: int, creds: Credentials, timeout_s: float, retries: int = 1) -> None:
        self.host, self.port, self.creds = host, port, creds
        self.timeout_s, self.retries = timeout_s, retries
        self.engine = SnmpEngine()
        self._auth = creds.auth_data()
        self._target: UdpTransportTarget | None = None
        self._ctx = ContextData()

    async def _tgt(self) -> UdpTransportTarget:
        if self._target is None:
            self._target = await UdpTransportTarget.create((self.host, self.port), timeout=self.timeout_s,
                                                           retries=self.retries)
        return self._target

    async def get(self, oids: list[str]) -> dict[str, Any]:
        """oid → value (missing ones as the agent's noSuch* marker); SnmpError when there is no usable answer."""
        binds = [ObjectType(ObjectIdentity(o)) for o in oids]
        ind, status, index, vbs = await get_cmd(self.engine, self._auth, await self._tgt(), self._ctx, *binds,
                                                lookupMib=False)
        err = _classify(ind, status, index, self.timeout_s)
        if err is not None:
            raise err
        return {str(vb[0]): vb[1] for vb in vbs}

    async def columns(self, cols: list[str], max_rows: int = 256) -> dict[str, dict[int, Any]]:
        """Walk table columns together with GETBULK: column oid → {row index: value} (single-index tables)."""
        out: dict[str, dict[int, Any]] = {c: {} for c in cols}
        cursor = {c: c for c in cols}
        for _ in range(MAX_TABLE_REQUESTS):
            active = [c for c in cols if c in cursor]
            if not active:
                break
            reps = max(1, min(24, 60 // len(active)))
            ind, status, index, vbs = await bulk_cmd(self.engine, self._auth, await self._tgt(), self._ctx, 0, reps,
                                                     *[ObjectType(ObjectIdentity(cursor[c])) for c in active],
                                                     lookupMib=False)
            err = _classify(ind, status, index, self.timeout_s)
            if err is not None:
                raise err
            progressed: set[str] = set()
            for n, vb in enumerate(vbs):
                col = active[n % len(active)]
                if col not in cursor:
                    continue
                oid, value = str(vb[0]), vb[1]
                if isinstance(value, EndOfMibView) or not oid.startswith(col + "."):
                    del cursor[col]
                    continue
                row = oid[len(col) + 1:]
                if "." in row or len(out[col]) >= max_rows:
                    del cursor[col]
                    continue
                out[col][int(row)] = value
                cursor[col] = oid
                progressed.add(col)
            for col in [c for c in active if c in cursor and c not in progressed]:
                del cursor[col]  # no progress: never ask the same thing forever
        return out

    def peer_engine_id(self) -> bytes | None:
        """The v3 agent's engine id as discovered by this engine (for authenticating its traps)."""
        if self._target is None:
            return None
        try:
            mp = self.engine.message_processing_subsystems[3]  # type: ignore[index]
            eid, _, _ = mp.get_peer_engine_info(udp.DOMAIN_NAME, tuple(self._target.transport_address))
        except Exception:  # noqa: BLE001 - an engine id is a nicety for v3 traps only
            return None
        return bytes(eid) if eid else None

    def close(self) -> None:
        try:
            self.engine.close_dispatcher()
        except Exception:  # noqa: BLE001 - closing a half-open engine must never mask the real error
            pass
