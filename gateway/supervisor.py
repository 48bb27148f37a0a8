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
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gateway import driver_registry
from gateway.backoff import Backoff
from gateway.bus import Bus
from gateway.driver_api import DeviceSpec, Driver, LinkSpec
from gateway.kit import LoadedKit
from gateway.model import ID_PATTERN, KINDS, BusMessage, DeviceDiscovered, OnlineChange, now_ms

log = logging.getLogger(__name__)


MAX_DISCOVERED_PER_LINK = 1000  # devices a driver may add beyond the kit's; more are refused and logged


class _LinkContext:
    """The DriverContext handed to one driver instance."""

    def __init__(self, bus: Bus, device_ids: set[str], claim: Callable[[str], bool], driver: str) -> None:
        self._bus = bus
        self._ids = device_ids
        self._claim = claim  # takes a new device id for this link unless another link has it
        self._driver = driver
        self._discovered = 0
        self.driver_cls: type[Driver] | None = None

    def publish(self, msg: BusMessage) -> None:
        if msg.device not in self._ids:
            log.warning("driver published for %r, which is not on its link: dropped", msg.device)
            return
        self._bus.publish(msg)

    def set_online(self, device_id: str, online: bool, reason: str = "") -> None:
        self._bus.publish(OnlineChange(device_id, now_ms(), online, reason))

    def add_device(self, device_id: str, kind: str, name: str) -> bool:
        if device_id in self._ids:
            return True
        if not re.match(ID_PATTERN, device_id) or kind not in KINDS:
            log.warning("driver %s proposed a bad device %r (%s): refused", self._driver, device_id, kind)
            return False
        if self._discovered >= MAX_DISCOVERED_PER_LINK or not self._claim(device_id):
            log.warning("device %r not added: the link already has %d or another link has that id", device_id, self._discovered)
            return False
        self._discovered += 1
        self._ids.add(device_id)
        commands = self.driver_cls.commands_for(kind) if self.driver_cls else []
        self._bus.publish(DeviceDiscovered(device_id, now_ms(), kind, name, self._driver, commands))
        return True


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
            cls = driver_registry.load(spec.driver)
            ctx = _LinkContext(bus, {d.id for d in spec.devices}, lambda dev_id, s=spec: self._claim(dev_id, s), spec.driver)
            ctx.driver_cls = cls
            driver = cls(spec, ctx)
            runner = LinkRunner(spec, driver, Backoff(initial=backoff_initial, maximum=backoff_max))
            self.runners.append(runner)
            for d in spec.devices:
                self.by_device[d.id] = runner

    def _claim(self, device_id: str, spec: LinkSpec) -> bool:
        owner = self.by_device.get(device_id)
        if owner is not None:
            return owner.spec is spec
        self.by_device[device_id] = next(r for r in self.runners if r.spec is spec)
        return True

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
        """Every device of the link, the kit's and those its driver added."""
        for dev_id in sorted(self.link_devices(spec)):
            self.bus.publish(OnlineChange(dev_id, now_ms(), False, reason))

    def link_devices(self, spec: LinkSpec) -> set[str]:
        return {d for d, r in self.by_device.items() if r.spec is spec}

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
