"""LIP short location report (TS 100 392-18-1), as docs/serial-protocols.md lays it out.

After the PID (0x0A): PDU type 2 (00), time elapsed 2, longitude 25 and latitude
24 (two's complement, deg·2²⁵/360 and deg·2²⁴/180), position error 3,
horizontal velocity 7, direction of travel 4, type of additional data 1, reason
for sending 8: 84 bits, sent as 11 bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .bits import BitReader, BitWriter

PID_LIP = 0x0A
LIP_BITS = 84
LON_SCALE = 2**25 / 360.0
LAT_SCALE = 2**24 / 180.0
TIME_ELAPSED_LT_5S = 0
POSITION_ERROR_LT_20M = 1
VELOCITY_UNKNOWN = 127
# Reason for sending "maximum reporting interval exceeded since the last report"
# (value as recalled from TS 100 392-18-1; the spec page does not list reasons).
REASON_PERIODIC = 129


@dataclass(frozen=True)
class ShortLocation:
    lat: float
    lon: float
    speed_kmh: float | None = None
    heading_deg: float | None = None
    time_elapsed: int = TIME_ELAPSED_LT_5S
    position_error: int = POSITION_ERROR_LT_20M
    reason: int = REASON_PERIODIC


def lon_field(lon: float) -> int:
    """25-bit two's complement; +180° wraps to −180°."""
    v = round(lon * LON_SCALE)
    return ((v + 2**24) % 2**25) - 2**24


def lat_field(lat: float) -> int:
    """24-bit two's complement; ±90° clamps to the largest representable value."""
    if not -90.0 <= lat <= 90.0:
        raise ValueError(f"latitude {lat} out of range")
    return max(-(2**23), min(2**23 - 1, round(lat * LAT_SCALE)))


def velocity_field(kmh: float | None) -> int:
    """v ≤ 28: v km/h; 29..126: 16·1.038^(v−13) km/h; 127 unknown."""
    if kmh is None or not math.isfinite(kmh) or kmh < 0:
        return VELOCITY_UNKNOWN
    if kmh < 28.5:
        return round(kmh)
    v = round(13 + math.log(kmh / 16.0) / math.log(1.038))
    return max(29, min(126, v))


def velocity_kmh(v: int) -> float | None:
    if v == VELOCITY_UNKNOWN:
        return None
    return float(v) if v <= 28 else 16.0 * 1.038 ** (v - 13)


def direction_field(heading_deg: float | None) -> int:
    """Sixteenths of a circle, 0 = north (there is no 'unknown' value)."""
    if heading_deg is None or not math.isfinite(heading_deg):
        return 0
    return round((heading_deg % 360.0) / 22.5) % 16


def encode(loc: ShortLocation) -> bytes:
    """The whole PDU, PID included (84 bits, zero-padded to 11 bytes)."""
    w = BitWriter().put(PID_LIP, 8).put(0, 2).put(loc.time_elapsed, 2)
    w.put_signed(lon_field(loc.lon), 25).put_signed(lat_field(loc.lat), 24)
    w.put(loc.position_error, 3).put(velocity_field(loc.speed_kmh), 7).put(direction_field(loc.heading_deg), 4)
    w.put(0, 1).put(loc.reason, 8)  # additional data type 0: reason for sending
    assert w.length == LIP_BITS
    return w.to_bytes()


def decode(pdu: bytes) -> ShortLocation:
    """A short location report (PID included); ValueError for anything else."""
    r = BitReader(pdu, LIP_BITS)
    if r.get(8) != PID_LIP or r.get(2) != 0:
        raise ValueError("not a LIP short location report")
    elapsed = r.get(2)
    lon = r.get_signed(25) / LON_SCALE
    lat = r.get_signed(24) / LAT_SCALE
    error, vel, direction = r.get(3), r.get(7), r.get(4)
    r.get(1)
    reason = r.get(8)
    speed = velocity_kmh(vel)
    return ShortLocation(lat=lat, lon=lon, speed_kmh=speed, heading_deg=direction * 22.5 if speed is not None else None,
                         time_elapsed=elapsed, position_error=error, reason=reason)
