"""NMEA 0183 sentences as a GPS receiver writes them (NMEA 2.3 field layout, as u-blox and most
receivers in body-worn transmitters emit by default).

`$` + talker + type + fields + `*` + two upper-case hex digits (XOR of every byte between `$` and `*`)
+ CR LF. Latitude ``ddmm.mmmmm``, longitude ``dddmm.mmmmm``, UTC time ``hhmmss.ss``, date ``ddmmyy``,
speed in knots (RMC, VTG) and km/h (VTG), course in degrees true.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

KNOTS_PER_KMH = 1 / 1.852
TALKERS = ("GP", "GN", "BD", "GB")


def checksum(body: str) -> str:
    """The two hex digits for the text between ``$`` and ``*``."""
    c = 0
    for b in body.encode("ascii"):
        c ^= b
    return f"{c:02X}"


def sentence(body: str, corrupt: bool = False) -> bytes:
    cs = checksum(body)
    if corrupt:  # a flipped bit in transit: the checksum no longer matches
        cs = f"{int(cs, 16) ^ 0x01:02X}"
    return f"${body}*{cs}\r\n".encode("ascii")


def _degrees_minutes(value: float, width: int) -> str:
    """``d…dmm.mmmmm`` with `width` degree digits; minutes rounded to 5 places (60.00000 carries over)."""
    a = abs(value)
    deg = int(a)
    minutes = round((a - deg) * 60, 5)
    if minutes >= 60:
        deg, minutes = deg + 1, 0.0
    return f"{deg:0{width}d}{minutes:08.5f}"


def lat_field(lat: float) -> tuple[str, str]:
    return _degrees_minutes(lat, 2), "N" if lat >= 0 else "S"


def lon_field(lon: float) -> tuple[str, str]:
    return _degrees_minutes(lon, 3), "E" if lon >= 0 else "W"


def time_field(t: dt.datetime) -> str:
    return f"{t.hour:02d}{t.minute:02d}{t.second:02d}.{t.microsecond // 10000:02d}"


def date_field(t: dt.datetime) -> str:
    return f"{t.day:02d}{t.month:02d}{t.year % 100:02d}"


@dataclass(frozen=True)
class Fix:
    """What the receiver reports for one epoch (position with its noise already applied)."""
    utc: dt.datetime
    valid: bool
    lat: float = 0.0
    lon: float = 0.0
    alt_m: float = 0.0
    speed_kmh: float = 0.0
    course_deg: float = 0.0
    satellites: int = 0
    hdop: float = 99.99
    geoid_sep_m: float = 0.0


def rmc(talker: str, f: Fix) -> str:
    if not f.valid:  # status V, no position; time and date still known from the receiver's RTC
        return f"{talker}RMC,{time_field(f.utc)},V,,,,,,,{date_field(f.utc)},,,N"
    la, ns = lat_field(f.lat)
    lo, ew = lon_field(f.lon)
    return (f"{talker}RMC,{time_field(f.utc)},A,{la},{ns},{lo},{ew},{f.speed_kmh * KNOTS_PER_KMH:.3f},"
            f"{f.course_deg:.2f},{date_field(f.utc)},,,A")


def vtg(talker: str, f: Fix) -> str:
    if not f.valid:
        return f"{talker}VTG,,T,,M,,N,,K,N"
    return (f"{talker}VTG,{f.course_deg:.2f},T,,M,{f.speed_kmh * KNOTS_PER_KMH:.3f},N,"
            f"{f.speed_kmh:.3f},K,A")


def gga(talker: str, f: Fix) -> str:
    if not f.valid:  # quality 0: no fix
        return f"{talker}GGA,{time_field(f.utc)},,,,,0,00,99.99,,,,,,"
    la, ns = lat_field(f.lat)
    lo, ew = lon_field(f.lon)
    return (f"{talker}GGA,{time_field(f.utc)},{la},{ns},{lo},{ew},1,{f.satellites:02d},{f.hdop:.2f},"
            f"{f.alt_m:.1f},M,{f.geoid_sep_m:.1f},M,,")


def gsa(talker: str, f: Fix, prns: list[int]) -> str:
    used = [f"{p:02d}" for p in prns[:12]] if f.valid else []
    used += [""] * (12 - len(used))
    if not f.valid:
        return f"{talker}GSA,A,1,{','.join(used)},99.99,99.99,99.99"
    pdop, vdop = round(f.hdop * 1.6, 2), round(f.hdop * 1.3, 2)
    return f"{talker}GSA,A,3,{','.join(used)},{pdop:.2f},{f.hdop:.2f},{vdop:.2f}"


def gsv(talker: str, sats: list[tuple[int, int, int, int]]) -> list[str]:
    """Satellites in view, four per sentence: (prn, elevation, azimuth, snr dB-Hz; 0 = not tracked)."""
    total = max(1, (len(sats) + 3) // 4)
    out = []
    for i in range(total):
        fields = []
        for prn, elev, az, snr in sats[i * 4:(i + 1) * 4]:
            fields.append(f"{prn:02d},{elev:02d},{az:03d},{snr:02d}" if snr else f"{prn:02d},{elev:02d},{az:03d},")
        out.append(f"{talker}GSV,{total},{i + 1},{len(sats):02d}" + ("," + ",".join(fields) if fields else ""))
    return out
