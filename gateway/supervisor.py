"""Runs every link's driver as its own task and restarts it when it fails.

Devices that share a driver and a transport form one link, served by one
driver instance (one coordinator per physical link). When `run()` raises,
every device on the link is marked offline with the reason, and the driver
is started again after a bounded exponential backoff with jitter. A driver
that stays up for a minute gets its backoff reset.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from gateway import driver_registry
from gateway.backoff import Backoff
from gateway.bus import Bus
from gateway.driver_api import DeviceSpec, Driver, LinkSpec
from gateway.kit import LoadedKit
from gateway.model import BusMessage, OnlineChange, now_ms

log = logging.getLogger(__name__)


class _LinkContext:
    """The DriverContext handed to one driver instance."""

    def __init__(self, bus: Bus, device_ids: set[str]) -> None:
        self._bus = bus
        self._ids = device_ids

    def publish(self, msg: BusMessage) -> None:
        if msg.device not in self._ids:
            log.warning("driver published for %r, which is not on its link: dropped", msg.device)
            return
        self._bus.publish(msg)

    def set_online(self, device_id: str, online: bool, reason: str = "") -> None:
        self._bus.publish(OnlineChange(device_id, now_ms(), online, reason))


@dataclass
class LinkRunner:
    spec: LinkSpec
    driver: Driver
    backoff: Backoff
    restarts: int = 0
    last_error: str = ""
    task: asyncio.Task[None] | None = field(default=None, repr=False)


def build_links(loaded: LoadedKit, data_dir: Path | None, ground_stations: tuple[str, ...] | None = None) -> list[LinkSpec]:
    kit = loaded.kit
    gcs = ground_stations if ground_stations is not None else tuple(g.url for g in kit.ground_stations)
    grouped: dict[tuple[str, str], list[DeviceSpec]] = {}
    for dev in kit.devices:
        spec = DeviceSpec(
            id=dev.id,
            kind=loaded.device_kind(dev),
            name=dev.name or dev.id,
            transport=dev.transport,
            profile=loaded.profiles.get(dev.id),
            options=dict(dev.options),
        )
        grouped.setdefault((dev.driver, dev.transport), []).append(spec)
    return [
        LinkSpec(driver=drv, transport=transport, devices=tuple(devs), ground_stations=gcs, data_dir=data_dir)
        for (drv, transport), devs in grouped.items()
    ]


class Supervisor:
    def __init__(self, bus: Bus, links: list[LinkSpec], backoff_initial: float = 1.0, backoff_max: float = 30.0) -> None:
        self.bus = bus
        self.runners: list[LinkRunner] = []
        self.by_device: dict[str, LinkRunner] = {}
        for spec in links:
            ctx = _LinkContext(bus, {d.id for d in spec.devices})
            driver = driver_registry.load(spec.driver)(spec, ctx)
            runner = LinkRunner(spec, driver, Backoff(initial=backoff_initial, maximum=backoff_max))
            self.runners.append(runner)
            for d in spec.devices:
                self.by_device[d.id] = runner

    def driver_for(self, device_id: str) -> Driver | None:
        runner = self.by_device.get(device_id)
        return runner.driver if runner else None

    async def start(self) -> None:
        for runner in self.runners:
            runner.task = asyncio.create_task(self._supervise(runner), name=f"link:{runner.spec.transport}")

    async def stop(self) -> None:
        tasks = [r.task for r in self.runners if r.task]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _supervise(self, runner: LinkRunner) -> None:
        spec = runner.spec
        while True:
            runner.backoff.connected()
            try:
                await runner.driver.run()
                reason = "driver stopped"
            except asyncio.CancelledError:
                self._all_offline(spec, "gateway stopping")
                raise
            except Exception as exc:  # a driver failure must never take the gateway down
                reason = f"{type(exc).__name__}: {exc}"
                log.warning("link %s (%s) failed: %s", spec.transport, spec.driver, reason)
            runner.restarts += 1
            runner.last_error = reason
            self._all_offline(spec, reason)
            delay = runner.backoff.next_delay()
            log.info("restarting link %s in %.1f s", spec.transport, delay)
            await asyncio.sleep(delay)

    def _all_offline(self, spec: LinkSpec, reason: str) -> None:
        for dev in spec.devices:
            self.bus.publish(OnlineChange(dev.id, now_ms(), False, reason))

    def stats(self) -> list[dict[str, object]]:
        return [
            {
                "driver": r.spec.driver,
                "transport": r.spec.transport,
                "devices": [d.id for d in r.spec.devices],
                "restarts": r.restarts,
                "last_error": r.last_error,
                **r.driver.stats(),
            }
            for r in self.runners
        ]
