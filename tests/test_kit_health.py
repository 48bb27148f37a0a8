"""Kit health: battery time left from the SOC trend, and one critical event well before the end."""

from __future__ import annotations

from gateway.bus import Bus
from gateway.kit_health import KitHealth
from gateway.model import Device, Event, Telemetry
from gateway.registry import DeviceRegistry


def kit() -> tuple[Bus, KitHealth, list[Event]]:
    bus, registry = Bus(), DeviceRegistry()
    bus.add_tap(registry.tap)
    registry.add(Device(id="solar-1", kind="power", driver="modbus_power", name="Kit battery", online=True))
    registry.add(Device(id="drone-1", kind="uav", driver="mavlink", name="Drone"))
    health = KitHealth(bus, registry, lambda: (2, 3), critical_h=2.0)
    events: list[Event] = []
    bus.add_tap(lambda m: events.append(m) if isinstance(m, Event) else None)
    return bus, health, events


def feed(bus: Bus, start_s: float, soc0: float, pct_per_h: float, minutes: int, device: str = "solar-1") -> None:
    for i in range(minutes * 2):  # a reading every 30 s
        t = start_s + i * 30
        bus.publish(Telemetry(device, int(t * 1000), {"soc_pct": soc0 + pct_per_h * (i * 30) / 3600, "battery_v": 12.5}))


def test_time_left_follows_the_discharge_trend() -> None:
    bus, health, events = kit()
    feed(bus, 1_800_000_000, 60.0, -10.0, 20)  # 60 % falling 10 %/h
    s = health.summary()
    b = s["batteries"]["solar-1"]
    assert abs(b["trend_pct_per_h"] + 10.0) < 0.1
    assert abs(b["time_left_h"] - b["soc_pct"] / 10.0) < 0.05 and s["battery_time_left_h"] == b["time_left_h"]
    assert s["streams_live"] == 2 and s["streams_total"] == 3 and s["devices_total"] == 2
    assert not [e for e in events if e.type == "battery_time_left"]  # ~5.7 h left: no alarm


def test_one_critical_event_well_before_the_end_and_no_flapping() -> None:
    bus, health, events = kit()
    feed(bus, 1_800_000_000, 30.0, -20.0, 30)  # 30 % falling 20 %/h: under 2 h after a few minutes
    alarms = [e for e in events if e.type == "battery_time_left"]
    assert len(alarms) == 1 and alarms[0].severity == "critical" and alarms[0].extra["time_left_h"] < 2.0
    assert alarms[0].extra["time_left_h"] > 0.5  # well ahead of the battery running out
    feed(bus, 1_800_000_000 + 1800, 20.0, 0.0, 10)  # the load is cut: flat, then ...
    feed(bus, 1_800_000_000 + 2400, 20.0, +15.0, 30)  # the sun comes up: charging
    kinds = [e.severity for e in events if e.type == "battery_time_left"]
    assert kinds == ["critical", "info"]


def test_too_little_data_says_nothing_and_other_kinds_are_ignored() -> None:
    bus, health, events = kit()
    feed(bus, 1_800_000_000, 50.0, -30.0, 0)
    bus.publish(Telemetry("solar-1", 1_800_000_000_000, {"soc_pct": 50.0}))
    bus.publish(Telemetry("drone-1", 1_800_000_000_000, {"soc_pct": 5.0}))
    s = health.summary()
    assert s["battery_time_left_h"] is None and "drone-1" not in s["batteries"]
