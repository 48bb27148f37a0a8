"""NMEA 0183 positions of body-worn transmitters (and any tracker that speaks NMEA), one device per link.

Transports (sources.py): `tcp://HOST:PORT` (the gateway connects), `tcp-listen://HOST:PORT` (the
transmitter connects in), `udp-listen://HOST:PORT`, `serial:///dev/...?baud=N` (default 4800).
Sentences (sentences.py): RMC, GGA, VTG and GSA with a correct checksum, combined into one Position
per epoch (epoch.py) with `source: "nmea"`; no fix is status (`gnss.fix: none`), never a position at 0,0.
Bad checksums, unparsable or out-of-range sentences, noise and runaway lines are dropped and counted
(status `nmea`, `Driver.stats()`).

Online from the first valid sentence; offline after `timeout_s` without one. On a TCP client or
serial link the silence also closes the link (the supervisor reopens it with backoff: a half-open TCP
connection is never trusted for long); a listening link stays open for the transmitter to come back.

Options: `timeout_s` silence before offline (10), `min_interval_s` between published positions (1;
epochs in between are counted as `thinned`), `epoch_gap_s` quiet time that ends an epoch (0.3),
`status_s` how often changed counters are published (30).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from typing import Any, ClassVar

from drivers.nmea_position.epoch import Epoch, EpochAssembler
from drivers.nmea_position.sentences import LineSplitter, NmeaError, parse_line
from drivers.nmea_position.sources import END, RESET, SCHEMES, Inbox, open_source, parse_source_url
from gateway.driver_api import Driver, DriverContext, LinkSpec
from gateway.model import Event, Position, StatusUpdate, now_ms

log = logging.getLogger(__name__)

Loc = tuple[str | int, ...]
OPTIONS: dict[str, tuple[float, float, float]] = {  # name: (min, max, default)
    "timeout_s": (1.0, 86_400.0, 10.0),
    "min_interval_s": (0.0, 3_600.0, 1.0),
    "epoch_gap_s": (0.05, 5.0, 0.3),
    "status_s": (1.0, 3_600.0, 30.0),
}
NO_FIX_EPOCHS = 3  # epochs without a fix before a fix counts as lost (one bad epoch is no event)


class NmeaPositionDriver(Driver):
    name: ClassVar[str] = "nmea_position"
    default_kind: ClassVar[str] = "bodycam"
    transport_schemes: ClassVar[tuple[str, ...]] = SCHEMES

    def __init__(self, link: LinkSpec, ctx: DriverContext) -> None:
        super().__init__(link, ctx)
        self.url = parse_source_url(link.transport)
        self.device = link.devices[0]
        self.opt = {k: float(self.device.options.get(k, d)) for k, (_, _, d) in OPTIONS.items()}
        self.counts: Counter[str] = Counter()
        self.splitter = LineSplitter()
        self.online = False
        self._fix = "none"
        self._no_fix_run = 0
        self._fix_lost_reported = False
        self._last_position = -math.inf
        self._published_counts: dict[str, int] = {}

    # -- kit checks ------------------------------------------------------------------------
    @classmethod
    def check_device(cls, options: dict[str, Any], transport: str) -> list[tuple[Loc, str]]:
        problems: list[tuple[Loc, str]] = []
        try:
            parse_source_url(transport)
        except ValueError as exc:
            problems.append(((), f"transport {transport!r}: {exc}"))
        for name in sorted(set(options) - set(OPTIONS)):
            problems.append(((name,), f"unknown option {name!r}; the nmea_position driver takes {', '.join(OPTIONS)}"))
        for name, (lo, hi, _) in OPTIONS.items():
            v = options.get(name)
            if name in options and (isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi):
                problems.append(((name,), f"{name} must be a number {lo:g}..{hi:g} (seconds)"))
        return problems

    @classmethod
    def check_link(cls, devices: list[dict[str, Any]]) -> list[tuple[int, Loc, str]]:
        return [(i, (), f"one nmea_position device per transport: {dev.get('transport')} is also "
                        f"{devices[0].get('id')!r}'s") for i, dev in enumerate(devices) if i > 0]

    # -- the link ------------------------------------------------------------------------
    async def run(self) -> None:
        inbox = Inbox(self.counts)
        splitter = self.splitter
        splitter.reset()
        epochs = EpochAssembler()
        async with open_source(self.url, inbox) as how:
            self.counts["opened"] += 1
            self.ctx.publish(StatusUpdate(self.device.id, now_ms(), {"link": how}))
            try:
                await self._serve(inbox, splitter, epochs)
            finally:
                if self.online:
                    self._set_online(False, "link closed")

    async def _serve(self, inbox: Inbox, splitter: LineSplitter, epochs: EpochAssembler) -> None:
        heard = time.monotonic()  # the link just opened: the silence clock starts now
        last_data = heard
        next_status = heard + self.opt["status_s"]
        while True:
            now = time.monotonic()
            deadlines = [heard + self.opt["timeout_s"], next_status]
            if epochs.open:
                deadlines.append(last_data + self.opt["epoch_gap_s"])
            item = await inbox.get(max(0.0, min(deadlines) - now))
            now = time.monotonic()
            if isinstance(item, Exception):
                raise item
            if item is None:
                if epochs.open and now - last_data >= self.opt["epoch_gap_s"]:
                    self._epoch(epochs.flush())
                if now >= next_status:
                    next_status = now + self.opt["status_s"]
                    self._publish_counts()
                if now - heard >= self.opt["timeout_s"]:
                    silent = f"no valid NMEA sentence for {self.opt['timeout_s']:g} s"
                    if self.online:
                        self._set_online(False, silent)
                    if self.url.stream is not None:
                        raise ConnectionError(f"{self.url}: {silent}")
                    heard = now  # a listening link waits on; the next timeout is another period away
                continue
            last_data = now
            if item == RESET:
                splitter.reset()
                continue
            lines = splitter.end() if item == END else splitter.feed(item) if isinstance(item, bytes) else []
            for line in lines:
                if self._line(line, epochs):
                    heard = now

    def _line(self, line: str, epochs: EpochAssembler) -> bool:
        """One candidate line; True when it was a valid sentence."""
        self.counts["lines"] += 1
        try:
            reading = parse_line(line)
        except NmeaError as exc:
            self.counts[exc.reason] += 1
            return False
        self.counts["sentences"] += 1
        if not self.online:
            self._set_online(True, f"NMEA heard on {self.url}")
        if reading is None:
            self.counts["ignored"] += 1
            return True
        for epoch in epochs.add(reading):
            self._epoch(epoch)
        return True

    def _epoch(self, epoch: Epoch | None) -> None:
        if epoch is None:
            return
        self.counts["epochs"] += 1
        dev = self.device.id
        fix = epoch.fix if epoch.has_position else "none"
        if fix != self._fix:
            self._fix = fix
            self.ctx.publish(StatusUpdate(dev, now_ms(), {"gnss": {"fix": fix, "satellites": epoch.satellites,
                                                                   "hdop": epoch.hdop}}))
        if fix == "none":
            self.counts["no_fix_epochs"] += 1
            self._no_fix_run += 1
            if self._no_fix_run == NO_FIX_EPOCHS and self.counts["positions"] and not self._fix_lost_reported:
                self._fix_lost_reported = True
                self.ctx.publish(Event(dev, now_ms(), "gnss_no_fix", "warning",
                                       f"{self.device.name}: no satellite fix (last position is stale)"))
            return
        self._no_fix_run = 0
        if self._fix_lost_reported:
            self._fix_lost_reported = False
            self.ctx.publish(Event(dev, now_ms(), "gnss_fix", "info", f"{self.device.name}: satellite fix again ({fix})"))
        mono = time.monotonic()
        if mono - self._last_position < self.opt["min_interval_s"] - 1e-3:
            self.counts["thinned"] += 1
            return
        self._last_position = mono
        self.counts["positions"] += 1
        assert epoch.lat is not None and epoch.lon is not None
        self.ctx.publish(Position(dev, now_ms(), round(epoch.lat, 7), round(epoch.lon, 7), epoch.alt_m,
                                  epoch.heading_deg, None if epoch.speed_mps is None else round(epoch.speed_mps, 3),
                                  fix, "nmea"))

    def _set_online(self, online: bool, reason: str) -> None:
        self.online = online
        log.info("%s %s: %s", self.device.id, "online" if online else "offline", reason)
        self.ctx.set_online(self.device.id, online, reason)
        self._publish_counts()

    def _publish_counts(self) -> None:
        counts = self.stats()["nmea"]
        if counts != self._published_counts:
            self._published_counts = counts
            self.ctx.publish(StatusUpdate(self.device.id, now_ms(), {"nmea": counts}))

    def stats(self) -> dict[str, Any]:
        counts = dict(self.counts, overlong=self.splitter.overlong, noise=self.splitter.noise)
        return {"nmea": {k: v for k, v in sorted(counts.items()) if v}}
