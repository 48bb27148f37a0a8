"""The current state of every device, kept up to date from the bus.

A bus tap: it runs inline before fan-out, so `GET /api/v1/devices` and the
retained MQTT state always agree with what has been published. It turns
changes of the retained part (online, status) into DeviceStateChanged and
online/offline into events, so the supervisor and drivers only report facts.
"""

from __future__ import annotations

from gateway.model import (
    BusMessage,
    Device,
    DeviceDiscovered,
    DeviceStateChanged,
    Event,
    OnlineChange,
    Position,
    StatusUpdate,
    Telemetry,
)


class DeviceRegistry:
    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}

    def add(self, device: Device) -> None:
        self.devices[device.id] = device

    def get(self, device_id: str) -> Device | None:
        return self.devices.get(device_id)

    def all(self) -> list[Device]:
        return list(self.devices.values())

    def tap(self, msg: BusMessage) -> list[BusMessage] | None:
        if isinstance(msg, DeviceDiscovered):
            if msg.device in self.devices:
                return None
            self.devices[msg.device] = Device(id=msg.device, kind=msg.kind, driver=msg.driver, name=msg.name,
                                              commands=list(msg.commands))
            return [DeviceStateChanged(msg.device, msg.ts, urgent=True)]
        dev = self.devices.get(getattr(msg, "device", ""))
        if dev is None:
            return None
        if isinstance(msg, Position):
            dev.position = msg
            dev.last_seen = msg.ts
        elif isinstance(msg, OnlineChange):
            if dev.online == msg.online:
                return None
            dev.online = msg.online
            if msg.online:
                dev.last_seen = msg.ts
            word = "online" if msg.online else "offline"
            text = f"{dev.name} is {word}" + (f": {msg.reason}" if msg.reason else "")
            return [
                DeviceStateChanged(dev.id, msg.ts, urgent=True),
                Event(dev.id, msg.ts, word, "info" if msg.online else "warning", text,
                      {"reason": msg.reason} if msg.reason else {}),
            ]
        elif isinstance(msg, StatusUpdate):
            changed = any(dev.status.get(k) != v for k, v in msg.status.items())
            dev.status.update(msg.status)
            if dev.online:
                dev.last_seen = msg.ts
            if changed:
                return [DeviceStateChanged(dev.id, msg.ts)]
        elif isinstance(msg, (Telemetry, Event)):
            if dev.online:
                dev.last_seen = msg.ts
        return None

    def counts(self) -> tuple[int, int]:
        return sum(1 for d in self.devices.values() if d.online), len(self.devices)
