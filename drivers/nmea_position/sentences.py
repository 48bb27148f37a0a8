"""NMEA 0183 lines → plain readings (RMC, GGA, VTG, GSA), parsed with pynmea2.

Pure and fuzzable. `LineSplitter` cuts a byte stream (or a datagram) into
candidate lines of printable ASCII starting at their last `$`, with a bounded
buffer; `parse_line()` checks the checksum (a line without one is refused
too), lets pynmea2 split the fields, and copies what the driver needs into a
`Reading` of plain numbers, checked for range. It returns None for a valid
sentence of another type (GSV, GLL, ZDA, TXT, proprietary ones) and raises
`NmeaError` (with a counter name as `reason`) for everything else, never any
other exception. pynmea2 reads an empty latitude as 0.0, so emptiness is
judged on the raw fields: a receiver without a fix never lands at 0°, 0°.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import pynmea2

MAX_LINE = 256  # NMEA 0183 says 82 characters; some receivers send longer proprietary lines
KNOT_MPS = 0.514444
KMH_MPS = 1 / 3.6
USED = frozenset({"RMC", "GGA", "VTG", "GSA"})
_PRINTABLE = frozenset(range(0x20, 0x7F))


class NmeaError(ValueError):
    """A line that is not a usable sentence; `reason` names the counter it goes to."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Reading:
    """What one sentence says; None where it says nothing (or the field is empty)."""

    kind: str  # RMC, GGA, VTG, GSA
    time_ms: int | None = None  # UTC time of day of the epoch (RMC, GGA)
    lat: float | None = None
    lon: float | None = None
    valid: bool | None = None  # RMC: status A and a mode other than N
    quality: int | None = None  # GGA fix quality 0..8
    satellites: int | None = None
    hdop: float | None = None
    alt_m: float | None = None  # GGA: above mean sea level
    speed_mps: float | None = None
    heading_deg: float | None = None
    fix_type: int | None = None  # GSA: 1 none, 2 2D, 3 3D


class LineSplitter:
    """Bytes → candidate lines (`$...`), at most MAX_LINE characters each; counts what it throws away."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.overlong = 0  # runaway lines dropped
        self.noise = 0  # lines with nothing that could be a sentence

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        lines: list[str] = []
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                break
            raw = bytes(self._buf[:end])
            del self._buf[:end + 1]
            line = self._clean(raw)
            if line is not None:
                lines.append(line)
        if len(self._buf) > MAX_LINE:
            start = self._buf.rfind(b"$")
            tail = self._buf[start:] if start >= 0 else b""
            self.overlong += 1
            self._buf = bytearray(tail if 0 < len(tail) <= MAX_LINE else b"")
        return lines

    def end(self) -> list[str]:
        """The end of a datagram (or of a connection): what is buffered is a whole line, or nothing."""
        raw, self._buf = bytes(self._buf), bytearray()
        line = self._clean(raw) if raw.strip() else None
        return [line] if line is not None else []

    def reset(self) -> None:
        self._buf.clear()

    def _clean(self, raw: bytes) -> str | None:
        raw = raw.rstrip(b"\r")
        start = raw.rfind(b"$")
        if start < 0 or not raw[start:]:
            if raw.strip():
                self.noise += 1
            return None
        body = raw[start:]
        if len(body) > MAX_LINE:
            self.overlong += 1
            return None
        if not _PRINTABLE.issuperset(body):
            self.noise += 1
            return None
        return body.decode("ascii")


def _float(text: object, lo: float, hi: float, what: str) -> float | None:
    if text in (None, ""):
        return None
    try:
        value = float(str(text))
    except ValueError:
        raise NmeaError("bad_value", f"{what} {text!r} is not a number") from None
    if not math.isfinite(value) or not lo <= value <= hi:
        raise NmeaError("bad_value", f"{what} {value} out of range")
    return value


def _int(text: object, lo: int, hi: int, what: str) -> int | None:
    value = _float(text, lo, hi, what)
    return None if value is None else int(value)


def _time_ms(msg: pynmea2.NMEASentence, raw: str) -> int | None:
    if not raw:
        return None
    try:
        t = msg.timestamp
    except (ValueError, TypeError, AttributeError, IndexError):
        raise NmeaError("bad_value", f"time {raw!r}") from None
    if not isinstance(t, dt.time):  # pynmea2 hands back the raw text when it cannot read a time
        raise NmeaError("bad_value", f"time {raw!r}")
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1000 + t.microsecond // 1000


def _lat_lon(msg: pynmea2.NMEASentence) -> tuple[float | None, float | None]:
    """(lat, lon) in degrees, or (None, None) when the fields are empty."""
    if not msg.lat or not msg.lon:
        return None, None
    if msg.lat_dir not in ("N", "S") or msg.lon_dir not in ("E", "W"):
        raise NmeaError("bad_value", f"hemisphere {msg.lat_dir!r}/{msg.lon_dir!r}")
    try:
        lat, lon = float(msg.latitude), float(msg.longitude)
    except (ValueError, TypeError, AttributeError, IndexError):
        raise NmeaError("bad_value", f"position {msg.lat!r} {msg.lon!r}") from None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise NmeaError("bad_value", f"position {lat}, {lon} out of range")
    # ddmm.mmmm: minutes must be below 60
    for text, deg_digits in ((msg.lat, 2), (msg.lon, 3)):
        if _float(str(text)[deg_digits:], 0, 60, "minutes") == 60:
            raise NmeaError("bad_value", f"minutes of {text!r}")
    return lat, lon


def parse_line(line: str) -> Reading | None:
    """One line (`$GPRMC,...*HH`, no line end) → a Reading; None for a valid sentence of another type."""
    try:
        msg = pynmea2.parse(line, check=True)
    except pynmea2.ChecksumError as exc:
        missing = "missing" in str(exc)
        raise NmeaError("no_checksum" if missing else "bad_checksum", line[:40]) from None
    except pynmea2.SentenceTypeError:
        return None  # a well-formed sentence type pynmea2 does not know (proprietary ones)
    except (pynmea2.ParseError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise NmeaError("unparsable", f"{line[:40]!r}: {type(exc).__name__}") from None
    kind = getattr(msg, "sentence_type", "")
    if kind not in USED or not isinstance(msg, pynmea2.TalkerSentence):
        return None
    try:
        return _read(kind, msg)
    except NmeaError:
        raise
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError) as exc:
        raise NmeaError("unparsable", f"{line[:40]!r}: {type(exc).__name__}") from None


def _read(kind: str, msg: pynmea2.NMEASentence) -> Reading:
    data = msg.data
    if kind == "RMC":
        lat, lon = _lat_lon(msg)
        mode = msg.mode_indicator if len(data) > 11 else ""
        knots = _float(msg.spd_over_grnd, 0, 10_000, "speed")
        return Reading("RMC", _time_ms(msg, data[0]), lat, lon,
                       valid=msg.status == "A" and mode != "N",
                       speed_mps=None if knots is None else knots * KNOT_MPS,
                       heading_deg=_float(msg.true_course, 0, 360, "course"))
    if kind == "GGA":
        lat, lon = _lat_lon(msg)
        alt = _float(msg.altitude, -1_000, 100_000, "altitude")
        if alt is not None and msg.altitude_units not in ("M", "m", ""):
            raise NmeaError("bad_value", f"altitude unit {msg.altitude_units!r}")
        return Reading("GGA", _time_ms(msg, data[0]), lat, lon,
                       quality=_int(msg.gps_qual, 0, 9, "quality") or 0,
                       satellites=_int(msg.num_sats, 0, 99, "satellites"),
                       hdop=_float(msg.horizontal_dil, 0, 100, "hdop"), alt_m=alt)
    if kind == "VTG":
        kmh = _float(msg.spd_over_grnd_kmph, 0, 20_000, "speed")
        knots = _float(msg.spd_over_grnd_kts, 0, 10_000, "speed")
        speed = kmh * KMH_MPS if kmh is not None else knots * KNOT_MPS if knots is not None else None
        return Reading("VTG", speed_mps=speed, heading_deg=_float(msg.true_track, 0, 360, "course"),
                       valid=(msg.faa_mode != "N") if len(data) > 8 and msg.faa_mode else None)
    sats = sum(1 for i in range(2, 14) if i < len(data) and data[i])
    return Reading("GSA", fix_type=_int(msg.mode_fix_type, 1, 3, "fix type"), satellites=sats,
                   hdop=_float(msg.hdop, 0, 100, "hdop"))
