"""SDS-TL PDUs (EN 300 392-2 §29) for text: SDS-TRANSFER, SDS-REPORT, simple text.

Text coding: 0x01 ISO 8859-1, 0x1A UCS-2 big-endian (docs/serial-protocols.md;
the 0x1A value is marked unverified there).
"""

from __future__ import annotations

from dataclasses import dataclass

PID_SIMPLE_TEXT, PID_TEXT = 0x02, 0x82
TRANSFER, REPORT = 0, 1
LATIN1, UCS2 = 0x01, 0x1A
MAX_TEXT_BYTES = 140
REPORT_RECEIPT = 1
DELIVERY_FAILED_FROM = 0x40


class SdsError(ValueError):
    """Bytes that are not a text SDS-TL PDU this driver understands."""


@dataclass(frozen=True)
class TextMessage:
    text: str
    coding: int
    ref: int | None  # None for simple text
    report_requested: int = 0


@dataclass(frozen=True)
class DeliveryReport:
    ref: int
    status: int

    @property
    def delivered(self) -> bool:
        return self.status < DELIVERY_FAILED_FROM


def coding_for(text: str) -> int:
    try:
        text.encode("latin-1")
        return LATIN1
    except UnicodeEncodeError:
        return UCS2


def encoded_text(text: str, coding: int | None = None) -> bytes:
    coding = coding_for(text) if coding is None else coding
    return text.encode("latin-1" if coding == LATIN1 else "utf-16-be")


def text_size(text: str) -> int:
    """Bytes the text takes in one SDS (the unit of MAX_TEXT_BYTES)."""
    return len(encoded_text(text))


def _decode_text(coding: int, data: bytes) -> str:
    if coding == LATIN1:
        return data.decode("latin-1")
    if coding == UCS2:
        if len(data) % 2:
            raise SdsError("UCS-2 text with an odd number of bytes")
        return data.decode("utf-16-be", "replace")
    raise SdsError(f"text coding scheme 0x{coding:02x} not supported")


def build_transfer(text: str, ref: int, report: int = REPORT_RECEIPT) -> bytes:
    """An SDS-TRANSFER text PDU (PID first)."""
    if not 0 <= ref <= 255:
        raise SdsError("message reference must be 0..255")
    coding = coding_for(text)
    body = encoded_text(text, coding)
    if len(body) > MAX_TEXT_BYTES:
        raise SdsError(f"text takes {len(body)} bytes; one SDS carries {MAX_TEXT_BYTES}")
    return bytes([PID_TEXT, (TRANSFER << 4) | (report << 2), ref, coding & 0x7F]) + body


def build_report(ref: int, status: int = 0) -> bytes:
    return bytes([PID_TEXT, REPORT << 4, status & 0xFF, ref & 0xFF])


def parse(pdu: bytes) -> TextMessage | DeliveryReport:
    """Parse a text or report PDU (PID first); SdsError otherwise."""
    if len(pdu) < 2:
        raise SdsError("PDU too short")
    pid = pdu[0]
    if pid == PID_SIMPLE_TEXT:
        return TextMessage(_decode_text(pdu[1] & 0x7F, pdu[2:]), pdu[1] & 0x7F, None)
    if pid != PID_TEXT:
        raise SdsError(f"protocol id 0x{pid:02x} is not text")
    mtype = pdu[1] >> 4
    if mtype == REPORT:
        if len(pdu) < 4:
            raise SdsError("SDS-REPORT too short")
        return DeliveryReport(ref=pdu[3], status=pdu[2])
    if mtype != TRANSFER or len(pdu) < 4:
        raise SdsError(f"SDS-TL message type {mtype} not handled" if mtype != TRANSFER else "SDS-TRANSFER too short")
    report = (pdu[1] >> 2) & 0x03
    storage = pdu[1] & 0x01
    head = 3 + (4 if storage else 0)  # storage/forward control adds validity and forward address fields
    if len(pdu) <= head:
        raise SdsError("SDS-TRANSFER too short")
    coding = pdu[head] & 0x7F
    return TextMessage(_decode_text(coding, pdu[head + 1:]), coding, pdu[2], report)
