"""Optional RTMP push of the stamped loop (PyAV flv muxer), for transmitters that speak RTMP.

PyAV's RTMP output is blocking TCP, so the pusher runs in its own thread; it reconnects every
RECONNECT_S after a failure and each connection starts at the loop's IDR. The stamp counter
keeps increasing across reconnects.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from fractions import Fraction

import av

from .clock import FrameClock
from .loop import EncodedLoop
from .nal import join_annexb

log = logging.getLogger(__name__)

RECONNECT_S = 1.0
_TB = Fraction(1, 1000)  # FLV timestamps are milliseconds


class RtmpPusher:
    def __init__(self, media: EncodedLoop, url: str) -> None:
        self.media = media
        self.url = url
        self.stop = threading.Event()
        self.counter = 0
        self.frames_sent = 0
        self.connects = 0
        self._thread = threading.Thread(target=self._run, name="rtmp-push", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 0.5) -> None:
        self.stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)  # daemon: a peer stuck in a write cannot hold up the exit

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self._push_once()
            except (av.FFmpegError, OSError) as exc:
                log.warning("RTMP push to %s: %s", self.url, exc)
            except Exception:  # noqa: BLE001 - keep the thread alive, like a real transmitter
                log.exception("RTMP push to %s failed", self.url)
            self.stop.wait(RECONNECT_S)

    def _push_once(self) -> None:
        cfg = self.media.config
        container = av.open(self.url, "w", format="flv", timeout=5.0)
        try:
            # An encoder-less stream cannot carry extradata in PyAV 18; the flv muxer needs it for
            # the AVC/HEVC sequence header, so the stream gets a codec context that never encodes.
            stream = container.add_stream("h264" if cfg.codec == "h264" else "hevc", rate=cfg.fps)
            stream.codec_context.width, stream.codec_context.height = cfg.width, cfg.height
            stream.codec_context.pix_fmt = "yuv420p"
            stream.codec_context.extradata = join_annexb(self.media.param_sets)
            stream.time_base = _TB
            self.connects += 1
            log.info("RTMP pushing to %s", self.url)
            clock = FrameClock(cfg.fps)
            n, index, need_idr = len(self.media), 0, False
            while (tick := clock.tick_blocking(self.stop)) is not None:
                due, skipped = tick
                if skipped:
                    self.counter += skipped
                    index = (index + skipped) % n
                    need_idr = index != 0
                if not (need_idr and index != 0):
                    need_idr = False
                    pkt = av.Packet(self.media.access_unit_annexb(index, self.counter, time.time_ns() // 1000))
                    pkt.stream = stream
                    pkt.time_base = _TB
                    pkt.pts = pkt.dts = round((due - clock.start) * 1000)
                    pkt.is_keyframe = index == 0
                    container.mux(pkt)
                    self.frames_sent += 1
                self.counter += 1
                index = (index + 1) % n
        finally:
            with contextlib.suppress(av.FFmpegError, OSError):
                container.close()
