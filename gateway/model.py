"""The normalized model every driver speaks and every output reads (CONTRACT.md).

Drivers build these objects and hand them to the bus; the MQTT uplink, the
HTTP API and the console only ever see these, never a device protocol.
They are slotted dataclasses rather than pydantic models because a busy
link produces thousands a second and they are built on the hot path.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Kind = Literal["uav", "camera", "bodycam", "radio", "satcom", "power", "network"]
KINDS: tuple[str, ...] = ("uav", "camera", "bodycam", "radio", "satcom", "power", "network")
Fix = Literal["none", "2d", "3d", "rtk"]
Severity = Literal["info", "warning", "critical"]
CommandStatus = Literal["accepted", "sent", "done", "failed", "rejected", "timeout"]
FINAL_STATUSES: frozenset[str] = frozenset({"done", "failed", "rejected", "timeout"})

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


def now_ms() -> int:
    """Wall-clock epoch milliseconds, the contract's `ts`."""
    return time.time_ns() // 1_000_000


def new_id() -> str:
    """A unique message or command id (for de-duplication by consumers)."""
    return uuid.uuid4().hex


@dataclass(slots=True)
class Position:
    device: str
    ts: int
    lat: float
    lon: float
    alt_m: float | None = None
    heading_deg: float | None = None
    speed_mps: float | None = None
    fix: Fix = "none"
    source: str = ""

    def payload(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "lat": self.lat,
            "lon": self.lon,
            "alt_m": self.alt_m,
            "heading_deg": self.heading_deg,
            "speed_mps": self.speed_mps,
            "fix": self.fix,
            "source": self.source,
        }


@dataclass(slots=True)
class Telemetry:
    device: str
    ts: int
    values: dict[str, float]


@dataclass(slots=True)
class Event:
    device: str
    ts: int
    type: str
    severity: Severity
    text: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StatusUpdate:
    """A partial update of a device's `status` map (merged, not replaced)."""

    device: str
    ts: int
    status: dict[str, Any]


@dataclass(slots=True)
class OnlineChange:
    device: str
    ts: int
    online: bool
    reason: str = ""


@dataclass(slots=True)
class LinkHealth:
    """A terminal's own view of a backhaul link (a satellite modem, a router).

    The uplink manager maps the reporting device to an uplink (kit
    `uplinks[].health_from`) and treats `up=False` as that uplink being down
    even while its MQTT connection still looks alive.
    """

    device: str
    ts: int
    up: bool
    detail: str = ""


@dataclass(slots=True)
class StreamOffer:
    """A device announces a video stream of its own (a drone's camera, say): the gateway relays it."""

    device: str
    ts: int
    stream: str  # a stream id, `[a-z0-9][a-z0-9-]*`
    url: str
    name: str = ""
    options: dict[str, str] = field(default_factory=dict)  # FFmpeg options; `format` names the demuxer (e.g. "mpeg")
    on_demand: bool = False  # opened at the first viewer, closed `idle_close_s` after the last
    mode: str = "passthrough"  # passthrough | transcode | auto, as a kit stream's `mode`
    idle_close_s: float = 30.0


@dataclass(slots=True)
class Ack:
    """One transition of a command's status, as published on `acks`."""

    device: str
    command_id: str
    status: CommandStatus
    detail: str
    ts: int


@dataclass(slots=True)
class DeviceStateChanged:
    """Emitted by the registry whenever a device's retained state changed.

    `urgent` changes (online/offline) go out at once; the others may be
    coalesced by an output (at most one retained state per device a second).
    """

    device: str
    ts: int
    urgent: bool = False


@dataclass(slots=True)
class DeviceDiscovered:
    """A driver found a device the kit does not list by itself (a radio of a listed talk group)."""

    device: str
    ts: int
    kind: str
    name: str
    driver: str
    commands: list[str]


@dataclass(slots=True)
class DispatchChanged:
    """A dispatch or one of its deliveries changed (→ `dispatch/acks`)."""

    device: str  # "" (a dispatch belongs to no one device)
    ts: int
    dispatch: dict[str, Any]  # the whole dispatch, as GET /api/v1/dispatch/{id} shows it
    changed: list[int] | None = None  # indices of the deliveries that changed; None: new, done, or a rejection


@dataclass(slots=True)
class Order:
    """A dispatched order for a device that reads its orders over MQTT (→ `devices/{id}/orders`)."""

    device: str
    ts: int
    id: str  # this message's id; the broker's acknowledgement of it marks the delivery delivered
    dispatch: str
    text: str
    priority: str


@dataclass(slots=True)
class AuditRecorded:
    """A record was written to the audit log (→ `gateway/audit`, so the centre holds a copy of the chain)."""

    device: str  # "" (the gateway's own)
    ts: int
    record: dict[str, Any]  # as written: seq, prev and hash included


BusMessage = Position | Telemetry | Event | StatusUpdate | OnlineChange | Ack | DeviceStateChanged | LinkHealth | StreamOffer | DispatchChanged | Order | DeviceDiscovered | AuditRecorded


@dataclass(slots=True)
class CommandRecord:
    id: str
    device: str
    command: str
    args: dict[str, Any]
    status: CommandStatus
    detail: str
    issued_by: str
    ts_issued: int
    ts_done: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Device:
    id: str
    kind: str
    driver: str
    name: str
    online: bool = False
    last_seen: int | None = None
    position: Position | None = None
    status: dict[str, Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "driver": self.driver,
            "name": self.name,
            "online": self.online,
            "last_seen": self.last_seen,
            "position": self.position.payload() if self.position else None,
            "status": dict(self.status),
            "commands": list(self.commands),
            "streams": list(self.streams),
        }
