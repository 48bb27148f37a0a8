"""SDP (RFC 4566) for the camera's single video track: RFC 6184 (H.264) / RFC 7798 (H.265) fmtp."""
from __future__ import annotations

import base64
import os

from .loop import EncodedLoop
from .nal import H264_PPS, H264_SPS, HEVC_PPS, HEVC_SPS, HEVC_VPS, nal_type
from .rtp import CLOCK_RATE, PAYLOAD_TYPE

_SESSION_ID = int.from_bytes(os.urandom(4), "big")


def _b64(nal: bytes) -> str:
    return base64.b64encode(nal).decode("ascii")


def fmtp(loop: EncodedLoop) -> str:
    by_type = {nal_type(loop.codec, n): n for n in loop.param_sets}
    if loop.codec == "h264":
        sps, pps = by_type[H264_SPS], by_type[H264_PPS]
        return (f"packetization-mode=1;profile-level-id={sps[1:4].hex().upper()};"
                f"sprop-parameter-sets={_b64(sps)},{_b64(pps)}")
    return (f"sprop-vps={_b64(by_type[HEVC_VPS])};sprop-sps={_b64(by_type[HEVC_SPS])};"
            f"sprop-pps={_b64(by_type[HEVC_PPS])}")


def build_sdp(loop: EncodedLoop, host: str, track: str) -> str:
    cfg = loop.config
    encoding = "H264" if loop.codec == "h264" else "H265"
    lines = [
        "v=0",
        f"o=- {_SESSION_ID} 1 IN IP4 {host}",
        "s=fieldgw HIL camera",
        "i=synthetic test loop with per-frame stamp SEI",
        f"c=IN IP4 {host}",
        "t=0 0",
        "a=tool:fieldgw-hil-camera",
        "a=type:broadcast",
        "a=control:*",
        "a=range:npt=0-",
        f"m=video 0 RTP/AVP {PAYLOAD_TYPE}",
        f"b=AS:{cfg.bitrate_kbps}",
        f"a=rtpmap:{PAYLOAD_TYPE} {encoding}/{CLOCK_RATE}",
        f"a=fmtp:{PAYLOAD_TYPE} {fmtp(loop)}",
        f"a=framerate:{cfg.fps}",
        f"a=x-dimensions:{cfg.width},{cfg.height}",
        f"a=control:{track}",
    ]
    return "\r\n".join(lines) + "\r\n"
