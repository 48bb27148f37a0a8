"""aiortc tracks that hand encoded packets (no decoding) to their RTP senders."""

from __future__ import annotations

import fractions
from typing import Any

import av
from aiortc import MediaStreamTrack

from media.source import AudioViewer, Viewer

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
OPUS_TIME_BASE = fractions.Fraction(1, 48000)
G711_TIME_BASE = fractions.Fraction(1, 8000)


class _EncodedTrack(MediaStreamTrack):
    def __init__(self, viewer: Viewer | AudioViewer) -> None:
        super().__init__()
        self.viewer = viewer

    def _time_base(self, pkt: Any) -> fractions.Fraction:
        raise NotImplementedError

    async def recv(self) -> av.Packet:  # type: ignore[override]
        try:
            pkt = await self.viewer.get()
        except ConnectionError:
            self.stop()
            raise
        packet = av.Packet(pkt.data)
        packet.pts = pkt.pts
        packet.time_base = self._time_base(pkt)
        return packet

    def stop(self) -> None:
        self.viewer.close()
        super().stop()


class PassthroughTrack(_EncodedTrack):
    """Video. A WHEP session's sender (media/fanout.py) takes the viewer's packets itself and never
    calls recv(); recv() is for aiortc's plain RTCRtpSender."""

    kind = "video"

    def _time_base(self, pkt: Any) -> fractions.Fraction:
        return VIDEO_TIME_BASE


class AudioPassthroughTrack(_EncodedTrack):
    kind = "audio"

    def _time_base(self, pkt: Any) -> fractions.Fraction:
        return OPUS_TIME_BASE if pkt.codec == "opus" else G711_TIME_BASE
