"""A dish's `get_status` answer, read by field name (docs/serial-protocols.md).

The message classes come from the dish by reflection, so nothing here knows
a field number. A field this firmware does not have reads as None; a nested
message the dish left unset reads as None too (its fields would otherwise
look like zeros), while a plain proto3 scalar at its default reads as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

SERVICE = "SpaceX.API.Device.Device"
METHOD = "Handle"
REQUEST_FIELD = "get_status"
RESPONSE_FIELD = "dish_get_status"


class NotADish(Exception):
    """The device answered, but not with a dish's status (a Starlink router, say)."""


@dataclass(frozen=True)
class DishStatus:
    latency_ms: float | None = None
    drop_rate: float | None = None
    downlink_bps: float | None = None
    uplink_bps: float | None = None
    fraction_obstructed: float | None = None
    currently_obstructed: bool | None = None
    alerts: tuple[str, ...] = ()
    software_version: str | None = None
    hardware_version: str | None = None
    dish_id: str | None = None
    uptime_s: int | None = None

    def status(self) -> dict[str, Any]:
        """The device `status` map (fields the dish did not give are left out)."""
        out: dict[str, Any] = {
            "latency_ms": _round(self.latency_ms, 2), "drop_rate": _round(self.drop_rate, 4),
            "downlink_bps": _round(self.downlink_bps, 0), "uplink_bps": _round(self.uplink_bps, 0),
            "fraction_obstructed": _round(self.fraction_obstructed, 4),
            "currently_obstructed": self.currently_obstructed, "software_version": self.software_version,
            "hardware_version": self.hardware_version, "dish_id": self.dish_id, "uptime_s": self.uptime_s,
        }
        out = {k: v for k, v in out.items() if v is not None}
        out["alerts"] = list(self.alerts)
        return out

    def values(self) -> dict[str, float]:
        """Telemetry values."""
        pct = None if self.fraction_obstructed is None else self.fraction_obstructed * 100
        out = {"latency_ms": _round(self.latency_ms, 2), "drop_rate": _round(self.drop_rate, 4),
               "downlink_bps": _round(self.downlink_bps, 0), "uplink_bps": _round(self.uplink_bps, 0),
               "obstructed_pct": _round(pct, 2)}
        return {k: float(v) for k, v in out.items() if v is not None}


def build_request(request_cls: Any) -> Any:
    """`Request{get_status{}}`, the oneof member chosen by name."""
    request = request_cls()
    if REQUEST_FIELD not in request.DESCRIPTOR.fields_by_name:
        raise NotADish(f"{request.DESCRIPTOR.full_name} has no {REQUEST_FIELD} field")
    getattr(request, REQUEST_FIELD).SetInParent()
    return request


def read_status(response: Any) -> DishStatus:
    """The dish's status out of a `Response`; NotADish when it carries none."""
    fields = response.DESCRIPTOR.fields_by_name
    if RESPONSE_FIELD not in fields or not response.HasField(RESPONSE_FIELD):
        which = [f.name for f, _ in response.ListFields() if f.name != "id"]
        raise NotADish(f"the answer carries {', '.join(which) or 'nothing'}, not {RESPONSE_FIELD}")
    s = getattr(response, RESPONSE_FIELD)
    uptime = field(s, "device_state.uptime_s")
    obstructed = field(s, "obstruction_stats.currently_obstructed")
    return DishStatus(
        latency_ms=_number(field(s, "pop_ping_latency_ms")),
        drop_rate=_number(field(s, "pop_ping_drop_rate")),
        downlink_bps=_number(field(s, "downlink_throughput_bps")),
        uplink_bps=_number(field(s, "uplink_throughput_bps")),
        fraction_obstructed=_number(field(s, "obstruction_stats.fraction_obstructed")),
        currently_obstructed=None if obstructed is None else bool(obstructed),
        alerts=active_alerts(s),
        software_version=_text(field(s, "device_info.software_version")),
        hardware_version=_text(field(s, "device_info.hardware_version")),
        dish_id=_text(field(s, "device_info.id")),
        uptime_s=None if _number(uptime) is None else int(uptime),
    )


def field(msg: Any, path: str) -> Any:
    """The value at a dotted field path, or None when this message type has no such field."""
    target = msg
    for part in path.split("."):
        fd = target.DESCRIPTOR.fields_by_name.get(part)
        if fd is None or _repeated(fd):
            return None
        if fd.message_type is not None and not target.HasField(part):
            return None
        target = getattr(target, part)
    return target


def active_alerts(status: Any) -> tuple[str, ...]:
    """The names of the `alerts` booleans that are set."""
    alerts = field(status, "alerts")
    if alerts is None or not hasattr(alerts, "DESCRIPTOR"):
        return ()
    return tuple(sorted(f.name for f, value in alerts.ListFields()
                        if f.type == FieldDescriptor.TYPE_BOOL and not _repeated(f) and value))


def _repeated(fd: FieldDescriptor) -> bool:
    if hasattr(fd, "is_repeated"):  # protobuf >= 5.29; `label` is gone in 7
        return bool(fd.is_repeated)
    return bool(fd.label == FieldDescriptor.LABEL_REPEATED)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
