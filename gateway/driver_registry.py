"""Finds drivers by name through the `fieldgw.drivers` entry-point group.

The core holds no list of protocols: a driver package registers itself in
pyproject.toml, so adding a protocol never touches `gateway/`.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from gateway.driver_api import Driver

GROUP = "fieldgw.drivers"


@cache
def available() -> dict[str, str]:
    """Driver name → "module:Class" for every registered driver."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


@cache
def load(name: str) -> type[Driver]:
    for ep in entry_points(group=GROUP):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Driver)):
                raise TypeError(f"entry point {name} = {ep.value} is not a Driver subclass")
            return cls
    raise KeyError(f"no driver named {name!r} (known: {', '.join(sorted(available())) or 'none'})")
