"""The modem and the remote terminals heard through it (docs/serial-protocols.md).

On a radio or satellite link, the kit device without `options.address` is the
terminal cabled to the gateway; every other device on the link is a remote
terminal (a team's radio, BeiDou card or Iridium unit) named by its address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from gateway.driver_api import DeviceSpec, LinkSpec


def address_of(options: dict[str, Any]) -> str | None:
    value = options.get("address")
    return None if value is None else str(value)


def check_terminals(devices: list[dict[str, Any]], address_pattern: str, what: str) -> list[tuple[int, tuple[str | int, ...], str]]:
    """Kit problems among the devices of one link: one modem, unique well-formed addresses."""
    problems: list[tuple[int, tuple[str | int, ...], str]] = []
    modems = [i for i, d in enumerate(devices) if address_of(d.get("options") or {}) is None]
    if len(modems) != 1:
        where = modems[1] if len(modems) > 1 else 0
        problems.append((where, (), f"a {what} link needs exactly one device without options.address "
                                              f"(the terminal cabled to the gateway); found {len(modems)}"))
    seen: dict[str, int] = {}
    for i, d in enumerate(devices):
        addr = address_of(d.get("options") or {})
        if addr is None:
            continue
        if not re.fullmatch(address_pattern, addr):
            problems.append((i, ("address",), f"{what} address {addr!r} must match {address_pattern}"))
        elif addr in seen:
            problems.append((i, ("address",), f"address {addr} is already used by device #{seen[addr] + 1}"))
        else:
            seen[addr] = i
    return problems


@dataclass(frozen=True)
class Terminals:
    modem: DeviceSpec
    by_address: dict[str, DeviceSpec]

    @classmethod
    def of(cls, link: LinkSpec) -> Terminals:
        modem = next(d for d in link.devices if address_of(d.options) is None)
        remotes = {address_of(d.options): d for d in link.devices if address_of(d.options) is not None}
        return cls(modem, {a: d for a, d in remotes.items() if a is not None})

    def address(self, device_id: str) -> str | None:
        for addr, dev in self.by_address.items():
            if dev.id == device_id:
                return addr
        return None

    def device_at(self, address: str) -> DeviceSpec | None:
        return self.by_address.get(address)

    def resolve(self, to: str, address_pattern: str) -> str:
        """A `to` argument (a kit device id or a raw address) → an address; ValueError if neither."""
        addr = self.address(to)
        if addr is not None:
            return addr
        if re.fullmatch(address_pattern, to):
            return to
        raise ValueError(f"{to!r} is neither a device on this link nor an address")
