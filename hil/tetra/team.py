"""Team radios the simulated radio hears: each moves along a fixed heading at a fixed speed."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from . import lipctl

EARTH_RADIUS_M = 6_371_008.8
MAX_SSI = 2**24 - 1  # SSIs are 24-bit


@dataclass
class Team:
    issi: int
    lat: float
    lon: float
    heading_deg: float = 0.0
    speed_kmh: float = 0.0
    updated: float = 0.0  # monotonic time of lat/lon
    lip_interval: float = 0.0  # seconds between periodic LIP reports (0 = none): what it really does
    min_interval_code: int = 0  # its LIP basic location parameters, as a report request reads them back
    report_type: int = lipctl.REPORT_SHORT
    report_types_supported: frozenset[int] = frozenset(lipctl.REPORT_TYPES)
    lip_mute: int = 0  # this many more LIP control requests go unanswered
    lip_refuse: int = 0  # non-zero: every LIP control request is answered with this result code
    lip_requests: int = 0
    lip_refused: int = 0
    lips_sent: int = 0
    texts_sent: int = 0
    texts_received: int = 0
    refs: int = field(default=0, repr=False)

    def next_ref(self) -> int:
        self.refs = self.refs % 255 + 1
        return self.refs

    def advance(self, now: float) -> None:
        """Dead-reckon along the rhumb line of `heading_deg` up to `now`."""
        dt = max(0.0, now - self.updated)
        self.updated = now
        distance = self.speed_kmh / 3.6 * dt
        if distance <= 0:
            return
        h = math.radians(self.heading_deg)
        dlat = math.degrees(distance * math.cos(h) / EARTH_RADIUS_M)
        lat_mid = math.radians(self.lat + dlat / 2)
        dlon = math.degrees(distance * math.sin(h) / (EARTH_RADIUS_M * max(math.cos(lat_mid), 1e-6)))
        self.lat = max(-89.99, min(89.99, self.lat + dlat))
        self.lon = ((self.lon + dlon + 180.0) % 360.0) - 180.0

    def place(self, lat: float, lon: float, now: float) -> None:
        self.lat, self.lon, self.updated = lat, lon, now

    def set_lip_interval(self, seconds: float) -> None:
        """Reports every `seconds` from now on; the parameter reads back as the code nearest to it."""
        self.lip_interval = seconds
        self.min_interval_code = lipctl.interval_code(seconds)

    def lip_params(self) -> dict[str, Any]:
        return {"issi": self.issi, "min_interval_code": self.min_interval_code,
                "min_interval_s": lipctl.interval_seconds(self.min_interval_code), "lip_interval_s": self.lip_interval,
                "report_type": lipctl.REPORT_TYPES[self.report_type],
                "report_types_supported": [lipctl.REPORT_TYPES[t] for t in sorted(self.report_types_supported)],
                "lip_mute": self.lip_mute, "lip_refuse": self.lip_refuse, "lip_requests": self.lip_requests,
                "lip_refused": self.lip_refused, "lips_sent": self.lips_sent}

    def to_json(self) -> dict[str, Any]:
        return {"issi": self.issi, "lat": round(self.lat, 7), "lon": round(self.lon, 7),
                "heading_deg": self.heading_deg, "speed_kmh": self.speed_kmh, "lips_sent": self.lips_sent,
                "texts_sent": self.texts_sent, "texts_received": self.texts_received,
                "lip_interval_s": self.lip_interval, "min_interval_code": self.min_interval_code,
                "report_type": lipctl.REPORT_TYPES[self.report_type]}


def parse_ssi(text: str) -> int:
    v = int(text)
    if not 1 <= v <= MAX_SSI:
        raise ValueError(f"SSI must be 1..{MAX_SSI}, got {text}")
    return v


def check_position(lat: float, lon: float) -> None:
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"position {lat},{lon} out of range")


def parse_team(text: str) -> Team:
    """`ISSI:LAT,LON[:HEADING_DEG:SPEED_KMH]`."""
    parts = text.split(":")
    if len(parts) not in (2, 4):
        raise ValueError(f"expected ISSI:LAT,LON[:HEADING_DEG:SPEED_KMH], got {text!r}")
    lat_text, sep, lon_text = parts[1].partition(",")
    if not sep:
        raise ValueError(f"expected LAT,LON in {text!r}")
    lat, lon = float(lat_text), float(lon_text)
    check_position(lat, lon)
    heading, speed = (float(parts[2]), float(parts[3])) if len(parts) == 4 else (0.0, 0.0)
    if not (math.isfinite(heading) and math.isfinite(speed) and speed >= 0):
        raise ValueError(f"bad heading/speed in {text!r}")
    return Team(issi=parse_ssi(parts[0]), lat=lat, lon=lon, heading_deg=heading % 360.0, speed_kmh=speed)
