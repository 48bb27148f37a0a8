"""Recording: segmented MP4 by remuxing only (no decoding), rotated by time, pruned by age and size.

Each segment starts at a keyframe and is a fragmented MP4 (`frag_keyframe`),
so a segment cut short by a crash or a power cut still plays. Files are
`STREAM-YYYYmmddTHHMMSSZ.mp4` in `DATA_DIR/recordings/STREAM/`. The muxer
runs on its own thread behind a bounded queue; if the disk is too slow the
recorder drops to the next keyframe and counts it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from media.annexb import H264_PPS, H264_SPS, HEVC_PPS, HEVC_SPS, HEVC_VPS, START, nal_type, split_nals
from media.gop import VideoPacket

log = logging.getLogger(__name__)

QUEUE = 300


@dataclass(frozen=True)
class RecordPolicy:
    segment_s: float = 300.0
    max_age_h: float = 72.0
    max_total_mb: float = 10240.0


def _sets(data: bytes, codec: str) -> bytes:
    wanted = {HEVC_VPS, HEVC_SPS, HEVC_PPS} if codec == "hevc" else {H264_SPS, H264_PPS}
    return b"".join(START + n for n in split_nals(data[:8192]) if nal_type(n, codec) in wanted)


class Recorder:
    def __init__(self, stream_id: str, directory: Path, policy: RecordPolicy) -> None:
        self.stream_id = stream_id
        self.dir = directory
        self.policy = policy
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dropped = 0
        self.segments = 0
        self.last_error = ""
        self._q: queue.Queue[tuple[VideoPacket, str, int, int] | None] = queue.Queue(QUEUE)
        self._skip_to_key = False
        self._thread = threading.Thread(target=self._run, name=f"record:{stream_id}", daemon=True)
        self._thread.start()

    def write(self, pkt: VideoPacket, codec: str, width: int, height: int) -> None:
        if self._skip_to_key and not pkt.keyframe:
            return
        self._skip_to_key = False
        try:
            self._q.put_nowait((pkt, codec, width, height))
        except queue.Full:
            self.dropped += 1
            self._skip_to_key = True

    def close(self) -> None:
        try:
            self._q.put(None, timeout=2)
        except queue.Full:
            pass
        self._thread.join(timeout=5)

    # --- the muxer thread -------------------------------------------------------
    def _run(self) -> None:
        out: Any = None
        vs: Any = None
        started = 0.0
        first_pts = 0
        while True:
            item = self._q.get()
            if item is None:
                break
            pkt, codec, width, height = item
            try:
                if pkt.keyframe and (out is None or time.monotonic() - started >= self.policy.segment_s):
                    if out is not None:
                        out.close()
                        self._prune()
                    out, vs = self._open(pkt, codec, width, height)
                    started, first_pts = time.monotonic(), pkt.pts
                if out is None:
                    continue  # wait for the first keyframe
                packet = av.Packet(pkt.data)
                packet.stream = vs
                packet.time_base = Fraction(1, 90000)
                packet.pts = packet.dts = pkt.pts - first_pts
                packet.is_keyframe = pkt.keyframe
                out.mux(packet)
            except (av.FFmpegError, OSError, ValueError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("recording %s: %s; starting a new segment at the next keyframe", self.stream_id, exc)
                out = self._safe_close(out)
        self._safe_close(out)
        self._prune()

    def _open(self, pkt: VideoPacket, codec: str, width: int, height: int) -> tuple[Any, Any]:
        name = f"{self.stream_id}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.mp4"
        out = av.open(str(self.dir / name), "w", format="mp4",
                      options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
        vs = out.add_stream(codec)
        vs.width, vs.height = width, height
        vs.time_base = Fraction(1, 90000)
        vs.codec_context.extradata = _sets(pkt.data, codec)
        self.segments += 1
        return out, vs

    @staticmethod
    def _safe_close(out: Any) -> None:
        if out is not None:
            try:
                out.close()
            except (av.FFmpegError, OSError):
                pass
        return None

    def _prune(self) -> None:
        files = sorted(self.dir.glob(f"{self.stream_id}-*.mp4"))
        cutoff = time.time() - self.policy.max_age_h * 3600
        total = sum(f.stat().st_size for f in files)
        for f in files[:-1]:  # never the segment being written
            too_old = f.stat().st_mtime < cutoff
            too_big = total > self.policy.max_total_mb * 1024 * 1024
            if not (too_old or too_big):
                break
            total -= f.stat().st_size
            f.unlink(missing_ok=True)

    def list(self) -> list[dict[str, Any]]:
        return [{"name": f.name, "bytes": f.stat().st_size, "modified": int(f.stat().st_mtime * 1000)}
                for f in sorted(self.dir.glob(f"{self.stream_id}-*.mp4"))]
