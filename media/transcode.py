"""Shared transcoding: decode once and encode once to H.264 per stream, on its own thread.

For H.265 sources (browsers can't play them over WebRTC) and for streams
that must fit a smaller bitrate. Every viewer then gets the same encoded
packets through the passthrough path; aiortc's own encoder would run once
per viewer (~0.8 core per 720p30 viewer here).
The input queue is bounded: when the encoder falls behind, queued input is
dropped up to the next source keyframe, so the picture skips instead of lagging.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from fractions import Fraction

import av

log = logging.getLogger(__name__)

INPUT_QUEUE = 90  # packets (~3 s at 30 fps)

Output = Callable[[bytes, int, bool], None]  # Annex-B H.264, pts (90 kHz), keyframe


class Transcoder:
    def __init__(self, codec: str, loop: asyncio.AbstractEventLoop, output: Output,
                 bitrate_kbps: int = 1500, gop_s: float = 1.0, fps: float = 30.0) -> None:
        self.codec = codec
        self.loop = loop
        self.output = output
        self.bitrate_kbps = bitrate_kbps
        self.fps = fps or 30.0
        self.gop = max(1, int(round(gop_s * self.fps)))
        self.dropped = 0
        self.frames = 0
        self._in: queue.Queue[tuple[bytes, int, bool] | None] = queue.Queue(INPUT_QUEUE)
        self._thread = threading.Thread(target=self._run, name=f"transcode:{codec}", daemon=True)
        self._skip_to_key = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        try:
            self._in.put_nowait(None)
        except queue.Full:
            self._drain()
            self._in.put_nowait(None)

    def _drain(self) -> None:
        while True:
            try:
                self._in.get_nowait()
                self.dropped += 1
            except queue.Empty:
                return

    def feed(self, data: bytes, pts: int, keyframe: bool) -> None:
        if self._skip_to_key and not keyframe:
            self.dropped += 1
            return
        self._skip_to_key = False
        try:
            self._in.put_nowait((data, pts, keyframe))
        except queue.Full:
            self._drain()
            self._skip_to_key = True
            if keyframe:
                self._skip_to_key = False
                self._in.put_nowait((data, pts, keyframe))

    def _encoder(self, width: int, height: int) -> av.VideoCodecContext:
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
        enc.time_base = Fraction(1, 90000)
        # without a frame rate x264 budgets the bit rate as if at 1/time_base frames per second: ~0 bits a
        # frame, every P-frame skipped, a picture that moves only at key frames
        enc.framerate = Fraction(self.fps).limit_denominator(1001)
        enc.bit_rate = self.bitrate_kbps * 1000
        enc.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                       "g": str(self.gop), "keyint_min": str(self.gop), "bf": "0", "repeat-headers": "1",
                       "annexb": "1"}
        enc.open()
        return enc

    def _run(self) -> None:
        decoder = av.CodecContext.create(self.codec, "r")
        encoder: av.VideoCodecContext | None = None
        size: tuple[int, int] | None = None
        try:
            while True:
                item = self._in.get()
                if item is None:
                    return
                data, pts, _ = item
                try:
                    frames = decoder.decode(av.Packet(data))
                except av.FFmpegError as exc:
                    log.debug("transcoder: undecodable packet skipped (%s)", exc)
                    continue
                for frame in frames:
                    if size != (frame.width, frame.height):  # a source that changes resolution: new encoder
                        size = (frame.width, frame.height)
                        encoder = self._encoder(*size)
                    assert encoder is not None
                    frame = frame.reformat(format="yuv420p") if frame.format.name != "yuv420p" else frame
                    frame.pts, frame.time_base = pts, Fraction(1, 90000)
                    frame.pict_type = av.video.frame.PictureType.NONE
                    for out in encoder.encode(frame):
                        self.frames += 1
                        self.loop.call_soon_threadsafe(self.output, bytes(out), int(out.pts if out.pts is not None else pts),
                                                       bool(out.is_keyframe))
        except Exception:
            log.exception("transcoder for %s failed", self.codec)
