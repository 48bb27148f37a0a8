"""H.264 (RFC 6184) and H.265 (RFC 7798) RTP depacketizers, emitting whole access units.

An access unit is closed the moment the packet with the RTP marker bit arrives
(RFC 6184 5.1 / RFC 7798 4.1: the marker is on the last packet of an access
unit), so it goes out with no wait for the next frame. Cameras that never set
the marker still work: a new RTP timestamp closes the previous access unit
(one frame later, as FFmpeg does for everyone). An access unit holding no
picture (some cameras mark their SPS/PPS as a frame of its own) is not sent;
its NAL units go in front of the next one.

Loss: the caller says when sequence numbers had a gap. The access unit being
built is then dropped, and so is everything up to the next keyframe whose
first slice arrived (first_mb_in_slice 0 / first_slice_segment_in_pic_flag), so
a decoder never gets a picture with holes or references to one.

Bounded: an access unit (or one fragmented NAL unit) above MAX_AU_BYTES is
dropped as broken; pending parameter sets are capped at MAX_PREFIX_NALS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from media.annexb import H264_IDR, H264_PPS, H264_SPS, HEVC_PPS, HEVC_SPS, HEVC_VPS, nal_type

log = logging.getLogger(__name__)

MAX_AU_BYTES = 8 * 1024 * 1024
MAX_PREFIX_NALS = 16

H264_STAP_A, H264_STAP_B, H264_MTAP16, H264_MTAP24, H264_FU_A, H264_FU_B = 24, 25, 26, 27, 28, 29
HEVC_AP, HEVC_FU, HEVC_PACI = 48, 49, 50


def is_vcl(codec: str, t: int) -> bool:
    return t <= 31 if codec == "hevc" else 1 <= t <= 5


def is_key(codec: str, t: int) -> bool:
    return 16 <= t <= 21 if codec == "hevc" else t == H264_IDR  # HEVC: BLA, IDR, CRA (IRAP)


def starts_picture(codec: str, nal: bytes) -> bool:
    """First slice of its picture: H.264 first_mb_in_slice == 0 (ue(v) '1' bit), H.265
    first_slice_segment_in_pic_flag."""
    if codec == "hevc":
        return len(nal) > 2 and bool(nal[2] & 0x80)
    return len(nal) > 1 and bool(nal[1] & 0x80)


@dataclass
class AccessUnit:
    nals: list[bytes]  # without start codes
    ts: int  # RTP timestamp (32-bit, as received)
    keyframe: bool


class Depacketizer:
    """RTP payloads of one H.264/H.265 stream in → access units out (see the module doc)."""

    def __init__(self, codec: str, max_don_diff: int = 0) -> None:
        if codec not in ("h264", "hevc"):
            raise ValueError(f"no depacketizer for {codec}")
        self.codec = codec
        self.don = codec == "hevc" and max_don_diff > 0  # DONL/DOND fields present (RFC 7798 4.4)
        self._nals: list[bytes] = []
        self._size = 0
        self._ts: int | None = None
        self._broken = False
        self._fu: bytearray | None = None
        self._prefix: list[bytes] = []  # NAL units of a picture-less "access unit"
        self._await_key = True  # nothing goes out before the first keyframe
        self._check_start = True  # at the start and after a gap: the next picture must begin with its first slice
        self.dropped = 0  # access units dropped (broken, or waiting for a keyframe)
        self.marker_missing = 0  # access units closed by a timestamp change instead of the marker
        self.unsupported = 0  # packets of types we do not take (interleaved mode, PACI)

    # --- input ------------------------------------------------------------------------
    def lost(self) -> None:
        """Packets were lost just before the next one."""
        if self._ts is not None:
            self._broken = True
        self._fu = None
        self._await_key = True
        self._check_start = True

    def push(self, payload: bytes, ts: int, marker: bool) -> list[AccessUnit]:
        out: list[AccessUnit] = []
        if self._ts is not None and ts != self._ts:
            self.marker_missing += 1
            self._close(out)
        if self._ts is None:
            self._ts = ts
        if payload:
            try:
                if self.codec == "h264":
                    self._h264(payload)
                else:
                    self._hevc(payload)
            except (IndexError, ValueError) as exc:  # a malformed aggregation packet
                log.debug("bad %s RTP payload: %s", self.codec, exc)
                self._broken = True
        if marker:
            self._close(out)
        return out

    # --- access units -----------------------------------------------------------------
    def _add(self, nal: bytes) -> None:
        if not nal:
            return
        self._size += len(nal)
        if self._size > MAX_AU_BYTES:
            self._broken = True
            return
        self._nals.append(nal)

    def _close(self, out: list[AccessUnit]) -> None:
        nals, ts, broken = self._nals, self._ts, self._broken
        if self._fu is not None:  # a NAL unit whose end never came
            broken = True
        self._nals, self._size, self._ts, self._broken, self._fu = [], 0, None, False, None
        if ts is None:
            return
        if broken:
            self.dropped += 1
            self._prefix = []
            return
        vcl = [n for n in nals if is_vcl(self.codec, nal_type(n, self.codec))]
        if not vcl:
            self._prefix = (self._prefix + nals)[-MAX_PREFIX_NALS:]
            return
        if self._check_start:
            self._check_start = False
            if not starts_picture(self.codec, vcl[0]):
                self._await_key = True
                self.dropped += 1
                self._prefix = []
                return
        key = any(is_key(self.codec, nal_type(n, self.codec)) for n in vcl)
        if self._await_key and not key:
            self.dropped += 1
            self._prefix = []
            return
        self._await_key = False
        if self._prefix:
            nals = self._prefix + nals
            self._prefix = []
        out.append(AccessUnit(nals, ts, key))

    # --- RFC 6184 ---------------------------------------------------------------------
    def _h264(self, p: bytes) -> None:
        t = p[0] & 0x1F
        if 1 <= t <= 23:
            self._fu_interrupted()
            self._add(p)
        elif t == H264_STAP_A:
            self._fu_interrupted()
            i = 1
            while i < len(p):
                if i + 2 > len(p):
                    raise ValueError("STAP-A size cut")
                n = int.from_bytes(p[i:i + 2], "big")
                if n == 0 or i + 2 + n > len(p):
                    raise ValueError("STAP-A unit overruns the packet")
                self._add(p[i + 2:i + 2 + n])
                i += 2 + n
        elif t == H264_FU_A:
            if len(p) < 2:
                raise ValueError("FU-A too short")
            self._fragment(bytes(((p[0] & 0xE0) | (p[1] & 0x1F),)), p[1] & 0x80, p[1] & 0x40, p[2:])
        else:  # STAP-B, MTAP, FU-B (interleaved mode) or reserved
            self._unsupported(t)

    # --- RFC 7798 ---------------------------------------------------------------------
    def _hevc(self, p: bytes) -> None:
        if len(p) < 3:
            raise ValueError("H.265 payload too short")
        t = (p[0] >> 1) & 0x3F
        if t < HEVC_AP:
            self._fu_interrupted()
            self._add(p[:2] + p[4:] if self.don else p)
        elif t == HEVC_AP:
            self._fu_interrupted()
            i = 2
            first = True
            while i < len(p):
                i += (2 if first else 1) if self.don else 0  # DONL, then DOND
                first = False
                if i + 2 > len(p):
                    raise ValueError("AP size cut")
                n = int.from_bytes(p[i:i + 2], "big")
                if n < 2 or i + 2 + n > len(p):
                    raise ValueError("AP unit overruns the packet")
                self._add(p[i + 2:i + 2 + n])
                i += 2 + n
        elif t == HEVC_FU:
            fu = p[2]
            header = bytes(((p[0] & 0x81) | ((fu & 0x3F) << 1), p[1]))
            body = p[3 + (2 if self.don and fu & 0x80 else 0):]
            self._fragment(header, fu & 0x80, fu & 0x40, body)
        else:  # PACI, reserved
            self._unsupported(t)

    # --- shared -----------------------------------------------------------------------
    def _fragment(self, header: bytes, start: int, end: int, body: bytes) -> None:
        if start:
            self._fu_interrupted()
            self._fu = bytearray(header)
        elif self._fu is None:  # a middle or end piece without its start
            self._broken = True
            return
        self._fu += body
        if len(self._fu) > MAX_AU_BYTES:
            self._fu = None
            self._broken = True
            return
        if end:
            nal, self._fu = bytes(self._fu), None
            self._add(nal)

    def _fu_interrupted(self) -> None:
        if self._fu is not None:  # another unit began before the fragmented one ended
            self._fu = None
            self._broken = True

    def _unsupported(self, t: int) -> None:
        if not self.unsupported:
            log.warning("%s RTP packet type %d not supported (interleaved mode?); dropped", self.codec, t)
        self.unsupported += 1
        self._broken = True


# ======================================================================================
# parameter sets
# ======================================================================================
class ParameterSets:
    """The stream's current SPS/PPS (and VPS), from the SDP and then from the stream itself;
    put in front of every keyframe that lacks them (browsers need them there)."""

    def __init__(self, codec: str, nals: list[bytes]) -> None:
        self.codec = codec
        self.wanted = (HEVC_VPS, HEVC_SPS, HEVC_PPS) if codec == "hevc" else (H264_SPS, H264_PPS)
        self.sets: dict[int, bytes] = {}
        self.update(nals)

    def update(self, nals: list[bytes]) -> bool:
        """Take parameter sets seen in the stream; True if the SPS changed."""
        changed = False
        for n in nals:
            t = nal_type(n, self.codec)
            if t in self.wanted and self.sets.get(t) != n:
                changed |= t == self.wanted[-2]
                self.sets[t] = n
        return changed

    @property
    def sps(self) -> bytes | None:
        return self.sets.get(self.wanted[-2])

    def complete(self, nals: list[bytes]) -> list[bytes]:
        """A keyframe's NAL units, with the known parameter sets in front if any is missing."""
        have = {nal_type(n, self.codec) for n in nals}
        if all(t in have for t in self.wanted) or not self.sets:
            return nals
        return [self.sets[t] for t in self.wanted if t in self.sets] + nals


# ======================================================================================
# SPS: picture size and frame rate
# ======================================================================================
class BitReader:
    """MSB-first bits of a byte string (SPS RBSP, RFC 3640 AU headers)."""

    def __init__(self, rbsp: bytes) -> None:
        self.data = rbsp
        self.pos = 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise ValueError("bits ended early")
            v = (v << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def unescape(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _scaling_list(b: BitReader, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + b.se() + 256) % 256
        last = nxt or last


def h264_sps_info(sps: bytes) -> tuple[int, int, float | None]:
    """(width, height, fps or None) of an H.264 SPS NAL unit (with its header byte)."""
    b = BitReader(unescape(sps[1:]))
    profile = b.u(8)
    b.u(16)  # constraint flags, level
    b.ue()  # seq_parameter_set_id
    chroma = 1
    separate = 0
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma = b.ue()
        if chroma == 3:
            separate = b.u(1)
        b.ue()
        b.ue()  # bit depths
        b.u(1)  # qpprime_y_zero_transform_bypass
        if b.u(1):  # seq_scaling_matrix_present
            for i in range(8 if chroma != 3 else 12):
                if b.u(1):
                    _scaling_list(b, 16 if i < 6 else 64)
    b.ue()  # log2_max_frame_num_minus4
    poc = b.ue()
    if poc == 0:
        b.ue()
    elif poc == 1:
        b.u(1)
        b.se()
        b.se()
        for _ in range(b.ue()):
            b.se()
    b.ue()  # max_num_ref_frames
    b.u(1)  # gaps_in_frame_num_allowed
    w_mbs = b.ue() + 1
    h_units = b.ue() + 1
    frame_mbs_only = b.u(1)
    if not frame_mbs_only:
        b.u(1)
    b.u(1)  # direct_8x8_inference
    width, height = w_mbs * 16, (2 - frame_mbs_only) * h_units * 16
    if b.u(1):  # frame_cropping
        left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
        if chroma == 0 or separate:
            cx, cy = 1, 2 - frame_mbs_only
        else:
            cx, cy = (2, 2 * (2 - frame_mbs_only)) if chroma == 1 else (2, 2 - frame_mbs_only) if chroma == 2 \
                else (1, 2 - frame_mbs_only)
        width -= cx * (left + right)
        height -= cy * (top + bottom)
    fps = None
    try:
        if b.u(1):  # vui_parameters_present
            if b.u(1) and b.u(8) == 255:  # aspect_ratio_info, Extended_SAR
                b.u(32)
            if b.u(1):  # overscan_info_present
                b.u(1)
            if b.u(1):  # video_signal_type_present
                b.u(4)
                if b.u(1):
                    b.u(24)
            if b.u(1):  # chroma_loc_info_present
                b.ue()
                b.ue()
            if b.u(1):  # timing_info_present
                units, scale = b.u(32), b.u(32)
                if units:
                    fps = scale / (2 * units)
    except ValueError:
        pass
    return width, height, fps


def hevc_sps_info(sps: bytes) -> tuple[int, int, float | None]:
    """(width, height, None) of an H.265 SPS NAL unit (with its two header bytes)."""
    b = BitReader(unescape(sps[2:]))
    b.u(4)  # sps_video_parameter_set_id
    sub_layers = b.u(3)
    b.u(1)
    b.u(88)  # general profile space/tier/idc, compatibility and constraint flags
    b.u(8)  # general_level_idc
    present = [(b.u(1), b.u(1)) for _ in range(sub_layers)]
    if sub_layers:
        b.u(2 * (8 - sub_layers))
    for profile, level in present:
        if profile:
            b.u(88)
        if level:
            b.u(8)
    b.ue()  # sps_seq_parameter_set_id
    chroma = b.ue()
    if chroma == 3:
        b.u(1)
    width, height = b.ue(), b.ue()
    if b.u(1):  # conformance_window
        left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
        cx = 2 if chroma in (1, 2) else 1
        cy = 2 if chroma == 1 else 1
        width -= cx * (left + right)
        height -= cy * (top + bottom)
    return width, height, None


def sps_info(codec: str, sps: bytes) -> tuple[int, int, float | None] | None:
    try:
        return hevc_sps_info(sps) if codec == "hevc" else h264_sps_info(sps)
    except ValueError:
        return None
