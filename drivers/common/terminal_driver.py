"""What every radio / satellite terminal driver shares: the modem, the remote
terminals heard through it, their online state, counters and events.

A subclass names its address pattern and implements `serve()`; `run()`
opens the byte stream, marks the modem online while it is served, and
closes it when the device goes away (the supervisor then backs off and
calls `run()` again on the same driver object, so anything a subclass
queues on `self` survives a replug).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
from collections import Counter
from typing import Any, ClassVar

from drivers.common.stream import SCHEMES, StreamUrl, open_stream, parse_stream_url
from drivers.common.terminals import Terminals, check_terminals
from gateway.driver_api import CommandError, DeviceSpec, Driver, DriverContext, LinkSpec
from gateway.model import Event, Severity, StatusUpdate, Telemetry, now_ms

DEFAULT_STALE_S = 900.0  # a remote terminal not heard for this long is shown offline


class TerminalDriver(Driver):
    transport_schemes: ClassVar[tuple[str, ...]] = SCHEMES
    address_pattern: ClassVar[str] = r"\d{1,15}"
    terminal_name: ClassVar[str] = "terminal"
    default_baud: ClassVar[int] = 115200
    float_options: ClassVar[dict[str, tuple[float, float]]] = {"stale_s": (1.0, 86400.0)}

    def __init__(self, link: LinkSpec, ctx: DriverContext) -> None:
        super().__init__(link, ctx)
        self.terminals = Terminals.of(link)
        self.modem: DeviceSpec = self.terminals.modem
        self.url: StreamUrl = parse_stream_url(link.transport, self.default_baud)
        self.counts: Counter[str] = Counter()
        self._heard: dict[str, float] = {}  # remote device id → monotonic time last heard
        self._stale_s = float(self.modem.options.get("stale_s", DEFAULT_STALE_S))
        self.connected = asyncio.Event()

    # -- kit checks ------------------------------------------------------------
    @classmethod
    def check_device(cls, options: dict[str, Any], transport: str) -> list[tuple[tuple[str | int, ...], str]]:
        """Paths are below the device's `options` (the kit adds that prefix)."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        try:
            parse_stream_url(transport, cls.default_baud)
        except ValueError as exc:
            problems.append(((), f"transport {transport!r}: {exc}"))
        for name, (lo, hi) in cls.float_options.items():
            if name in options:
                v = options[name]
                if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
                    problems.append(((name,), f"{name} must be a number {lo:g}..{hi:g}"))
        return problems

    @classmethod
    def check_link(cls, devices: list[dict[str, Any]]) -> list[tuple[int, tuple[str | int, ...], str]]:
        return check_terminals(devices, cls.address_pattern, cls.terminal_name)

    @classmethod
    def commands_for(cls, kind: str) -> list[str]:
        return ["text"]

    def option(self, name: str, default: float) -> float:
        return float(self.modem.options.get(name, default))

    # -- the link --------------------------------------------------------------
    async def run(self) -> None:
        reader, writer = await open_stream(self.url)
        try:
            self.connected.set()
            await self.serve(reader, writer)
        finally:
            self.connected.clear()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    @abc.abstractmethod
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Talk to the terminal until the line fails (raise ConnectionError)."""

    def require_connected(self) -> None:
        if not self.connected.is_set():
            raise CommandError("failed", f"{self.terminal_name} {self.modem.id} is not connected")

    def resolve_to(self, to: str) -> str:
        try:
            return self.terminals.resolve(to, self.address_pattern)
        except ValueError as exc:
            raise CommandError("rejected", str(exc)) from None

    def check_command(self, device_id: str, command: str, args: dict[str, Any]) -> str | None:
        if command == "text":
            try:
                self.terminals.resolve(args["to"], self.address_pattern)
            except ValueError as exc:
                return str(exc)
        return None

    # -- what the driver tells the core -----------------------------------------
    def heard(self, address: str) -> DeviceSpec | None:
        """A remote terminal spoke: its device (now online), or None for an unlisted address."""
        dev = self.terminals.device_at(address) or self.discover(address)
        if dev is None:
            self.counts["unlisted_senders"] += 1
            return None
        if dev.id not in self._heard:
            self.ctx.set_online(dev.id, True, f"heard over {self.terminal_name} {self.modem.id}")
        self._heard[dev.id] = time.monotonic()
        return dev

    def discover(self, address: str) -> DeviceSpec | None:
        """A device for an address the kit does not list, when the kit implies one (none by default)."""
        return None

    def adopt(self, device_id: str, kind: str, name: str, address: str, **options: Any) -> DeviceSpec | None:
        """Ask the core to add a device for `address`; its spec, or None when refused."""
        if not self.ctx.add_device(device_id, kind, name):
            return None
        spec = DeviceSpec(device_id, kind, name, self.link.transport, None, {"address": address, **options})
        self.terminals.by_address[address] = spec
        return spec

    def expire_remotes(self) -> None:
        """Mark remote terminals not heard for `stale_s` offline."""
        now = time.monotonic()
        for dev_id, last in list(self._heard.items()):
            if now - last > self._stale_s:
                del self._heard[dev_id]
                self.ctx.set_online(dev_id, False, f"not heard for {self._stale_s:g} s")

    def forget_remotes(self) -> None:
        """The modem is gone: the supervisor marks every device offline; hear them afresh."""
        self._heard.clear()

    async def expire_loop(self) -> None:
        while True:
            await asyncio.sleep(min(30.0, self._stale_s / 4))
            self.expire_remotes()

    def event(self, device: str, type_: str, severity: Severity, text: str, **extra: Any) -> None:
        self.ctx.publish(Event(device, now_ms(), type_, severity, text, extra))

    def status(self, status: dict[str, Any], values: dict[str, float] | None = None) -> None:
        ts = now_ms()
        self.ctx.publish(StatusUpdate(self.modem.id, ts, status))
        if values:
            self.ctx.publish(Telemetry(self.modem.id, ts, values))

    def stats(self) -> dict[str, Any]:
        return dict(self.counts)
