"""The 9603's AT side: commands from the host on the pty, answers in V.25ter verbose framing
(`\\r\\n<text>\\r\\n`, results `\\r\\nOK\\r\\n`), SBD buffers, sessions against the network.

One worker coroutine reads command lines and carries each out to its final result; an SBD ring
alert waits for that (never lands inside an answer). Echo (ATE1, the power-up default) sends back
each command line as the modem takes it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from .atcmd import EXTENDED, LOCATION, SIZE, CommandError, ModemConfig, edit, no_args
from .lineio import InputBuffer
from .network import Network
from .sbd import (MO_MAX, SBDWT_MAX, WRITE_BAD_CHECKSUM, WRITE_BAD_SIZE, WRITE_OK, WRITE_TIMEOUT, checksum,
                  sbdrb_frame)

log = logging.getLogger(__name__)

Writer = Callable[[bytes], bool]


class Modem:
    def __init__(self, network: Network, config: ModemConfig) -> None:
        self.network = network
        self.config = config
        self._rng = random.Random(config.seed)
        self._write: Writer = lambda _data: False
        self._input = InputBuffer()
        self._task: asyncio.Task[None] | None = None
        self._busy = False
        self._ring_pending = False
        self.momsn = 0  # kept in non-volatile memory: survives a power cycle
        self.powered = False
        self.commands = self.errors = self.rings = self.power_cycles = 0
        self._reset()
        self._handlers: dict[str, Callable[[str], Awaitable[None]]] = {
            "CGSN": self._cgsn, "CGMI": self._cgmi, "CGMM": self._cgmm, "SBDMTA": self._sbdmta,
            "SBDWB": self._sbdwb, "SBDWT": self._sbdwt, "SBDIX": self._sbdix, "SBDIXA": self._sbdixa,
            "SBDRB": self._sbdrb, "SBDRT": self._sbdrt, "SBDD": self._sbdd, "SBDS": self._sbds,
            "SBDC": self._sbdc, "CSQ": self._csq, "CSQF": self._csqf,
        }

    def _reset(self) -> None:
        """Power-up state: echo on, ring alerts off, empty buffers."""
        self.echo = True
        self.flow_control = 3
        self.ring_alerts = False
        self.mo = b""
        self.mt = b""
        self.mt_msn = -1
        self._ring_pending = False
        self._busy = False

    # ------------------------------------------------------------ power and the wire

    def power_on(self, write: Writer) -> None:
        self._write = write
        self._reset()
        self._input = InputBuffer()
        self.powered = True
        self._task = asyncio.get_running_loop().create_task(self._run(), name="iridium-modem")

    def power_off(self) -> None:
        """Power lost: whatever command was running is gone, with the buffers and settings."""
        self.powered = False
        self.power_cycles += 1
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._reset()

    async def stop(self) -> None:
        task, self._task = self._task, None
        self.powered = False
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def feed(self, data: bytes) -> None:
        """Bytes from the host (the pty's reader callback)."""
        if self.powered:
            self._input.feed(data)

    def clear_input(self) -> None:
        self._input.clear()

    def send_raw(self, data: bytes) -> bool:
        return self._write(data)

    def ring(self) -> bool:
        """An SBD ring alert for a queued MT message: now if idle, else after the current answer."""
        if not (self.powered and self.ring_alerts):
            return False
        if self._busy:
            self._ring_pending = True
        else:
            self._send_ring()
        return True

    def _send_ring(self) -> None:
        self._ring_pending = False
        self.rings += 1
        self._write(b"\r\nSBDRING\r\n")

    def _info(self, text: str | bytes) -> None:
        self._write(b"\r\n" + (text.encode("latin-1") if isinstance(text, str) else text) + b"\r\n")

    def _ok(self) -> None:
        self._write(b"\r\nOK\r\n")

    # ------------------------------------------------------------ the command loop

    async def _run(self) -> None:
        while True:
            raw = await self._input.readline()
            self._busy = True
            try:
                if self.echo:
                    self._write(raw)
                await self._execute(raw)
            finally:
                self._busy = False
            if self._ring_pending and self.ring_alerts and self.network.mailbox:
                self._send_ring()
            self._ring_pending = False

    async def _execute(self, raw: bytes) -> None:
        text = edit(raw.rstrip(b"\r").decode("latin-1"))
        start = text.upper().find("AT")
        if start < 0:
            return  # no AT prefix: a modem answers nothing (noise, a stray CR)
        self.commands += 1
        log.debug("command %r", text[start:])
        try:
            await self._command(text[start + 2:])
        except CommandError:
            self.errors += 1
            self._write(b"\r\nERROR\r\n")
        except Exception:  # a simulator bug must not leave the modem deaf
            log.exception("command %r failed", text[start:])
            self.errors += 1
            self._write(b"\r\nERROR\r\n")

    async def _command(self, cmd: str) -> None:
        upper = cmd.upper()
        if upper == "":
            return self._ok()
        if upper in ("E", "E0", "E1"):
            self.echo = upper == "E1"
            return self._ok()
        if upper in ("&K", "&K0", "&K3"):
            self.flow_control = int(upper[2:] or 0)
            return self._ok()
        m = EXTENDED.match(upper)
        handler = self._handlers.get(m.group(1)) if m else None
        if m is None or handler is None:
            raise CommandError
        await handler(cmd[m.end():])

    # ------------------------------------------------------------ identity and settings

    async def _cgsn(self, rest: str) -> None:
        no_args(rest)
        self._info(self.config.imei)
        self._ok()

    async def _cgmi(self, rest: str) -> None:
        no_args(rest)
        self._info("Iridium")
        self._ok()

    async def _cgmm(self, rest: str) -> None:
        no_args(rest)
        self._info("IRIDIUM 9600 Family SBD Transceiver")
        self._ok()

    async def _sbdmta(self, rest: str) -> None:
        if rest == "?":
            self._info(f"+SBDMTA:{int(self.ring_alerts)}")
        elif rest in ("=0", "=1"):
            self.ring_alerts = rest == "=1"
        else:
            raise CommandError
        self._ok()

    # ------------------------------------------------------------ the MO buffer

    async def _sbdwb(self, rest: str) -> None:
        m = SIZE.fullmatch(rest)
        if m is None:
            raise CommandError
        n = int(m.group(1))
        if not 1 <= n <= MO_MAX:
            self._result(WRITE_BAD_SIZE)
            return
        self._info("READY")
        data = await self._input.readexactly(n + 2, self.config.write_timeout)
        if data is None:
            status = WRITE_TIMEOUT
        elif checksum(data[:n]) != data[n:]:
            status = WRITE_BAD_CHECKSUM
        else:
            self.mo, status = data[:n], WRITE_OK
        self._result(status)

    async def _sbdwt(self, rest: str) -> None:
        if rest.startswith("="):
            text = rest[1:].encode("latin-1")
            if len(text) > SBDWT_MAX:
                raise CommandError
            self.mo = text
            return self._ok()
        no_args(rest)
        self._info("READY")
        line = await self._text_line()
        if line is None:
            self._result(WRITE_TIMEOUT)
        elif len(line) > SBDWT_MAX:
            raise CommandError
        else:
            self.mo = line
            self._result(WRITE_OK)

    async def _text_line(self) -> bytes | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.write_timeout):
                return (await self._input.readline()).rstrip(b"\r")
        return None

    def _result(self, status: int) -> None:
        self._info(str(status))
        self._ok()

    async def _sbdd(self, rest: str) -> None:
        if rest not in ("", "0", "1", "2"):
            raise CommandError
        which = int(rest or 0)
        if which in (0, 2):
            self.mo = b""
        if which in (1, 2):
            self.mt, self.mt_msn = b"", -1
        self._result(0)

    async def _sbdc(self, rest: str) -> None:
        no_args(rest)
        self.momsn = 0
        self._result(0)

    async def _sbds(self, rest: str) -> None:
        no_args(rest)
        self._info(f"+SBDS: {int(bool(self.mo))}, {self.momsn}, {int(bool(self.mt))}, {self.mt_msn}")
        self._ok()

    # ------------------------------------------------------------ sessions and the MT buffer

    async def _sbdix(self, rest: str) -> None:
        await self._session("SBDIX", rest)

    async def _sbdixa(self, rest: str) -> None:
        await self._session("SBDIXA", rest)

    async def _session(self, kind: str, rest: str) -> None:
        if rest and not LOCATION.fullmatch(rest):
            raise CommandError
        attempt = self.network.begin(kind, len(self.mo))
        await asyncio.sleep(self._rng.uniform(*self.config.session_delay))
        momsn = self.momsn
        r = self.network.complete(attempt, self.mo, momsn)
        if r.success:
            self.momsn = (self.momsn + 1) & 0xFFFF
            if r.mt:
                self.mt, self.mt_msn = r.mt, r.mtmsn
        self._info(f"+SBDIX: {r.mo_status}, {momsn}, {r.mt_status}, {r.mtmsn}, {len(r.mt)}, {r.mt_queued}")
        self._ok()

    async def _sbdrb(self, rest: str) -> None:
        no_args(rest)
        self._write(sbdrb_frame(self.mt))
        self._ok()

    async def _sbdrt(self, rest: str) -> None:
        no_args(rest)
        self._write(b"\r\n+SBDRT:\r\n" + self.mt + b"\r\n")
        self._ok()

    async def _csq(self, rest: str) -> None:
        no_args(rest)
        await asyncio.sleep(self.config.csq_delay)
        self._info(f"+CSQ:{self.network.csq}")
        self._ok()

    async def _csqf(self, rest: str) -> None:
        no_args(rest)
        self._info(f"+CSQF:{self.network.csq}")
        self._ok()

    def stats(self) -> dict[str, Any]:
        return {"powered": self.powered, "echo": self.echo, "ring_alerts": self.ring_alerts, "momsn": self.momsn,
                "mo_buffer": len(self.mo), "mt_buffer": len(self.mt), "commands": self.commands,
                "errors": self.errors, "rings_sent": self.rings, "input_overruns": self._input.overruns}

