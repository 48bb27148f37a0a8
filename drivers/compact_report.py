"""fieldgw's compact binary reports for narrow links (Iridium SBD, BeiDou short messages).

docs/serial-protocols.md has the layout. The first byte says what follows:
  0x01 position, 13 bytes (ts, lat, lon) for links that name the sender
  0x02 position, 20 bytes (+ alt, speed, heading, fix)
  0x03 a batch of positions with the sender's id (fits one 340-byte SBD MO)
  0x04 a text with its addressee
Text on BeiDou is plain GB18030, whose first byte is never 0x01-0x04.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

POS_SHORT, POS_FULL, POS_BATCH, TEXT = 0x01, 0x02, 0x03, 0x04
FIXES = ("none", "2d", "3d", "rtk")
_SHORT = struct.Struct(">Iii")
_FULL = struct.Struct(">IiihHHB")
_ENTRY = struct.Struct(">IiihHH")
ALT_UNKNOWN, U16_UNKNOWN = -32768, 0xFFFF
MAX_ID = 32


class ReportError(ValueError):
    """Bytes that are not a well-formed compact report."""


@dataclass(frozen=True)
class Fix:
    ts: int  # epoch seconds
    lat: float
    lon: float
    alt_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    fix: str = "3d"


def _deg(v: float, limit: float, name: str) -> int:
    if not -limit <= v <= limit:
        raise ReportError(f"{name} {v} out of range")
    return round(v * 1e7)


def _speed(v: float | None) -> int:
    return U16_UNKNOWN if v is None else max(0, min(U16_UNKNOWN - 1, round(v * 100)))


def _heading(v: float | None) -> int:
    return U16_UNKNOWN if v is None else round((v % 360) * 100) % 36000


def _entry(f: Fix) -> tuple[int, int, int, int, int, int]:
    alt = ALT_UNKNOWN if f.alt_m is None else max(-32767, min(32767, round(f.alt_m)))
    return (f.ts & 0xFFFFFFFF, _deg(f.lat, 90, "lat"), _deg(f.lon, 180, "lon"), alt,
            _speed(f.speed_mps), _heading(f.heading_deg))


def _fix_of(ts: int, lat: int, lon: int, alt: int, speed: int, heading: int, fix: str = "3d") -> Fix:
    if not (-900_000_000 <= lat <= 900_000_000 and -1_800_000_000 <= lon <= 1_800_000_000):
        raise ReportError("position out of range")
    return Fix(ts, lat / 1e7, lon / 1e7, None if alt == ALT_UNKNOWN else float(alt),
               None if speed == U16_UNKNOWN else speed / 100, None if heading == U16_UNKNOWN else heading / 100, fix)


def encode_short(f: Fix) -> bytes:
    return bytes([POS_SHORT]) + _SHORT.pack(f.ts & 0xFFFFFFFF, _deg(f.lat, 90, "lat"), _deg(f.lon, 180, "lon"))


def encode_full(f: Fix) -> bytes:
    return bytes([POS_FULL]) + _FULL.pack(*_entry(f), FIXES.index(f.fix))


def encode_batch(sender: str, fixes: list[Fix]) -> bytes:
    ident = sender.encode("ascii")
    if not 0 < len(ident) <= MAX_ID or not 0 < len(fixes) <= 255:
        raise ReportError("a batch needs a 1..32 character sender and 1..255 positions")
    return bytes([POS_BATCH, len(fixes), len(ident)]) + ident + b"".join(_ENTRY.pack(*_entry(f)) for f in fixes)


def encode_text(to: str, text: str) -> bytes:
    dest = to.encode("ascii")
    if len(dest) > MAX_ID:
        raise ReportError("addressee longer than 32 characters")
    return bytes([TEXT, len(dest)]) + dest + text.encode("utf-8")


@dataclass(frozen=True)
class Decoded:
    kind: str  # "positions" | "text"
    sender: str | None = None
    fixes: tuple[Fix, ...] = ()
    to: str | None = None
    text: str = ""


def decode(data: bytes) -> Decoded:
    """Decode one report; ReportError when it is not one."""
    if not data:
        raise ReportError("empty report")
    kind, body = data[0], data[1:]
    try:
        if kind == POS_SHORT and len(body) == _SHORT.size:
            ts, lat, lon = _SHORT.unpack(body)
            return Decoded("positions", fixes=(_fix_of(ts, lat, lon, ALT_UNKNOWN, U16_UNKNOWN, U16_UNKNOWN, "2d"),))
        if kind == POS_FULL and len(body) == _FULL.size:
            *entry, fix = _FULL.unpack(body)
            if fix >= len(FIXES):
                raise ReportError(f"fix code {fix} unknown")
            return Decoded("positions", fixes=(_fix_of(*entry, FIXES[fix]),))
        if kind == POS_BATCH and len(body) >= 2:
            count, id_len = body[0], body[1]
            if not (0 < id_len <= MAX_ID and count > 0 and len(body) == 2 + id_len + count * _ENTRY.size):
                raise ReportError("batch length does not match its header")
            sender = body[2:2 + id_len].decode("ascii")
            fixes = tuple(_fix_of(*e) for e in _ENTRY.iter_unpack(body[2 + id_len:]))
            return Decoded("positions", sender=sender, fixes=fixes)
        if kind == TEXT and len(body) >= 1 and len(body) >= 1 + body[0]:
            to = body[1:1 + body[0]].decode("ascii")
            return Decoded("text", to=to, text=body[1 + body[0]:].decode("utf-8"))
    except (UnicodeDecodeError, struct.error) as exc:
        raise ReportError(str(exc)) from None
    raise ReportError(f"not a compact report (type 0x{kind:02x}, {len(data)} bytes)")
