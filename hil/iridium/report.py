"""fieldgw's `0x03` position report batch, as a team's own Iridium unit sends it
(docs/serial-protocols.md, "Iridium SBD", "fieldgw's payloads"):

    03 <n> <id length> <id ASCII>  then n entries of 18 bytes, big-endian:
    ts u32 epoch s, lat i32 1e-7 deg, lon i32 1e-7 deg, alt i16 m (-32768 unknown),
    speed u16 cm/s (0xFFFF unknown), heading u16 0.01 deg (0xFFFF unknown)

Written from that description; the simulator only encodes (one entry per report).
"""
from __future__ import annotations

import math
import re
import struct

BATCH = 0x03
ENTRY = struct.Struct(">IiihHH")  # 18 bytes
ALT_UNKNOWN = -32768
U16_UNKNOWN = 0xFFFF
SPEED_MAX_KMH = (U16_UNKNOWN - 1) * 0.036  # 65534 cm/s, about 2359 km/h
UNIT_ID = re.compile(r"[A-Za-z0-9-]{1,32}")


def check_id(unit_id: str) -> str:
    if not UNIT_ID.fullmatch(unit_id):
        raise ValueError(f"unit ID must be 1..32 characters of A-Z a-z 0-9 '-', got {unit_id!r}")
    return unit_id


def _number(text: str, name: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {text!r}")
    return v


def parse_lat_lon(lat: str, lon: str) -> tuple[float, float]:
    """Degrees from text; ValueError unless -90..90 and -180..180."""
    la, lo = _number(lat, "latitude"), _number(lon, "longitude")
    if not -90 <= la <= 90:
        raise ValueError(f"latitude must be -90..90, got {lat}")
    if not -180 <= lo <= 180:
        raise ValueError(f"longitude must be -180..180, got {lon}")
    return la, lo


def parse_heading(text: str) -> float:
    v = _number(text, "heading")
    if not 0 <= v <= 360:
        raise ValueError(f"heading must be 0..360 degrees, got {text}")
    return v % 360


def parse_speed(text: str) -> float:
    v = _number(text, "speed")
    if not 0 <= v <= SPEED_MAX_KMH:
        raise ValueError(f"speed must be 0..{SPEED_MAX_KMH:.0f} km/h, got {text}")
    return v


def _e7(deg: float) -> int:
    return round(deg * 1e7)


def position_report(unit_id: str, ts: int, lat: float, lon: float, *, alt_m: int | None = None,
                    speed_kmh: float | None = None, heading_deg: float | None = None) -> bytes:
    """A `0x03` batch with one entry; None fields are sent as "unknown"."""
    check_id(unit_id)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"position out of range: {lat}, {lon}")
    alt = ALT_UNKNOWN if alt_m is None else max(-32767, min(32767, alt_m))
    speed = U16_UNKNOWN if speed_kmh is None else min(U16_UNKNOWN - 1, round(speed_kmh * 1e5 / 3600))
    heading = U16_UNKNOWN if heading_deg is None else round(heading_deg % 360 * 100) % 36000
    raw_id = unit_id.encode("ascii")
    return (bytes([BATCH, 1, len(raw_id)]) + raw_id
            + ENTRY.pack(ts & 0xFFFFFFFF, _e7(lat), _e7(lon), alt, speed, heading))
