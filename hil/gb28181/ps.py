"""MPEG-2 program stream packer (ISO/IEC 13818-1 §2.5), as GB/T 28181 devices send it over RTP.

Per access unit: a pack header; at each key frame also a system header and a program stream map
(PSM); then the frame in one or more video PES packets (stream_id 0xE0). A PES packet in a program
stream must give its length (16 bits), so a frame larger than `MAX_PES_PAYLOAD` is carried in
several PES packets, only the first with a PTS (and DTS). Stdlib only.
"""
from __future__ import annotations

import struct

PACK_START = b"\x00\x00\x01\xba"
SYSTEM_HEADER_START = b"\x00\x00\x01\xbb"
PSM_START = b"\x00\x00\x01\xbc"
VIDEO_STREAM_ID = 0xE0
STREAM_TYPE = {"h264": 0x1B, "h265": 0x24}  # ISO 13818-1 table 2-34 (0x24: HEVC, added by amendment 3)
MAX_PES_PAYLOAD = 65_535 - 3 - 10  # PES_packet_length counts 3 flag bytes + up to 10 bytes PTS/DTS
MUX_RATE = 6_106  # in units of 50 bytes/s (~2.4 Mbit/s); informative only, receivers ignore it
P_STD_BUFFER_KB = 512  # P-STD_buffer_size_bound for the video stream, in 1024-byte units
TS_MASK = (1 << 33) - 1


def _crc32_table() -> list[int]:
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else (c << 1)
        table.append(c & 0xFFFFFFFF)
    return table


_CRC_TABLE = _crc32_table()


def crc32_mpeg2(data: bytes) -> int:
    """CRC_32 of ISO 13818-1 Annex A: polynomial 0x04C11DB7, initial 0xFFFFFFFF, not reflected, no final xor."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[((crc >> 24) ^ b) & 0xFF]
    return crc


def pack_header(scr: int, mux_rate: int = MUX_RATE) -> bytes:
    """MPEG-2 pack_header (14 bytes, no stuffing): '01', SCR base (33 bits, 90 kHz) and extension 0."""
    scr &= TS_MASK
    ext = 0
    b = bytes((
        0x40 | ((scr >> 27) & 0x38) | 0x04 | ((scr >> 28) & 0x03),
        (scr >> 20) & 0xFF,
        ((scr >> 12) & 0xF8) | 0x04 | ((scr >> 13) & 0x03),
        (scr >> 5) & 0xFF,
        ((scr << 3) & 0xF8) | 0x04 | ((ext >> 7) & 0x03),
        ((ext << 1) & 0xFE) | 0x01,
    ))
    rate = ((mux_rate & 0x3FFFFF) << 2) | 0x03  # program_mux_rate, two marker bits
    return PACK_START + b + rate.to_bytes(3, "big") + b"\xf8"  # reserved 11111, pack_stuffing_length 0


def system_header(rate_bound: int = MUX_RATE) -> bytes:
    """system_header with one video stream (0xE0), no audio."""
    body = bytes((
        0x80 | ((rate_bound >> 15) & 0x7F),            # marker, rate_bound[21..15]
        (rate_bound >> 7) & 0xFF,                      # rate_bound[14..7]
        ((rate_bound << 1) & 0xFE) | 0x01,             # rate_bound[6..0], marker
        0x00 << 2 | 0x00,                              # audio_bound 0, fixed_flag 0, CSPS_flag 0
        0xE1,                                          # audio lock 1, video lock 1, marker 1, video_bound 1
        0x7F,                                          # packet_rate_restriction 0, reserved 1111111
        VIDEO_STREAM_ID,
        0xE0 | ((P_STD_BUFFER_KB >> 8) & 0x1F),        # '11', P-STD_buffer_bound_scale 1 (1024 bytes)
        P_STD_BUFFER_KB & 0xFF,
    ))
    return SYSTEM_HEADER_START + struct.pack(">H", len(body)) + body


def program_stream_map(codec: str, version: int = 0) -> bytes:
    """program_stream_map naming one video elementary stream (0xE0) of `codec`, with its CRC_32."""
    es = bytes((STREAM_TYPE[codec], VIDEO_STREAM_ID)) + struct.pack(">H", 0)
    body = (bytes((0x80 | 0x60 | (version & 0x1F), 0xFF))   # current_next 1, reserved, version; reserved, marker
            + struct.pack(">H", 0)                           # program_stream_info_length
            + struct.pack(">H", len(es)) + es)               # elementary_stream_map_length, the map
    length = len(body) + 4                                   # + CRC_32
    head = PSM_START + struct.pack(">H", length) + body
    return head + struct.pack(">I", crc32_mpeg2(head))


def _timestamp(prefix: int, ts: int) -> bytes:
    ts &= TS_MASK
    return bytes((
        (prefix << 4) | ((ts >> 29) & 0x0E) | 0x01,
        (ts >> 22) & 0xFF,
        ((ts >> 14) & 0xFE) | 0x01,
        (ts >> 7) & 0xFF,
        ((ts << 1) & 0xFE) | 0x01,
    ))


def pes_packets(payload: bytes, pts: int, dts: int | None = None, stream_id: int = VIDEO_STREAM_ID) -> list[bytes]:
    """The PES packets of one access unit: the first with PTS (and DTS if it differs), data_alignment set."""
    out: list[bytes] = []
    pos = 0
    first = True
    while first or pos < len(payload):
        if first:
            if dts is not None and dts != pts:
                flags, header = 0xC0, _timestamp(0b0011, pts) + _timestamp(0b0001, dts)
            else:
                flags, header = 0x80, _timestamp(0b0010, pts)
            marker = 0x84  # '10', not scrambled, priority 0, data_alignment_indicator 1, copyright 0, original 0
        else:
            flags, header, marker = 0x00, b"", 0x80
        chunk = payload[pos:pos + MAX_PES_PAYLOAD]
        pos += len(chunk)
        length = 3 + len(header) + len(chunk)
        out.append(bytes((0, 0, 1, stream_id)) + struct.pack(">H", length)
                   + bytes((marker, flags, len(header))) + header + chunk)
        first = False
    return out


class PsMuxer:
    """Program stream of one video elementary stream: `frame()` gives the PS bytes of one access unit."""

    def __init__(self, codec: str = "h264") -> None:
        if codec not in STREAM_TYPE:
            raise ValueError(f"codec must be one of {', '.join(STREAM_TYPE)}, got {codec!r}")
        self.codec = codec
        self._psm = program_stream_map(codec)
        self._system = system_header()

    def frame(self, annexb: bytes, pts: int, keyframe: bool, dts: int | None = None) -> bytes:
        """Pack header [+ system header + PSM at a key frame] + PES packet(s). `pts`/`dts` in 90 kHz units;
        the SCR is the DTS (or PTS): this stream has no B frames and no buffering model to honour."""
        scr = dts if dts is not None else pts
        parts = [pack_header(scr)]
        if keyframe:
            parts += [self._system, self._psm]
        parts += pes_packets(annexb, pts, dts)
        return b"".join(parts)
