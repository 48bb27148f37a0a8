"""The OID tree the agent serves, and a duck-typed MIB instrumentation for pysnmp's command responders.

OIDs (all read-only):

  MIB-II system     1.3.6.1.2.1.1.{1,2,3,5}.0   sysDescr, sysObjectID, sysUpTime, sysName
  interfaces        1.3.6.1.2.1.2.1.0           ifNumber (2)
  ifTable           1.3.6.1.2.1.2.2.1.C.IFINDEX C = 1 ifIndex, 2 ifDescr, 3 ifType, 5 ifSpeed,
                                                7 ifAdminStatus, 8 ifOperStatus, 10 ifInOctets, 16 ifOutOctets
  ifXTable          1.3.6.1.2.1.31.1.1.1.C.IFINDEX C = 1 ifName, 6 ifHCInOctets, 10 ifHCOutOctets
  vendor (LTE)      1.3.6.1.4.1.99999.1.1.N.0   N = 1 RSSI dBm, 2 RSRP dBm, 3 SINR dB, 4 RSRQ dB (Integer32)
  sysObjectID value 1.3.6.1.4.1.99999.2.1       (the product; 99999 is an unassigned enterprise number)

Interfaces: 1 = eth0 (LAN), 2 = wwan0 (LTE). Counter32 columns are the low 32 bits of the
Counter64 ones, so they wrap at 2^32.
"""
from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

from pysnmp.proto import rfc1902, rfc1905
from pysnmp.smi import error as smi_error

from .router import WRAP32, Router

Oid = tuple[int, ...]

SYSTEM: Oid = (1, 3, 6, 1, 2, 1, 1)
SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME = (SYSTEM + (n, 0) for n in (1, 2, 3, 5))
IF_NUMBER: Oid = (1, 3, 6, 1, 2, 1, 2, 1, 0)
IF_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY: Oid = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
ENTERPRISE: Oid = (1, 3, 6, 1, 4, 1, 99999)
LTE_SIGNAL: Oid = ENTERPRISE + (1, 1)        # .1 RSSI .2 RSRP .3 SINR .4 RSRQ, each .0
PRODUCT_OID: Oid = ENTERPRISE + (2, 1)

IF_INDEX, IF_DESCR, IF_TYPE, IF_SPEED, IF_ADMIN, IF_OPER, IF_IN, IF_OUT = 1, 2, 3, 5, 7, 8, 10, 16
IFX_NAME, IFX_HC_IN, IFX_HC_OUT = 1, 6, 10

# SNMPv2 notifications (SNMPv2-MIB snmpTraps) and the varbinds they carry
SNMP_TRAP_OID: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
COLD_START: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 5, 1)
LINK_DOWN: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 5, 3)
LINK_UP: Oid = (1, 3, 6, 1, 6, 3, 1, 1, 5, 4)


def snapshot(router: Router) -> dict[Oid, Any]:
    """Every instance the agent serves, with its value now."""
    t: dict[Oid, Any] = {
        SYS_DESCR: rfc1902.OctetString(router.descr),
        SYS_OBJECT_ID: rfc1902.ObjectIdentifier(PRODUCT_OID),
        SYS_UPTIME: rfc1902.TimeTicks(router.uptime_ticks()),
        SYS_NAME: rfc1902.OctetString(router.name),
        IF_NUMBER: rfc1902.Integer32(len(router.interfaces)),
    }
    for i, itf in router.interfaces.items():
        hc_in, hc_out = router.octets(itf)
        t[IF_ENTRY + (IF_INDEX, i)] = rfc1902.Integer32(i)
        t[IF_ENTRY + (IF_DESCR, i)] = rfc1902.OctetString(itf.descr)
        t[IF_ENTRY + (IF_TYPE, i)] = rfc1902.Integer32(itf.if_type)
        t[IF_ENTRY + (IF_SPEED, i)] = rfc1902.Gauge32(min(itf.speed_bps, WRAP32 - 1))
        t[IF_ENTRY + (IF_ADMIN, i)] = rfc1902.Integer32(1)
        t[IF_ENTRY + (IF_OPER, i)] = rfc1902.Integer32(1 if itf.up else 2)
        t[IF_ENTRY + (IF_IN, i)] = rfc1902.Counter32(hc_in % WRAP32)
        t[IF_ENTRY + (IF_OUT, i)] = rfc1902.Counter32(hc_out % WRAP32)
        t[IFX_ENTRY + (IFX_NAME, i)] = rfc1902.OctetString(itf.name)
        t[IFX_ENTRY + (IFX_HC_IN, i)] = rfc1902.Counter64(hc_in)
        t[IFX_ENTRY + (IFX_HC_OUT, i)] = rfc1902.Counter64(hc_out)
    for n, value in enumerate(router.signal_now(), start=1):
        t[LTE_SIGNAL + (n, 0)] = rfc1902.Integer32(value)
    return t


class RouterMib:
    """What `SnmpContext` hands the Get/Next/Bulk/Set responders: read_variables,
    read_next_variables and write_variables over `snapshot(router)`.

    Access control (VACM) is not consulted: anyone who passes the community / USM check reads
    the whole tree; SET answers notWritable.
    """

    def __init__(self, router: Router | None, table: Callable[[], dict[Oid, Any]] | None = None) -> None:
        self.router = router
        self.requests = 0
        self._snapshot = table or (lambda: snapshot(router))   # another device's tree (hil/snmp/ups.py)

    def _table(self) -> tuple[dict[Oid, Any], list[Oid]]:
        self.requests += 1
        table = self._snapshot()
        return table, sorted(table)

    def read_variables(self, *varBinds: tuple[Any, Any], **context: Any) -> list[tuple[Any, Any]]:
        table, _ = self._table()
        objects = {oid[:-1] for oid in table}  # scalars (x.0) and columns (col.IFINDEX)
        out = []
        for name, _val in varBinds:
            oid = tuple(name)
            if oid in table:
                value = table[oid]
            elif any(oid[:len(obj)] == obj for obj in objects if len(oid) > len(obj)):
                value = rfc1905.noSuchInstance
            else:
                value = rfc1905.noSuchObject
            out.append((rfc1902.ObjectIdentifier(oid), value))
        return out

    def read_next_variables(self, *varBinds: tuple[Any, Any], **context: Any) -> list[tuple[Any, Any]]:
        table, order = self._table()
        out = []
        for name, _val in varBinds:
            i = bisect.bisect_right(order, tuple(name))
            if i < len(order):
                out.append((rfc1902.ObjectIdentifier(order[i]), table[order[i]]))
            else:
                out.append((rfc1902.ObjectIdentifier(tuple(name)), rfc1905.endOfMibView))
        return out

    def write_variables(self, *varBinds: tuple[Any, Any], **context: Any) -> list[tuple[Any, Any]]:
        name = varBinds[0][0] if varBinds else None
        raise smi_error.NotWritableError(name=name, idx=0)
