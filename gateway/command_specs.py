"""Command names and argument rules per device kind (CONTRACT.md §2).

Checked by the command router before anything reaches a driver, so a bad
command never leaves the gateway. A driver may accept fewer commands than its
kind allows (it lists them) and may refuse more (Driver.check_command).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Arg:
    type: type
    minimum: float | None = None
    maximum: float | None = None
    required: bool = True
    max_len: int | None = None


_PTZ_SPEED = Arg(float, -1.0, 1.0, required=False)

COMMANDS_BY_KIND: dict[str, dict[str, dict[str, Arg]]] = {
    "uav": {
        "rtl": {},
        "land": {},
        "hold": {},
        "goto": {
            "lat": Arg(float, -90.0, 90.0),
            "lon": Arg(float, -180.0, 180.0),
            "alt_m": Arg(float, -500.0, 10000.0),
        },
        "set_mode": {"mode": Arg(str, max_len=32)},
    },
    "camera": {
        "ptz_move": {"pan": _PTZ_SPEED, "tilt": _PTZ_SPEED, "zoom": _PTZ_SPEED},
        "ptz_stop": {},
        "ptz_preset": {"preset": Arg(int, 1, 255)},
    },
    "radio": {"text": {"to": Arg(str, max_len=64), "text": Arg(str, max_len=4096)}},
}
COMMANDS_BY_KIND["bodycam"] = COMMANDS_BY_KIND["camera"]
COMMANDS_BY_KIND["satcom"] = COMMANDS_BY_KIND["radio"]


def check_args(kind: str, command: str, args: Any) -> tuple[dict[str, Any] | None, str]:
    """Validate and coerce a command's arguments; (clean args, "") or (None, reason)."""
    spec = COMMANDS_BY_KIND.get(kind, {}).get(command)
    if spec is None:
        return None, f"unknown command {command!r} for a device of kind {kind}"
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return None, "args must be an object"
    unknown = sorted(set(args) - set(spec))
    if unknown:
        return None, f"unknown argument(s) for {command}: {', '.join(unknown)}"
    clean: dict[str, Any] = {}
    for name, rule in spec.items():
        if name not in args:
            if rule.required:
                return None, f"{command} needs argument {name!r}"
            continue
        value, problem = _coerce(name, args[name], rule)
        if problem:
            return None, problem
        clean[name] = value
    return clean, ""


def _coerce(name: str, value: Any, rule: Arg) -> tuple[Any, str]:
    if rule.type is str:
        if not isinstance(value, str) or not value.strip():
            return None, f"{name} must be a non-empty string"
        if rule.max_len is not None and len(value) > rule.max_len:
            return None, f"{name} is longer than {rule.max_len} characters"
        return value, ""
    # bool is an int subclass in Python; it is never a valid number here
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None, f"{name} must be a number"
    if rule.type is int:
        if isinstance(value, float) and not value.is_integer():
            return None, f"{name} must be an integer"
        value = int(value)
    else:
        value = float(value)
        if not math.isfinite(value):
            return None, f"{name} must be a finite number"
    if rule.minimum is not None and value < rule.minimum or rule.maximum is not None and value > rule.maximum:
        return None, f"{name}={value} is out of range [{rule.minimum}, {rule.maximum}]"
    return value, ""
