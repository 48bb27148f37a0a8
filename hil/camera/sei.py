"""Per-frame send stamps carried in the video bitstream as an SEI user_data_unregistered message.

Layout (also in docs/camera-simulators.md):

* H.264: NAL header byte 0x06 (nal_unit_type 6, nal_ref_idc 0).
  H.265: prefix SEI, NAL header bytes 0x4E 0x01 (nal_unit_type 39, layer 0, temporal id 1).
* One SEI message: payload_type 5 (user_data_unregistered), payload_size 32.
* Payload: the 16-byte UUID ``STAMP_UUID``, then ``counter`` (uint64, big-endian),
  then ``send_us`` (uint64, big-endian; wall-clock microseconds since the Unix epoch).
* rbsp_trailing_bits 0x80; emulation-prevention bytes (00 00 03) inserted as usual,
  so a reader must remove them before reading the payload.
"""
from __future__ import annotations

import struct
import uuid

from .nal import (H264_SEI, HEVC_PREFIX_SEI, escape, iter_sei_messages, split_annexb,
                  split_length_prefixed, unescape)

STAMP_UUID = uuid.UUID("85746d47-0450-452c-a433-c015165bc5df")
STAMP_UUID_BYTES = STAMP_UUID.bytes
PAYLOAD_TYPE_USER_DATA_UNREGISTERED = 5
_BODY = struct.Struct(">QQ")
PAYLOAD_SIZE = 16 + _BODY.size  # 32


def build_stamp_nal(codec: str, counter: int, send_us: int) -> bytes:
    """One SEI NAL unit (no start code) carrying (counter, send_us)."""
    rbsp = (bytes([PAYLOAD_TYPE_USER_DATA_UNREGISTERED, PAYLOAD_SIZE]) + STAMP_UUID_BYTES
            + _BODY.pack(counter & 0xFFFF_FFFF_FFFF_FFFF, send_us & 0xFFFF_FFFF_FFFF_FFFF) + b"\x80")
    header = bytes([H264_SEI]) if codec == "h264" else bytes([HEVC_PREFIX_SEI << 1, 0x01])
    return header + escape(rbsp)


def stamp_from_nal(nal: bytes) -> tuple[int, int] | None:
    """(counter, send_us) if this NAL unit (no start code) is one of our stamp SEIs."""
    if len(nal) < 2 + PAYLOAD_SIZE:
        return None
    offsets: list[int] = []
    if nal[0] & 0x9F == H264_SEI:  # forbidden bit 0, any nal_ref_idc, type 6
        offsets.append(1)
    if nal[0] & 0x81 == 0 and (nal[0] >> 1) in (HEVC_PREFIX_SEI, HEVC_PREFIX_SEI + 1):
        offsets.append(2)
    if not offsets:
        return None
    rbsp = unescape(nal)
    for off in offsets:
        for ptype, payload in iter_sei_messages(rbsp, off):
            if (ptype == PAYLOAD_TYPE_USER_DATA_UNREGISTERED and len(payload) >= PAYLOAD_SIZE
                    and payload[:16] == STAMP_UUID_BYTES):
                counter, send_us = _BODY.unpack_from(payload, 16)
                return counter, send_us
    return None


def find_stamp(annexb_bytes: bytes) -> tuple[int, int] | None:
    """(counter, send_us) of the first stamp SEI in an access unit, else None.

    Accepts Annex-B (start codes, H.264 or H.265 - both are tried) and, as a fallback,
    4-byte length-prefixed (AVCC/HVCC) buffers.
    """
    data = bytes(annexb_bytes)
    if STAMP_UUID_BYTES not in data:
        return None  # cheap reject: the UUID has no zero bytes, so it is never escaped
    if data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01"):
        nals = split_annexb(data)
    else:
        nals = split_length_prefixed(data) or split_annexb(data)
    for nal in nals:
        stamp = stamp_from_nal(nal)
        if stamp is not None:
            return stamp
    return None
