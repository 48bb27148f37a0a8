"""Scripted control: a text file of ``AT_SECONDS COMMAND...`` lines, played in order.

```
# seconds from start   control command (the same words as on the control port)
0     state online
5     state obstructed
5     set pop_ping_drop_rate 0.6
12.5  down 8
30    state online
```

Times are seconds from when the simulator is ready, non-decreasing; ``#``
starts a comment. Command names are checked when the file is loaded, their
arguments when played (a failing step is logged and the script carries on).
Shared by the satellite terminal simulators (hil/starlink, hil/bgan); stdlib only.
"""
from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class ScriptError(ValueError):
    """A script that cannot be used; ``str()`` is ``FILE:LINE: message``."""


@dataclass(frozen=True)
class Step:
    at: float
    command: str


@dataclass
class Script:
    steps: list[Step] = field(default_factory=list)
    played: int = 0
    failed: int = 0

    def stats(self) -> dict[str, Any]:
        return {"steps": len(self.steps), "played": self.played, "failed": self.failed}


def parse(text: str, commands: Iterable[str], name: str = "script") -> Script:
    known = {c.lower() for c in commands}
    steps: list[Step] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split(None, 1)
        try:
            at = float(words[0])
        except ValueError:
            raise ScriptError(f"{name}:{number}: expected AT_SECONDS COMMAND..., got {raw.strip()!r}") from None
        if not 0 <= at < math.inf:
            raise ScriptError(f"{name}:{number}: time must be a number >= 0")
        if steps and at < steps[-1].at:
            raise ScriptError(f"{name}:{number}: times must not decrease ({at} after {steps[-1].at})")
        if len(words) < 2:
            raise ScriptError(f"{name}:{number}: no command after the time")
        if words[1].split()[0].lower() not in known:
            raise ScriptError(f"{name}:{number}: unknown command {words[1].split()[0]!r}; "
                              f"commands: {', '.join(sorted(known))}")
        steps.append(Step(at, words[1]))
    return Script(steps)


def load(path: str | Path, commands: Iterable[str]) -> Script:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"{path}: {exc}") from None
    return parse(text, commands, str(path))


def load_into(script: Script, path: str | Path | None, commands: Iterable[str]) -> bool:
    """Give `script` the steps of the file at `path` (none without a path). False, once stderr says
    why, when the file cannot be used (a simulator's command line then exits 2)."""
    if path:
        try:
            script.steps = load(path, commands).steps
        except ScriptError as exc:
            print(exc, file=sys.stderr)
            return False
    return True


def play_task(script: Script, run: Callable[[str], Awaitable[dict[str, Any]]], name: str) -> asyncio.Task[None] | None:
    """`play` in a task of its own (its clock starts when the task first runs); None without steps."""
    return asyncio.create_task(play(script, run), name=name) if script.steps else None


async def play(script: Script, run: Callable[[str], Awaitable[dict[str, Any]]]) -> None:
    """Run each step at its time (from now) through ``run`` (a ControlPort's ``handle``)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for step in script.steps:
        delay = start + step.at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        reply = await run(step.command)
        script.played += 1
        if reply.get("ok"):
            log.info("script %.3f s: %s → %s", step.at, step.command, reply)
        else:
            script.failed += 1
            log.warning("script %.3f s: %s failed: %s", step.at, step.command, reply.get("error"))
