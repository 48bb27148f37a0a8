"""`$<talker><cmd>,f1,…*HH\\r\\n` sentences (docs/serial-protocols.md, "BeiDou RDSS short message").

HH is the XOR of the bytes between `$` and `*`, two hex digits (written
upper-case, read in either case). `parse()` takes one line and returns a
`Sentence` or raises `SentenceError`, never anything else. `SentenceReader`
cuts a byte stream into candidate lines and counts what it throws away:
bytes outside any sentence (binary noise), sentences cut by the next `$`,
and runaway lines longer than `MAX_SENTENCE`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import reduce
from operator import xor

MAX_SENTENCE = 1024  # a level-4 send is ~230 characters; anything much longer is noise
_HEAD = re.compile(r"[A-Z]{2}[A-Z0-9]{3}")
_FIELD_FORBIDDEN = frozenset("$*,\r\n")


class SentenceError(ValueError):
    """A line that is not a well-formed sentence with a correct checksum."""


@dataclass(frozen=True)
class Sentence:
    talker: str  # "CC" host, "BD" terminal, "GN"/"GP"/"BD" RNSS
    cmd: str  # "ICA", "TXR", "RMC", ...
    fields: tuple[str, ...]

    @property
    def body(self) -> str:
        return ",".join((self.talker + self.cmd, *self.fields))

    def line(self) -> str:
        """The whole sentence, without the line end (what pynmea2 takes)."""
        return f"${self.body}*{checksum(self.body):02X}"


_NOT_IN_BODY = re.compile(rb"[^\x20-\x7e]|[$*]")
_HEX2 = re.compile(rb"[0-9A-Fa-f]{2}")


def checksum(body: str | bytes) -> int:
    """XOR of the bytes between `$` and `*`."""
    data = body.encode("ascii") if isinstance(body, str) else body
    return reduce(xor, data, 0)


def build(talker: str, cmd: str, fields: list[str] | tuple[str, ...] = ()) -> bytes:
    """One complete sentence with its checksum and `\\r\\n`; ValueError for what cannot be framed."""
    if not _HEAD.fullmatch(talker + cmd) or len(talker) != 2:
        raise ValueError(f"talker {talker!r} + command {cmd!r} must be 2 + 3 upper-case characters")
    for f in fields:
        if not f.isascii() or not f.isprintable() or _FIELD_FORBIDDEN.intersection(f):
            raise ValueError(f"field {f!r} is not printable ASCII without $ * ,")
    return (Sentence(talker, cmd, tuple(fields)).line() + "\r\n").encode("ascii")


def parse(line: bytes | str) -> Sentence:
    """One sentence (line end optional) → Sentence; SentenceError if it is not one."""
    if isinstance(line, str):
        if not line.isascii():
            raise SentenceError("not ASCII")
        raw = line.encode("ascii")
    else:
        raw = bytes(line)
    raw = raw.rstrip(b"\r\n")
    if len(raw) > MAX_SENTENCE:
        raise SentenceError(f"longer than {MAX_SENTENCE} characters")
    if not raw.startswith(b"$"):
        raise SentenceError("does not start with $")
    star = raw.rfind(b"*")
    if star < 0 or len(raw) - star != 3:
        raise SentenceError("no *HH checksum at the end")
    body, hh = raw[1:star], raw[star + 1:]
    if _NOT_IN_BODY.search(body):
        raise SentenceError("bytes other than printable ASCII inside the sentence")
    if not _HEX2.fullmatch(hh):
        raise SentenceError(f"checksum {hh!r} is not two hex digits")
    want = int(hh.decode("ascii"), 16)
    got = checksum(body)
    if got != want:
        raise SentenceError(f"checksum {want:02X} does not match the content ({got:02X})")
    head, *fields = body.decode("ascii").split(",")
    if not _HEAD.fullmatch(head):
        raise SentenceError(f"{head[:8]!r} is not a talker and a command")
    return Sentence(head[:2], head[2:], tuple(fields))


class SentenceReader:
    """Bytes in, candidate sentence lines out (from `$` up to the line end); noise counted, never raised."""

    def __init__(self, max_len: int = MAX_SENTENCE) -> None:
        self.max_len = max_len
        self._buf = bytearray()
        self.counts: Counter[str] = Counter()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        while buf:
            if buf[0] != 0x24:  # '$': skip to the next sentence start
                start = buf.find(b"$")
                junk = buf if start < 0 else buf[:start]
                self.counts["noise_bytes"] += len(junk) - junk.count(b"\r") - junk.count(b"\n")
                del buf[:len(junk)]
                continue
            end = buf.find(b"\n")
            nxt = buf.find(b"$", 1)
            if nxt >= 0 and (end < 0 or nxt < end):  # a new sentence began before this one ended
                self.counts["cut_sentences"] += 1
                del buf[:nxt]
                continue
            if end < 0:
                if len(buf) > self.max_len:
                    self.counts["long_lines"] += 1
                    buf.clear()
                break
            line = bytes(buf[:end + 1])
            del buf[:end + 1]
            if len(line) > self.max_len + 2:
                self.counts["long_lines"] += 1
                continue
            out.append(line)
        return out

    def reset(self) -> None:
        """The line was lost: whatever half sentence is buffered is gone."""
        if self._buf:
            self.counts["cut_sentences"] += 1
            self._buf.clear()
