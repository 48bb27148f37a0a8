"""LTE router SNMP agent (hil.snmp), seen through pysnmp's asyncio manager API: v2c and v3
authPriv gets/walks, counters growing and wrapping, bad credentials, unknown OIDs, and a
linkDown trap caught on a raw UDP socket and decoded with pysnmp's codec."""
from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyasn1.codec.ber import decoder
from pysnmp.hlapi.v3arch.asyncio import (CommunityData, ContextData, ObjectIdentity, ObjectType, SnmpEngine,
                                         UdpTransportTarget, UsmUserData, bulk_cmd, get_cmd, usmAesCfb128Protocol,
                                         usmHMACSHAAuthProtocol, walk_cmd)
from pysnmp.proto import api, rfc1905

from tests.serial_sims import SimProcess

pytestmark = pytest.mark.timeout(30)

SYS = "1.3.6.1.2.1.1"
IF_ENTRY = "1.3.6.1.2.1.2.2.1"
IF_IN = IF_ENTRY + ".10"
IF_OPER = IF_ENTRY + ".8"
HC_IN = "1.3.6.1.2.1.31.1.1.1.6"
LTE = "1.3.6.1.4.1.99999.1.1"
USER, AUTH, PRIV = "fieldgw", "authpass123", "privpass123"


class Sim(SimProcess):
    def __init__(self, *extra: str) -> None:
        super().__init__("hil.snmp", ["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--v3-user", USER,
                                      "--v3-auth-key", AUTH, "--v3-priv-key", PRIV, *extra], ready_timeout=20.0)
        self.addr = tuple(self.ready["listen"])


@pytest.fixture
def trap_sock() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5.0)
    yield s
    s.close()


@pytest.fixture
def sim(trap_sock: socket.socket) -> Iterator[Sim]:
    s = Sim("--trap-to", "127.0.0.1:%d" % trap_sock.getsockname()[1])
    yield s
    s.stop()


def v2c(community: str = "public") -> CommunityData:
    return CommunityData(community, mpModel=1)


def v3(auth: str = AUTH, priv: str = PRIV) -> UsmUserData:
    return UsmUserData(USER, auth, priv, authProtocol=usmHMACSHAAuthProtocol, privProtocol=usmAesCfb128Protocol)


async def get(sim: Sim, auth: Any, *oids: str, timeout: float = 2.0, retries: int = 1) -> tuple[Any, dict[str, Any]]:
    """(errorIndication, {oid: value}); raises on an errorStatus."""
    target = await UdpTransportTarget.create(sim.addr, timeout=timeout, retries=retries)
    err, status, _idx, vbs = await get_cmd(SnmpEngine(), auth, target, ContextData(),
                                           *(ObjectType(ObjectIdentity(o)) for o in oids), lookupMib=False)
    assert not status, status.prettyPrint()
    return err, {str(name): value for name, value in vbs}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_v2c_and_v3_get_system_and_signal(sim: Sim) -> None:
    oids = [f"{SYS}.1.0", f"{SYS}.2.0", f"{SYS}.3.0", f"{SYS}.5.0", *(f"{LTE}.{n}.0" for n in (1, 2, 3, 4))]
    for auth in (v2c(), v3()):
        err, vals = run(get(sim, auth, *oids))
        assert err is None, err
        assert "LTE Router" in str(vals[f"{SYS}.1.0"])
        assert str(vals[f"{SYS}.2.0"]) == "1.3.6.1.4.1.99999.2.1"
        assert int(vals[f"{SYS}.3.0"]) >= 0
        assert str(vals[f"{SYS}.5.0"]) == "lte-router"
        rssi, rsrp, sinr, rsrq = (int(vals[f"{LTE}.{n}.0"]) for n in (1, 2, 3, 4))
        assert -70 <= rssi <= -60 and -100 <= rsrp <= -90 and 8 <= sinr <= 16 and -12 <= rsrq <= -8
    assert sim.control("signal -80 -110 3 -15")["ok"]
    _, vals = run(get(sim, v2c(), f"{LTE}.1.0", f"{LTE}.3.0"))
    assert -85 <= int(vals[f"{LTE}.1.0"]) <= -75 and 0 <= int(vals[f"{LTE}.3.0"]) <= 6


def test_walk_iftable_v3_and_bulk_v2c(sim: Sim) -> None:
    async def walk(auth: Any, root: str) -> dict[str, Any]:
        target = await UdpTransportTarget.create(sim.addr, timeout=2, retries=1)
        out: dict[str, Any] = {}
        async for err, status, _idx, vbs in walk_cmd(SnmpEngine(), auth, target, ContextData(),
                                                      ObjectType(ObjectIdentity(root)), lookupMib=False,
                                                      lexicographicMode=False):
            assert err is None and not status, (err, status)
            out.update((str(n), v) for n, v in vbs)
        return out

    table = run(walk(v3(), IF_ENTRY))
    assert [int(table[f"{IF_ENTRY}.1.{i}"]) for i in (1, 2)] == [1, 2]
    assert "wwan0" in str(table[f"{IF_ENTRY}.2.2"])
    assert int(table[f"{IF_OPER}.1"]) == 1 and int(table[f"{IF_OPER}.2"]) == 1
    assert len(table) == 16  # 8 columns x 2 interfaces

    async def bulk() -> list[Any]:
        target = await UdpTransportTarget.create(sim.addr, timeout=2, retries=1)
        err, status, _idx, vbs = await bulk_cmd(SnmpEngine(), v2c(), target, ContextData(), 0, 4,
                                                ObjectType(ObjectIdentity(HC_IN)), lookupMib=False)
        assert err is None and not status
        return vbs

    vbs = run(bulk())
    assert [str(n) for n, _ in vbs[:2]] == [f"{HC_IN}.1", f"{HC_IN}.2"]
    assert vbs[0][1].__class__.__name__ == "Counter64"


def test_counters_increase_and_wrap(sim: Sim) -> None:
    assert sim.control("rate 1 80000 8000")["ok"]  # 10 kB/s in
    _, a = run(get(sim, v2c(), f"{IF_IN}.1"))
    run(asyncio.sleep(0.3))
    _, b = run(get(sim, v2c(), f"{IF_IN}.1"))
    assert int(b[f"{IF_IN}.1"]) > int(a[f"{IF_IN}.1"])

    assert sim.control("counter 1 4294967000")["ok"]  # 296 octets below 2^32: wraps within ~30 ms
    run(asyncio.sleep(0.3))
    _, c = run(get(sim, v2c(), f"{IF_IN}.1", f"{HC_IN}.1"))
    assert c[f"{IF_IN}.1"].__class__.__name__ == "Counter32"
    assert int(c[f"{IF_IN}.1"]) < 100_000  # wrapped
    assert int(c[f"{HC_IN}.1"]) > 2 ** 32  # the 64-bit counter did not
    assert int(c[f"{HC_IN}.1"]) % 2 ** 32 == int(c[f"{IF_IN}.1"]) or int(c[f"{HC_IN}.1"]) - 2 ** 32 < 100_000

    assert sim.control("reset")["ok"]
    _, d = run(get(sim, v2c(), f"{SYS}.3.0", f"{HC_IN}.1"))
    assert int(d[f"{SYS}.3.0"]) < 100 and int(d[f"{HC_IN}.1"]) < 100_000


def test_unknown_oids(sim: Sim) -> None:
    _, vals = run(get(sim, v2c(), "1.3.6.1.2.1.99.1.0", f"{SYS}.1.7", f"{IF_IN}.9"))
    assert vals["1.3.6.1.2.1.99.1.0"].tagSet == rfc1905.noSuchObject.tagSet
    assert vals[f"{SYS}.1.7"].tagSet == rfc1905.noSuchInstance.tagSet
    assert vals[f"{IF_IN}.9"].tagSet == rfc1905.noSuchInstance.tagSet


def test_wrong_credentials(sim: Sim) -> None:
    err, vals = run(get(sim, v2c("private"), f"{SYS}.1.0", timeout=0.5, retries=0))
    assert err is not None and "timeout" in str(err).lower() and not vals
    err, vals = run(get(sim, v3(auth="wrongauth123"), f"{SYS}.1.0", timeout=1.0, retries=0))
    assert err is not None and not vals
    stats = sim.control("stats")
    assert stats["ok"] and stats["requests"] == 0  # neither reached the MIB


def decode_trap(data: bytes) -> tuple[str, dict[str, Any]]:
    version = api.decodeMessageVersion(data)
    proto = api.PROTOCOL_MODULES[version]
    msg, _ = decoder.decode(data, asn1Spec=proto.Message())
    pdu = proto.apiMessage.get_pdu(msg)
    assert pdu.tagSet == proto.TrapPDU.tagSet
    return str(proto.apiMessage.get_community(msg)), {str(n): v for n, v in proto.apiPDU.get_varbinds(pdu)}


def test_link_down_sends_trap(sim: Sim, trap_sock: socket.socket) -> None:
    reply = sim.control("link 2 down")
    assert reply["ok"] and reply["changed"]
    data, _ = trap_sock.recvfrom(65535)
    community, vbs = decode_trap(data)
    assert community == "public"
    assert str(vbs["1.3.6.1.6.3.1.1.4.1.0"]) == "1.3.6.1.6.3.1.1.5.3"  # linkDown
    assert int(vbs[f"{IF_ENTRY}.1.2"]) == 2 and int(vbs[f"{IF_OPER}.2"]) == 2
    _, vals = run(get(sim, v3(), f"{IF_OPER}.2"))
    assert int(vals[f"{IF_OPER}.2"]) == 2

    assert sim.control("link 2 up")["ok"]
    _, vbs = decode_trap(trap_sock.recvfrom(65535)[0])
    assert str(vbs["1.3.6.1.6.3.1.1.4.1.0"]) == "1.3.6.1.6.3.1.1.5.4"  # linkUp
    assert sim.control("stats")["traps_sent"] >= 1  # the second may still be counting
