"""LIP short location report (ETSI TS 100 392-18-1), the SDS-TL payload after PID 0x0A.

Bit fields, most significant first: PDU type 2 (00 = short report), time
elapsed 2, longitude 25 and latitude 24 (two's complement), position error 3,
horizontal velocity 7, direction of travel 4, type of additional data 1,
reason for sending / user data 8: 76 bits, 84 with the PID.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PID_LIP = 0x0A
REPORT_BITS = 76
POSITION_ERROR_M = (2.0, 20.0, 200.0, 2000.0, 20000.0, 200000.0, None, None)  # upper bounds; 6 = >200 km, 7 unknown
TIME_ELAPSED = ("<5 s", "<5 min", "<30 min", "n/a")
VELOCITY_UNKNOWN = 127
_FIELDS = (("type", 2), ("elapsed", 2), ("lon", 25), ("lat", 24), ("error", 3), ("velocity", 7),
           ("direction", 4), ("extra_type", 1), ("reason", 8))


class LipError(ValueError):
    """Bytes that are not a LIP short location report."""


@dataclass(frozen=True)
class ShortReport:
    lat: float
    lon: float
    speed_kmh: float | None  # None: unknown
    heading_deg: float | None  # None when the direction says nothing (speed unknown or zero)
    error_code: int
    elapsed_code: int
    reason: int

    @property
    def error_m(self) -> float | None:
        return POSITION_ERROR_M[self.error_code]


def speed_of_code(v: int) -> float | None:
    if v == VELOCITY_UNKNOWN:
        return None
    return float(v) if v <= 28 else 16 * 1.038 ** (v - 13)


def code_of_speed(kmh: float | None) -> int:
    if kmh is None or math.isnan(kmh):
        return VELOCITY_UNKNOWN
    if kmh < 28.5:
        return max(0, round(kmh))
    return max(29, min(126, round(13 + math.log(kmh / 16) / math.log(1.038))))


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v & (1 << (bits - 1)) else v


def decode(payload: bytes) -> ShortReport:
    """Decode a LIP PDU (PID byte first); LipError if it is not a short location report."""
    if len(payload) < 1 + math.ceil(REPORT_BITS / 8) or payload[0] != PID_LIP:
        raise LipError("too short for a LIP short location report" if payload[:1] == bytes([PID_LIP]) else "not a LIP PDU")
    w = int.from_bytes(payload[1:], "big") >> (len(payload[1:]) * 8 - REPORT_BITS)  # the 76 bits, padding gone
    if w >> 74:
        raise LipError(f"LIP PDU type {w >> 74} is not a short location report")
    values = {"elapsed": (w >> 72) & 3, "lon": (w >> 47) & 0x1FFFFFF, "lat": (w >> 23) & 0xFFFFFF,
              "error": (w >> 20) & 7, "velocity": (w >> 13) & 0x7F, "direction": (w >> 9) & 0xF, "reason": w & 0xFF}
    lon = _signed(values["lon"], 25) * 360.0 / (1 << 25)
    lat = _signed(values["lat"], 24) * 180.0 / (1 << 24)
    if not -90 <= lat <= 90:
        raise LipError(f"latitude {lat:.5f} out of range")
    speed = speed_of_code(values["velocity"])
    heading = values["direction"] * 22.5 if speed else None
    return ShortReport(lat, lon, speed, heading, values["error"], values["elapsed"], values["reason"])


def encode(lat: float, lon: float, speed_kmh: float | None = None, heading_deg: float | None = None,
           error_code: int = 1, elapsed_code: int = 0, reason: int = 0) -> bytes:
    """A LIP PDU (PID first) for this position, padded to whole bytes."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise LipError("position out of range")
    lon_v = round(lon * (1 << 25) / 360.0)
    lon_v = max(-(1 << 24), min((1 << 24) - 1, lon_v)) & ((1 << 25) - 1)
    lat_v = max(-(1 << 23), min((1 << 23) - 1, round(lat * (1 << 24) / 180.0))) & ((1 << 24) - 1)
    direction = 0 if heading_deg is None else round((heading_deg % 360) / 22.5) % 16
    values = {"type": 0, "elapsed": elapsed_code, "lon": lon_v, "lat": lat_v, "error": error_code,
              "velocity": code_of_speed(speed_kmh), "direction": direction, "extra_type": 0, "reason": reason}
    word = 0
    for name, bits in _FIELDS:
        word = (word << bits) | (values[name] & ((1 << bits) - 1))
    pad = (-REPORT_BITS) % 8
    return bytes([PID_LIP]) + (word << pad).to_bytes((REPORT_BITS + pad) // 8, "big")
