"""One-key dispatch records (CONTRACT.md §2 `POST /api/v1/dispatch`).

A dispatch is one order to many targets; each target gets a Delivery over
the best channel it has. Delivery status: `queued → sent → delivered | failed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

DeliveryStatus = Literal["queued", "sent", "delivered", "failed"]
FINAL_DELIVERY: frozenset[str] = frozenset({"delivered", "failed"})
PRIORITIES = ("flash", "routine")
MAX_TEXT = 2000  # characters; longer orders are refused outright (400)


@dataclass
class Delivery:
    device: str
    channel: str  # "mqtt", "tetra_sds", "sbd", "beidou", or "none"
    status: DeliveryStatus = "queued"
    detail: str = ""  # the latest attempt's outcome
    note: str = ""  # how the text was fitted to the channel (split, shortened), and failovers
    carrier: str = ""  # the modem that sends it ("" for mqtt)
    to: str = ""  # the address on the channel
    parts: list[str] = field(default_factory=list)  # the text as this channel carries it
    parts_done: int = 0
    attempts: int = 0
    ts_updated: int = 0
    order_id: str = ""  # the MQTT order message's id (its PUBACK marks the delivery delivered)
    tried: list[str] = field(default_factory=list)  # carriers ("mqtt" for MQTT) that gave up on this delivery

    @property
    def final(self) -> bool:
        return self.status in FINAL_DELIVERY

    def public(self) -> dict[str, Any]:
        detail = "; ".join(x for x in (self.note, self.detail) if x)
        return {"device": self.device, "channel": self.channel, "status": self.status, "detail": detail,
                "parts": len(self.parts), "parts_sent": self.parts_done, "attempts": self.attempts,
                "ts": self.ts_updated}


@dataclass
class Dispatch:
    id: str
    text: str
    priority: str
    targets: list[str] | str  # ids, or "all" as asked
    issued_by: str
    ts: int
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return all(d.final for d in self.deliveries)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "priority": self.priority, "targets": self.targets,
                "issued_by": self.issued_by, "ts": self.ts, "done": self.done,
                "deliveries": [d.public() for d in self.deliveries]}
