"""Team units (`--peer`): other Iridium terminals of the team that report their position to this
modem. Each moves from where it starts along its heading at its speed (a great circle, the
heading it reports being its course at that moment) and, every `--peer-interval` seconds, its
`0x03` report lands in this modem's gateway mailbox as an MT message, as `mt HEX` queues one.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .report import check_id, parse_heading, parse_lat_lon, parse_speed, position_report

log = logging.getLogger(__name__)

EARTH_RADIUS_M = 6371008.8
SPEC = "ID:LAT,LON[:HEADING_DEG:SPEED_KMH]"

Deliver = Callable[[bytes], dict[str, Any]]  # queue an MT message, ring; raises ValueError if refused


@dataclass(frozen=True)
class Peer:
    unit_id: str
    lat: float
    lon: float
    heading_deg: float | None = None  # None (with speed None): stands still, course and speed unknown
    speed_kmh: float | None = None

    def position_at(self, elapsed_s: float) -> tuple[float, float, float | None]:
        """(lat, lon, course) after `elapsed_s` seconds on its great circle."""
        if self.heading_deg is None or not self.speed_kmh or elapsed_s <= 0:
            return self.lat, self.lon, self.heading_deg
        delta = self.speed_kmh / 3.6 * elapsed_s / EARTH_RADIUS_M  # angular distance
        p1, l1, theta = math.radians(self.lat), math.radians(self.lon), math.radians(self.heading_deg)
        p2 = math.asin(max(-1.0, min(1.0, math.sin(p1) * math.cos(delta)
                                     + math.cos(p1) * math.sin(delta) * math.cos(theta))))
        l2 = l1 + math.atan2(math.sin(theta) * math.sin(delta) * math.cos(p1),
                             math.cos(delta) - math.sin(p1) * math.sin(p2))
        back = math.atan2(math.sin(l1 - l2) * math.cos(p1),
                          math.cos(p2) * math.sin(p1) - math.sin(p2) * math.cos(p1) * math.cos(l1 - l2))
        lon = (math.degrees(l2) + 180) % 360 - 180
        course = (math.degrees(back) + 180) % 360
        return math.degrees(p2), lon, course

    def report(self, elapsed_s: float, ts: int) -> bytes:
        lat, lon, course = self.position_at(elapsed_s)
        return position_report(self.unit_id, ts, lat, lon, speed_kmh=self.speed_kmh, heading_deg=course)


def parse_peer(text: str) -> Peer:
    """A `--peer` value; ValueError with the reason."""
    parts = text.split(":")
    if len(parts) not in (2, 4):
        raise ValueError(f"expected {SPEC}, got {text!r}")
    unit_id = check_id(parts[0])
    lat, sep, lon = parts[1].partition(",")
    if not sep:
        raise ValueError(f"expected LAT,LON after {unit_id}:, got {parts[1]!r}")
    la, lo = parse_lat_lon(lat, lon)
    if len(parts) == 2:
        return Peer(unit_id, la, lo)
    return Peer(unit_id, la, lo, parse_heading(parts[2]), parse_speed(parts[3]))


class PeerReporter:
    """Sends each peer's report every `interval` seconds, the peers spread over the interval."""

    def __init__(self, peers: list[Peer], interval: float, deliver: Deliver) -> None:
        self.peers = peers
        self.interval = interval
        self.deliver = deliver
        self.sent = 0
        self.dropped = 0  # refused by the mailbox (full)
        self._tasks: list[asyncio.Task[None]] = []
        self._t0 = 0.0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        n = len(self.peers)
        for i, peer in enumerate(self.peers):  # first within the interval, not all at once
            first = self.interval * (i + 1) / (n + 1)
            self._tasks.append(loop.create_task(self._every(peer, first), name=f"iridium-peer-{peer.unit_id}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _every(self, peer: Peer, first: float) -> None:
        clock = asyncio.get_running_loop()
        due = clock.time() + first
        while True:
            await asyncio.sleep(max(0.0, due - clock.time()))
            self.send(peer, clock.time() - self._t0)
            due = max(due + self.interval, clock.time())  # after a stall, carry on rather than burst

    def send(self, peer: Peer, elapsed_s: float) -> None:
        try:
            reply = self.deliver(peer.report(elapsed_s, int(time.time())))
        except ValueError as exc:
            self.dropped += 1
            log.warning("peer %s: report dropped: %s", peer.unit_id, exc)
            return
        self.sent += 1
        log.info("peer %s: report queued as MTMSN %s", peer.unit_id, reply.get("mtmsn"))

    def stats(self) -> dict[str, Any]:
        return {"peers": [p.unit_id for p in self.peers], "peer_reports": self.sent,
                "peer_reports_dropped": self.dropped}
