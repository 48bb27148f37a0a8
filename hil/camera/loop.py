"""Encode a synthetic loop once (PyAV libx264 / libx265) and keep its access units in memory.

The loop is one closed GOP: an IDR at frame 0, P frames after it, no B frames, so it can be
replayed back to back forever. Replay adds the per-frame stamp SEI (see sei.py) and, before
the IDR, the parameter sets in-band.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av

from .nal import aud, is_parameter_set, is_vcl, join_annexb, nal_type, split_annexb
from .pattern import CardPattern
from .sei import build_stamp_nal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoConfig:
    codec: str = "h264"  # "h264" | "h265"
    width: int = 1280
    height: int = 720
    fps: int = 30
    bitrate_kbps: int = 2000
    gop_s: float = 2.0

    @property
    def frame_count(self) -> int:
        return max(1, round(self.gop_s * self.fps))

    def validate(self) -> None:
        if self.codec not in ("h264", "h265"):
            raise ValueError(f"codec must be h264 or h265, got {self.codec!r}")
        if self.width < 64 or self.height < 64 or self.width % 2 or self.height % 2:
            raise ValueError("width and height must be even and >= 64")
        if self.width > 4096 or self.height > 2304:
            raise ValueError("width/height too large (max 4096x2304)")
        if not 1 <= self.fps <= 120:
            raise ValueError("fps must be 1..120")
        if not 16 <= self.bitrate_kbps <= 100_000:
            raise ValueError("bitrate must be 16..100000 kbit/s")
        if not 0 < self.gop_s <= 30 or self.frame_count > 1800:
            raise ValueError("gop must be > 0 and <= 30 s")


@dataclass(frozen=True)
class EncodedLoop:
    config: VideoConfig
    param_sets: tuple[bytes, ...]  # H.264: SPS, PPS; H.265: VPS, SPS, PPS (no start codes)
    frames: tuple[tuple[bytes, ...], ...]  # the VCL NAL units of each access unit

    @property
    def codec(self) -> str:
        return self.config.codec

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def total_bytes(self) -> int:
        return sum(len(n) + 4 for f in self.frames for n in f) + sum(len(p) + 4 for p in self.param_sets)

    @property
    def kbps(self) -> float:
        return self.total_bytes * 8 / 1000 / (len(self.frames) / self.config.fps)

    def access_unit(self, index: int, counter: int, send_us: int, *, with_aud: bool = False) -> list[bytes]:
        """NAL units of frame ``index``: [AUD], [parameter sets if IDR], stamp SEI, slices."""
        nals: list[bytes] = [aud(self.codec)] if with_aud else []
        if index == 0:
            nals.extend(self.param_sets)
        nals.append(build_stamp_nal(self.codec, counter, send_us))
        nals.extend(self.frames[index])
        return nals

    def access_unit_annexb(self, index: int, counter: int, send_us: int, *, with_aud: bool = False) -> bytes:
        return join_annexb(self.access_unit(index, counter, send_us, with_aud=with_aud))


def _codec_context(cfg: VideoConfig) -> av.VideoCodecContext:
    n = cfg.frame_count
    kbps = cfg.bitrate_kbps
    if cfg.codec == "h264":
        ctx = cast(av.VideoCodecContext, av.CodecContext.create("libx264", "w"))
        ctx.options = {
            "preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
            "x264-params": (f"keyint={n}:min-keyint={n}:scenecut=0:bframes=0:repeat-headers=1"
                            f":vbv-maxrate={kbps}:vbv-bufsize={kbps}:threads=1"),
        }
    else:
        ctx = cast(av.VideoCodecContext, av.CodecContext.create("libx265", "w"))
        ctx.options = {
            "preset": "ultrafast", "tune": "zerolatency",
            "x265-params": (f"keyint={n}:min-keyint={n}:scenecut=0:bframes=0:open-gop=0:repeat-headers=1"
                            f":info=0:log-level=error:vbv-maxrate={kbps}:vbv-bufsize={kbps}"),
        }
    ctx.width, ctx.height, ctx.pix_fmt = cfg.width, cfg.height, "yuv420p"
    ctx.time_base = Fraction(1, cfg.fps)
    ctx.framerate = Fraction(cfg.fps, 1)
    ctx.bit_rate = kbps * 1000
    ctx.gop_size = n
    return ctx


def encode_loop(cfg: VideoConfig) -> EncodedLoop:
    """Encode ``cfg.frame_count`` synthetic frames; blocking (run it in a thread from asyncio)."""
    cfg.validate()
    t0 = time.perf_counter()
    ctx = _codec_context(cfg)
    card = CardPattern(cfg.width, cfg.height, cfg.frame_count)
    packets: list[bytes] = []
    for i in range(cfg.frame_count):
        frame = av.VideoFrame.from_ndarray(card.frame(i), format="yuv420p")
        frame.pts = i
        frame.time_base = ctx.time_base
        packets.extend(bytes(p) for p in ctx.encode(frame))
    packets.extend(bytes(p) for p in ctx.encode(None))
    if len(packets) != cfg.frame_count:
        raise RuntimeError(f"encoder returned {len(packets)} packets for {cfg.frame_count} frames")
    params: list[bytes] = []
    frames: list[tuple[bytes, ...]] = []
    for i, pkt in enumerate(packets):
        nals = split_annexb(pkt)
        if i == 0:
            params = _unique_param_sets(cfg.codec, [n for n in nals if is_parameter_set(cfg.codec, n)])
        vcl = tuple(n for n in nals if is_vcl(cfg.codec, n))  # drops the encoders' own SEI/AUD
        if not vcl:
            raise RuntimeError(f"frame {i} has no slice NAL units")
        frames.append(vcl)
    if len(params) != (2 if cfg.codec == "h264" else 3):
        raise RuntimeError(f"unexpected parameter sets in the first access unit: {len(params)}")
    loop = EncodedLoop(cfg, tuple(params), tuple(frames))
    log.info("encoded %s loop %dx%d@%d: %d frames, %d bytes (%.0f kbit/s, IDR %d bytes) in %.2f s",
             cfg.codec, cfg.width, cfg.height, cfg.fps, len(frames), loop.total_bytes, loop.kbps,
             sum(len(n) for n in frames[0]), time.perf_counter() - t0)
    return loop


def _unique_param_sets(codec: str, nals: list[bytes]) -> list[bytes]:
    order = {7: 1, 8: 2} if codec == "h264" else {32: 0, 33: 1, 34: 2}
    by_type: dict[int, bytes] = {}
    for n in nals:
        by_type.setdefault(nal_type(codec, n), n)
    return [by_type[t] for t in sorted(by_type, key=lambda t: order.get(t, 9))]
