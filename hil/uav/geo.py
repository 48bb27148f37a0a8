"""Flat-earth helpers around a home point (good to well under 1 m within a few km)."""
from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_M = 6_378_137.0


@dataclass(frozen=True)
class GeoPoint:
    lat: float  # degrees
    lon: float  # degrees
    alt: float  # metres AMSL

    def offset(self, north_m: float, east_m: float, up_m: float = 0.0) -> "GeoPoint":
        """Point displaced by north/east/up metres from this one."""
        dlat = math.degrees(north_m / EARTH_RADIUS_M)
        dlon = math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(self.lat))))
        return GeoPoint(self.lat + dlat, self.lon + dlon, self.alt + up_m)

    def ne_of(self, lat: float, lon: float) -> tuple[float, float]:
        """North/east metres of (lat, lon) relative to this point."""
        north = math.radians(lat - self.lat) * EARTH_RADIUS_M
        east = math.radians(lon - self.lon) * EARTH_RADIUS_M * math.cos(math.radians(self.lat))
        return north, east


def wrap_2pi(angle: float) -> float:
    return angle % (2.0 * math.pi)


def wrap_pi(angle: float) -> float:
    a = (angle + math.pi) % (2.0 * math.pi) - math.pi
    return a


def parse_home(text: str) -> GeoPoint:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise ValueError("expected LAT,LON,ALT")
    lat, lon, alt = (float(p) for p in parts)
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or any(map(math.isnan, (lat, lon, alt))):
        raise ValueError("home latitude/longitude out of range")
    return GeoPoint(lat, lon, alt)
