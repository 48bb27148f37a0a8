"""Iridium SBD constants and framing (9602/9603 AT command reference, docs/serial-protocols.md)."""
from __future__ import annotations

MO_MAX = 340  # bytes in the MO buffer (AT+SBDWB)
MT_MAX = 270  # bytes in an MT message
SBDWT_MAX = 120  # characters of a text MO (AT+SBDWT)
MAILBOX_MAX = 50  # MT messages the gateway queues for one IMEI

MO_SUCCESS = frozenset(range(0, 5))  # 0-4: the MO message, if any, was transferred
MO_FAILURES: dict[int, str] = {
    10: "gateway timeout", 11: "MO queue full at the gateway", 12: "too many segments",
    13: "session incomplete", 14: "bad segment size", 15: "access denied", 16: "modem locked",
    17: "gateway not responding", 18: "RF drop", 19: "protocol error", 32: "no network service",
    33: "antenna fault", 34: "radio disabled", 35: "busy", 36: "wait 3 minutes after the last registration",
    37: "SBD service disabled", 38: "traffic management", 64: "band violation", 65: "PLL lock failure",
}
INJECTABLE = frozenset(MO_SUCCESS - {0}) | frozenset(MO_FAILURES)
NO_SERVICE = 32  # what a session answers with no signal (CSQ 0)

# MT status in the +SBDIX answer
MT_NONE, MT_RECEIVED, MT_ERROR = 0, 1, 2

# AT+SBDWB / AT+SBDWT results
WRITE_OK, WRITE_TIMEOUT, WRITE_BAD_CHECKSUM, WRITE_BAD_SIZE = 0, 1, 2, 3


def checksum(data: bytes) -> bytes:
    """The 2-byte SBD checksum: the 16-bit sum of the bytes, high byte first."""
    return (sum(data) & 0xFFFF).to_bytes(2, "big")


def with_checksum(data: bytes) -> bytes:
    """What a host sends after READY for AT+SBDWB."""
    return data + checksum(data)


def sbdrb_frame(data: bytes) -> bytes:
    """The binary AT+SBDRB answer: 2-byte length (big-endian), the data, the checksum."""
    return len(data).to_bytes(2, "big") + data + checksum(data)


def parse_sbdrb(frame: bytes) -> bytes:
    """The data of an AT+SBDRB frame; ValueError if the length or checksum is wrong."""
    if len(frame) < 4:
        raise ValueError("short SBDRB frame")
    n = int.from_bytes(frame[:2], "big")
    if len(frame) != n + 4:
        raise ValueError(f"SBDRB length {n} but {len(frame) - 4} data bytes")
    data = frame[2:2 + n]
    if checksum(data) != frame[2 + n:]:
        raise ValueError("SBDRB checksum mismatch")
    return data
