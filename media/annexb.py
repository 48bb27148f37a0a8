"""H.264 / H.265 Annex-B byte-stream helpers: NAL splitting and parameter-set insertion.

Browsers decode a passthrough stream only if every IDR is preceded by its
SPS/PPS (and VPS for H.265). Many sources send them only once, in the SDP or
the container's extradata; `ensure_parameter_sets` puts them back.
"""

from __future__ import annotations

START = b"\x00\x00\x00\x01"

H264_SPS, H264_PPS, H264_IDR, H264_AUD = 7, 8, 5, 9
HEVC_VPS, HEVC_SPS, HEVC_PPS = 32, 33, 34


def split_nals(data: bytes) -> list[bytes]:
    """NAL units (without start codes) of an Annex-B buffer."""
    nals: list[bytes] = []
    i, n = 0, len(data)
    start = -1
    while i + 2 < n:
        if data[i] == 0 and data[i + 1] == 0 and data[i + 2] == 1:
            if start >= 0:
                end = i - 1 if i > 0 and data[i - 1] == 0 else i
                nals.append(data[start:end])
            i += 3
            start = i
        else:
            i += 1
    if start >= 0 and start < n:
        nals.append(data[start:])
    return [x for x in nals if x]


def nal_type(nal: bytes, codec: str) -> int:
    return (nal[0] >> 1) & 0x3F if codec == "hevc" else nal[0] & 0x1F


def is_annexb(data: bytes) -> bool:
    return data.startswith(b"\x00\x00\x01") or data.startswith(START)


def parameter_sets(extradata: bytes, codec: str) -> bytes:
    """Annex-B parameter sets from Annex-B extradata (AVCC extradata is left to the bitstream filter)."""
    if not extradata or not is_annexb(extradata):
        return b""
    wanted = {HEVC_VPS, HEVC_SPS, HEVC_PPS} if codec == "hevc" else {H264_SPS, H264_PPS}
    return b"".join(START + n for n in split_nals(extradata) if nal_type(n, codec) in wanted)


def has_parameter_sets(data: bytes, codec: str) -> bool:
    sps = HEVC_SPS if codec == "hevc" else H264_SPS
    return any(nal_type(n, codec) == sps for n in split_nals(data[:4096]))


def ensure_parameter_sets(data: bytes, keyframe: bool, codec: str, sets: bytes) -> bytes:
    """Prefix a keyframe that lacks them with the stream's parameter sets."""
    if keyframe and sets and not has_parameter_sets(data, codec):
        return sets + data
    return data
