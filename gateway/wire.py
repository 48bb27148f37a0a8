"""MQTT topics and JSON payloads exactly as CONTRACT.md §3.

Pure functions from normalized messages to (topic, payload, qos, retain),
shared by the uplink and by anything that needs the same wire form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.model import Ack, AuditRecorded, Device, DispatchChanged, Event, Order, Position, Telemetry, new_id


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    device: str = ""


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Topics:
    def __init__(self, kit: str) -> None:
        self.root = f"fieldgw/v1/{kit}"
        self.status = f"{self.root}/gateway/status"
        self.commands_filter = f"{self.root}/devices/+/commands"
        self.dispatch = f"{self.root}/dispatch"
        self.dispatch_acks = f"{self.root}/dispatch/acks"
        self.audit = f"{self.root}/gateway/audit"

    def device(self, device: str, leaf: str) -> str:
        return f"{self.root}/devices/{device}/{leaf}"

    def command_device(self, topic: str) -> str | None:
        """The device id of an inbound `.../devices/{id}/commands` topic."""
        prefix = f"{self.root}/devices/"
        if topic.startswith(prefix) and topic.endswith("/commands"):
            dev = topic[len(prefix) : -len("/commands")]
            return dev if dev and "/" not in dev else None
        return None


def gateway_status(topics: Topics, state: str, ts: int, version: str, extra: dict[str, Any] | None = None) -> Outgoing:
    """`{"state", "ts", "version"}` (CONTRACT.md), plus uplink and backlog figures when online."""
    return Outgoing(topics.status, _dump({"state": state, "ts": ts, "version": version, **(extra or {})}), 1, True)


def device_state(topics: Topics, dev: Device) -> Outgoing:
    return Outgoing(topics.device(dev.id, "state"), _dump(dev.to_dict()), 1, True, dev.id)


def position(topics: Topics, pos: Position, seq: int) -> Outgoing:
    body = pos.payload()
    body["id"] = new_id()
    body["seq"] = seq
    return Outgoing(topics.device(pos.device, "position"), _dump(body), 1, False, pos.device)


def telemetry(topics: Topics, t: Telemetry) -> Outgoing:
    return Outgoing(topics.device(t.device, "telemetry"), _dump({"id": new_id(), "ts": t.ts, "values": t.values}), 1, False, t.device)


def event(topics: Topics, e: Event) -> Outgoing:
    body: dict[str, Any] = dict(e.extra)
    body.update({"id": new_id(), "ts": e.ts, "type": e.type, "severity": e.severity, "text": e.text})
    return Outgoing(topics.device(e.device, "events"), _dump(body), 1, False, e.device)


def ack(topics: Topics, a: Ack) -> Outgoing:
    return Outgoing(topics.device(a.device, "acks"), _dump({"id": a.command_id, "status": a.status, "detail": a.detail, "ts": a.ts}), 1, False, a.device)


def dispatch_ack(topics: Topics, d: DispatchChanged) -> Outgoing:
    """The dispatch with its deliveries' status (CONTRACT.md `dispatch/acks`).

    Whole when it is new and when it is done; in between only the deliveries
    that changed, marked `"partial": true` (merge them by `device`), so a large
    order does not resend every delivery on every change over a thin uplink.
    """
    body = d.dispatch
    if d.changed is not None:
        deliveries = body["deliveries"]
        body = {"id": body["id"], "done": body["done"], "partial": True,
                "deliveries": [deliveries[i] for i in d.changed if i < len(deliveries)]}
    return Outgoing(topics.dispatch_acks, _dump({**body, "ts": d.ts}), 1, False)


def order(topics: Topics, o: Order) -> Outgoing:
    body = {"id": o.id, "ts": o.ts, "dispatch": o.dispatch, "text": o.text, "priority": o.priority}
    return Outgoing(topics.device(o.device, "orders"), _dump(body), 1, False, o.device)


def audit(topics: Topics, a: AuditRecorded) -> Outgoing:
    """An audit record as written (its seq, prev and hash let the centre check the chain it holds)."""
    rec = a.record
    return Outgoing(topics.audit, _dump({**rec, "id": f"audit-{rec.get('seq')}-{str(rec.get('hash', ''))[:16]}"}), 1, False, "")


def with_replayed(payload: bytes) -> bytes:
    """The same JSON object with `"replayed": true` (payloads are always objects built by this module)."""
    return payload[:-1] + b',"replayed":true}'
