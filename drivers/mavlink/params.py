"""Reading and setting a vehicle's parameters (PARAM_REQUEST_READ / PARAM_SET → PARAM_VALUE).

One exchange per parameter name at a time; each request is retried a few
times because a lossy radio drops some, and a PARAM_SET counts only when the
PARAM_VALUE that comes back carries the value asked for (read-back).
"""

from __future__ import annotations

import asyncio
import math
import struct
from collections.abc import Callable
from typing import Any

ATTEMPTS = 3
RETRY_S = 1.0


def as_float32(value: float) -> float:
    """What a value becomes on the wire (PARAM_VALUE carries float32)."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def same(want: float, have: float) -> bool:
    return math.isclose(as_float32(want), as_float32(have), rel_tol=1e-6, abs_tol=1e-6)


class ParamExchange:
    def __init__(self) -> None:
        self._waiting: dict[str, list[asyncio.Future[float]]] = {}

    def deliver(self, msg: Any) -> None:
        """A PARAM_VALUE from the vehicle."""
        name = msg.param_id.rstrip("\x00") if isinstance(msg.param_id, str) else msg.param_id.decode().rstrip("\x00")
        for fut in self._waiting.pop(name, []):
            if not fut.done():
                fut.set_result(float(msg.param_value))

    async def _ask(self, name: str, send: Callable[[], None]) -> float | None:
        for _ in range(ATTEMPTS):
            fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(name, []).append(fut)
            send()
            try:
                async with asyncio.timeout(RETRY_S):
                    return await fut
            except TimeoutError:
                continue
        return None

    async def read(self, name: str, send_read: Callable[[str], None]) -> float | None:
        """The vehicle's value, or None when it never answered."""
        return await self._ask(name, lambda: send_read(name))

    async def set(self, name: str, value: float, send_set: Callable[[str, float], None]) -> float | None:
        """Set and read back: the value the vehicle now holds (compare with `same`), or None."""
        for _ in range(ATTEMPTS):
            have = await self._ask(name, lambda: send_set(name, value))
            if have is None or same(value, have):
                return have
        return have
