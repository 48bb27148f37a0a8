"""Iridium SBD framing and result codes (9602/9603 AT reference; docs/serial-protocols.md).

Pure functions, no I/O: the checksum, the `AT+SBDWB` payload, the `+SBDIX`
answer, the binary `AT+SBDRB` answer (as an AtChannel `binary=` parser),
`+CSQF`, and what each MO status means and what the driver does about it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

MO_MAX = 340  # bytes in one MO message (AT+SBDWB)
MT_MAX = 270  # bytes in one MT message (AT+SBDRB)

MO_STATUS: dict[int, str] = {
    0: "MO message transferred", 1: "MO message transferred, but the MT message in the queue was too big",
    2: "MO message transferred, but the location update was not accepted",
    3: "MO message transferred", 4: "MO message transferred",
    10: "gateway timeout", 11: "MO queue full at the gateway", 12: "too many segments",
    13: "session incomplete", 14: "bad segment size", 15: "access denied", 16: "modem locked",
    17: "gateway not responding", 18: "RF drop", 19: "protocol error", 32: "no network service",
    33: "antenna fault", 34: "radio disabled", 35: "busy",
    36: "wait 3 minutes after the last registration", 37: "SBD service disabled", 38: "traffic management",
}
RETRY_CODES = frozenset(range(10, 20)) | {32, 35}
REGISTRATION_WAIT = 36

MT_STATUS = {0: "no MT message", 1: "MT message received", 2: "error checking the mailbox"}
MT_NONE, MT_RECEIVED, MT_ERROR = 0, 1, 2

WRITE_RESULTS = {0: "written", 1: "the modem timed out waiting for the bytes", 2: "the modem got a bad checksum",
                 3: "the modem refused the size"}
WRITE_OK, WRITE_BAD_SIZE = 0, 3

_SBDIX = re.compile(r"^\+SBDIXA?:\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(-?\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*$")
_SBDS = re.compile(r"^\+SBDS:\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,\s*(-?\d+)\s*$")
_CSQF = re.compile(r"^\+CSQF?:\s*(\d)\s*$")


class SbdError(ValueError):
    """Bytes or a line that are not what the SBD protocol says."""


class Action(Enum):
    DONE = "done"  # MO status 0-4
    RETRY = "retry"  # 10-19, 32, 35: bounded backoff, the MO buffer stays written
    WAIT = "wait"  # 36: wait registration_wait_s before the next session
    FAIL = "fail"  # anything else: give up at once with the reason


def mo_meaning(code: int) -> str:
    return MO_STATUS.get(code, "reserved / unknown MO status")


def mo_action(code: int) -> Action:
    if 0 <= code <= 4:
        return Action.DONE
    if code in RETRY_CODES:
        return Action.RETRY
    if code == REGISTRATION_WAIT:
        return Action.WAIT
    return Action.FAIL


def describe_mo(code: int) -> str:
    return f"MO status {code} ({mo_meaning(code)})"


def checksum(data: bytes) -> bytes:
    """The 2-byte SBD checksum: the 16-bit sum of the bytes, high byte first."""
    return (sum(data) & 0xFFFF).to_bytes(2, "big")


def mo_payload(data: bytes) -> bytes:
    """What follows READY after `AT+SBDWB=<len(data)>`: the bytes and their checksum."""
    if not 1 <= len(data) <= MO_MAX:
        raise SbdError(f"an SBD MO message is 1..{MO_MAX} bytes, not {len(data)}")
    return data + checksum(data)


def sbdrb_frame(data: bytes) -> bytes:
    """The binary `AT+SBDRB` answer for `data` (for tests and the reader's counterpart)."""
    return len(data).to_bytes(2, "big") + data + checksum(data)


def parse_sbdrb(frame: bytes) -> bytes:
    """The data of a whole `AT+SBDRB` answer; SbdError if its length or checksum is wrong."""
    if len(frame) < 4:
        raise SbdError(f"SBDRB answer of {len(frame)} bytes is shorter than its header")
    n = int.from_bytes(frame[:2], "big")
    if n > MT_MAX:
        raise SbdError(f"SBDRB length {n} is over the {MT_MAX}-byte MT limit")
    if len(frame) != n + 4:
        raise SbdError(f"SBDRB length {n} but {len(frame) - 4} data bytes")
    data = frame[2:2 + n]
    if checksum(data) != frame[2 + n:]:
        raise SbdError("SBDRB checksum mismatch")
    return bytes(data)


class SbdrbReader:
    """An AtChannel `binary=` parser for one `AT+SBDRB` answer.

    Returns None until the whole frame is there, then the bytes it took.
    A length over MT_MAX cannot start a frame (a stray line, noise): it
    takes nothing and lines resume, leaving `error` set. A bad checksum
    takes the frame and sets `error`; the data is then dropped.
    """

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.error: str | None = None

    def __call__(self, buf: bytearray) -> int | None:
        if len(buf) < 2:
            return None
        n = int.from_bytes(buf[:2], "big")
        if n > MT_MAX:
            self.error = f"SBDRB answer starts with length {n}, over the {MT_MAX}-byte limit"
            return 0
        if len(buf) < n + 4:
            return None
        try:
            self.data = parse_sbdrb(bytes(buf[:n + 4]))
        except SbdError as exc:
            self.error = str(exc)
        return n + 4


@dataclass(frozen=True)
class Session:
    """One `+SBDIX` answer."""

    mo_status: int
    momsn: int
    mt_status: int
    mtmsn: int
    mt_length: int
    mt_queued: int

    @property
    def action(self) -> Action:
        return mo_action(self.mo_status)


def parse_sbdix(line: str) -> Session:
    m = _SBDIX.match(line.strip())
    if m is None:
        raise SbdError(f"not an +SBDIX answer: {line[:60]!r}")
    mo, momsn, mt, mtmsn, length, queued = (int(g) for g in m.groups())
    return Session(mo, momsn, mt, mtmsn, length, queued)


def find_sbdix(lines: list[str]) -> Session:
    """The `+SBDIX` answer among a command's response lines (noise may sit beside it)."""
    for line in lines:
        if line.startswith("+SBDIX"):
            try:
                return parse_sbdix(line)
            except SbdError:
                continue
    raise SbdError(f"no +SBDIX answer in {lines[:4]!r}")


def parse_sbds(lines: list[str]) -> tuple[int, int, int, int]:
    """`AT+SBDS` → (MO flag, MOMSN the next MO session takes, MT flag, MTMSN or -1); SbdError if absent."""
    for line in lines:
        if m := _SBDS.match(line.strip()):
            mo, momsn, mt, mtmsn = (int(g) for g in m.groups())
            return mo, momsn, mt, mtmsn
    raise SbdError(f"no +SBDS answer in {lines[:4]!r}")


def parse_csqf(lines: list[str]) -> int | None:
    """Signal bars 0..5 from an `AT+CSQF` (or `AT+CSQ`) answer, or None."""
    for line in lines:
        if m := _CSQF.match(line.strip()):
            bars = int(m.group(1))
            if bars <= 5:
                return bars
    return None


def write_result(lines: list[str]) -> int | None:
    """The `AT+SBDWB` result (0..3) among its response lines, or None."""
    for line in lines:
        if line.strip() in ("0", "1", "2", "3"):
            return int(line.strip())
    return None
