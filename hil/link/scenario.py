"""Scenario files: a starting profile and timed steps (outages, profile changes).

```yaml
description: GEO satcom with a long drop     # optional
profile: satcom                              # a name, or {base: NAME, bandwidth_kbps: .., latency_ms: .., jitter_ms: ..}
steps:                                       # times in seconds from start, non-decreasing
  - at: 10
    outage: 60                               # reset everything, refuse connections for 60 s
  - at: 80
    profile: {bandwidth_kbps: 512, latency_ms: 80}
  - at: 90
    up: true                                 # end an outage early
```
"""
from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .emulator import LinkEmulator
from .profile import Profile, ProfileError, from_value

log = logging.getLogger(__name__)

TOP_KEYS = {"description", "profile", "steps"}
STEP_KEYS = {"at", "outage", "profile", "up"}


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``str()`` is ``FILE: message``."""


@dataclass(frozen=True)
class Step:
    at: float
    outage: float | None = None
    profile: Profile | None = None
    up: bool = False


@dataclass(frozen=True)
class Scenario:
    profile: Profile | None = None
    steps: list[Step] = field(default_factory=list)
    description: str = ""


def _seconds(value: Any, where: str, *, positive: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isinf(value) \
        and (value > 0 if positive else value >= 0)
    if not ok:
        raise ValueError(f"{where}: must be a number of seconds {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _profile(value: Any, where: str) -> Profile:
    try:
        return from_value(value)
    except ProfileError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _step(raw: Any, i: int) -> Step:
    where = f"steps[{i}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: must be a mapping with 'at' and an action, got {raw!r}")
    unknown = sorted(set(map(str, raw)) - STEP_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(STEP_KEYS))})")
    if "at" not in raw:
        raise ValueError(f"{where}: missing 'at' (seconds from start)")
    if not {"outage", "profile", "up"} & set(raw):
        raise ValueError(f"{where}: needs an action: outage, profile or up")
    if "outage" in raw and "up" in raw:
        raise ValueError(f"{where}: outage and up in one step contradict each other")
    up = raw.get("up", False)
    if up is not True and "up" in raw:
        raise ValueError(f"{where}.up: must be true, got {up!r}")
    return Step(
        at=_seconds(raw["at"], f"{where}.at", positive=False),
        outage=_seconds(raw["outage"], f"{where}.outage", positive=True) if "outage" in raw else None,
        profile=_profile(raw["profile"], f"{where}.profile") if "profile" in raw else None,
        up=bool(up),
    )


def parse(data: Any) -> Scenario:
    """A scenario from parsed YAML; raises ValueError with the offending field."""
    if data is None:
        raise ValueError("empty scenario (expected a mapping with 'profile' and/or 'steps')")
    if not isinstance(data, dict):
        raise ValueError(f"top level must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(map(str, data)) - TOP_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(TOP_KEYS))})")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"description: must be text, got {description!r}")
    profile = _profile(data["profile"], "profile") if "profile" in data else None
    raw_steps = data.get("steps") or []
    if not isinstance(raw_steps, list):
        raise ValueError(f"steps: must be a list, got {type(raw_steps).__name__}")
    steps = [_step(raw, i) for i, raw in enumerate(raw_steps)]
    for i in range(1, len(steps)):
        if steps[i].at < steps[i - 1].at:
            raise ValueError(f"steps[{i}].at: {steps[i].at:g} is before steps[{i - 1}].at {steps[i - 1].at:g}"
                             " (steps must be in time order)")
    return Scenario(profile=profile, steps=steps, description=description)


def load(path: str | Path) -> Scenario:
    """Read and validate a scenario file; every problem is ``ScenarioError("FILE: message")``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(f"{path}: invalid YAML{where}: {problem}") from None
    try:
        return parse(data)
    except ValueError as exc:
        raise ScenarioError(f"{path}: {exc}") from None


async def play(emu: LinkEmulator, scenario: Scenario, start: float | None = None) -> None:
    """Apply the steps at their times (seconds after ``start``, loop time; default now)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time() if start is None else start
    for step in scenario.steps:
        wait = t0 + step.at - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        log.info("scenario t=%gs: %s", step.at, step)
        if step.profile is not None:
            emu.set_profile(step.profile)
        if step.up:
            emu.up()
        if step.outage is not None:
            await emu.outage(step.outage)
