"""`$<body>*HH\r\n` sentences: the checksum, building one, and finding them in a byte stream."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import reduce

MAX_SENTENCE = 1024  # a level-4 TXA is ~240 bytes; longer than this is line noise
# the body is printable ASCII without '*' (the framer has already cut at any '$')
_SENTENCE = re.compile(rb"\$([\x20-\x29\x2b-\x7e]*)\*([0-9A-F]{2})")


def checksum(body: str | bytes) -> str:
    """XOR of the bytes between `$` and `*`, as two upper-case hex digits."""
    data = body.encode("ascii") if isinstance(body, str) else body
    return f"{reduce(lambda a, b: a ^ b, data, 0):02X}"


def sentence(body: str) -> bytes:
    """`body` ("BDFKI,TXA,Y,Y,0,0") framed as a complete line."""
    return f"${body}*{checksum(body)}\r\n".encode("ascii")


def split(body: str) -> tuple[str, str, list[str]]:
    """("CC", "ICA", ["0", "00"]) from "CCICA,0,00"; talker and command are empty if malformed."""
    head, *fields = body.split(",")
    if len(head) != 5 or not head.isalpha() or not head.isupper():
        return "", "", fields
    return head[:2], head[2:], fields


@dataclass
class Framer:
    """Cuts a byte stream into valid sentence bodies; everything else is dropped and counted.

    A sentence runs from `$` to `\\r\\n`. A `$` before the terminator starts a new
    sentence (the previous one was cut). Like the terminal, it never raises.
    """

    max_len: int = MAX_SENTENCE
    garbage_bytes: int = 0  # bytes outside any sentence (CR/LF not counted)
    cut: int = 0  # a sentence interrupted by the next `$`, or cleared by a replug
    too_long: int = 0
    malformed: int = 0  # no `*HH`, non-ASCII bytes, or a bare LF terminator
    bad_checksum: int = 0
    _buf: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        out: list[str] = []
        buf = self._buf
        while buf:
            if buf[0] != 0x24:  # hunting for '$'
                start = buf.find(b"$")
                junk = bytes(buf if start < 0 else buf[:start])
                self.garbage_bytes += len(junk) - junk.count(b"\r") - junk.count(b"\n")
                del buf[:len(junk)]
                continue
            end, nxt = buf.find(b"\n"), buf.find(b"$", 1)
            if nxt >= 0 and (end < 0 or nxt < end):
                self.cut += 1
                del buf[:nxt]
                continue
            if end < 0:
                if len(buf) > self.max_len:
                    self.too_long += 1
                    buf.clear()
                break
            line = bytes(buf[:end])
            del buf[:end + 1]
            body = self._check(line)
            if body is not None:
                out.append(body)
        return out

    def reset(self) -> None:
        if self._buf:
            self.cut += 1
            self._buf.clear()

    def _check(self, line: bytes) -> str | None:
        if len(line) > self.max_len:
            self.too_long += 1
            return None
        m = _SENTENCE.fullmatch(line[:-1]) if line.endswith(b"\r") else None
        if m is None:
            self.malformed += 1
            return None
        if checksum(m.group(1)) != m.group(2).decode("ascii"):
            self.bad_checksum += 1
            return None
        return m.group(1).decode("ascii")

    def stats(self) -> dict[str, int]:
        return {"garbage_bytes": self.garbage_bytes, "cut": self.cut, "too_long": self.too_long,
                "malformed": self.malformed, "bad_checksum": self.bad_checksum}
