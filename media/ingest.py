"""Reads one video source with PyAV on its own thread and hands packets to the event loop.

PyAV's demuxer blocks, so it never runs on the loop. Live sources (RTSP,
RTMP, UDP MPEG-TS, SRT via ffmpeg) are read as fast as they arrive, never
paced by their timestamps; only files (test sources) are paced, and may loop.
AVCC input (MP4, FLV/RTMP) goes through `h264_mp4toannexb`/`hevc_mp4toannexb`;
Annex-B input gets its parameter sets re-inserted before every keyframe.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import av

from media.annexb import ensure_parameter_sets, is_annexb, parameter_sets
from media.audio import AudioPath

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 5.0  # a live source silent this long is dead: end, and let the source reconnect


@dataclass(frozen=True)
class StreamInfo:
    codec: str
    width: int
    height: int
    fps: float


OnInfo = Callable[[StreamInfo], None]
OnPacket = Callable[[bytes, int | None, bool], None]  # Annex-B data, pts (90 kHz) or None, keyframe
OnEnd = Callable[[str], None]  # why it ended
OnAudio = Callable[[bytes, int, str], None]  # payload, pts in the codec's clock, "opus" | "PCMA" | "PCMU"


def is_file_source(url: str) -> bool:
    scheme = urlsplit(url).scheme
    return scheme in ("", "file")


def _open_options(url: str, options: dict[str, str]) -> dict[str, str]:
    scheme = urlsplit(url).scheme
    opts: dict[str, str] = {}
    if scheme in ("rtsp", "rtsps"):
        # The SDP names the codec and its parameter sets: probing ~0.2 s instead of FFmpeg's default
        # (about a second here) gets a rebooted camera's picture back sooner.
        opts.update({"rtsp_transport": "tcp", "stimeout": "5000000", "timeout": "5000000",
                     "analyzeduration": "200000", "probesize": "65536"})
    if scheme == "udp":
        opts.update({"fifo_size": "1000000", "overrun_nonfatal": "1"})
    if scheme in ("rtsp", "rtsps", "udp", "rtmp", "srt"):
        opts.update({"fflags": "nobuffer", "flags": "low_delay"})
    opts.update(options)
    opts.pop("ingest", None)  # ours (native | ffmpeg), not FFmpeg's
    return opts


class IngestThread:
    def __init__(self, url: str, options: dict[str, str], loop: asyncio.AbstractEventLoop,
                 on_info: OnInfo, on_packet: OnPacket, on_end: OnEnd, loop_file: bool = True,
                 on_audio: OnAudio | None = None) -> None:
        self.url = url
        self.options = _open_options(url, options)
        self.loop = loop
        self.on_info, self.on_packet, self.on_end, self.on_audio = on_info, on_packet, on_end, on_audio
        self.audio_codec: str | None = None  # what viewers get, once known
        self.audio_source_codec: str | None = None
        self.pace = is_file_source(url)
        self.loop_file = loop_file and self.pace
        self._stop = threading.Event()
        self._helper: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name=f"ingest:{url}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; it does at the next packet or read timeout."""
        self._stop.set()
        helper = self._helper
        if helper is not None and helper.poll() is None:
            helper.kill()  # unblocks a read on its pipe

    def _run(self) -> None:
        reason = "ended"
        try:
            while not self._stop.is_set():
                self._read_once()
                if not self.loop_file:
                    break
        except av.FFmpegError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # never let a bad stream take the thread down silently
            log.exception("ingest of %s failed", self.url)
            reason = f"{type(exc).__name__}: {exc}"
        if not self._stop.is_set():
            self.loop.call_soon_threadsafe(self.on_end, reason)

    def _open(self) -> tuple[Any, subprocess.Popen[bytes] | None]:
        if urlsplit(self.url).scheme == "srt":
            # PyAV's FFmpeg has no libsrt: Debian's ffmpeg receives SRT and remuxes to MPEG-TS on a pipe.
            ffmpeg = shutil.which("ffmpeg")
            if ffmpeg is None:
                raise ValueError("SRT sources need Debian's ffmpeg (apt install ffmpeg); PyAV's FFmpeg has no libsrt")
            proc = subprocess.Popen([ffmpeg, "-hide_banner", "-loglevel", "error", "-fflags", "nobuffer",
                                     "-i", self.url, "-c", "copy", "-f", "mpegts", "pipe:1"],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            assert proc.stdout is not None
            self._helper = proc
            return av.open(proc.stdout, format="mpegts", timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S)), proc
        path = urlsplit(self.url).path if self.url.startswith("file:") else self.url
        options = dict(self.options)
        fmt = options.pop("format", None)  # the demuxer, when the URL does not say (MPEG-PS over tcp://)
        return av.open(path, format=fmt, options=options, timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S)), None

    def _read_once(self) -> None:
        container, helper = self._open()
        try:
            if not container.streams.video:
                raise ValueError("the source has no video stream")
            vs = container.streams.video[0]
            cc = vs.codec_context
            codec = cc.name
            extradata = bytes(cc.extradata or b"")
            bsf = None
            if codec in ("h264", "hevc") and extradata and not is_annexb(extradata):
                bsf = av.BitStreamFilterContext("h264_mp4toannexb" if codec == "h264" else "hevc_mp4toannexb", vs)
            sets = parameter_sets(extradata, codec)
            rate = vs.average_rate or vs.guessed_rate
            self.loop.call_soon_threadsafe(self.on_info, StreamInfo(codec, cc.width, cc.height, float(rate) if rate else 0.0))
            tb = vs.time_base
            audio = None
            if self.on_audio is not None and container.streams.audio:
                try:
                    audio = AudioPath(container.streams.audio[0], self._audio_out)
                    self.audio_codec, self.audio_source_codec = audio.out_codec, audio.source_codec
                except (av.FFmpegError, ValueError) as exc:
                    log.warning("%s: audio %s not usable (%s); video only", self.url, container.streams.audio[0].codec_context.name, exc)
            started = time.monotonic()
            first_pts: int | None = None
            streams = [vs] + ([container.streams.audio[0]] if audio else [])
            for packet in container.demux(*streams):
                if self._stop.is_set():
                    return
                if packet.size == 0:
                    continue
                if audio is not None and packet.stream.type == "audio":
                    audio.feed(packet)
                    continue
                for p in (bsf.filter(packet) if bsf else [packet]):
                    pts = int(p.pts * tb * 90000) if p.pts is not None and tb else None
                    if self.pace and pts is not None:
                        first_pts = pts if first_pts is None else first_pts
                        wait = started + (pts - first_pts) / 90000 - time.monotonic()
                        if wait > 0 and self._stop.wait(min(wait, 1.0)):
                            return
                    data = ensure_parameter_sets(bytes(p), p.is_keyframe, codec, sets)
                    self.loop.call_soon_threadsafe(self.on_packet, data, pts, bool(p.is_keyframe))
        finally:
            container.close()
            if helper is not None:
                helper.kill()
                helper.wait()

    def _audio_out(self, data: bytes, pts: int, codec: str) -> None:
        assert self.on_audio is not None
        self.loop.call_soon_threadsafe(self.on_audio, data, pts, codec)
