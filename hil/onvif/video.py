"""The camera's RTSP video: hil.camera (the project's RTSP camera simulator) run as a child process per
media profile, or an RTSP URL given on the command line (then encoder changes are only stored).

A child is started with the profile's encoder settings (resolution, fps, bitrate, GOP = GovLength
frames) and restarted on the same port when SetVideoEncoderConfiguration changes them, or around a
reboot, as a real camera's RTSP server goes away and comes back.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class EncoderSettings:
    width: int
    height: int
    fps: int
    bitrate_kbps: int
    gov_length: int


class VideoSource:
    """One profile's RTSP stream."""

    def __init__(self, host: str, path: str, fixed_url: str | None = None) -> None:
        self.host = host
        self.path = path
        self.fixed_url = fixed_url
        self.port = 0
        self.url = fixed_url or ""
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.settings: EncoderSettings | None = None
        self._lock = asyncio.Lock()

    @property
    def owned(self) -> bool:
        return self.fixed_url is None

    async def start(self, settings: EncoderSettings) -> None:
        self.settings = settings
        if not self.owned:
            return
        async with self._lock:
            await self._start(settings)

    async def _start(self, s: EncoderSettings) -> None:
        gop_s = max(s.gov_length / s.fps, 1.0 / s.fps)
        args = [sys.executable, "-m", "hil.camera", "rtsp", "--listen", f"{self.host}:{self.port}", "--path", self.path,
                "--codec", "h264", "--width", str(s.width), "--height", str(s.height), "--fps", str(s.fps),
                "--bitrate-kbps", str(s.bitrate_kbps), "--gop-s", f"{gop_s:.4f}", "--print-port"]
        self.proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), READY_TIMEOUT_S)
            info = json.loads(line)
        except (asyncio.TimeoutError, ValueError) as exc:
            await self._stop()
            raise RuntimeError(f"the RTSP camera for {self.path} did not start: {exc}") from None
        self.starts += 1
        self.url = info["rtsp"]
        self.port = urlsplit(self.url).port or 554
        log.info("RTSP %s (%dx%d %d fps %d kbit/s GOP %d)", self.url, s.width, s.height, s.fps, s.bitrate_kbps,
                 s.gov_length)

    async def _stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(p.wait(), 3.0)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            await p.wait()

    async def stop(self) -> None:
        async with self._lock:
            await self._stop()

    async def restart(self, settings: EncoderSettings | None = None) -> None:
        """Stop, then start again on the same port (with new settings if given)."""
        if settings is not None:
            self.settings = settings
        if not self.owned or self.settings is None:
            return
        async with self._lock:
            await self._stop()
            await self._start(self.settings)

    def uri(self, advertise: str) -> str:
        """The URL a client should open (the advertised host in place of a wildcard listen address)."""
        if not self.owned:
            return self.url
        u = urlsplit(self.url)
        return urlunsplit((u.scheme, f"{advertise}:{u.port}", u.path, u.query, u.fragment))

    def to_json(self) -> dict[str, object]:
        return {"url": self.url, "owned": self.owned, "running": self.proc is not None and self.proc.returncode is None,
                "starts": self.starts}
