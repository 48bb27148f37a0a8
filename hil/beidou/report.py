"""fieldgw's message contents as the terminal sees them (docs/serial-protocols.md, Iridium "payloads").

Content goes over the air as *code*: the hex digits of the bytes. Text is
GB18030; a first byte 0x01-0x03 marks a compact binary report instead.
The simulator only encodes 0x01 (the team cards' positions) and decodes all
three for the control port's `received` listing.
"""

from __future__ import annotations

import struct
from typing import Any

SHORT = struct.Struct(">BIii")  # 0x01: type, ts u32 epoch s, lat i32 1e-7 deg, lon i32 1e-7 deg
FULL = struct.Struct(">BIiihHHB")  # 0x02: ... alt i16 m, speed u16 cm/s, heading u16 0.01 deg, fix u8
ENTRY = struct.Struct(">IiihHH")  # 0x03 entries: ts, lat, lon, alt, speed, heading
REPORT_TYPES = (0x01, 0x02, 0x03)


def _e7(deg: float) -> int:
    return round(deg * 1e7)


def short_position(ts: int, lat: float, lon: float) -> bytes:
    """A 13-byte 0x01 report."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"position out of range: {lat}, {lon}")
    return SHORT.pack(0x01, ts & 0xFFFFFFFF, _e7(lat), _e7(lon))


def _fix(ts: int, lat: int, lon: int, *extra: int) -> dict[str, Any]:
    out: dict[str, Any] = {"ts": ts, "lat": lat / 1e7, "lon": lon / 1e7}
    if extra:
        alt, speed, heading = extra[:3]
        out.update(alt_m=None if alt == -32768 else alt, speed_cms=None if speed == 0xFFFF else speed,
                   heading_cdeg=None if heading == 0xFFFF else heading)
    return out


def decode_report(data: bytes) -> dict[str, Any] | None:
    """A decoded 0x01/0x02/0x03 report, {"error": ...} if malformed, None if not a report."""
    if not data or data[0] not in REPORT_TYPES:
        return None
    kind = data[0]
    if kind == 0x01:
        if len(data) != SHORT.size:
            return {"type": 1, "error": f"length {len(data)}, expected {SHORT.size}"}
        return {"type": 1, **_fix(*SHORT.unpack(data)[1:])}
    if kind == 0x02:
        if len(data) != FULL.size:
            return {"type": 2, "error": f"length {len(data)}, expected {FULL.size}"}
        *fields, fix = FULL.unpack(data)[1:]
        return {"type": 2, **_fix(*fields), "fix": fix}
    if len(data) < 3 or len(data) != 3 + data[2] + data[1] * ENTRY.size:
        return {"type": 3, "error": f"length {len(data)} does not match its header"}
    n, id_len = data[1], data[2]
    base = 3 + id_len
    entries = [_fix(*ENTRY.unpack_from(data, base + i * ENTRY.size)) for i in range(n)]
    return {"type": 3, "id": data[3:base].decode("ascii", "replace"), "entries": entries}


def text_of(data: bytes) -> str | None:
    """The GB18030 text of a message, or None (a binary report, or not valid GB18030)."""
    if not data or data[0] in REPORT_TYPES:
        return None
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        return None
