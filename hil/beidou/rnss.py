"""The terminal's own RNSS fix as NMEA 0183 `$GNRMC` / `$GNGGA` bodies (a still receiver)."""

from __future__ import annotations

from datetime import datetime


def _dm(deg: float, width: int) -> str:
    """ddmm.mmmmm (width = degree digits), rounded in minutes so 59.999999' never prints as 60'."""
    minutes = round(abs(deg) * 60, 5)
    d, m = divmod(minutes, 60)
    return f"{int(d):0{width}d}{m:08.5f}"


def _lat(deg: float) -> str:
    return f"{_dm(deg, 2)},{'N' if deg >= 0 else 'S'}"


def _lon(deg: float) -> str:
    return f"{_dm(deg, 3)},{'E' if deg >= 0 else 'W'}"


def rmc(lat: float, lon: float, now: datetime) -> str:
    """Status A, speed 0 kn, course 0, no magnetic variation, mode A (autonomous)."""
    return f"GNRMC,{now:%H%M%S}.00,A,{_lat(lat)},{_lon(lon)},0.00,0.00,{now:%d%m%y},,,A"


def gga(lat: float, lon: float, alt: float, now: datetime) -> str:
    """Quality 1 (GNSS fix), 12 satellites, HDOP 0.9, geoid separation 0."""
    return f"GNGGA,{now:%H%M%S}.00,{_lat(lat)},{_lon(lon)},1,12,0.9,{alt:.1f},M,0.0,M,,"


def parse_position(text: str) -> tuple[float, float, float]:
    """"LAT,LON[,ALT]" in degrees (and metres)."""
    parts = [float(p) for p in text.split(",")]
    if len(parts) not in (2, 3):
        raise ValueError(f"expected LAT,LON[,ALT], got {text!r}")
    lat, lon, alt = parts[0], parts[1], parts[2] if len(parts) == 3 else 0.0
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"position out of range: {text!r}")
    return lat, lon, alt
