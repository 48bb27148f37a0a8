"""Camera audio from RTP: G.711 and Opus pass through as they come; AAC (RFC 3640
`mpeg4-generic`, AAC-hbr/AAC-lbr) is cut into access units by its AU headers and
handed to media.audio's AAC→Opus transcoder (decoding one AAC frame takes
well under a millisecond, so this runs on the event loop).
pts are in each codec's clock: 8 kHz for G.711, 48 kHz for Opus (RFC 7587 fixes
Opus's RTP clock at 48 kHz), as media/ingest.py's on_audio gives them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from media.rtsp.h26x import BitReader
from media.rtsp.rtp import RtpPacket, Unwrap
from media.rtsp.sdp import Media

log = logging.getLogger(__name__)

G711_CHUNK = 160  # bytes = 20 ms at 8 kHz, what WebRTC receivers expect
MAX_AAC_AU = 64 * 1024

OnAudio = Callable[[bytes, int, str], None]

_SOURCE = {"PCMA": "pcm_alaw", "PCMU": "pcm_mulaw", "OPUS": "opus", "MPEG4-GENERIC": "aac"}


def supported(m: Media) -> bool:
    if m.kind != "audio" or m.encoding not in _SOURCE:
        return False
    if m.encoding == "MPEG4-GENERIC":
        mode = m.fmtp.get("mode", "").lower()
        return mode in ("aac-hbr", "aac-lbr") and bool(m.fmtp.get("config")) and _int(m.fmtp, "sizelength") > 0
    return True


def _int(fmtp: dict[str, str], key: str) -> int:
    try:
        return int(fmtp.get(key, "0") or "0")
    except ValueError:
        return 0


@dataclass(frozen=True)
class AuLayout:
    """The AU-header fields an `mpeg4-generic` fmtp announces (RFC 3640 3.2.1)."""
    size: int
    index: int
    index_delta: int
    cts_delta: int = 0
    dts_delta: int = 0
    rap: bool = False
    stream_state: int = 0
    aux_size: int = 0

    @classmethod
    def from_fmtp(cls, f: dict[str, str]) -> AuLayout:
        return cls(_int(f, "sizelength"), _int(f, "indexlength"), _int(f, "indexdeltalength"),
                   _int(f, "ctsdeltalength"), _int(f, "dtsdeltalength"), _int(f, "randomaccessindication") == 1,
                   _int(f, "streamstateindication"), _int(f, "auxiliarydatasizelength"))


def split_aus(payload: bytes, layout: AuLayout) -> list[tuple[int, bytes]]:
    """(AU-size as announced, the bytes of it in this packet) for each AU of one RTP payload.
    A fragmented AU has one header whose size exceeds the data that follows."""
    if len(payload) < 2:
        raise ValueError("mpeg4-generic payload too short")
    bits = int.from_bytes(payload[:2], "big")
    head_len = (bits + 7) // 8
    if 2 + head_len > len(payload):
        raise ValueError("AU headers overrun the packet")
    r = BitReader(payload[2:2 + head_len])
    sizes: list[int] = []
    while r.pos < bits:
        sizes.append(r.u(layout.size))
        r.u(layout.index if not sizes[1:] else layout.index_delta)
        if layout.cts_delta and r.u(1):
            r.u(layout.cts_delta)
        if layout.dts_delta and r.u(1):
            r.u(layout.dts_delta)
        if layout.rap:
            r.u(1)
        if layout.stream_state:
            r.u(layout.stream_state)
    off = 2 + head_len
    if layout.aux_size:
        ar = BitReader(payload[off:off + 4])
        aux_bits = ar.u(layout.aux_size)
        off += (layout.aux_size + aux_bits + 7) // 8
    out: list[tuple[int, bytes]] = []
    for size in sizes:
        out.append((size, payload[off:off + size]))
        off += size
    return out


class _Stream:
    """What media.audio.AudioPath reads of a PyAV stream."""

    def __init__(self, name: str, extradata: bytes, rate: int) -> None:
        self.codec_context = type("CC", (), {"name": name, "extradata": extradata})()
        self.time_base = Fraction(1, rate)


class AudioTrack:
    def __init__(self, media: Media, out: OnAudio) -> None:
        self.media = media
        self.out = out
        self.source_codec = _SOURCE[media.encoding]
        self.out_codec = {"PCMA": "PCMA", "PCMU": "PCMU"}.get(media.encoding, "opus")
        self._unwrap = Unwrap()
        self._first: int | None = None
        self._path: Any = None
        self._layout: AuLayout | None = None
        self._frag = bytearray()
        self._frag_size = 0
        if media.encoding == "MPEG4-GENERIC":
            from media.audio import AudioPath  # PyAV's AAC decoder and libopus encoder

            self._layout = AuLayout.from_fmtp(media.fmtp)
            config = bytes.fromhex(media.fmtp["config"])
            self._path = AudioPath(_Stream("aac", config, media.clock_rate), out)

    def packet(self, pkt: RtpPacket, lost: bool) -> None:
        ts = self._unwrap(pkt.ts)
        if self._first is None:
            self._first = ts
        pts = ts - self._first
        if self._layout is not None:
            self._aac(pkt, pts, lost)
        elif self.out_codec == "opus":
            self.out(pkt.payload, pts, "opus")
        else:
            data = pkt.payload
            for i in range(0, len(data), G711_CHUNK):
                self.out(data[i:i + G711_CHUNK], pts + i, self.out_codec)

    def _aac(self, pkt: RtpPacket, pts: int, lost: bool) -> None:
        import av

        assert self._layout is not None
        if lost:
            self._frag.clear()
        try:
            aus = split_aus(pkt.payload, self._layout)
        except ValueError as exc:
            log.debug("bad mpeg4-generic packet: %s", exc)
            self._frag.clear()
            return
        if self._frag:  # the continuation of a fragmented AU
            if len(aus) == 1:
                self._frag += aus[0][1]
                if len(self._frag) >= self._frag_size or pkt.marker:
                    data = bytes(self._frag[:self._frag_size])
                    self._frag.clear()
                    self._path.feed(av.Packet(data))
                return
            self._frag.clear()
        for size, data in aus:
            if len(data) < size:  # the first piece of a fragmented AU
                if len(aus) == 1 and size <= MAX_AAC_AU:
                    self._frag = bytearray(data)
                    self._frag_size = size
                return
            self._path.feed(av.Packet(data))
