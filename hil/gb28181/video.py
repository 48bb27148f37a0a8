"""Live video of one channel: the camera simulators' test card (hil.camera.pattern) with the channel's
PTZ state burned in, encoded frame by frame with PyAV (libx264/libx265) while anyone watches.

Encoding is live, not a replayed loop like hil.camera's, because the picture must show the PTZ state
as it changes. Each channel has one encoder shared by all of its streams; it runs only while at
least one stream is subscribed, in a worker thread, paced by hil.camera.clock.FrameClock. A new
subscriber asks for an IDR (x264 `forced-idr`) and gets frames from the next key frame on.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
import numpy as np

from ..camera.clock import FrameClock
from ..camera.nal import aud, is_parameter_set, is_vcl, join_annexb, nal_type, split_annexb
from ..camera.pattern import CardPattern, draw_digits
from ..camera.sei import build_stamp_nal
from .ptz import PtzState

log = logging.getLogger(__name__)

COUNTER_LOOP = 1000  # the burned-in counter runs 000..999, then wraps
IDR_TYPES = {"h264": {5}, "h265": {16, 17, 18, 19, 20, 21}}


@dataclass(frozen=True)
class VideoConfig:
    codec: str = "h264"
    width: int = 640
    height: int = 360
    fps: int = 25
    bitrate_kbps: int = 1000
    gop_s: float = 2.0


@dataclass(frozen=True)
class AccessUnit:
    annexb: bytes      # AUD, [parameter sets], stamp SEI, slices; 4-byte start codes
    keyframe: bool
    due: float         # the frame's scheduled monotonic time (timestamps derive from it)
    counter: int       # frames encoded by this channel since its encoder started


Subscriber = Callable[[AccessUnit], None]


def _open_encoder(cfg: VideoConfig) -> av.VideoCodecContext:
    gop = max(1, round(cfg.gop_s * cfg.fps))
    kbps = cfg.bitrate_kbps
    if cfg.codec == "h264":
        ctx = cast(av.VideoCodecContext, av.CodecContext.create("libx264", "w"))
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline", "forced-idr": "1",
                       "x264-params": (f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:repeat-headers=1"
                                       f":vbv-maxrate={kbps}:vbv-bufsize={kbps}:threads=1")}
    else:
        ctx = cast(av.VideoCodecContext, av.CodecContext.create("libx265", "w"))
        ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "forced-idr": "1",
                       "x265-params": (f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:open-gop=0"
                                       f":repeat-headers=1:info=0:log-level=error:vbv-maxrate={kbps}"
                                       f":vbv-bufsize={kbps}:frame-threads=1:pools=none")}
    ctx.width, ctx.height, ctx.pix_fmt = cfg.width, cfg.height, "yuv420p"
    ctx.time_base = Fraction(1, cfg.fps)
    ctx.framerate = Fraction(cfg.fps, 1)
    ctx.bit_rate = kbps * 1000
    ctx.gop_size = gop
    ctx.open()
    return ctx


class Overlay:
    """Burns the channel number and PTZ state (pan°, tilt°, zoom×10) into the top of a yuv420p frame."""

    def __init__(self, width: int, height: int, channel: int) -> None:
        self.height = max(16, height // 10) // 8 * 8
        self.channel = channel
        self.top = max(2, height // 40)
        cell = self.height / 8.0
        self.step = int(cell * 4) + max(2, int(cell * 1.5))
        self.left = max(2, width // 40)

    def draw(self, yuv: np.ndarray, ptz: tuple[int, int, int] | None) -> None:
        """Draw into a planar yuv420p frame (the (h * 3 / 2, w) array of CardPattern.frame);
        `ptz` is PtzState.overlay_numbers()."""
        h, w = yuv.shape[0] * 2 // 3, yuv.shape[1]
        luma = yuv[:h]
        groups = [f"{self.channel % 100:02d}"]
        if ptz is not None:
            pan, tilt, zoom = ptz
            groups += [f"{pan:03d}", f"{tilt:02d}", f"{min(zoom, 999):03d}"]
        pad = int(self.height / 8)
        width = (sum(len(g) for g in groups) + len(groups) - 1) * self.step + 2 * pad
        y0, y1 = self.top - pad, self.top + self.height + pad
        x0, x1 = self.left - pad, min(w, self.left - pad + width)
        luma[y0:y1, x0:x1] = 16
        chroma = yuv.reshape(-1)[h * w:].reshape(2, h // 2, w // 2)  # a view of the U and V planes
        chroma[:, y0 // 2:(y1 + 1) // 2, x0 // 2:(x1 + 1) // 2] = 128  # grey box: white digits
        x = self.left
        for g in groups:
            draw_digits(luma, g, self.top, x, self.height, 235)
            x += (len(g) + 1) * self.step


class ChannelVideo:
    """The encoder of one channel and its subscribers."""

    def __init__(self, cfg: VideoConfig, channel: int, ptz: PtzState | None) -> None:
        self.cfg = cfg
        self.ptz = ptz
        self.channel = channel
        self._subscribers: dict[int, tuple[Subscriber, bool]] = {}  # id -> (callback, seen a key frame)
        self._next_id = 0
        self._task: asyncio.Task[None] | None = None
        self._want_idr = False
        self.frames = 0
        self.skipped = 0
        self.encode_errors = 0

    def subscribe(self, callback: Subscriber) -> int:
        sid = self._next_id
        self._next_id += 1
        self._subscribers[sid] = (callback, False)
        self._want_idr = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"video-ch{self.channel}")
        return sid

    def unsubscribe(self, sid: int) -> None:
        self._subscribers.pop(sid, None)
        if not self._subscribers and self._task is not None:
            self._task.cancel()
            self._task = None

    async def close(self) -> None:
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.cfg
        card, ctx = await loop.run_in_executor(None, self._prepare)
        overlay = Overlay(cfg.width, cfg.height, self.channel)
        clock = FrameClock(cfg.fps)
        counter = 0
        try:
            while self._subscribers:
                due, skipped = await clock.tick()
                self.skipped += skipped
                force = self._want_idr
                self._want_idr = False
                try:
                    numbers = self.ptz.overlay_numbers() if self.ptz is not None else None  # read on the loop's thread
                    au = await loop.run_in_executor(None, self._encode, ctx, card, overlay, numbers, counter, force, due)
                except (av.error.FFmpegError, RuntimeError) as exc:
                    self.encode_errors += 1
                    log.warning("channel %d: encoding failed: %s", self.channel, exc)
                    continue
                counter += 1
                if au is None:
                    continue
                self.frames += 1
                for sid, (callback, started) in list(self._subscribers.items()):
                    if not started and not au.keyframe:
                        continue
                    if not started:
                        self._subscribers[sid] = (callback, True)
                    callback(au)
        finally:
            with contextlib.suppress(Exception):
                ctx.close()

    def _prepare(self) -> tuple[CardPattern, av.VideoCodecContext]:
        return CardPattern(self.cfg.width, self.cfg.height, COUNTER_LOOP, seed=self.channel), _open_encoder(self.cfg)

    def _encode(self, ctx: av.VideoCodecContext, card: CardPattern, overlay: Overlay, ptz: tuple[int, int, int] | None,
                counter: int, force_idr: bool, due: float) -> AccessUnit | None:
        """One picture in, at most one access unit out (zerolatency, no B frames: no delay). Runs in a worker thread."""
        yuv = card.frame(counter % COUNTER_LOOP)
        overlay.draw(yuv, ptz)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = counter
        frame.time_base = ctx.time_base
        if force_idr:
            frame.pict_type = av.video.frame.PictureType.I
        packets = ctx.encode(frame)
        if not packets:
            return None
        codec = self.cfg.codec
        nals = split_annexb(b"".join(bytes(p) for p in packets))
        params = [n for n in nals if is_parameter_set(codec, n)]
        vcl = [n for n in nals if is_vcl(codec, n)]
        if not vcl:
            return None
        key = any(nal_type(codec, n) in IDR_TYPES[codec] for n in vcl)
        send_us = time.time_ns() // 1000
        out = [aud(codec), *(params if key else []), build_stamp_nal(codec, counter, send_us), *vcl]
        return AccessUnit(join_annexb(out), key, due, counter)
