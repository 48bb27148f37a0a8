"""`snapshot.jpg`: the stream's latest picture, decoded from the cached GOP only when asked.

Decoding runs on a worker thread; the JPEG is cached for `CACHE_S` so a wall
of browsers polling thumbnails costs one decode a second, not one each.
"""

from __future__ import annotations

import asyncio
import time
from fractions import Fraction

import av

from media.gop import VideoPacket

CACHE_S = 1.0


def _decode_last(codec: str, packets: list[VideoPacket]) -> bytes | None:
    decoder = av.CodecContext.create(codec, "r")
    last = None
    for pkt in packets:
        try:
            for frame in decoder.decode(av.Packet(pkt.data)):
                last = frame
        except av.FFmpegError:
            continue
    try:
        for frame in decoder.decode(None):
            last = frame
    except av.FFmpegError:
        pass
    if last is None:
        return None
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height, enc.pix_fmt = last.width, last.height, "yuvj420p"
    enc.time_base = Fraction(1, 25)
    enc.options = {"q": "5"}
    enc.open()
    frame = last.reformat(format="yuvj420p")
    frame.pts = 0
    data = b"".join(bytes(p) for p in enc.encode(frame))
    data += b"".join(bytes(p) for p in enc.encode(None))
    return data or None


class Snapshotter:
    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, bytes]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def jpeg(self, stream_id: str, codec: str, packets: list[VideoPacket]) -> bytes | None:
        lock = self._locks.setdefault(stream_id, asyncio.Lock())
        async with lock:
            cached = self._cache.get(stream_id)
            if cached and time.monotonic() - cached[0] < CACHE_S:
                return cached[1]
            if not packets:
                return None
            data = await asyncio.get_running_loop().run_in_executor(None, _decode_last, codec, packets)
            if data:
                self._cache[stream_id] = (time.monotonic(), data)
            return data
