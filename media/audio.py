"""Audio for WebRTC viewers: Opus and G.711 pass through; anything else (AAC above all) is
transcoded once per stream to Opus, so camera audio is never silently dropped.

Runs inside the ingest thread (audio is cheap next to video). Output packets
carry pts in their own sample clock: 48 kHz for Opus, 8 kHz for G.711.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av

log = logging.getLogger(__name__)

PASSTHROUGH = {"opus": "opus", "pcm_alaw": "PCMA", "pcm_mulaw": "PCMU"}
OPUS_RATE = 48000
G711_CHUNK = 160  # bytes = 20 ms at 8 kHz

AudioOut = Callable[[bytes, int, str], None]  # payload, pts (in the codec's clock), codec name ("opus"|"PCMA"|"PCMU")


class AudioPath:
    def __init__(self, stream: Any, output: AudioOut) -> None:
        cc = stream.codec_context
        self.source_codec = cc.name
        self.output = output
        self.out_codec = PASSTHROUGH.get(cc.name, "opus")
        self.time_base = stream.time_base
        self._pts = 0
        self._decoder = None
        self._encoder = None
        self._resampler = None
        if cc.name not in PASSTHROUGH:
            self._decoder = av.CodecContext.create(cc.name, "r")
            if cc.extradata:
                self._decoder.extradata = cc.extradata
            enc = av.CodecContext.create("libopus", "w")
            enc.sample_rate, enc.layout, enc.format = OPUS_RATE, "stereo", "s16"
            enc.time_base = Fraction(1, OPUS_RATE)
            enc.bit_rate = 64000
            enc.open()
            self._encoder = enc
            self._resampler = av.AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE, frame_size=960)

    @property
    def transcoding(self) -> bool:
        return self._encoder is not None

    def feed(self, packet: Any) -> None:
        if self._encoder is None:
            self._pass(packet)
            return
        try:
            frames = self._decoder.decode(packet)  # type: ignore[union-attr]
        except av.FFmpegError as exc:
            log.debug("audio: undecodable packet skipped (%s)", exc)
            return
        for frame in frames:
            for chunk in self._resampler.resample(frame):  # type: ignore[union-attr]
                chunk.pts = self._pts
                self._pts += chunk.samples
                for out in self._encoder.encode(chunk):
                    self.output(bytes(out), int(out.pts if out.pts is not None else chunk.pts), "opus")

    def _pass(self, packet: Any) -> None:
        data = bytes(packet)
        if self.out_codec == "opus":
            pts = int(packet.pts * self.time_base * OPUS_RATE) if packet.pts is not None else self._pts
            self._pts = pts + 960
            self.output(data, pts, "opus")
            return
        # G.711: RTP wants 20 ms packets; demuxers hand out larger blocks
        base = int(packet.pts * self.time_base * 8000) if packet.pts is not None else self._pts
        for i in range(0, len(data), G711_CHUNK):
            self.output(data[i:i + G711_CHUNK], base + i, self.out_codec)
        self._pts = base + len(data)
