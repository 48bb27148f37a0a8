"""SDS-TL PDUs the simulated radio sends and reads (EN 300 392-2 §29, as the spec page has them).

0x82 text with SDS-TL: byte 1 message type in the high nibble. SDS-TRANSFER
(type 0): `0000 RR S F`, message reference, timestamp-used bit + 7-bit coding,
(3-byte timestamp when the bit is set), text. SDS-REPORT (type 1):
`0001 A 00 F`, delivery status, message reference. 0x02 simple text: coding
byte then text. 0x0A: LIP, a short location report (PDU type 00) or a long
PDU (01, reporting control: lipctl.py).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from . import lip, lipctl

PID_SIMPLE_TEXT = 0x02
PID_TEXT = 0x82
PID_LIP = lip.PID_LIP
TYPE_TRANSFER = 0
TYPE_REPORT = 1
CODING_LATIN1 = 0x01
CODING_UCS2 = 0x1A
MAX_TEXT_BYTES = 140
STATUS_RECEIVED = 0x00
STATUS_CONSUMED = 0x02
STATUS_FAILED = 0x42
RR_NONE, RR_RECEIPT, RR_CONSUMED, RR_BOTH = 0, 1, 2, 3


def encode_text(text: str) -> tuple[int, bytes]:
    """Latin-1 when the text fits it, else UCS-2 big-endian (as the driver chooses)."""
    try:
        return CODING_LATIN1, text.encode("latin-1")
    except UnicodeEncodeError:
        if any(ord(c) > 0xFFFF for c in text):
            raise ValueError("text has characters outside UCS-2 (the Basic Multilingual Plane)") from None
        return CODING_UCS2, text.encode("utf-16-be")


def decode_text(data: bytes, coding: int) -> str | None:
    if coding == CODING_LATIN1:
        return data.decode("latin-1")
    if coding == CODING_UCS2:
        return data.decode("utf-16-be", "replace")
    return None


def transfer(ref: int, text: str, rr: int = RR_NONE) -> bytes:
    """A 0x82 SDS-TRANSFER carrying `text`."""
    coding, body = encode_text(text)
    if len(body) > MAX_TEXT_BYTES:
        raise ValueError(f"text is {len(body)} bytes; one SDS carries at most {MAX_TEXT_BYTES}")
    return bytes([PID_TEXT, (TYPE_TRANSFER << 4) | (rr << 2), ref & 0xFF, coding]) + body


def report(ref: int, status: int, ack_required: bool = False) -> bytes:
    """A 0x82 SDS-REPORT: delivery `status` for message reference `ref`."""
    return bytes([PID_TEXT, (TYPE_REPORT << 4) | (int(ack_required) << 3), status & 0xFF, ref & 0xFF])


@dataclass
class SdsInfo:
    """What the radio makes of a PDU the host sent."""

    pid: int
    kind: str  # transfer | report | simple | lip | lip_control | unknown | truncated
    text: str | None = None
    coding: int | None = None
    rr: int = RR_NONE
    short_report: bool = False
    storage: bool = False
    ref: int | None = None
    status: int | None = None
    lip: dict[str, Any] | None = None
    lip_control: lipctl.ControlPdu | None = None

    @property
    def report_requested(self) -> bool:
        return self.kind == "transfer" and self.rr != RR_NONE


def decode(pdu: bytes, bits: int) -> SdsInfo:
    """Never raises: a PDU it cannot read is 'unknown' or 'truncated'."""
    if not pdu:
        return SdsInfo(pid=-1, kind="truncated")
    pid = pdu[0]
    if pid == PID_TEXT:
        return _decode_text_tl(pdu)
    if pid == PID_SIMPLE_TEXT:
        if len(pdu) < 2:
            return SdsInfo(pid=pid, kind="truncated")
        coding = pdu[1] & 0x7F
        return SdsInfo(pid=pid, kind="simple", coding=coding, text=decode_text(pdu[2:], coding))
    if pid == PID_LIP:
        return _decode_lip(pdu, bits)
    return SdsInfo(pid=pid, kind="unknown")


def _decode_lip(pdu: bytes, bits: int) -> SdsInfo:
    if bits < 10 or len(pdu) < 2:
        return SdsInfo(pid=PID_LIP, kind="truncated")
    pdu_type = pdu[1] >> 6
    if pdu_type == lipctl.PDU_TYPE_SHORT:
        try:
            if bits < lip.LIP_BITS:
                raise ValueError("cut short")
            return SdsInfo(pid=PID_LIP, kind="lip", lip=asdict(lip.decode(pdu)))
        except ValueError:
            return SdsInfo(pid=PID_LIP, kind="truncated")
    if pdu_type == lipctl.PDU_TYPE_EXTENDED:
        try:
            return SdsInfo(pid=PID_LIP, kind="lip_control", lip_control=lipctl.decode(pdu, bits))
        except ValueError:
            return SdsInfo(pid=PID_LIP, kind="truncated")
    return SdsInfo(pid=PID_LIP, kind="unknown")  # PDU types 10 and 11 are reserved


def _decode_text_tl(pdu: bytes) -> SdsInfo:
    if len(pdu) < 3:
        return SdsInfo(pid=PID_TEXT, kind="truncated")
    mtype, flags = pdu[1] >> 4, pdu[1] & 0x0F
    if mtype == TYPE_REPORT:
        if len(pdu) < 4:
            return SdsInfo(pid=PID_TEXT, kind="truncated")
        return SdsInfo(pid=PID_TEXT, kind="report", status=pdu[2], ref=pdu[3], storage=bool(flags & 1))
    if mtype != TYPE_TRANSFER:
        return SdsInfo(pid=PID_TEXT, kind="unknown")
    info = SdsInfo(pid=PID_TEXT, kind="transfer", rr=(flags >> 2) & 3, short_report=bool(flags & 2),
                   storage=bool(flags & 1), ref=pdu[2])
    if len(pdu) < 4:
        info.kind = "truncated"
        return info
    start = 4 + (3 if pdu[3] & 0x80 else 0)  # timestamp-used bit: 24-bit timestamp before the text
    info.coding = pdu[3] & 0x7F
    info.text = decode_text(pdu[start:], info.coding)
    return info
