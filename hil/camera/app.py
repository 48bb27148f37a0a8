"""Process life cycle: signal handlers, encode the loop, start the device, report, wait, stop."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..cliutil import print_ready, stop_signals
from .loop import EncodedLoop, VideoConfig, encode_loop
from .rtmp import RtmpPusher
from .rtp import PacketizedLoop
from .rtsp import RtspServer
from .ts import TsPusher

log = logging.getLogger("hil.camera")


@dataclass
class Device:
    """What a started simulator hands back: its --print-port fields, a stats sampler, tasks, closers."""
    report: dict[str, Any] = field(default_factory=dict)
    sample: Callable[[], dict[str, Any]] = dict
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None] | None]] = field(default_factory=list)

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for closer in reversed(self.closers):
            result = closer()
            if result is not None:
                await result


async def _encode(cfg: VideoConfig, stop: asyncio.Event) -> EncodedLoop | None:
    """Encodes in a daemon thread so a signal during start-up still exits at once."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[EncodedLoop] = loop.create_future()

    def deliver(result: EncodedLoop | None, exc: BaseException | None) -> None:
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        result, error = None, None
        try:
            result = encode_loop(cfg)
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop
            error = exc
        with contextlib.suppress(RuntimeError):  # RuntimeError: loop already closed, we are exiting
            loop.call_soon_threadsafe(deliver, result, error)

    threading.Thread(target=work, name="encode-loop", daemon=True).start()
    stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    await asyncio.wait([fut, stopper], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    return fut.result() if fut.done() else None


async def _start_rtsp(a: argparse.Namespace, media: EncodedLoop, dev: Device) -> None:
    server = RtspServer(PacketizedLoop(media, a.max_payload), a.listen[0], a.listen[1], a.path, a.session_timeout)
    await server.start()
    dev.closers.append(server.close)
    dev.report["rtsp"] = server.url
    dev.sample = lambda: {
        "playing": server.playing_sessions(),
        "frames_sent": sum(s.frames_sent for s in server.sessions.values()),
        "frames_dropped": sum(s.frames_dropped for s in server.sessions.values()),
    }


async def _start_push(a: argparse.Namespace, media: EncodedLoop, dev: Device) -> None:
    ts: TsPusher | None = None
    rtmp: RtmpPusher | None = None
    if a.to:
        ts = TsPusher(media, a.to[0], a.to[1], a.multicast_ttl)
        dev.closers.append(ts.close)
        src = ts.source
        dev.report.update(ts=f"udp://{a.to[0]}:{a.to[1]}", source=f"{src[0]}:{src[1]}")
        dev.tasks.append(asyncio.create_task(ts.run()))
    if a.rtmp:
        rtmp = RtmpPusher(media, a.rtmp)
        rtmp.start()
        dev.closers.append(rtmp.close)
        dev.report["rtmp"] = a.rtmp

    def sample() -> dict[str, Any]:
        out: dict[str, Any] = {}
        if ts is not None:
            out.update(frames_sent=ts.frames_sent, datagrams=ts.writer.datagrams, dropped_datagrams=ts.writer.dropped)
        if rtmp is not None:
            out.update(rtmp_frames_sent=rtmp.frames_sent, rtmp_connects=rtmp.connects)
        return out
    dev.sample = sample


async def _stats(interval: float, sample: Callable[[], dict[str, Any]]) -> None:
    """One JSON line per interval on stderr: the process's CPU share (process_time / wall) and counters."""
    cpu0, wall0 = time.process_time(), time.monotonic()
    while True:
        await asyncio.sleep(interval)
        cpu1, wall1 = time.process_time(), time.monotonic()
        line = {"cpu_share": round((cpu1 - cpu0) / (wall1 - wall0), 4), "interval_s": round(wall1 - wall0, 2)}
        line.update(sample())
        sys.stderr.write(json.dumps(line) + "\n")
        sys.stderr.flush()
        cpu0, wall0 = cpu1, wall1


def _video_report(media: EncodedLoop) -> dict[str, Any]:
    c = media.config
    return {"codec": c.codec, "width": c.width, "height": c.height, "fps": c.fps,
            "loop_frames": len(media), "loop_kbps": round(media.kbps)}


async def run(a: argparse.Namespace, cfg: VideoConfig) -> int:
    with stop_signals() as stop:  # signal handlers first: whoever reads the printed URL may stop us at once
        dev = Device()
        try:
            media = await _encode(cfg, stop)
            if media is None:
                return 0
            try:
                await (_start_rtsp if a.mode == "rtsp" else _start_push)(a, media, dev)
            except OSError as exc:
                log.error("cannot start: %s", exc)
                return 1
            if a.print_port:
                print_ready({**dev.report, **_video_report(media)})
            if a.stats_interval:
                dev.tasks.append(asyncio.create_task(_stats(a.stats_interval, dev.sample)))
            waiter = asyncio.ensure_future(stop.wait())
            await asyncio.wait([waiter, *dev.tasks], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            for t in dev.tasks:
                if t.done() and not t.cancelled() and t.exception() is not None:
                    log.error("stopped by error", exc_info=t.exception())
                    return 1
            return 0
        finally:
            await dev.close()
