"""AT command-line pieces of the modem: configuration, parsing helpers, the ERROR result."""
from __future__ import annotations

import re
from dataclasses import dataclass

EXTENDED = re.compile(r"\+([A-Z]+)")  # "+SBDWB=10" → SBDWB, then "=10"
LOCATION = re.compile(r"=\s*[-+]?\d+(\.\d*)?\s*,\s*[-+]?\d+(\.\d*)?\s*")  # AT+SBDIX[A]=<lat>,<lon>
SIZE = re.compile(r"=(\d{1,5})")  # AT+SBDWB=<n>


class CommandError(Exception):
    """The command answers ERROR."""


@dataclass
class ModemConfig:
    imei: str = "300434063000001"
    session_delay: tuple[float, float] = (0.5, 3.0)
    csq_delay: float = 2.0
    write_timeout: float = 60.0  # AT+SBDWB / AT+SBDWT: the bytes must come within this after READY
    seed: int | None = None


def no_args(rest: str) -> None:
    if rest:
        raise CommandError


def edit(line: str) -> str:
    """Apply backspaces (BS, DEL) as a modem's command-line editor does."""
    out: list[str] = []
    for ch in line:
        if ch in "\x08\x7f":
            if out:
                out.pop()
        else:
            out.append(ch)
    return "".join(out)
