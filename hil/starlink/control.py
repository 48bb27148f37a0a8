"""Control-port commands of the dish simulator (``stats`` comes from the base).

    state online|obstructed|offline|degraded   link state (clears pinned fields)
    set FIELD VALUE|auto                       pin a status field (leaf name or dotted path)
    alert NAME on|off                          raise or clear one of dish_get_status.alerts
    down SECONDS                               stop answering for SECONDS (0 while down: back now)
"""
from __future__ import annotations

from typing import Any

from hil.script import Script
from hil.serialport import ControlPort, Handler

from .dish import ALERTS, STATES, Dish
from .server import DishServer

MAX_DOWN_S = 3600.0


def build(dish: Dish, server: DishServer, script: Script) -> ControlPort:
    async def state(args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            return {"ok": False, "error": f"usage: state {'|'.join(STATES)}"}
        dish.set_state(args[0].lower())
        return {"ok": True, "state": dish.state}

    async def set_field(args: list[str]) -> dict[str, Any]:
        if len(args) != 2:
            return {"ok": False, "error": "usage: set FIELD VALUE|auto"}
        path, value = dish.pin(args[0], args[1])
        return {"ok": True, "field": path, "value": value}

    async def alert(args: list[str]) -> dict[str, Any]:
        if len(args) != 2 or args[1].lower() not in ("on", "off"):
            return {"ok": False, "error": f"usage: alert {'|'.join(ALERTS)} on|off"}
        dish.set_alert(args[0], args[1].lower() == "on")
        return {"ok": True, "alerts": sorted(dish.alerts)}

    async def down(args: list[str]) -> dict[str, Any]:
        seconds = float(args[0]) if len(args) == 1 else -1.0
        if not 0 <= seconds <= MAX_DOWN_S:
            return {"ok": False, "error": f"usage: down SECONDS (0..{MAX_DOWN_S:g})"}
        await server.down(seconds)
        return {"ok": True, "down_s": seconds}

    def stats() -> dict[str, Any]:
        return {**server.stats(), **dish.describe(), "script": script.stats()}

    handlers: dict[str, Handler] = {"state": state, "set": set_field, "alert": alert, "down": down}
    return ControlPort(None, handlers, stats)
