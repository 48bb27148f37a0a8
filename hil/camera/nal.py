"""H.264 / H.265 NAL unit helpers: Annex-B splitting, emulation prevention, type numbers."""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

START_CODE = b"\x00\x00\x00\x01"

# H.264 (ITU-T H.264 table 7-1)
H264_SLICE = 1
H264_IDR = 5
H264_SEI = 6
H264_SPS = 7
H264_PPS = 8
H264_AUD = 9

# H.265 (ITU-T H.265 table 7-1)
HEVC_VPS = 32
HEVC_SPS = 33
HEVC_PPS = 34
HEVC_AUD = 35
HEVC_PREFIX_SEI = 39

CODECS = ("h264", "h265")

_EPB = re.compile(b"\x00\x00\x03")
_NEEDS_EPB = re.compile(b"\x00\x00(?=[\x00-\x03])")


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B byte string, without start codes (trailing zero bytes dropped)."""
    nals: list[bytes] = []
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        start = pos + 3
        nxt = data.find(b"\x00\x00\x01", start)
        end = len(data) if nxt < 0 else nxt
        nal = data[start:end].rstrip(b"\x00")
        if nal:
            nals.append(nal)
        pos = nxt
    return nals


def split_length_prefixed(data: bytes, size: int = 4) -> list[bytes] | None:
    """NAL units of an AVCC/HVCC (length-prefixed) buffer, or None if it is not one."""
    nals: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + size > len(data):
            return None
        n = int.from_bytes(data[pos:pos + size], "big")
        pos += size
        if n == 0 or pos + n > len(data):
            return None
        nals.append(data[pos:pos + n])
        pos += n
    return nals


def join_annexb(nals: Iterable[bytes]) -> bytes:
    """Annex-B byte stream: a 4-byte start code before every NAL unit."""
    return b"".join(START_CODE + n for n in nals)


def escape(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes (00 00 0x -> 00 00 03 0x for x <= 3)."""
    out = _NEEDS_EPB.sub(b"\x00\x00\x03", rbsp)
    # A payload ending in 00 00 would need an EPB too; rbsp_trailing_bits make that impossible here.
    return out


def unescape(ebsp: bytes) -> bytes:
    """Remove emulation-prevention bytes."""
    return _EPB.sub(b"\x00\x00", ebsp)


def nal_type(codec: str, nal: bytes) -> int:
    if codec == "h264":
        return nal[0] & 0x1F
    return (nal[0] >> 1) & 0x3F


def is_vcl(codec: str, nal: bytes) -> bool:
    t = nal_type(codec, nal)
    return 1 <= t <= 5 if codec == "h264" else t <= 31


def is_parameter_set(codec: str, nal: bytes) -> bool:
    t = nal_type(codec, nal)
    return t in (H264_SPS, H264_PPS) if codec == "h264" else t in (HEVC_VPS, HEVC_SPS, HEVC_PPS)


def aud(codec: str) -> bytes:
    """An access unit delimiter allowing any slice type."""
    if codec == "h264":
        return bytes([H264_AUD, 0xF0])  # primary_pic_type 7, stop bit
    return bytes([HEVC_AUD << 1, 0x01, 0x50])  # pic_type 2, stop bit


def iter_sei_messages(rbsp: bytes, pos: int) -> Iterator[tuple[int, bytes]]:
    """(payload_type, payload) of each SEI message in an unescaped SEI RBSP starting at pos."""
    n = len(rbsp)
    while pos < n and not (rbsp[pos] == 0x80 and pos == n - 1):
        ptype = 0
        while pos < n and rbsp[pos] == 0xFF:
            ptype += 255
            pos += 1
        if pos >= n:
            return
        ptype += rbsp[pos]
        pos += 1
        psize = 0
        while pos < n and rbsp[pos] == 0xFF:
            psize += 255
            pos += 1
        if pos >= n:
            return
        psize += rbsp[pos]
        pos += 1
        if pos + psize > n:
            return
        yield ptype, rbsp[pos:pos + psize]
        pos += psize
