"""Splits what the host types into command units, the way a radio's AT parser reads it.

A command line ends at CR (S3); an LF after it is swallowed as the start of the
next line (and echoed with it). After a line holding `+CMGS=` the radio reads a
PDU body up to Ctrl-Z (0x1A) — the body may follow in the same write or on the
next line; CR/LF inside it are dropped. ESC (0x1B) abandons the body.
Characters before `AT` on a line are ignored (V.250).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

CR, LF, CTRL_Z, ESC = 0x0D, 0x0A, 0x1A, 0x1B
MAX_LINE = 512           # characters of one command line
MAX_PDU_CHARS = 2048     # hex digits of one PDU body (2047 bits need 512)
_AT = re.compile(r"at", re.IGNORECASE)
_CMGS = re.compile(r"\+CMGS=", re.IGNORECASE)


@dataclass
class Unit:
    """One thing for the command processor: a command line, maybe with its PDU body."""

    raw: bytes                # what the host typed (echoed when echo is on); Ctrl-Z/ESC excluded
    line: str                 # from `AT` on, CR/LF removed; "" when the line held no `AT`
    pdu: str | None = None    # the CMGS body as typed (CR/LF removed); None for other commands
    cancelled: bool = False   # ESC during the body
    timed_out: bool = False   # no Ctrl-Z in time
    overflow: bool = False    # line or body longer than the radio buffers


def command_text(raw: bytes) -> str:
    text = raw.decode("latin-1").replace("\r", "").replace("\n", "")
    m = _AT.search(text)
    return text[m.start():].strip() if m else ""


class PeiInput:
    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False
        self._pending: Unit | None = None   # a CMGS line waiting for its body
        self._body = bytearray()

    @property
    def in_pdu(self) -> bool:
        return self._pending is not None

    def reset(self) -> None:
        self._buf.clear()
        self._body.clear()
        self._pending = None
        self._overflow = False

    def timeout(self) -> Unit | None:
        """Abandon a body that never got its Ctrl-Z."""
        unit = self._finish_pdu()
        if unit is not None:
            unit.timed_out = True
        return unit

    def feed(self, data: bytes) -> list[Unit]:
        units: list[Unit] = []
        for b in data:
            if self._pending is not None:
                if b in (CTRL_Z, ESC):
                    unit = self._finish_pdu()
                    assert unit is not None
                    unit.cancelled = b == ESC
                    units.append(unit)
                elif len(self._body) < MAX_PDU_CHARS:
                    self._body.append(b)
                else:
                    self._pending.overflow = True
                continue
            if b == CR:
                self._buf.append(b)
                unit = self._finish_line()
                if unit is not None:
                    units.append(unit)
            elif b == CTRL_Z:
                continue  # a stray Ctrl-Z outside a body means nothing
            elif len(self._buf) < MAX_LINE:
                self._buf.append(b)
            else:
                self._overflow = True
        return units

    def _finish_line(self) -> Unit | None:
        raw = bytes(self._buf)
        overflow = self._overflow
        self._buf.clear()
        self._overflow = False
        unit = Unit(raw=raw, line=command_text(raw), overflow=overflow)
        if unit.line and _CMGS.search(unit.line) and not overflow:
            self._pending = unit
            self._body.clear()
            return None
        return unit

    def _finish_pdu(self) -> Unit | None:
        unit = self._pending
        if unit is None:
            return None
        body = bytes(self._body)
        unit.raw += body
        unit.pdu = body.decode("latin-1").replace("\r", "").replace("\n", "")
        self._pending = None
        self._body.clear()
        return unit
