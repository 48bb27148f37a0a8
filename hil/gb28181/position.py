"""Where the simulated team is: walking a closed path (a rectangle of waypoints around the start point)
at a steady pace, looping forever. Positions are WGS-84 degrees (GB/T 28181 MobilePosition carries
longitude/latitude in degrees, speed in km/h, direction in degrees clockwise from north)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

EARTH_RADIUS_M = 6_371_008.8
# The path's corners as (north, east) metres from the start point.
DEFAULT_PATH_M = ((0.0, 0.0), (300.0, 0.0), (300.0, 400.0), (0.0, 400.0))


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    dlat = math.degrees(north_m / EARTH_RADIUS_M)
    dlon = math.degrees(east_m / (EARTH_RADIUS_M * max(math.cos(math.radians(lat)), 1e-6)))
    return lat + dlat, lon + dlon


def parse_position(text: str) -> tuple[float, float]:
    lat_text, sep, lon_text = text.partition(",")
    if not sep:
        raise ValueError(f"expected LAT,LON, got {text!r}")
    lat, lon = float(lat_text), float(lon_text)
    if not (-85.0 <= lat <= 85.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"position {text} out of range")
    return lat, lon


@dataclass
class Walker:
    lat0: float
    lon0: float
    speed_kmh: float = 4.5
    altitude_m: float = 500.0
    path_m: tuple[tuple[float, float], ...] = DEFAULT_PATH_M
    start: float = field(default_factory=time.monotonic)

    def at(self, now: float | None = None) -> dict[str, Any]:
        """{latitude, longitude, speed (km/h), direction (deg), altitude (m)} at monotonic `now`."""
        now = time.monotonic() if now is None else now
        legs = [(self.path_m[i], self.path_m[(i + 1) % len(self.path_m)]) for i in range(len(self.path_m))]
        lengths = [math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in legs]
        total = sum(lengths)
        speed = self.speed_kmh / 3.6
        d = ((now - self.start) * speed) % total if total and speed else 0.0
        for (a, b), length in zip(legs, lengths):
            if d <= length or length == total:
                f = d / length if length else 0.0
                north, east = a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f
                heading = math.degrees(math.atan2(b[1] - a[1], b[0] - a[0])) % 360.0
                break
            d -= length
        lat, lon = offset(self.lat0, self.lon0, north, east)
        return {"latitude": round(lat, 7), "longitude": round(lon, 7), "speed": round(self.speed_kmh, 2),
                "direction": round(heading, 1), "altitude": round(self.altitude_m, 1)}
