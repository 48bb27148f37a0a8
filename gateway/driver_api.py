"""What the core offers a driver and what a driver must offer the core.

A driver knows one protocol and this module; nothing of MQTT, HTTP or media.
The supervisor builds one driver instance per physical link (one transport
shared by one or more devices, like several vehicles on one radio), runs
`run()` as its own task and restarts it with backoff when it raises.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from gateway.model import BusMessage, Event, StatusUpdate, now_ms


@dataclass(frozen=True)
class DeviceSpec:
    """One device of the kit, as a driver sees it."""

    id: str
    kind: str
    name: str
    transport: str
    profile: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LinkSpec:
    """One physical link: a transport and the devices reached through it."""

    driver: str
    transport: str
    devices: tuple[DeviceSpec, ...]
    ground_stations: tuple[str, ...] = ()
    data_dir: Path | None = None


class DriverContext(Protocol):
    """The core's side of a driver: where normalized data goes."""

    def publish(self, msg: BusMessage) -> None: ...

    def set_online(self, device_id: str, online: bool, reason: str = "") -> None: ...

    def add_device(self, device_id: str, kind: str, name: str) -> bool:
        """Register a device the kit implies but does not list (bounded per link); False if refused."""
        ...


class CommandError(Exception):
    """A command the driver cannot carry out; `status` is `failed` or `rejected`."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


OnSent = Callable[[], None]


@dataclass(frozen=True)
class ConfigDiff:
    """One setting of a device's profile that the device does not hold (`have` None: it did not answer)."""

    name: str
    want: Any
    have: Any


@dataclass(frozen=True)
class TextRoute:
    """How a text reaches one device: sent by `carrier` (a modem) to `to`.

    The dispatcher splits an order so that each part's `size(part)` is at
    most `max_size` (bytes or bits, in the channel's own encoding), and
    sends each part as the `text` command on the carrier.
    """

    channel: str  # "tetra_sds", "sbd", "beidou", ...
    carrier: str  # the device id that sends it
    to: str  # the address on that channel
    max_size: int
    size: Callable[[str], int]
    max_parts: int = 4  # beyond this the order is shortened, and the delivery says so
    group: bool = False  # a talk group: one send reaches many; named targets only, never part of "all"


class Driver(abc.ABC):
    """Base class of every device driver (registered as a `fieldgw.drivers` entry point)."""

    name: ClassVar[str]
    default_kind: ClassVar[str]
    transport_schemes: ClassVar[tuple[str, ...]]

    def __init__(self, link: LinkSpec, ctx: DriverContext) -> None:
        self.link = link
        self.ctx = ctx

    @classmethod
    def check_device(cls, options: dict[str, Any], transport: str) -> list[tuple[tuple[str | int, ...], str]]:
        """Problems with one device's options: (path below the device entry, message)."""
        return []

    @classmethod
    def check_link(cls, devices: list[dict[str, Any]]) -> list[tuple[int, tuple[str | int, ...], str]]:
        """Problems among the devices that share one link: (device index, path, message)."""
        return []

    @classmethod
    def check_profile(cls, profile: dict[str, Any]) -> list[str]:
        """Problems with a device's configuration profile (firmware_configs/)."""
        return []

    @classmethod
    def commands_for(cls, kind: str) -> list[str]:
        """The command names this driver accepts for a device of this kind."""
        return []

    def check_command(self, device_id: str, command: str, args: dict[str, Any]) -> str | None:
        """A reason to refuse the command before anything is sent, or None."""
        return None

    @abc.abstractmethod
    async def run(self) -> None:
        """Open the link and serve it until cancelled; raise when the link fails."""

    async def execute(self, device_id: str, command: str, args: dict[str, Any], on_sent: OnSent) -> str:
        """Carry out a command; call `on_sent` once it is on the wire; return the `done` detail.

        Raise CommandError for `failed`; the router applies the overall timeout.
        """
        raise CommandError("failed", f"driver {self.name} takes no commands")

    def command_timeout(self, command: str) -> float | None:
        """This command's own overall timeout (a satellite send may take minutes); None: the kit's."""
        return None

    def text_route(self, device_id: str) -> TextRoute | None:
        """How a dispatched text reaches this device over this driver's link, if it can."""
        return None

    async def config_audit(self, device_id: str) -> list[ConfigDiff]:
        """Read the device's settings back and list where they differ from its profile."""
        raise CommandError("rejected", f"the {self.name} driver cannot audit a device's configuration")

    async def config_apply(self, device_id: str) -> list[ConfigDiff]:
        """Push the profile's settings; what still differs afterwards (read back)."""
        raise CommandError("rejected", f"the {self.name} driver cannot apply a configuration")

    async def report_config_drift(self, device_id: str) -> list[ConfigDiff] | None:
        """The audit a driver runs when a device comes online: drift is reported (status `config` and a
        `config_drift` warning event), never corrected. None when the audit could not run (the status says why)."""
        try:
            diffs = await self.config_audit(device_id)
        except CommandError as exc:
            self.ctx.publish(StatusUpdate(device_id, now_ms(), {"config": f"not audited: {exc.detail}"}))
            return None
        self.ctx.publish(StatusUpdate(device_id, now_ms(), {"config": "matches profile" if not diffs else f"{len(diffs)} differ"}))
        if diffs:
            self.ctx.publish(Event(device_id, now_ms(), "config_drift", "warning",
                                   "differs from its profile: " + ", ".join(f"{d.name}={d.have} (profile {d.want})" for d in diffs),
                                   {"diffs": [{"name": d.name, "want": d.want, "have": d.have} for d in diffs]}))
        return diffs

    def stats(self) -> dict[str, Any]:
        """Counters for the link (frames, errors), shown in device status and metrics."""
        return {}
