"""The Modbus line: `serial:///dev/...?baud=115200[&parity=N&stopbits=1]` (RTU) or `tcp://host:port`
(Modbus TCP), opened with pymodbus's asyncio client, and one block read with its outcome.

pymodbus's own retries and reconnects are off: the driver decides. Each
read has its own timeout; an RTU answer whose CRC is wrong is counted (a
framer that counts what pymodbus's RTU framer silently drops) and ends the
wait at once, since the frame is gone. A closed line raises ConnectionError.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU

from drivers.common.stream import tcp_address
from drivers.modbus_power.maps import Block

SCHEMES = ("serial", "tcp")
EXCEPTIONS = {1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "server device failure",
              5: "acknowledge", 6: "server device busy", 8: "memory parity error", 10: "gateway path unavailable",
              11: "gateway target device failed to respond"}
UNREACHABLE = (10, 11)  # a Modbus gateway answering for a unit it cannot reach: the unit is silent


@dataclass(frozen=True)
class LinkUrl:
    scheme: str
    path: str = ""
    host: str = ""
    port: int = 0
    baud: int = 115200
    parity: str = "N"
    stopbits: int = 1

    def __str__(self) -> str:
        if self.scheme == "serial":
            return f"{self.path} @ {self.baud} 8{self.parity}{self.stopbits}"
        return f"{self.host}:{self.port}"


def parse_link_url(url: str) -> LinkUrl:
    """ValueError with a reason a person can act on."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "serial":
        if not parts.path.startswith("/"):
            raise ValueError("an RTU line is serial:///dev/NAME[?baud=N&parity=N|E|O&stopbits=1|2]")
        unknown = sorted(set(query) - {"baud", "parity", "stopbits"})
        if unknown:
            raise ValueError(f"unknown serial setting {', '.join(unknown)} (known: baud, parity, stopbits)")
        baud = query.get("baud", "115200")
        if not baud.isdigit() or not 300 <= int(baud) <= 4_000_000:
            raise ValueError(f"serial baud must be a number 300..4000000, got {baud!r}")
        parity = query.get("parity", "N").upper()
        if parity not in ("N", "E", "O"):
            raise ValueError(f"serial parity must be N, E or O, got {parity!r}")
        stopbits = query.get("stopbits", "1")
        if stopbits not in ("1", "2"):
            raise ValueError(f"serial stopbits must be 1 or 2, got {stopbits!r}")
        return LinkUrl("serial", path=parts.path, baud=int(baud), parity=parity, stopbits=int(stopbits))
    if parts.scheme == "tcp":
        host, port = tcp_address(parts, "Modbus TCP is tcp://HOST:PORT (port 502 on most devices)")
        return LinkUrl("tcp", host=host, port=port)
    raise ValueError(f"transport must be serial:///dev/NAME (RTU) or tcp://HOST:PORT, not {parts.scheme or url!r}://")


class CrcWatch:
    """RTU frames dropped for a wrong CRC; `waiter` is resolved at the next one."""

    def __init__(self) -> None:
        self.count = 0
        self.waiter: asyncio.Future[None] | None = None

    def hit(self) -> None:
        self.count += 1
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class _CountingFramerRTU(FramerRTU):
    def __init__(self, decoder: DecodePDU, watch: CrcWatch) -> None:
        super().__init__(decoder)
        self.watch = watch

    def decode(self, data: bytes) -> tuple[int, int, int, bytes]:
        used, dev_id, tid, frame = super().decode(data)
        if used and not frame:  # the one way FramerRTU discards a buffer: a whole frame with a wrong CRC
            self.watch.hit()
        return used, dev_id, tid, frame


async def open_client(url: LinkUrl, timeout_s: float) -> tuple[Any, CrcWatch | None]:
    """A connected client and, for RTU, its CRC watch; ConnectionError if the line cannot be opened."""
    common: dict[str, Any] = {"timeout": timeout_s, "retries": 0, "reconnect_delay": 0, "name": f"modbus {url}"}
    watch: CrcWatch | None = None
    client: Any
    if url.scheme == "serial":
        client = AsyncModbusSerialClient(url.path, baudrate=url.baud, parity=url.parity, stopbits=url.stopbits,
                                         bytesize=8, **common)
        watch = CrcWatch()
        with contextlib.suppress(AttributeError):  # pymodbus 3.x keeps the framer on its transaction manager
            client.ctx.framer = _CountingFramerRTU(DecodePDU(False), watch)
    else:
        client = AsyncModbusTcpClient(url.host, port=url.port, **common)
    client.set_max_no_responses(1 << 30)  # a silent unit is the driver's business, never a reason to drop the line
    try:
        ok = await client.connect()
    except Exception as exc:  # pyserial's SerialException and friends
        client.close()
        raise ConnectionError(f"cannot open {url}: {exc}") from exc
    if not ok:
        client.close()
        raise ConnectionError(f"cannot open {url}")
    return client, watch


@dataclass(slots=True)
class Answer:
    """What one block read gave: `words`, or `kind` of failure with `detail`."""

    words: list[int] | None
    kind: str = "ok"  # ok | timeout | crc | exception | bad_answer
    detail: str = ""
    exception_code: int | None = None

    @property
    def heard(self) -> bool:
        """The unit itself answered (even if only with an exception)."""
        if self.kind == "exception":
            return self.exception_code not in UNREACHABLE
        return self.kind == "ok"


class _CrcLost(Exception):
    """The answer came with a wrong CRC (the framer dropped it): nothing more will come for this request."""


async def _crc_watched(send: Callable[[], Awaitable[Any]], timeout_s: float, crc: CrcWatch) -> Any:
    """`send()`'s response, ended early by a CRC error on the line; TimeoutError, _CrcLost."""
    request = asyncio.ensure_future(send())
    waiter = crc.waiter = asyncio.get_running_loop().create_future()
    try:
        done, _ = await asyncio.wait((request, waiter), timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        request.cancel()
        raise
    finally:
        crc.waiter = None
    if request not in done:
        request.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await request
        raise _CrcLost() if waiter.done() else TimeoutError()
    waiter.cancel()
    return request.result()


def _what(label: str, unit: int) -> str:
    return f"{label} {'from' if label.startswith(('FC03', 'FC04')) else 'to'} unit {unit}"


async def _exchange(client: Any, unit: int, label: str, send: Callable[[], Awaitable[Any]], timeout_s: float,
                    crc: CrcWatch | None) -> tuple[Any, Answer | None]:
    """One request on the line: (the response PDU, None) or (None, the failure); ConnectionError when it is gone.

    On TCP (no CRC watch) the request is awaited under a plain timeout: no extra task per request, which is
    most of what a poll costs besides the socket calls (bench/modbus_poll.py)."""
    if not client.connected:
        raise ConnectionError("the Modbus line closed")
    try:
        if crc is None:
            async with asyncio.timeout(timeout_s):
                rr = await send()
        else:
            rr = await _crc_watched(send, timeout_s, crc)
    except TimeoutError:
        return None, Answer(None, "timeout", f"no answer to {_what(label, unit)} within {timeout_s:g} s")
    except _CrcLost:
        return None, Answer(None, "crc", f"CRC error in the answer to {_what(label, unit)}")
    except (ConnectionException, ConnectionError) as exc:
        raise ConnectionError(f"the Modbus line closed: {exc}") from exc
    except ModbusException as exc:
        if not client.connected:
            raise ConnectionError(f"the Modbus line closed: {exc}") from exc
        return None, Answer(None, "bad_answer", f"{_what(label, unit)}: {exc}")
    if rr.isError():
        code = int(getattr(rr, "exception_code", 0))
        name = EXCEPTIONS.get(code, "unknown exception")
        return None, Answer(None, "exception", f"unit {unit} answered {label} with exception 0x{code:02X} ({name})", code)
    return rr, None


async def read_block(client: Any, unit: int, block: Block, timeout_s: float, crc: CrcWatch | None) -> Answer:
    """One request for `block`; ConnectionError when the line is gone."""
    call = client.read_input_registers if block.function == 4 else client.read_holding_registers
    rr, failed = await _exchange(client, unit, block.label(), lambda: call(block.address, count=block.count, device_id=unit),
                                 timeout_s, crc)
    if failed is not None:
        return failed
    registers = getattr(rr, "registers", None)
    if rr.function_code != block.function or registers is None or len(registers) != block.count:
        got = len(registers) if registers is not None else "no"
        return Answer(None, "bad_answer",
                      f"answer to {block.label()} from unit {unit} does not match it (FC{rr.function_code:02d}, {got} registers)")
    return Answer(list(registers))


async def write_block(client: Any, unit: int, address: int, words: list[int], timeout_s: float,
                      crc: CrcWatch | None) -> Answer:
    """Write holding registers from `address`: FC06 for one, FC16 for several; the answer must echo the request."""
    function = 6 if len(words) == 1 else 16
    label = f"FC{function:02d} 0x{address:04X}+{len(words)}"
    send = ((lambda: client.write_register(address, words[0], device_id=unit)) if function == 6 else
            (lambda: client.write_registers(address, words, device_id=unit)))
    rr, failed = await _exchange(client, unit, label, send, timeout_s, crc)
    if failed is not None:
        return failed
    echoed = list(getattr(rr, "registers", None) or [])[:1] if function == 6 else [getattr(rr, "count", None)]
    expected = words[:1] if function == 6 else [len(words)]
    if rr.function_code != function or getattr(rr, "address", None) != address or echoed != expected:
        return Answer(None, "bad_answer", f"answer to {label} to unit {unit} does not echo it (FC{rr.function_code:02d}, "
                                          f"address {getattr(rr, 'address', '?')}, {echoed})")
    return Answer(list(words))
