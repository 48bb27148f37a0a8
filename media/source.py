"""One stream: its ingest, state, stats, GOP cache and viewers; reconnects by itself.

A source dies (camera reboot, radio fade): the stream goes `connecting`, the
ingest is restarted with a short bounded backoff (0.2 s doubling to 1 s,
jittered: a reconnect attempt is one TCP connect, and frames must resume
within 2 s of the source's return), and viewers keep their peer connections. Timestamps stay monotonic across reconnects and file
loops, so browsers' jitter buffers never see time run backwards.
On-demand streams open at the first viewer and close `idle_close_s` after
the last one leaves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.backoff import Backoff
from media.gop import GopCache, VideoPacket
from media.ingest import IngestThread, StreamInfo
from media.recorder import RecordPolicy, Recorder
from media.rtsp import RtspIngest, wants_native
from media.transcode import Transcoder

log = logging.getLogger(__name__)

VIEWER_QUEUE = 240  # packets (~8 s at 30 fps)


@dataclass
class StreamConfig:
    id: str
    url: str
    device: str | None = None
    mode: str = "passthrough"  # passthrough | transcode | auto (transcode what browsers can't play)
    bitrate_kbps: int = 1500  # the transcoder's target
    on_demand: bool = False
    idle_close_s: float = 30.0
    options: dict[str, str] = field(default_factory=dict)
    record: RecordPolicy | None = None


class Viewer:
    """One viewer's bounded queue. Full: everything queued is dropped and the viewer
    waits for the next keyframe, so what it gets is always decodable."""

    def __init__(self, initial: list[VideoPacket]) -> None:
        self._queue: deque[VideoPacket] = deque(initial)
        self._ready = asyncio.Event()
        if initial:
            self._ready.set()
        self._await_key = not initial
        self.dropped = 0
        self.sent = 0
        self.closed = False
        self.audio = AudioViewer()

    def offer(self, pkt: VideoPacket) -> None:
        if self._await_key:
            if not pkt.keyframe:
                return
            self._await_key = False
        if len(self._queue) >= VIEWER_QUEUE:
            self.dropped += len(self._queue)
            self._queue.clear()
            if not pkt.keyframe:
                self._await_key = True
                return
        self._queue.append(pkt)
        self._ready.set()

    async def get(self) -> VideoPacket:
        while not self._queue:
            if self.closed:
                raise ConnectionError("viewer closed")
            self._ready.clear()
            await self._ready.wait()
        self.sent += 1
        return self._queue.popleft()

    def close(self) -> None:
        self.closed = True
        self._ready.set()
        self.audio.close()


@dataclass(frozen=True, slots=True)
class AudioPacket:
    data: bytes
    pts: int  # in the codec's clock (48 kHz Opus, 8 kHz G.711)
    codec: str


class AudioViewer:
    """A viewer's audio: bounded, oldest dropped when full (late audio is worse than a gap)."""

    def __init__(self) -> None:
        self._queue: deque[AudioPacket] = deque(maxlen=100)  # 2 s of 20 ms packets
        self._ready = asyncio.Event()
        self.closed = False

    def offer(self, pkt: AudioPacket) -> None:
        self._queue.append(pkt)
        self._ready.set()

    async def get(self) -> AudioPacket:
        while not self._queue:
            if self.closed:
                raise ConnectionError("viewer closed")
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def close(self) -> None:
        self.closed = True
        self._ready.set()


class _Clock:
    """Source timestamps → a monotonic 90 kHz clock that survives reconnects and loops."""

    def __init__(self) -> None:
        self.last_src: int | None = None
        self.last_out: int | None = None
        self.last_at = 0.0

    def map(self, src: int | None, now: float) -> int:
        if self.last_out is None:
            out = int(now * 90000)
        elif src is not None and self.last_src is not None and 0 <= src - self.last_src <= 2 * 90000:
            out = self.last_out + (src - self.last_src)
        else:  # no timestamps, a jump or time running backwards: follow the wall clock
            out = self.last_out + max(1, int((now - self.last_at) * 90000))
        self.last_src, self.last_out, self.last_at = src, out, now
        return out


class StreamSource:
    def __init__(self, cfg: StreamConfig, on_change: Callable[[StreamSource], None] | None = None,
                 recordings: Path | None = None) -> None:
        self.cfg = cfg
        self.recorder = Recorder(cfg.id, recordings / cfg.id, cfg.record) if cfg.record and recordings else None
        self.on_change = on_change
        self.state = "offline"
        self.info: StreamInfo | None = None
        self.gop = GopCache()
        self.viewers: set[Viewer] = set()
        self.reconnects = 0
        self.last_error = ""
        self.packets = 0
        self.bytes = 0
        self._rate: deque[tuple[float, int]] = deque(maxlen=300)  # (arrival, size) for fps and bitrate
        self._clock = _Clock()
        self._ended: asyncio.Future[str] | None = None
        self._ingest: IngestThread | RtspIngest | None = None
        self._native_rtsp = wants_native(cfg.url, cfg.options)  # else PyAV; `ingest: ffmpeg` asks for PyAV
        self._task: asyncio.Task[None] | None = None
        self._idle_handle: asyncio.TimerHandle | None = None
        self._transcoder: Transcoder | None = None
        self.source_codec: str | None = None
        self.audio_codec: str | None = None

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"stream:{self.cfg.id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._set_state("offline")

    async def close(self) -> None:
        await self.stop()
        if self.recorder is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.recorder.close)

    async def _run(self) -> None:
        backoff = Backoff(initial=0.2, maximum=1.0, reset_after=10.0)
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._set_state("connecting")
                self._ended = loop.create_future()
                ingest_cls = RtspIngest if self._native_rtsp else IngestThread
                self._ingest = ingest_cls(self.cfg.url, self.cfg.options, loop, self._on_info, self._on_packet,
                                          self._on_end, on_audio=self._on_audio)
                self._ingest.start()
                backoff.connected()
                reason = await self._ended
                if isinstance(self._ingest, RtspIngest) and self._ingest.unsupported:
                    log.warning("stream %s: %s; using the PyAV ingest from now on", self.cfg.id, reason)
                    self._native_rtsp = False
                self.last_error = reason
                self.gop.clear()  # a new connection starts at its own keyframe
                self.reconnects += 1
                log.info("stream %s: source ended (%s); reconnecting", self.cfg.id, reason)
                self._set_state("connecting")
                await asyncio.sleep(backoff.next_delay())
        finally:
            if self._ingest is not None:
                self._ingest.stop()
            if self._transcoder is not None:
                self._transcoder.stop()
                self._transcoder = None

    def _on_info(self, info: StreamInfo) -> None:
        self.source_codec = info.codec
        transcode = self.cfg.mode == "transcode" or (self.cfg.mode == "auto" and info.codec not in ("h264", "vp8"))
        if self._transcoder is not None:
            self._transcoder.stop()
            self._transcoder = None
        if transcode:
            self._transcoder = Transcoder(info.codec, asyncio.get_running_loop(), self._deliver,
                                          self.cfg.bitrate_kbps, fps=info.fps)
            self._transcoder.start()
            info = StreamInfo("h264", info.width, info.height, info.fps)
        self.info = info

    def _on_audio(self, data: bytes, pts: int, codec: str) -> None:
        self.audio_codec = codec
        pkt = AudioPacket(data, pts, codec)
        for v in self.viewers:
            v.audio.offer(pkt)

    def _on_end(self, reason: str) -> None:
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(reason)

    def _on_packet(self, data: bytes, pts: int | None, keyframe: bool) -> None:
        out_pts = self._clock.map(pts, time.monotonic())
        if self._transcoder is not None:
            self._transcoder.feed(data, out_pts, keyframe)
        else:
            self._deliver(data, out_pts, keyframe)

    def _deliver(self, data: bytes, pts: int, keyframe: bool) -> None:
        now = time.monotonic()
        pkt = VideoPacket(data, pts, keyframe)
        if self.state != "live" and keyframe:
            self._set_state("live")
        self.packets += 1
        self.bytes += len(data)
        self._rate.append((now, len(data)))
        self.gop.add(pkt)
        for v in self.viewers:
            v.offer(pkt)
        if self.recorder is not None and self.info is not None:
            self.recorder.write(pkt, self.info.codec, self.info.width, self.info.height)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            if self.on_change is not None:
                self.on_change(self)

    # --- viewers ----------------------------------------------------------------------
    def subscribe(self) -> Viewer:
        viewer = Viewer(self.gop.snapshot())
        self.viewers.add(viewer)
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        if self.cfg.on_demand:
            self.start()
        return viewer

    def unsubscribe(self, viewer: Viewer) -> None:
        viewer.close()
        self.viewers.discard(viewer)
        if self.cfg.on_demand and not self.viewers and self._idle_handle is None:
            loop = asyncio.get_running_loop()
            self._idle_handle = loop.call_later(self.cfg.idle_close_s, lambda: loop.create_task(self._idle_close()))

    async def _idle_close(self) -> None:
        self._idle_handle = None
        if not self.viewers:
            log.info("stream %s: no viewers for %.0f s, closing the source", self.cfg.id, self.cfg.idle_close_s)
            await self.stop()

    # --- stats ------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        recent = [(t, n) for t, n in self._rate if now - t <= 5.0]
        span = (recent[-1][0] - recent[0][0]) if len(recent) > 1 else 0.0
        fps = (len(recent) - 1) / span if span > 0 else (self.info.fps if self.info else None)
        kbps = sum(n for _, n in recent[1:]) * 8 / span / 1000 if span > 0 else None
        return {
            "id": self.cfg.id, "device": self.cfg.device, "state": self.state,
            "codec": self.info.codec if self.info else None, "source_codec": self.source_codec,
            "transcoding": self._transcoder is not None, "audio": self.audio_codec,
            "audio_source": self._ingest.audio_source_codec if self._ingest else None,
            "width": self.info.width if self.info else None, "height": self.info.height if self.info else None,
            "fps": round(fps, 1) if fps else None, "bitrate_kbps": round(kbps) if kbps else None,
            "viewers": len(self.viewers), "reconnects": self.reconnects, "last_error": self.last_error,
            "recording": self.recorder is not None,
            "ingest": "native" if isinstance(self._ingest, RtspIngest) else "ffmpeg" if self._ingest else None,
        }
