"""The team's true position: walking from a start point at a steady speed, either through a list of
waypoints (then back to the start, looping) or on a heading that turns by a fixed angle at fixed
intervals (``--turn-deg 90 --turn-every 60`` walks a square). Flat-earth steps on a sphere: exact enough
for a walk of a few kilometres.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

EARTH_RADIUS_M = 6_371_008.8


def parse_latlon(text: str) -> tuple[float, float]:
    lat_text, sep, lon_text = text.partition(",")
    if not sep:
        raise ValueError(f"expected LAT,LON, got {text!r}")
    try:
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise ValueError(f"expected LAT,LON in degrees, got {text!r}") from None
    if not (-89.0 <= lat <= 89.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"position {text} out of range (lat -89..89, lon -180..180)")
    return lat, lon


def move(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    lat2 = lat + math.degrees(north_m / EARTH_RADIUS_M)
    lon2 = lon + math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat))))
    lon2 = (lon2 + 180.0) % 360.0 - 180.0
    return lat2, lon2


def distance_bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> tuple[float, float]:
    """Metres and degrees true from 1 to 2 (equirectangular; fine below a few km)."""
    north = math.radians(lat2 - lat1) * EARTH_RADIUS_M
    dlon = (lon2 - lon1 + 180.0) % 360.0 - 180.0
    east = math.radians(dlon) * EARTH_RADIUS_M * math.cos(math.radians((lat1 + lat2) / 2))
    return math.hypot(north, east), math.degrees(math.atan2(east, north)) % 360.0


@dataclass
class Walker:
    lat: float
    lon: float
    alt_m: float = 500.0
    speed_kmh: float = 4.5
    heading: float = 90.0
    turn_deg: float = 90.0
    turn_every_s: float = 60.0          # 0: never turn
    waypoints: list[tuple[float, float]] = field(default_factory=list)
    t: float = 0.0                      # simulated seconds walked so far
    _next_turn: float = 0.0
    _target: int = 0
    distance_m: float = 0.0

    def __post_init__(self) -> None:
        self._next_turn = self.turn_every_s
        if self.waypoints:
            self.waypoints = [(self.lat, self.lon), *self.waypoints]
            self._target = 1
            self.heading = distance_bearing(self.lat, self.lon, *self.waypoints[1])[1]

    def advance(self, dt: float) -> None:
        """Walk `dt` seconds on."""
        while dt > 1e-9:
            speed = self.speed_kmh / 3.6
            if self.waypoints:
                goal = self.waypoints[self._target]
                dist, bearing = distance_bearing(self.lat, self.lon, *goal)
                self.heading = bearing if dist > 0.01 else self.heading
                step = min(dt, dist / speed) if speed > 0 else dt
                if speed > 0 and dist / speed <= dt:
                    self.lat, self.lon = goal
                    self.distance_m += dist
                    self._target = (self._target + 1) % len(self.waypoints)
                else:
                    self._step(speed * step)
            else:
                step = dt
                if self.turn_every_s > 0:
                    step = min(dt, self._next_turn - self.t)
                self._step(speed * step)
                if self.turn_every_s > 0 and self.t + step >= self._next_turn - 1e-9:
                    self.heading = (self.heading + self.turn_deg) % 360.0
                    self._next_turn += self.turn_every_s
            self.t += step
            dt -= step

    def _step(self, metres: float) -> None:
        if metres <= 0:
            return
        h = math.radians(self.heading)
        self.lat, self.lon = move(self.lat, self.lon, metres * math.cos(h), metres * math.sin(h))
        self.distance_m += metres

    def to_json(self) -> dict[str, Any]:
        return {"lat": round(self.lat, 7), "lon": round(self.lon, 7), "alt_m": round(self.alt_m, 1),
                "speed_kmh": round(self.speed_kmh, 3), "heading_deg": round(self.heading, 2),
                "walked_m": round(self.distance_m, 1), "walked_s": round(self.t, 3)}
