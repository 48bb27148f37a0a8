"""Readings → one fix per epoch (a receiver sends RMC, GGA, VTG, GSA... for each measurement).

An epoch ends when a sentence names another UTC time, when a sentence type
it already holds comes again (receivers without a fix often send no time),
when it holds every type the previous epoch held (so a steady receiver's
epoch is published as soon as its last sentence arrives, not one epoch
late), or when the line goes quiet (`flush()`, called by the driver). GSA may
repeat within an epoch (one per constellation).

Combining: the position from GGA (with altitude) or else RMC; the fix from
GGA's quality, lowered to 2d by a GSA that says 2D, or from RMC's status and
GSA when there is no GGA; speed and heading from RMC or else VTG. An epoch
whose fix is `none`, or that has no position, is a no-fix epoch: the driver
reports it as status, never as a position.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.nmea_position.sentences import Reading
from gateway.model import Fix

REPEATABLE = frozenset({"GSA"})
# GGA quality: 0 invalid, 1 GPS, 2 DGPS, 3 PPS, 4 RTK fixed, 5 RTK float, 6 estimated, 7 manual, 8 simulation
_QUALITY: dict[int, Fix] = {0: "none", 1: "3d", 2: "3d", 3: "3d", 4: "rtk", 5: "rtk", 6: "2d", 7: "none", 8: "none"}


@dataclass(frozen=True, slots=True)
class Epoch:
    fix: Fix
    lat: float | None
    lon: float | None
    alt_m: float | None
    speed_mps: float | None
    heading_deg: float | None
    satellites: int | None
    hdop: float | None
    kinds: frozenset[str]

    @property
    def has_position(self) -> bool:
        return self.fix != "none" and self.lat is not None and self.lon is not None


class EpochAssembler:
    def __init__(self) -> None:
        self._group: list[Reading] = []
        self._time: int | None = None
        self._learned: frozenset[str] | None = None  # the types of the last closed epoch

    @property
    def open(self) -> bool:
        return bool(self._group)

    def add(self, r: Reading) -> list[Epoch]:
        """Take one reading; the epochs it closes (none, one, or two when it also completes its own)."""
        out: list[Epoch] = []
        kinds = {g.kind for g in self._group}
        new_time = r.time_ms is not None and self._time is not None and r.time_ms != self._time
        if self._group and (new_time or (r.kind in kinds and r.kind not in REPEATABLE)):
            out.append(self._close())
        self._group.append(r)
        if r.time_ms is not None:
            self._time = r.time_ms
        if self._learned is not None and self._learned <= {g.kind for g in self._group}:
            out.append(self._close())
        return out

    def flush(self) -> Epoch | None:
        return self._close() if self._group else None

    def _close(self) -> Epoch:
        group, self._group, self._time = self._group, [], None
        epoch = combine(group)
        self._learned = epoch.kinds
        return epoch


def _first(group: list[Reading], kind: str) -> Reading | None:
    return next((g for g in group if g.kind == kind), None)


def combine(group: list[Reading]) -> Epoch:
    gga, rmc, vtg = _first(group, "GGA"), _first(group, "RMC"), _first(group, "VTG")
    gsa_types = [g.fix_type for g in group if g.kind == "GSA" and g.fix_type is not None]
    gsa = max(gsa_types) if gsa_types else None  # the best constellation's fix
    fix: Fix
    if gga is not None:
        fix = _QUALITY.get(gga.quality or 0, "none")
        if fix == "3d" and gsa == 2:
            fix = "2d"
        if rmc is not None and rmc.valid is False:
            fix = "none"  # the receiver says its data are not valid
    elif rmc is not None:
        fix = "none" if not rmc.valid else "3d" if gsa == 3 else "2d"
    else:
        fix = "none"
    if gsa == 1:
        fix = "none"
    where = gga if gga is not None and gga.lat is not None else rmc
    lat, lon = (where.lat, where.lon) if where is not None else (None, None)
    speed = rmc.speed_mps if rmc is not None and rmc.speed_mps is not None else vtg.speed_mps if vtg else None
    heading = rmc.heading_deg if rmc is not None and rmc.heading_deg is not None else vtg.heading_deg if vtg else None
    sats = gga.satellites if gga is not None and gga.satellites is not None else (
        sum(g.satellites or 0 for g in group if g.kind == "GSA") or None)
    hdop = gga.hdop if gga is not None and gga.hdop is not None else next(
        (g.hdop for g in group if g.kind == "GSA" and g.hdop is not None), None)
    return Epoch(fix, lat, lon, gga.alt_m if gga is not None else None, speed, heading, sats, hdop,
                 frozenset(g.kind for g in group))
