"""The dish's status as it varies: a link state, pinned fields, alerts, uptime.

Values are drawn when a client asks (nothing ticks in the background): latency
wanders around the state's mean with noise, throughput follows a slowly
changing user load, the drop rate sits near 0 while online. ``state`` picks one
of the link states below and clears the pinned fields; ``set FIELD VALUE`` pins
one field (``set FIELD auto`` unpins it); ``alert NAME on|off`` flips an alert.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from .proto import Api


@dataclass(frozen=True)
class LinkState:
    latency_ms: tuple[float, float, float]  # mean, noise sd, (clamped to) max; min is MIN_LATENCY_MS
    drop_rate: tuple[float, float]  # low, high (uniform)
    throughput_scale: float  # of the nominal load
    obstructed: bool
    fraction_obstructed: tuple[float, float]


MIN_LATENCY_MS = 25.0
STATES: dict[str, LinkState] = {
    "online": LinkState((38.0, 6.0, 60.0), (0.0, 0.004), 1.0, False, (0.0, 0.004)),
    "degraded": LinkState((75.0, 18.0, 160.0), (0.03, 0.15), 0.3, False, (0.01, 0.05)),
    "obstructed": LinkState((55.0, 15.0, 120.0), (0.25, 0.7), 0.05, True, (0.12, 0.3)),
    # Up and answering, but no PoP: everything dropped, no latency figure, no traffic.
    "offline": LinkState((0.0, 0.0, 0.0), (1.0, 1.0), 0.0, False, (0.0, 0.004)),
}
ALERTS = ("motors_stuck", "thermal_throttle", "thermal_shutdown", "unexpected_location",
          "mast_not_near_vertical", "slow_ethernet_speeds")
TRUE_WORDS, FALSE_WORDS = {"1", "true", "on", "yes"}, {"0", "false", "off", "no"}


class Dish:
    def __init__(self, api: Api, seed: int | None = None) -> None:
        self.api = api
        self.rng = random.Random(seed)
        self.state = "online"
        self.pins: dict[str, Any] = {}  # dotted field path → value
        self.alerts: set[str] = set()
        self.booted = time.monotonic()
        self.reboots = 0
        self.device_id = f"ut{self.rng.getrandbits(32):08x}-{self.rng.getrandbits(32):08x}-{self.rng.getrandbits(24):06x}"
        self._load = 0.3  # fraction of the nominal throughput the users draw, a random walk
        self._fields = _leaf_fields(api.DishGetStatusResponse.DESCRIPTOR)

    # ---------------------------------------------------------------- control

    def set_state(self, name: str) -> None:
        if name not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        self.state = name
        self.pins.clear()

    def field_path(self, name: str) -> str:
        """``fraction_obstructed`` or ``obstruction_stats.fraction_obstructed`` → the full path."""
        if name in self._fields:
            return name
        matches = [path for path in self._fields if path.rsplit(".", 1)[-1] == name]
        if len(matches) != 1:
            raise ValueError(f"unknown field {name!r}; fields: {', '.join(sorted(self._fields))}")
        return matches[0]

    def pin(self, name: str, text: str) -> tuple[str, Any]:
        path = self.field_path(name)
        if path.startswith("alerts."):
            raise ValueError("use: alert NAME on|off")
        if text.lower() == "auto":
            self.pins.pop(path, None)
            return path, None
        value = _parse(self._fields[path], text)
        if isinstance(value, float) and not path.startswith("boresight") and value < 0:
            raise ValueError(f"{path} must be >= 0")
        if isinstance(value, float) and ("rate" in path or "fraction" in path) and value > 1:
            raise ValueError(f"{path} must be within 0..1")
        self.pins[path] = value
        return path, value

    def set_alert(self, name: str, on: bool) -> None:
        if name not in ALERTS:
            raise ValueError(f"alert must be one of {', '.join(ALERTS)}")
        (self.alerts.add if on else self.alerts.discard)(name)

    def reboot(self) -> None:
        self.reboots += 1
        self.booted = time.monotonic()

    # ---------------------------------------------------------------- status

    def values(self) -> dict[str, Any]:
        """One status sample: dotted field path → value."""
        s, rng = STATES[self.state], self.rng
        self._load = min(1.0, max(0.02, self._load + rng.gauss(0.0, 0.08)))
        mean, sd, high = s.latency_ms
        latency = min(high, max(MIN_LATENCY_MS, rng.gauss(mean, sd))) if mean else 0.0
        scale = s.throughput_scale * self._load
        # Keep-alives and telemetry trickle whenever there is a link at all.
        down = scale * 120e6 * rng.uniform(0.8, 1.2) + (rng.uniform(2e3, 8e3) if scale else 0.0)
        up = scale * 12e6 * rng.uniform(0.5, 1.5) + (rng.uniform(1e3, 4e3) if scale else 0.0)
        v: dict[str, Any] = {
            "device_info.id": self.device_id,
            "device_info.hardware_version": "rev3_proto2",
            "device_info.software_version": "2024.05.10.mr37000.hil",
            "device_state.uptime_s": int(time.monotonic() - self.booted),
            "pop_ping_latency_ms": round(latency, 2),
            "pop_ping_drop_rate": round(rng.uniform(*s.drop_rate), 4),
            "downlink_throughput_bps": round(down, 1),
            "uplink_throughput_bps": round(up, 1),
            "obstruction_stats.fraction_obstructed": round(rng.uniform(*s.fraction_obstructed), 4),
            "obstruction_stats.currently_obstructed": s.obstructed,
            "boresight_azimuth_deg": round(12.5 + rng.gauss(0.0, 0.05), 3),
            "boresight_elevation_deg": round(64.8 + rng.gauss(0.0, 0.05), 3),
            "gps_stats.gps_valid": True,
            "gps_stats.gps_sats": 10 + rng.randint(0, 4),
        }
        v.update({f"alerts.{name}": True for name in self.alerts})
        v.update(self.pins)
        return v

    def status(self) -> Any:
        msg = self.api.DishGetStatusResponse()
        for path, value in self.values().items():
            *parents, leaf = path.split(".")
            target = msg
            for part in parents:
                target = getattr(target, part)
            setattr(target, leaf, value)
        return msg

    def describe(self) -> dict[str, Any]:
        return {"state": self.state, "pins": dict(self.pins), "alerts": sorted(self.alerts),
                "uptime_s": int(time.monotonic() - self.booted), "reboots": self.reboots}


def _leaf_fields(desc: Any, prefix: str = "") -> dict[str, FieldDescriptor]:
    out: dict[str, FieldDescriptor] = {}
    for f in desc.fields:
        if f.message_type is not None:
            out.update(_leaf_fields(f.message_type, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = f
    return out


def _parse(field: FieldDescriptor, text: str) -> Any:
    if field.type == FieldDescriptor.TYPE_BOOL:
        word = text.lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise ValueError(f"{field.name} takes true|false, got {text!r}")
        return word in TRUE_WORDS
    if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{field.name} takes a finite number, got {text!r}")
        return value
    if field.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64):
        value = int(text)
        limit = 2**32 if field.type == FieldDescriptor.TYPE_UINT32 else 2**64
        if not 0 <= value < limit:
            raise ValueError(f"{field.name} out of range: {text}")
        return value
    return text
