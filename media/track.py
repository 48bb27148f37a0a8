"""An aiortc video track that hands encoded packets (no decoding) to its RTP sender."""

from __future__ import annotations

import fractions

import av
from aiortc import MediaStreamTrack

from media.source import AudioViewer, Viewer

TIME_BASE = fractions.Fraction(1, 90000)


class PassthroughTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, viewer: Viewer) -> None:
        super().__init__()
        self.viewer = viewer

    async def recv(self) -> av.Packet:  # type: ignore[override]
        try:
            pkt = await self.viewer.get()
        except ConnectionError:
            self.stop()
            raise
        packet = av.Packet(pkt.data)
        packet.pts = pkt.pts
        packet.time_base = TIME_BASE
        return packet

    def stop(self) -> None:
        self.viewer.close()
        super().stop()


class AudioPassthroughTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, viewer: AudioViewer) -> None:
        super().__init__()
        self.viewer = viewer

    async def recv(self) -> av.Packet:  # type: ignore[override]
        try:
            pkt = await self.viewer.get()
        except ConnectionError:
            self.stop()
            raise
        packet = av.Packet(pkt.data)
        packet.pts = pkt.pts
        packet.time_base = fractions.Fraction(1, 48000 if pkt.codec == "opus" else 8000)
        return packet
