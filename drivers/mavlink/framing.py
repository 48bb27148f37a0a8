"""Frame extraction from a byte stream that never loses a valid frame to garbage.

pymavlink's parser (robust mode) is the fast path. Where it fails it consumes
the whole declared length of the bad frame, so a stray 0xFD in line noise
can swallow the real frame that follows. Here, after any bad or unknown
frame, parsing restarts one byte after its start marker, and `flush()`
(end of a UDP datagram, or an idle stream) re-scans a partial frame that
will never complete. Every outcome is counted per link.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

MAVLink_bad_data = mavlink2.MAVLink_bad_data
MAVLink_unknown = mavlink2.MAVLink_unknown
Message = mavlink2.MAVLink_message


@dataclass
class FrameCounts:
    ok: int = 0
    bad_crc: int = 0
    bad_frame: int = 0
    unknown_id: int = 0
    garbage_bytes: int = 0
    bad_signature: int = 0
    unsigned: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        return {
            "ok": self.ok, "bad_crc": self.bad_crc, "bad_frame": self.bad_frame, "unknown_id": self.unknown_id,
            "garbage_bytes": self.garbage_bytes, "bad_signature": self.bad_signature, "unsigned": self.unsigned,
        }


class FrameParser:
    def __init__(self, counts: FrameCounts | None = None) -> None:
        self.mav = mavlink2.MAVLink(None)
        self.mav.robust_parsing = True
        self.counts = counts or FrameCounts()

    def feed(self, data: bytes | bytearray) -> list[Message]:
        out: list[Message] = []
        mav = self.mav
        counts = self.counts
        m = mav.parse_char(data)
        while m is not None:
            cls = type(m)
            if cls is MAVLink_bad_data:
                self._bad(m)
            elif cls is MAVLink_unknown:
                counts.unknown_id += 1
                self._restart_after_marker(m._msgbuf)
            else:
                counts.ok += 1
                out.append(m)
            m = mav.parse_char(b"")
        return out

    def _bad(self, m: Message) -> None:
        data = m.data
        if m.reason == "Bad prefix":
            self.counts.garbage_bytes += len(data)
            return
        if "CRC" in m.reason:
            self.counts.bad_crc += 1
        else:
            self.counts.bad_frame += 1
        self._restart_after_marker(data)

    def _restart_after_marker(self, frame: bytes | bytearray) -> None:
        """Re-parse a rejected frame's bytes after its start marker, ahead of what is still buffered."""
        mav = self.mav
        self.counts.garbage_bytes += 1
        mav.buf = bytearray(frame[1:]) + mav.buf[mav.buf_index:]
        mav.buf_index = 0
        mav.expected_length = mavlink2.HEADER_LEN_V1 + 2

    def pending(self) -> int:
        return self.mav.buf_len()

    def flush(self) -> list[Message]:
        """Give up on a partial frame that will not complete; re-scan what follows its marker."""
        out: list[Message] = []
        mav = self.mav
        while mav.buf_len() > 0:
            rest = bytes(mav.buf[mav.buf_index + 1:])
            self.counts.garbage_bytes += 1
            mav.buf = bytearray()
            mav.buf_index = 0
            mav.expected_length = mavlink2.HEADER_LEN_V1 + 2
            out.extend(self.feed(rest))
        return out
