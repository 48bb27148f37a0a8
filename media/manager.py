"""All of a kit's streams and their WHEP viewers."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from media import ice
from media.snapshot import Snapshotter
from media.source import StreamConfig, StreamSource
from media.whep import WhepError, WhepSessions

_RECORDING_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}\.mp4$")  # a file of its own directory, nothing else


class StreamManager:
    def __init__(self, configs: list[StreamConfig], ice_addresses: list[str] | None = None,
                 on_change: Callable[[StreamSource], None] | None = None, advertise: dict[str, str] | None = None,
                 recordings: Path | None = None) -> None:
        ice.pin_addresses(ice_addresses)
        self.on_change = on_change
        self.recordings = recordings
        self.sources = {c.id: StreamSource(c, on_change, recordings) for c in configs}
        self.whep = WhepSessions(advertise)
        self.snapshots = Snapshotter()

    async def snapshot(self, stream_id: str) -> bytes:
        src = self.get(stream_id)
        if src.state != "live" or src.info is None:
            raise WhepError(503, "stream_not_live", f"stream {stream_id} is {src.state}", retry_after=2)
        data = await self.snapshots.jpeg(stream_id, src.info.codec, src.gop.snapshot())
        if data is None:
            raise WhepError(503, "no_picture_yet", f"stream {stream_id} has no decodable picture yet", retry_after=1)
        return data

    def add(self, cfg: StreamConfig) -> StreamSource:
        """A stream found at run time (a drone announcing its video); started unless on demand."""
        src = self.sources.get(cfg.id)
        if src is None:
            src = self.sources[cfg.id] = StreamSource(cfg, self.on_change, self.recordings)
            if not cfg.on_demand:
                src.start()
        return src

    def start(self) -> None:
        for src in self.sources.values():
            if not src.cfg.on_demand:
                src.start()

    async def stop(self) -> None:
        await self.whep.close_all()
        for src in self.sources.values():
            await src.close()

    def get(self, stream_id: str) -> StreamSource:
        src = self.sources.get(stream_id)
        if src is None:
            raise WhepError(404, "no_stream", f"no stream {stream_id!r}")
        return src

    def recordings_of(self, stream_id: str) -> list[dict[str, Any]]:
        src = self.get(stream_id)
        return src.recorder.list() if src.recorder else []

    def recording_path(self, stream_id: str, name: str) -> Path:
        src = self.get(stream_id)
        if src.recorder is None or not _RECORDING_NAME.match(name) or not (src.recorder.dir / name).is_file():
            raise WhepError(404, "no_recording", f"no recording {name!r} of stream {stream_id}")
        return src.recorder.dir / name

    def for_device(self, device: str) -> list[str]:
        return [s.cfg.id for s in self.sources.values() if s.cfg.device == device]

    def stats(self) -> list[dict[str, Any]]:
        return [s.stats() for s in self.sources.values()]
