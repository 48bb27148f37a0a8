"""The transmitter's GPS receiver: every 1/rate seconds it advances the walk and writes one epoch of
sentences (RMC, VTG, GGA, then GSA and GSV when asked, the order u-blox receivers use) to every output.

Faults (control port): no fix (RMC status V, VTG mode N, GGA quality 0 with empty position fields),
the next N sentences with a wrong checksum, binary noise and cut lines, output stopped/started.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Any

from . import sentences as nm
from .outputs import Output
from .walk import Walker, move

log = logging.getLogger(__name__)

SENTENCE_TYPES = ("RMC", "VTG", "GGA", "GSA", "GSV")
# GSV noise: the sky as (prn, elevation, azimuth) per constellation; SNR jitters each epoch
GPS_SKY = [(2, 62, 45), (5, 41, 288), (12, 27, 160), (13, 73, 312), (15, 15, 90), (18, 33, 214),
           (20, 9, 31), (25, 55, 123), (29, 22, 340)]
BDS_SKY = [(1, 46, 141), (3, 52, 190), (6, 38, 202), (8, 66, 8), (13, 29, 227), (16, 61, 187),
           (21, 19, 62), (24, 34, 300)]


@dataclass
class ReceiverConfig:
    talker: str = "GP"
    rate_hz: float = 1.0
    types: tuple[str, ...] = ("RMC", "VTG", "GGA")
    noise_m: float = 1.5
    satellites: int = 9
    hdop: float = 0.9
    geoid_sep_m: float = -32.0
    seed: int | None = None


class Receiver:
    def __init__(self, cfg: ReceiverConfig, walker: Walker, outputs: list[Output]) -> None:
        self.cfg = cfg
        self.walker = walker
        self.outputs = outputs
        self.rng = random.Random(cfg.seed)
        self.fix = True
        self.running = True
        self.bad_checksum_left = 0
        self.epochs = 0
        self.sentences = 0
        self.bad_checksums_sent = 0
        self.garbage_bytes = 0
        self.last_fix: nm.Fix | None = None
        self._last = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    # -- the loop -----------------------------------------------------------------------------------

    def start(self) -> None:
        self._last = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="nmea-receiver")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def update(self) -> None:
        """Walk on to now."""
        now = time.monotonic()
        self.walker.advance(now - self._last)
        self._last = now

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.cfg.rate_hz
        # epochs on the wall clock's whole periods, as a receiver's (time ends in .00 at 1 Hz)
        next_at = loop.time() + (period - time.time() % period)
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            self.update()
            if self.running:
                self.emit()
            next_at += period
            if next_at < loop.time() - period:  # stalled (suspended, overloaded): skip, do not burst
                next_at = loop.time() + period

    # -- one epoch ----------------------------------------------------------------------------------

    def current_fix(self) -> nm.Fix:
        now = dt.datetime.now(dt.timezone.utc)
        period = 1.0 / self.cfg.rate_hz
        # the fix's time is its epoch: rounded to the period (receivers stamp whole epochs)
        ts = round(now.timestamp() / period) * period
        utc = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
        if not self.fix:
            return nm.Fix(utc=utc, valid=False)
        w = self.walker
        lat, lon = w.lat, w.lon
        if self.cfg.noise_m > 0:
            lat, lon = move(lat, lon, self.rng.gauss(0, self.cfg.noise_m), self.rng.gauss(0, self.cfg.noise_m))
        speed = max(0.0, w.speed_kmh + (self.rng.gauss(0, 0.1) if self.cfg.noise_m > 0 and w.speed_kmh else 0.0))
        return nm.Fix(utc=utc, valid=True, lat=lat, lon=lon, alt_m=w.alt_m, speed_kmh=speed,
                      course_deg=w.heading % 360.0, satellites=self.cfg.satellites, hdop=self.cfg.hdop,
                      geoid_sep_m=self.cfg.geoid_sep_m)

    def _sky(self) -> dict[str, list[tuple[int, int, int, int]]]:
        """Satellites in view per GSV talker, with SNRs (0 = in view, not tracked, while there is no fix)."""
        def snr(elev: int) -> int:
            return 0 if not self.fix else max(10, min(50, int(25 + elev / 3 + self.rng.gauss(0, 3))))
        gps = [(p, e, a, snr(e)) for p, e, a in GPS_SKY]
        bds = [(p, e, a, snr(e)) for p, e, a in BDS_SKY]
        t = self.cfg.talker
        if t == "GP":
            return {"GP": gps}
        if t in ("BD", "GB"):
            return {t: bds}
        return {"GP": gps, "BD": bds}  # GN: a GPS + BeiDou receiver lists each system's sky

    def bodies(self, fix: nm.Fix) -> list[str]:
        t, types = self.cfg.talker, self.cfg.types
        out = []
        if "RMC" in types:
            out.append(nm.rmc(t, fix))
        if "VTG" in types:
            out.append(nm.vtg(t, fix))
        if "GGA" in types:
            out.append(nm.gga(t, fix))
        if "GSA" in types or "GSV" in types:
            sky = self._sky()
            if "GSA" in types:
                for talker, sats in sky.items():
                    used = [p for p, _e, _a, s in sats if s][: self.cfg.satellites]
                    out.append(nm.gsa(t, fix, used))  # GN: one GNGSA per system
            if "GSV" in types:
                for talker, sats in sky.items():
                    out.extend(nm.gsv(talker, sats))
        return out

    def emit(self) -> list[bytes]:
        fix = self.current_fix()
        self.last_fix = fix
        epoch = []
        for body in self.bodies(fix):
            corrupt = self.bad_checksum_left > 0
            if corrupt:
                self.bad_checksum_left -= 1
                self.bad_checksums_sent += 1
            epoch.append(nm.sentence(body, corrupt))
        for out in self.outputs:
            out.send(epoch)
        self.epochs += 1
        self.sentences += len(epoch)
        return epoch

    # -- faults -------------------------------------------------------------------------------------

    def garbage(self, kind: str, n: int) -> int:
        """Noise on the line: ``binary`` (n random bytes, including NUL, 0xB5 0x62 UBX sync and '$'),
        ``partial`` (the first half of a sentence, no CR LF: the next sentence follows straight on),
        or ``both``. Returns the bytes written."""
        data = b""
        if kind in ("binary", "both"):
            data += bytes([0xB5, 0x62]) + bytes(self.rng.randrange(256) for _ in range(max(0, n - 2)))
        if kind in ("partial", "both"):
            body = nm.gga(self.cfg.talker, self.last_fix or self.current_fix())
            whole = nm.sentence(body)
            data += whole[: len(whole) // 2]
        for out in self.outputs:
            out.raw(data)
        self.garbage_bytes += len(data)
        return len(data)

    def status(self) -> dict[str, Any]:
        self.update()
        f = self.last_fix
        reported = None
        if f is not None:
            reported = {"utc": f.utc.isoformat().replace("+00:00", "Z"), "valid": f.valid}
            if f.valid:
                reported.update(lat=round(f.lat, 7), lon=round(f.lon, 7), speed_kmh=round(f.speed_kmh, 3),
                                course_deg=round(f.course_deg, 2))
        return {"position": self.walker.to_json(), "fix": self.fix, "running": self.running,
                "talker": self.cfg.talker, "rate_hz": self.cfg.rate_hz, "types": list(self.cfg.types),
                "epochs": self.epochs, "sentences_sent": self.sentences,
                "bad_checksum_pending": self.bad_checksum_left, "bad_checksums_sent": self.bad_checksums_sent,
                "garbage_bytes": self.garbage_bytes, "last_reported": reported,
                "outputs": [o.stats() for o in self.outputs]}


def finite(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"not a finite number: {text}")
    return v
