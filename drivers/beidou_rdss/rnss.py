"""The terminal's own RNSS receiver: NMEA `RMC` / `GGA` (any talker: GN, BD, GP, ...) → the modem's Position.

Parsed with pynmea2. GGA gives the fix quality and altitude, RMC the speed
and course; a Position goes out at most once per `interval_s` (the receiver
talks at 1 Hz or more; the uplink does not need that). A GGA publishes; an RMC
only when no GGA comes (a receiver configured for RMC alone), as fix "2d".
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass

import pynmea2

from gateway.model import Fix, Position, now_ms

NMEA_CMDS = frozenset({"RMC", "GGA"})
IGNORED_NMEA = frozenset({"GSA", "GSV", "GLL", "VTG", "ZDA", "TXT", "GST", "GBS"})  # valid, not needed
KNOT = 0.514444
RECENT_S = 3.0  # a GGA this recent still says what the fix is
_QUALITY: dict[int, Fix] = {0: "none", 1: "3d", 2: "3d", 3: "3d", 4: "rtk", 5: "rtk", 6: "2d"}


@dataclass
class _Motion:
    at: float
    speed_mps: float | None
    heading_deg: float | None


@dataclass
class _Quality:
    at: float
    fix: Fix
    alt_m: float | None


def _number(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


class Rnss:
    def __init__(self, device: str, interval_s: float) -> None:
        self.device = device
        self.interval_s = interval_s
        self.counts: Counter[str] = Counter()
        self._last_published = -math.inf
        self._motion: _Motion | None = None
        self._quality: _Quality | None = None
        self._rmc_alone = 0  # RMCs since the last GGA: a receiver that sends no GGA is known after two

    def feed(self, line: str) -> Position | None:
        """One checked sentence line (`$..*HH`); a Position when one is due."""
        try:
            msg = pynmea2.parse(line, check=True)
            return self._gga(msg) if isinstance(msg, pynmea2.GGA) else self._rmc(msg) if isinstance(msg, pynmea2.RMC) else None
        except (pynmea2.ParseError, ValueError, TypeError, AttributeError, IndexError):
            self.counts["bad_nmea"] += 1
            return None

    def _gga(self, msg: pynmea2.GGA) -> Position | None:
        now = time.monotonic()
        quality = int(msg.gps_qual) if msg.gps_qual not in (None, "") else 0
        fix = _QUALITY.get(quality, "3d")
        self._quality = _Quality(now, fix, _number(msg.altitude))
        self._rmc_alone = 0
        if fix == "none" or not msg.lat or not msg.lon:
            self.counts["rnss_no_fix"] += 1
            return None
        return self._due(now, msg.latitude, msg.longitude, fix)

    def _rmc(self, msg: pynmea2.RMC) -> Position | None:
        now = time.monotonic()
        speed = _number(msg.spd_over_grnd)
        self._motion = _Motion(now, None if speed is None else speed * KNOT, _number(msg.true_course))
        if msg.status != "A" or not msg.lat or not msg.lon:
            self.counts["rnss_no_fix"] += 1
            return None
        self._rmc_alone += 1
        if self._rmc_alone < 2 or (self._quality is not None and now - self._quality.at < RECENT_S):
            return None  # the GGA of the same epoch publishes, with its quality and altitude
        return self._due(now, msg.latitude, msg.longitude, "2d")

    def _due(self, now: float, lat: float, lon: float, fix: Fix) -> Position | None:
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            self.counts["bad_nmea"] += 1
            return None
        self.counts["rnss_fixes"] += 1
        if now - self._last_published < self.interval_s:
            return None
        self._last_published = now
        motion = self._motion if self._motion is not None and now - self._motion.at < RECENT_S else None
        quality = self._quality if self._quality is not None and now - self._quality.at < RECENT_S else None
        return Position(self.device, now_ms(), round(lat, 7), round(lon, 7),
                        quality.alt_m if quality else None,
                        motion.heading_deg if motion else None, motion.speed_mps if motion else None,
                        fix, "beidou")
