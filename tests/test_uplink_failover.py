"""Uplink selection: priority, failover on a terminal's link report (a fake state source), failback."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.app import Gateway, GatewayOptions
from gateway.kit import load_kit
from gateway.model import LinkHealth, Position, now_ms
from tests.conftest import free_port
from tests.helpers import MqttProbe, drone, write_kit


async def _until(pred, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def test_failover_on_reported_link_state_and_back(tmp_path: Path, mosquitto: str) -> None:
    devices = [drone("drone-1", free_port(), 1), drone("lte-modem", free_port(), 9)]
    kit = write_kit(tmp_path / "kit.yaml", devices, uplinks=[
        {"name": "lte", "broker": mosquitto, "priority": 0, "health_from": ["lte-modem"]},
        {"name": "satcom", "broker": mosquitto, "priority": 1, "budget_kbps": 64},
    ])
    gw = Gateway(load_kit(kit), GatewayOptions(data_dir=tmp_path / "data", http_port=0))
    probe = MqttProbe(mosquitto, "fieldgw/v1/test/devices/drone-1/position")
    await gw.start()
    try:
        await _until(lambda: gw.uplinks.active is not None and gw.uplinks.active.name == "lte", 10, "lte active")

        def feed(n: int) -> None:
            for _ in range(n):
                gw.bus.publish(Position("drone-1", now_ms(), 30.0, 104.0, 500.0, None, None, "3d", "mavlink"))

        feed(5)
        await _until(lambda: len(probe.find(lambda t, p: True)) >= 5, 5, "positions over lte")
        # the LTE modem says its radio link is gone, while the MQTT connection still looks fine
        gw.bus.publish(LinkHealth("lte-modem", now_ms(), False, "no signal"))
        took = await _until(lambda: gw.uplinks.active is not None and gw.uplinks.active.name == "satcom", 5, "satcom active")
        assert took < 5.0
        feed(5)
        await _until(lambda: len(probe.find(lambda t, p: True)) >= 10, 5, "positions over satcom")
        stats = {u["name"]: u for u in gw.uplinks.uplink_stats()}
        assert stats["satcom"]["bytes_sent"] > 0 and stats["lte"]["reported_down"] == {"lte-modem": "no signal"}
        assert gw.health()["uplinks"][1]["active"] is True
        # and back when LTE returns
        gw.bus.publish(LinkHealth("lte-modem", now_ms(), True, "signal back"))
        await _until(lambda: gw.uplinks.active is not None and gw.uplinks.active.name == "lte", 5, "lte active again")
        feed(5)
        await _until(lambda: len(probe.find(lambda t, p: True)) >= 15, 5, "positions over lte again")
        seqs = sorted({p["seq"] for _, p in probe.find(lambda t, p: True)})
        assert seqs == list(range(1, 16))  # nothing lost across both switches
        assert gw.uplinks.failovers == 2
    finally:
        probe.close()
        await gw.stop()


async def test_a_reported_down_uplink_is_still_used_when_it_is_the_only_connection(tmp_path: Path, mosquitto: str) -> None:
    """The terminal's management line may be what failed: with nothing better, the connection that works is used."""
    devices = [drone("drone-1", free_port(), 1), drone("bgan-1", free_port(), 9)]
    kit = write_kit(tmp_path / "kit.yaml", devices, uplinks=[{"name": "bgan", "broker": mosquitto, "health_from": ["bgan-1"]}])
    gw = Gateway(load_kit(kit), GatewayOptions(data_dir=tmp_path / "data", http_port=0))
    probe = MqttProbe(mosquitto, "fieldgw/v1/test/devices/drone-1/position")
    await gw.start()
    try:
        await _until(lambda: gw.uplinks.active is not None, 10, "bgan active")
        gw.bus.publish(LinkHealth("bgan-1", now_ms(), False, "terminal not answering"))
        for _ in range(3):
            gw.bus.publish(Position("drone-1", now_ms(), 30.0, 104.0, 500.0, None, None, "3d", "mavlink"))
        await _until(lambda: len(probe.find(lambda t, p: True)) >= 3, 5, "positions over the reported-down uplink")
        assert not gw.uplinks.uplinks[0].healthy() and gw.health()["status"] == "degraded"
    finally:
        probe.close()
        await gw.stop()
