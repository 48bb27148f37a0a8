"""The simulated terminal: answers the host's sentences and talks on its own schedule."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..serialport import PtyPort
from . import nmea, rnss
from .card import MAX_CAPACITY_BITS, Card
from .dialect import DIALECTS
from .report import decode_report, short_position, text_of

log = logging.getLogger("hil.beidou")


@dataclass(frozen=True)
class Peer:
    """Another card (a team terminal) that reports its position to this one."""

    address: str
    lat: float
    lon: float


@dataclass
class Config:
    link: Path
    dialect: str = "2.1"
    address: str = "0123456"
    level: int = 2
    interval_s: int = 60
    beam_hz: float = 1.0
    position: tuple[float, float, float] | None = None
    peers: list[Peer] = field(default_factory=list)
    peer_interval: float = 10.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Terminal:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.dialect = DIALECTS[cfg.dialect]()
        self.card = Card(cfg.address, cfg.level, cfg.interval_s)
        self.framer = nmea.Framer()
        self.port = PtyPort(cfg.link, self._on_data, on_plug=self.framer.reset)
        self.beams: list[int] = list(self.dialect.default_beams)
        self.messages: list[dict[str, Any]] = []  # what the host sent and the terminal accepted
        self.counts: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self.port.plug()
        cfg = self.cfg
        if cfg.beam_hz > 0:
            self._every(1.0 / cfg.beam_hz, 0.0, self._send_beams, "beams")
        if cfg.position is not None:
            self._every(1.0, 1.0 - time.time() % 1.0, self._send_fix, "rnss")
        n = len(cfg.peers)
        for i, peer in enumerate(cfg.peers):  # spread over the interval, first within it
            self._every(cfg.peer_interval, cfg.peer_interval * (i + 1) / (n + 1),
                        lambda p=peer: self._peer_report(p), f"peer-{peer.address}")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.port.unplug_now()

    def _every(self, period: float, first: float, fn: Callable[[], None], name: str) -> None:
        async def loop() -> None:
            clock = asyncio.get_running_loop()
            due = clock.time() + first
            while True:
                await asyncio.sleep(max(0.0, due - clock.time()))
                fn()
                due = max(due + period, clock.time())  # after a stall, carry on rather than burst
        self._tasks.append(asyncio.get_running_loop().create_task(loop(), name=f"beidou-{name}"))

    # -- the host's sentences ---------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        for body in self.framer.feed(data):
            self._handle(body)

    def _handle(self, body: str) -> None:
        talker, cmd, fields = nmea.split(body)
        self.counts["sentences_in"] += 1
        if talker != "CC":
            self.counts["unknown"] += 1
        elif cmd == self.dialect.query:
            if self.dialect.is_query(fields):
                self.counts["card_queries"] += 1
                self._write(self.dialect.card_info(self.card))
            else:
                self.counts["unsupported"] += 1
        elif cmd == self.dialect.send:
            self._host_send(fields)
        elif cmd in self.dialect.foreign:
            self.counts["wrong_dialect"] += 1
        else:
            self.counts["unknown"] += 1
        log.debug("host: %s", body)

    def _host_send(self, fields: list[str]) -> None:
        req = self.dialect.parse_send(fields)
        verdict = self.card.submit(req.code, asyncio.get_running_loop().time(), self.locked)
        self._write(self.dialect.feedback(verdict, utcnow()))
        if not verdict.accepted:
            self.counts["sends_refused"] += 1
            self.counts[f"refused_{verdict.problem}"] += 1
            log.info("send to %s refused: %s", req.dest, verdict.problem)
            return
        assert req.code is not None
        self.counts["sends_accepted"] += 1
        data = bytes.fromhex(req.code) if len(req.code) % 2 == 0 else None
        self.messages.append({"ts": time.time(), "to": req.dest, "hex": req.code,
                              "bytes": None if data is None else len(data),
                              "text": None if data is None else text_of(data),
                              "report": None if data is None else decode_report(data)})
        log.info("send to %s accepted: %s", req.dest, req.code)

    @property
    def locked(self) -> bool:
        """The terminal can transmit only with some beam power."""
        return any(p > 0 for p in self.beams)

    # -- what the terminal says -------------------------------------------------------------

    def _write(self, body: str) -> bool:
        ok = self.port.write(nmea.sentence(body))
        self.counts["sentences_out" if ok else "sentences_lost"] += 1
        return ok

    def deliver(self, sender: str, data: bytes) -> bool:
        """A message from another card, as the received-message sentence. False if the line is down."""
        if not data or len(data) * 8 > MAX_CAPACITY_BITS:
            raise ValueError(f"{len(data)} bytes: a message is 1..{MAX_CAPACITY_BITS // 8} bytes")
        ok = self._write(self.dialect.message(sender, self.card.address, data.hex().upper(), utcnow()))
        self.counts["delivered" if ok else "lost"] += 1
        return ok

    def _peer_report(self, peer: Peer) -> None:
        self.deliver(peer.address, short_position(int(time.time()), peer.lat, peer.lon))

    def _send_beams(self) -> None:
        self._write(self.dialect.beams(self.beams, utcnow()))

    def _send_fix(self) -> None:
        assert self.cfg.position is not None
        lat, lon, alt = self.cfg.position
        now = datetime.fromtimestamp(round(time.time()), timezone.utc)  # ticks are on the second
        self._write(rnss.rmc(lat, lon, now))
        self._write(rnss.gga(lat, lon, alt, now))

    def raw(self, data: bytes) -> bool:
        return self.port.write(data)

    def stats(self) -> dict[str, Any]:
        card = self.card
        return {"dialect": self.dialect.name, "address": card.address, "level": card.level,
                "capacity_bits": card.capacity_bits, "interval_s": card.interval_s, "inhibit": card.inhibit,
                "wait_s": round(card.wait(asyncio.get_running_loop().time()), 3), "beams": self.beams,
                "locked": self.locked, "received": len(self.messages), **self.framer.stats(), **self.counts}
