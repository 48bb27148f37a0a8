"""The parts of an RTSP DESCRIBE's SDP (RFC 4566) an ingest needs: media, rtpmap, fmtp, control."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from media.annexb import START


@dataclass
class Media:
    kind: str  # "video" | "audio" | ...
    payload_type: int
    encoding: str = ""  # upper-case rtpmap name: H264, H265, PCMA, PCMU, OPUS, MPEG4-GENERIC, ...
    clock_rate: int = 90000
    channels: int = 1
    fmtp: dict[str, str] = field(default_factory=dict)  # keys lower-case
    control: str | None = None
    framerate: float | None = None
    dimensions: tuple[int, int] | None = None


@dataclass
class SessionDescription:
    control: str | None
    media: list[Media]


_STATIC = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1), 26: ("JPEG", 90000, 1), 32: ("MPV", 90000, 1),
           33: ("MP2T", 90000, 1), 14: ("MPA", 90000, 1)}


def parse_sdp(text: str) -> SessionDescription:
    control: str | None = None
    media: list[Media] = []
    rtpmaps: dict[int, str] = {}
    fmtps: dict[int, str] = {}

    def finish() -> None:
        if not media:
            return
        m = media[-1]
        if m.payload_type in rtpmaps:
            name, _, rest = rtpmaps[m.payload_type].partition("/")
            rate, _, ch = rest.partition("/")
            m.encoding = name.strip().upper()
            if rate.strip().isdigit():
                m.clock_rate = int(rate)
            if ch.strip().isdigit():
                m.channels = int(ch)
        elif m.payload_type in _STATIC:
            m.encoding, m.clock_rate, m.channels = _STATIC[m.payload_type]
        if m.payload_type in fmtps:
            for part in fmtps[m.payload_type].split(";"):
                k, _, v = part.strip().partition("=")
                if k:
                    m.fmtp[k.strip().lower()] = v.strip()

    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            finish()
            rtpmaps, fmtps = {}, {}
            parts = value.split()
            try:
                pt = int(parts[3]) if len(parts) > 3 else -1
            except ValueError:
                pt = -1
            media.append(Media(kind=parts[0] if parts else "", payload_type=pt))
        elif kind == "a":
            name, _, arg = value.partition(":")
            name = name.strip().lower()
            if name == "control":
                if media:
                    media[-1].control = arg.strip()
                else:
                    control = arg.strip()
            elif not media:
                continue
            elif name in ("rtpmap", "fmtp"):
                pt_s, _, rest = arg.strip().partition(" ")
                if pt_s.isdigit():
                    (rtpmaps if name == "rtpmap" else fmtps)[int(pt_s)] = rest.strip()
            elif name == "framerate":
                try:
                    media[-1].framerate = float(arg)
                except ValueError:
                    pass
            elif name == "x-dimensions":
                w, _, h = arg.partition(",")
                if w.strip().isdigit() and h.strip().isdigit():
                    media[-1].dimensions = (int(w), int(h))
    finish()
    return SessionDescription(control, media)


def resolve_control(base: str, control: str | None) -> str:
    """A track's SETUP URL. Absolute controls as they are; `*` or none is the base itself;
    relative ones are appended with one slash (what cameras expect, not RFC 3986 joining,
    which would drop the base's last path segment or query)."""
    if not control or control == "*":
        return base
    if "://" in control:
        return control
    return base + ("" if base.endswith("/") else "/") + control


def _b64(value: str) -> bytes:
    value = value.strip()
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return b""


def parameter_sets(m: Media) -> bytes:
    """Annex-B parameter sets from the fmtp: `sprop-parameter-sets` (H.264) or
    `sprop-vps` / `sprop-sps` / `sprop-pps` (H.265, each may list several)."""
    nals: list[bytes] = []
    if m.encoding == "H264":
        nals = [_b64(v) for v in m.fmtp.get("sprop-parameter-sets", "").split(",") if v.strip()]
    elif m.encoding in ("H265", "HEVC"):
        for key in ("sprop-vps", "sprop-sps", "sprop-pps"):
            nals += [_b64(v) for v in m.fmtp.get(key, "").split(",") if v.strip()]
    return b"".join(START + n for n in nals if n)
