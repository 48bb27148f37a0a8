"""The outbox's and the MQTT link's cheaper hot paths keep their guarantees.

- Telemetry-class messages share a commit for up to LAZY_WITHIN_S; an urgent message or a position is
  committed at once and takes what was pending with it, in enqueue order; nothing is sendable before
  it is on disk; acknowledged rows leave the disk within DELETE_WITHIN_S even when nothing else arrives.
- MqttLink flushes its writes once per loop turn and takes 2-byte MQTT 5 PUBACKs on a fast path:
  a burst larger than the socket buffer is all delivered and confirmed, in order.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

from gateway import wire
from gateway.mqtt_link import BrokerTarget, MqttLink
from gateway.outbox import DELETE_WITHIN_S, LAZY_WITHIN_S, POSITIONS, TELEMETRY, URGENT, Outbox
from tests.helpers import MqttProbe, wait_for


async def _opened(path: Path, online: bool = True) -> Outbox:
    ob = Outbox(path)
    await ob.open()
    ob.online = online
    return ob


def _rows(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    finally:
        db.close()


async def test_telemetry_waits_for_a_shared_commit_and_is_sendable_only_after_it(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ob = await _opened(path)
    t0 = time.monotonic()
    for i in range(5):
        ob.put("t/tel", json.dumps({"id": f"m{i}", "n": i}).encode(), TELEMETRY, "d1")
    await asyncio.sleep(0)
    assert len(ob._pending) == 5  # noqa: SLF001 - not committed yet, so not sendable
    assert not ob.classes[TELEMETRY].ready
    item = await asyncio.wait_for(ob.take(), 2)
    waited = time.monotonic() - t0
    assert LAZY_WITHIN_S * 0.8 <= waited < LAZY_WITHIN_S + 0.5
    assert json.loads(item.row.payload)["n"] == 0
    assert _rows(path) == 5  # on disk before it was handed out
    await ob.close()


async def test_an_urgent_message_commits_at_once_with_the_pending_telemetry_in_order(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ob = await _opened(path)
    ob.put("t/tel", b'{"n":1}', TELEMETRY, "d1")
    ob.put("t/tel", b'{"n":2}', TELEMETRY, "d1")
    ob.put("t/pos", b'{"n":3}', POSITIONS, "d1")
    t0 = time.monotonic()
    first = await asyncio.wait_for(ob.take(), 2)
    assert time.monotonic() - t0 < LAZY_WITHIN_S  # the position did not wait for the telemetry's timer
    assert json.loads(first.row.payload)["n"] == 3
    rest = [json.loads((await asyncio.wait_for(ob.take(), 0.01)).row.payload)["n"] for _ in range(2)]
    assert rest == [1, 2]  # committed with it, in enqueue order
    ob.put("t/ack", b'{"n":4}', URGENT, "d1")
    assert json.loads((await asyncio.wait_for(ob.take(), LAZY_WITHIN_S)).row.payload)["n"] == 4
    await ob.close()


async def test_acknowledged_rows_are_deleted_within_the_bound_without_new_traffic(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ob = await _opened(path)
    for i in range(3):
        ob.put("t/pos", b'{"n":%d}' % i, POSITIONS, "d1")
    items = [await asyncio.wait_for(ob.take(), 2) for _ in range(3)]
    assert _rows(path) == 3
    for item in items:
        ob.acked(item)
    deadline = time.monotonic() + DELETE_WITHIN_S + 1.0
    while _rows(path) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert _rows(path) == 0
    assert ob.stats()["messages"] == 0 and ob.sent == 3
    await ob.close()


async def test_close_commits_pending_telemetry_without_waiting_for_its_timer(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ob = await _opened(path, online=False)
    for i in range(100):
        ob.put("t/tel", b'{"n":%d}' % i, TELEMETRY, "d1")
    t0 = time.monotonic()
    await ob.close()
    assert time.monotonic() - t0 < 2.0
    assert _rows(path) == 100


async def test_a_burst_larger_than_the_socket_buffer_is_delivered_and_confirmed_in_order(mosquitto: str) -> None:
    probe = MqttProbe(mosquitto, "fieldgw/v1/hot/devices/+/telemetry")
    topics = wire.Topics("hot")
    changed = asyncio.Event()
    link = MqttLink("default", BrokerTarget.from_url(mosquitto, "fieldgw-hot"), topics, "test",
                    lambda t, p: None, changed.set)
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.connected.wait(), 10)
        n, outcomes = 400, []
        filler = "x" * 4000  # 400 x 4 kB: more than a loopback socket buffer takes at once
        for i in range(n):
            link.publish_nowait(topics.device("d1", "telemetry"), json.dumps({"n": i, "f": filler}).encode(), 1,
                                False, outcomes.append)
        for _ in range(200):
            if len(outcomes) == n:
                break
            await asyncio.sleep(0.05)
        assert outcomes == [None] * n
        assert not link._waiting  # noqa: SLF001
        got = wait_for(lambda: (lambda m: m if len(m) == n else None)(probe.find(lambda t, p: True)), 15, "all")
        assert [p["n"] for _, p in got] == list(range(n))
        await link.publish(topics.device("d1", "telemetry"), b'{"n":-1}')  # the awaited path still works after
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        probe.close()


async def test_telemetry_coalescing_is_per_device_newest_value_wins_and_nothing_else_is_coalesced(tmp_path: Path) -> None:
    from gateway.bus import Bus
    from gateway.model import Device, Event, Position, Telemetry
    from gateway.registry import DeviceRegistry
    from gateway.uplinks import UplinkManager

    bus, registry = Bus(), DeviceRegistry()
    for dev in ("p1", "p2"):
        registry.add(Device(id=dev, kind="power", driver="modbus_power", name=dev))
    bus.add_tap(registry.tap)
    ob = await _opened(tmp_path / "o.sqlite3", online=False)
    mgr = UplinkManager([], ob, bus, registry, wire.Topics("k"), "test")
    assert mgr.telemetry_every_s == {}  # off unless a device is listed
    mgr.telemetry_every_s = {"p1": 0.2}
    task = asyncio.create_task(mgr.run())
    try:
        bus.publish(Telemetry("p1", 1000, {"soc_pct": 50.0, "battery_v": 12.0}))
        bus.publish(Telemetry("p2", 1000, {"soc_pct": 70.0}))
        bus.publish(Event("p1", 1050, "note", "info", "an event is never coalesced"))
        bus.publish(Telemetry("p1", 1100, {"soc_pct": 49.0}))
        bus.publish(Position("p1", 1150, 1.0, 2.0, None, None, None, "3d", "test"))
        bus.publish(Telemetry("p2", 1100, {"soc_pct": 69.0}))
        bus.publish(Telemetry("p1", 1200, {"soc_pct": 48.0, "pv_w": 3.0}))
        await asyncio.sleep(0.05)
        before = [(i.row.topic.rsplit("/", 2)[-2:], json.loads(i.row.payload)) for i in list(ob._pending)]  # noqa: SLF001
        await asyncio.sleep(0.4)
        items = []
        while True:
            try:
                items.append(await asyncio.wait_for(ob.take(), 0.2))
            except TimeoutError:
                break
        got = [(i.row.topic.rsplit("/", 2)[-2:], json.loads(i.row.payload)) for i in items]
        p1_tel = [p for (dev, leaf), p in got if dev == "p1" and leaf == "telemetry"]
        assert len(p1_tel) == 1 and p1_tel[0]["values"] == {"soc_pct": 48.0, "battery_v": 12.0, "pv_w": 3.0}
        assert p1_tel[0]["ts"] == 1200
        assert [p["values"]["soc_pct"] for (dev, leaf), p in got if dev == "p2" and leaf == "telemetry"] == [70.0, 69.0]
        assert [leaf for (dev, leaf), _ in got if dev == "p1" and leaf != "telemetry"] == ["position", "events"]
        assert not any(dev == "p1" and leaf == "telemetry" for (dev, leaf), _ in before)  # held until the interval
        bus.publish(Telemetry("p1", 1300, {"soc_pct": 47.0}))
        await asyncio.sleep(0.02)
        await mgr.close()  # a stop puts what is held into the outbox
        held = [json.loads(i.row.payload) for i in ob._pending]  # noqa: SLF001
        assert [p["values"] for p in held] == [{"soc_pct": 47.0}]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ob.close()
