"""Ground-station routing: the drone operator's own GCS keeps working through the gateway.

Every valid vehicle frame is copied to each ground-station endpoint
(QGroundControl on udp://127.0.0.1:14550, say); every valid frame a ground
station sends goes back to the vehicle link, to the vehicle it targets
when the transport can tell. Frames are forwarded byte for byte (a GCS
that signs keeps its signatures). Each endpoint reconnects on its own with
backoff; a dead GCS never disturbs the vehicle link.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from drivers.mavlink.framing import FrameCounts, FrameParser
from drivers.mavlink.transport import Transport, open_transport
from gateway.backoff import Backoff

log = logging.getLogger(__name__)

ToVehicle = Callable[[bytes, int | None], None]


class GroundStation:
    def __init__(self, url: str, to_vehicle: ToVehicle) -> None:
        self.url = url
        self.to_vehicle = to_vehicle
        self.counts = FrameCounts()
        self.forwarded_in = 0
        self.forwarded_out = 0
        self._transport: Transport | None = None

    def send(self, data: bytes, frames: int = 1) -> None:
        if self._transport is not None:
            self._transport.send(data)
            self.forwarded_out += frames

    async def run(self) -> None:
        backoff = Backoff(initial=1.0, maximum=30.0)
        while True:
            transport = open_transport(self.url)
            try:
                await transport.open()
                self._transport = transport
                backoff.connected()
                parser = FrameParser(self.counts)
                while True:
                    chunk = await transport.receive()
                    frames = parser.feed(chunk.data)
                    if chunk.datagram and parser.pending():
                        frames.extend(parser.flush())
                    for msg in frames:
                        target = getattr(msg, "target_system", None)
                        self.to_vehicle(bytes(msg.get_msgbuf()), target or None)
                        self.forwarded_in += 1
            except (OSError, ConnectionError) as exc:
                log.info("ground station %s: %s", self.url, exc)
            finally:
                self._transport = None
                await transport.close()
            await asyncio.sleep(backoff.next_delay())


class GroundStationRouter:
    def __init__(self, urls: tuple[str, ...], to_vehicle: ToVehicle) -> None:
        self.stations = [GroundStation(u, to_vehicle) for u in urls]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(s.run(), name=f"gcs:{s.url}") for s in self.stations]

    def forward(self, data: bytes, frames: int = 1) -> None:
        for s in self.stations:
            s.send(data, frames)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stats(self) -> list[dict[str, object]]:
        return [{"url": s.url, "to_gcs": s.forwarded_out, "from_gcs": s.forwarded_in, "frames": s.counts.as_dict()}
                for s in self.stations]
