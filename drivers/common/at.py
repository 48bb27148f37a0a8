"""The AT dialogue with a modem: one command at a time, unsolicited lines beside it.

`AtChannel.serve()` owns the read side: it splits the byte stream into
lines and hands each either to the command in flight (its response) or, for
lines a driver declares unsolicited (`+CTSDSR:`, `SBDRING`, ...), to the
driver's `on_urc`. Some unsolicited results carry a second line (the hex
PDU after `+CTSDSR:`); `urc_extra_lines` says how many, and `urc_extra_ok`
what such a line looks like: when it was lost, the line that comes instead
(a final result, another unsolicited result, an answer's line) is read for
what it is and the short result is handed on.

`command()` sends one command and returns its response lines once a final
result arrives (`OK`, or raises AtError for `ERROR`, `+CME ERROR: n`,
`+CMS ERROR: n`). It understands an echo (a modem that still echoes before
`ATE0`), a prompt before a payload (Iridium's `READY`), and a binary answer
(Iridium's `AT+SBDRB`), which is read as bytes rather than lines.

Noise never escapes: a line that is neither a response nor a known
unsolicited result is counted in `stats["unexpected_lines"]` and dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

MAX_LINE = 4096  # a line longer than this is noise: dropped
FINAL_OK = "OK"
BinaryParser = Callable[[bytearray], int | None]  # bytes consumed, or None until enough have arrived


class AtError(Exception):
    """A modem answered ERROR / +CME ERROR / +CMS ERROR, or did not answer in time."""

    def __init__(self, command: str, result: str) -> None:
        super().__init__(f"{command}: {result}")
        self.command = command
        self.result = result


@dataclass
class _Pending:
    command: str
    lines: list[str] = field(default_factory=list)
    prompt: str | None = None
    prompted: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    binary: BinaryParser | None = None
    intermediate_final: Callable[[str], bool] | None = None


class AtChannel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 on_urc: Callable[[list[str]], None], urc_prefixes: tuple[str, ...],
                 urc_extra_lines: dict[str, int] | None = None,
                 urc_extra_ok: Callable[[str], bool] | None = None) -> None:
        self._reader = reader
        self._writer = writer
        self._on_urc = on_urc
        self._urc_prefixes = urc_prefixes
        self._urc_extra = urc_extra_lines or {}
        self._urc_extra_ok = urc_extra_ok  # what an extra line must look like (TETRA: hex); others are not taken
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._urc: list[str] | None = None  # an unsolicited result waiting for its extra lines
        self._urc_missing = 0
        self._buf = bytearray()
        self.stats = {"lines": 0, "urcs": 0, "unexpected_lines": 0, "errors": 0, "timeouts": 0, "noise_bytes": 0, "short_urcs": 0}

    async def serve(self) -> None:
        """Read until the stream ends; raises ConnectionError when the device goes away."""
        try:
            while True:
                data = await self._reader.read(4096)
                if not data:
                    raise ConnectionError("device closed the line")
                self._buf += data
                self._drain()
        except OSError as exc:  # pyserial's "device reports readiness to read but returned no data"
            raise ConnectionError(f"serial line lost: {exc}") from exc
        finally:
            if self._pending is not None and not self._pending.done.done():
                self._pending.done.set_exception(ConnectionError("line lost during " + self._pending.command))

    def close(self) -> None:
        self._writer.close()

    def write_raw(self, data: bytes) -> None:
        self._writer.write(data)

    async def command(self, command: str, timeout: float = 5.0, *, prompt: str | None = None,
                      payload: bytes | None = None, binary: BinaryParser | None = None,
                      terminator: bytes = b"\r") -> list[str]:
        """Send one command; its response lines (without echo and final `OK`).

        With `prompt`, wait for that line and then send `payload`; without a
        prompt, `payload` follows the command at once. With `binary`, the
        answer's first bytes go to that parser before lines resume.
        """
        async with self._lock:
            pending = _Pending(command, prompt=prompt, binary=binary)
            self._pending = pending
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that lands in
                # the same loop step as the answer (CPython gh-86296), leaving a stopping link hanging.
                async with asyncio.timeout(timeout):
                    self._writer.write(command.encode() + terminator + (payload if payload and not prompt else b""))
                    if prompt is not None:
                        await self._prompt_or_done(pending)
                        if not pending.done.done():
                            self._writer.write(payload or b"")
                    result = await asyncio.shield(pending.done)
            except TimeoutError:
                self.stats["timeouts"] += 1
                raise AtError(command, f"no answer within {timeout:g} s") from None
            finally:
                self._pending = None
            if result != FINAL_OK:
                self.stats["errors"] += 1
                raise AtError(command, result)
            return pending.lines

    async def _prompt_or_done(self, pending: _Pending) -> None:
        prompt_wait = asyncio.ensure_future(pending.prompted.wait())
        try:
            await asyncio.wait({prompt_wait, pending.done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            prompt_wait.cancel()

    # -- the read side -----------------------------------------------------
    def _drain(self) -> None:
        while self._buf:
            pending = self._pending
            if pending is not None and pending.binary is not None:
                used = pending.binary(self._buf)
                if used is None:
                    return
                del self._buf[:used]
                pending.binary = None
                continue
            end = self._buf.find(b"\n")
            if end < 0:
                cr = self._buf.find(b"\r")
                if pending is not None and pending.prompt is not None and self._buf.strip() == pending.prompt.encode():
                    end = len(self._buf) - 1  # a prompt may come without a line end ("> ")
                elif cr >= 0 and cr < len(self._buf) - 1:
                    end = cr  # a lone CR as the line end
                else:
                    if len(self._buf) > MAX_LINE:
                        self.stats["noise_bytes"] += len(self._buf)
                        self._buf.clear()
                    return
            raw = bytes(self._buf[: end + 1])
            del self._buf[: end + 1]
            line = raw.decode("ascii", "replace").strip()
            if line:
                self._line(line)

    def _line(self, line: str) -> None:
        self.stats["lines"] += 1
        if self._urc is not None:
            if (self._is_final(line) or line.startswith(self._urc_prefixes)
                    or (self._urc_extra_ok is not None and not self._urc_extra_ok(line))):
                # the unsolicited result's extra line was lost: hand it on short, and read this line for itself
                urc, self._urc = self._urc, None
                self.stats["short_urcs"] += 1
                self._deliver_urc(urc)
            else:
                self._urc.append(line)
                self._urc_missing -= 1
                if self._urc_missing <= 0:
                    urc, self._urc = self._urc, None
                    self._deliver_urc(urc)
                return
        if line.startswith(self._urc_prefixes):
            extra = next((n for p, n in self._urc_extra.items() if line.startswith(p)), 0)
            if extra:
                self._urc, self._urc_missing = [line], extra
            else:
                self._deliver_urc([line])
            return
        pending = self._pending
        if pending is None or pending.done.done():
            self.stats["unexpected_lines"] += 1
            log.debug("unexpected line dropped: %r", line[:80])
            return
        if line == pending.command:  # echo
            return
        if pending.prompt is not None and line == pending.prompt and not pending.prompted.is_set():
            pending.prompted.set()
            return
        if self._is_final(line):
            pending.done.set_result(line)
            return
        pending.lines.append(line)

    @staticmethod
    def _is_final(line: str) -> bool:
        return line == FINAL_OK or line == "ERROR" or line.startswith(("+CME ERROR", "+CMS ERROR"))

    def _deliver_urc(self, lines: list[str]) -> None:
        self.stats["urcs"] += 1
        try:
            self._on_urc(lines)
        except Exception:  # a parser bug must not take the link down
            log.exception("unsolicited result %r could not be handled", lines[0][:80])
