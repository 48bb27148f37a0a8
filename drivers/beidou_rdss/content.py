"""What a short message carries: GB18030 text, or a compact report (drivers/compact_report.py) when the
first byte is 0x01-0x04 (docs/serial-protocols.md; GB18030 text never starts with those bytes)."""

from __future__ import annotations

from typing import Any

from drivers import compact_report
from drivers.beidou_rdss.dialects import CardInfo
from gateway.driver_api import CommandError

REPORT_TYPES = (compact_report.POS_SHORT, compact_report.POS_FULL, compact_report.POS_BATCH)
RESERVED_FIRST = "\x01\x02\x03\x04"  # first bytes that mark a compact report, never text


def text_size(text: str) -> int:
    """Bytes the text takes in one message (the unit of the route's max_size)."""
    return len(text.encode("gb18030", "replace"))


def encode_text(text: str, card: CardInfo) -> bytes:
    """The GB18030 bytes of a text to send; CommandError("rejected") with the reason when it cannot go."""
    if not text:
        raise CommandError("rejected", "an empty short message cannot be sent")
    if text[0] in RESERVED_FIRST:
        raise CommandError("rejected", "a text may not start with a control character 0x01-0x04 (those mark position reports)")
    try:
        data = text.encode("gb18030")
    except UnicodeEncodeError as exc:
        raise CommandError("rejected", f"the text cannot be written in GB18030: {exc.reason}") from None
    if len(data) * 8 > card.capacity_bits:
        raise CommandError("rejected", f"the text takes {len(data)} bytes ({len(data) * 8} bits); this card "
                                       f"(level {card.level}) carries {card.capacity_bytes} bytes "
                                       f"({card.capacity_bits} bits) per message")
    return data


def is_report(data: bytes) -> bool:
    return bool(data) and data[0] in REPORT_TYPES


def decode_text(data: bytes) -> tuple[str, dict[str, Any], bool]:
    """A received text: (text, extra event fields, decoded cleanly); ReportError for a bad 0x04 report."""
    if data[:1] == bytes([compact_report.TEXT]):
        decoded = compact_report.decode(data)
        return decoded.text, {"to": decoded.to}, True
    text = data.decode("gb18030", "replace")
    return text, {}, "\ufffd" not in text
