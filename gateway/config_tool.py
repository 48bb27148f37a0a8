"""`fieldgw config audit KIT.yaml [DEVICE]` and `fieldgw config apply KIT.yaml [DEVICE]`.

Runs the drivers of the devices that have a profile (and only their links),
waits for each device to come online, then reads its settings back (audit)
or pushes the profile and reads back (apply), and prints the differences per
device. It opens the devices' transports itself: run it while the gateway
for that kit is stopped (a UDP port can be bound once), or against a HIL rig.
Exit code: 0 when every device matches, 1 when any differs or did not answer,
2 for a bad kit or device name.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from gateway import driver_registry
from gateway.driver_api import CommandError, ConfigDiff, Driver, LinkSpec
from gateway.kit import LoadedKit
from gateway.model import BusMessage
from gateway.supervisor import build_links


class _Context:
    """A DriverContext that only watches devices come online."""

    def __init__(self) -> None:
        self.online: dict[str, asyncio.Event] = {}

    def publish(self, msg: BusMessage) -> None:
        return None

    def set_online(self, device_id: str, online: bool, reason: str = "") -> None:
        event = self.online.setdefault(device_id, asyncio.Event())
        (event.set if online else event.clear)()

    def add_device(self, device_id: str, kind: str, name: str) -> bool:
        return False


def _describe(diffs: list[ConfigDiff]) -> list[str]:
    return [f"{d.name}: profile {d.want}, device {'no answer' if d.have is None else d.have}" for d in diffs]


async def run_config(loaded: LoadedKit, device: str | None, apply: bool, timeout_s: float,
                     say: Callable[[str], None]) -> int:
    profiled = [d.id for d in loaded.kit.devices if d.profile and (device is None or d.id == device)]
    if device is not None and device not in {d.id for d in loaded.kit.devices}:
        say(f"no device {device!r} in {loaded.path}")
        return 2
    if not profiled:
        say("no device with a configuration profile" + (f" named {device}" if device else ""))
        return 2 if device else 0
    links = [link for link in build_links(loaded, None, ()) if any(d.id in profiled for d in link.devices)]
    ctx = _Context()
    drivers: list[tuple[LinkSpec, Driver]] = [(link, driver_registry.load(link.driver)(link, ctx)) for link in links]
    tasks = [asyncio.create_task(_keep_running(drv)) for _, drv in drivers]
    worst = 0
    try:
        for link, drv in drivers:
            for dev in (d.id for d in link.devices if d.id in profiled):
                worst = max(worst, await _one(drv, ctx, dev, apply, timeout_s, say))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return worst


async def _one(drv: Driver, ctx: _Context, dev: str, apply: bool, timeout_s: float, say: Callable[[str], None]) -> int:
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            await ctx.online.setdefault(dev, asyncio.Event()).wait()
    except TimeoutError:
        say(f"{dev}: not online within {timeout_s:g} s: nothing {'applied' if apply else 'audited'}")
        return 1
    try:
        diffs = await (drv.config_apply(dev) if apply else drv.config_audit(dev))
    except CommandError as exc:
        say(f"{dev}: {exc.detail}")
        return 1
    took = time.monotonic() - started
    if not diffs:
        say(f"{dev}: {'applied; ' if apply else ''}matches its profile ({took:.1f} s)")
        return 0
    say(f"{dev}: {len(diffs)} setting(s) differ{' after applying' if apply else ''}:")
    for line in _describe(diffs):
        say(f"  {line}")
    return 1


async def _keep_running(drv: Driver) -> None:
    """The link as the supervisor runs it: again after a short pause when it fails."""
    while True:
        with contextlib.suppress(Exception):
            await drv.run()
        await asyncio.sleep(0.5)

