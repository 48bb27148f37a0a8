"""The native RTSP ingest: same callbacks as media.ingest.IngestThread, on the event loop.

RTSP session (client.py) → per track: RTP parse → reordering window (rtp.py) →
depacketizer (h26x.py / audio.py) → on_packet / on_audio, in the same call
that received the packet: an access unit leaves the moment its marker-bit
packet is read. Nothing else is queued (the consumers' own queues are bounded).

Video: H.264 or H.265 only (the first such video track of the SDP). The SPS
(from sprop-parameter-sets / sprop-sps, then from the stream) gives
width/height; a changed SPS re-announces on_info. Keyframes get the current
parameter sets in front when they lack any of them. pts are the RTP
timestamps (90 kHz) since the first frame. Nothing is sent before the first
keyframe, and after a loss nothing until the next keyframe.

A camera whose SDP has no H.264/H.265 track sets `unsupported`, so the
stream can fall back to the PyAV ingest.
"""

from __future__ import annotations

import asyncio
import logging

from typing import Any

from media.annexb import START
from media.ingest import OnAudio, OnEnd, OnInfo, OnPacket, StreamInfo
from media.rtsp import audio as rtsp_audio
from media.rtsp.client import RtspClient
from media.rtsp.h26x import AccessUnit, Depacketizer, ParameterSets, sps_info
from media.rtsp.message import RtspError
from media.rtsp.rtp import Reorder, parse_rtp, Unwrap
from media.rtsp.sdp import Media, parameter_sets
from media.annexb import split_nals

log = logging.getLogger(__name__)

VIDEO_CODECS = {"H264": "h264", "H265": "hevc", "HEVC": "hevc"}


class Unsupported(Exception):
    """The camera offers nothing this ingest can take (e.g. MJPEG only)."""


class VideoTrack:
    """RTP of one H.264/H.265 track → Annex-B access units with pts and keyframe flag."""

    def __init__(self, media: Media, on_info: OnInfo, on_packet: OnPacket) -> None:
        self.codec = VIDEO_CODECS[media.encoding]
        self.media = media
        self.on_info, self.on_packet = on_info, on_packet
        try:
            max_don = int(media.fmtp.get("sprop-max-don-diff", "0") or "0")
        except ValueError:
            max_don = 0
        self.depack = Depacketizer(self.codec, max_don)
        self.reorder = Reorder()
        self.sets = ParameterSets(self.codec, split_nals(parameter_sets(media)))
        self.unwrap = Unwrap()
        self.first_ts: int | None = None
        self.info: StreamInfo | None = None
        self._told: StreamInfo | None = None
        self.measured_fps = 0.0
        self._held: tuple[bytes, int, bool] | None = None
        self.frames = 0
        self.ssrc: int | None = None
        self.foreign_pt = 0
        if self.sets.sps is not None:
            self._announce()

    def _announce(self) -> bool:
        """Work out the stream's info; tell on_info once the frame rate is known (SDP a=framerate, the
        SPS's VUI timing, else the first two frames' timestamps: the first frame then waits for the
        second, once, so a transcoder is set up with the right rate before any packet)."""
        sps = self.sets.sps
        dims = sps_info(self.codec, sps) if sps else None
        if dims is None:
            if self.media.dimensions is None:
                return False
            dims = (*self.media.dimensions, None)
        fps = self.media.framerate or dims[2] or self.measured_fps
        self.info = StreamInfo(self.codec, dims[0], dims[1], float(fps))
        if (self.info.fps or self.frames) and self.info != self._told:
            self._told = self.info
            self.on_info(self.info)
        return True

    def rtp(self, data: bytes, arrival: float) -> None:
        pkt = parse_rtp(data)
        if pkt is None:
            return
        if pkt.pt != self.media.payload_type:
            self.foreign_pt += 1
            return
        if self.ssrc is not None and pkt.ssrc != self.ssrc:  # the camera restarted its stream
            self.reorder.reset()
            self.depack.lost()
        self.ssrc = pkt.ssrc
        for lost, p in self.reorder.push(pkt):
            if lost:
                self.depack.lost()
            for au in self.depack.push(p.payload, p.ts, p.marker):
                self._emit(au)

    def _emit(self, au: AccessUnit) -> None:
        nals = au.nals
        if self.sets.update(nals) or self.info is None:
            if not self._announce():
                return  # no SPS yet: nothing a decoder could use
        if au.keyframe:
            nals = self.sets.complete(nals)
        ts = self.unwrap(au.ts)
        if self.first_ts is None:
            self.first_ts = ts
        data = b"".join(START + n for n in nals)
        assert self.info is not None
        if not self.info.fps and not self.frames and self._held is None:
            self._held = (data, ts, au.keyframe)  # until the next frame gives the rate
            return
        if self._held is not None:
            held, self._held = self._held, None
            if ts > held[1]:
                self.measured_fps = round(90000 / (ts - held[1]), 3)
            self.frames += 1
            self._announce()
            self.on_packet(held[0], held[1] - self.first_ts, held[2])
        self.frames += 1
        self.on_packet(data, ts - self.first_ts, au.keyframe)


class RtspIngest:
    """Drop-in for IngestThread on rtsp:// URLs (start/stop, audio_codec, audio_source_codec)."""

    def __init__(self, url: str, options: dict[str, str], loop: asyncio.AbstractEventLoop,
                 on_info: OnInfo, on_packet: OnPacket, on_end: OnEnd, on_audio: OnAudio | None = None) -> None:
        self.url = url
        self.transport = (options.get("rtsp_transport") or "tcp").lower()
        self.loop = loop
        self.on_info, self.on_packet, self.on_end, self.on_audio = on_info, on_packet, on_end, on_audio
        self.audio_codec: str | None = None
        self.audio_source_codec: str | None = None
        self.unsupported = False
        self.video: VideoTrack | None = None
        self.audio: rtsp_audio.AudioTrack | None = None
        self.client: RtspClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        self._task = self.loop.create_task(self._run(), name=f"rtsp-ingest:{self.url}")

    def stop(self) -> None:
        self._stopped = True
        if self.client is not None:
            self.client.close(teardown=True)
        if self._task is not None:
            self._task.cancel()

    def stats(self) -> dict[str, Any]:
        v = self.video
        return {"ingest": "native", "transport": self.transport,
                "frames": v.frames if v else 0, "dropped": v.depack.dropped if v else 0,
                "lost_packets": v.reorder.lost if v else 0, "reordered": v.reorder.reordered if v else 0}

    async def _run(self) -> None:
        reason = "ended"
        try:
            reason = await self._session()
        except asyncio.CancelledError:
            return
        except Unsupported as exc:
            self.unsupported = True
            reason = f"unsupported: {exc}"
        except (RtspError, OSError, TimeoutError, ValueError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # never let a bad stream take the loop's task down silently
            log.exception("RTSP ingest of %s failed", self.url)
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            if self.client is not None:
                self.client.close(teardown=True)
        if not self._stopped:
            self.on_end(reason)

    async def _session(self) -> str:
        self.client = client = RtspClient(self.url, self.transport)
        await client.connect()
        sdp = await client.describe()
        video = next((m for m in sdp.media if m.kind == "video" and m.encoding in VIDEO_CODECS), None)
        if video is None:
            offered = ", ".join(f"{m.kind} {m.encoding or m.payload_type}" for m in sdp.media) or "nothing"
            raise Unsupported(f"no H.264/H.265 video track (the camera offers {offered})")
        self.video = VideoTrack(video, self.on_info, self.on_packet)
        await client.setup(video, self.video.rtp)
        if self.on_audio is not None:
            await self._setup_audio(client, sdp.media)
        await client.play()
        log.info("%s: playing %s over %s%s", self.url, self.video.codec, self.transport,
                 f" with {self.audio_source_codec} audio" if self.audio else "")
        return await client.done

    async def _setup_audio(self, client: RtspClient, media: list[Media]) -> None:
        assert self.on_audio is not None
        audios = [m for m in media if m.kind == "audio"]
        m = next((a for a in audios if rtsp_audio.supported(a)), None)
        if m is None:
            if audios:
                log.warning("%s: audio %s not usable; video only", self.url, ", ".join(a.encoding for a in audios))
            return
        try:
            track = rtsp_audio.AudioTrack(m, self.on_audio)
        except Exception as exc:  # e.g. PyAV without the AAC decoder, a bad config
            log.warning("%s: audio %s not usable (%s); video only", self.url, m.encoding, exc)
            return
        reorder = Reorder(window=16)

        def on_rtp(data: bytes, arrival: float) -> None:
            pkt = parse_rtp(data)
            if pkt is None or pkt.pt != m.payload_type:
                return
            for lost, p in reorder.push(pkt):
                track.packet(p, lost)

        try:
            await client.setup(m, on_rtp)
        except RtspError as exc:
            log.warning("%s: SETUP of the audio track refused (%s); video only", self.url, exc)
            return
        self.audio = track
        self.audio_codec, self.audio_source_codec = track.out_codec, track.source_codec


def wants_native(url: str, options: dict[str, str]) -> bool:
    """rtsp:// over TCP or UDP, unless the stream asks for `ingest: ffmpeg`."""
    if not url.lower().startswith("rtsp://"):
        return False
    if (options.get("ingest") or "native").lower() == "ffmpeg":
        return False
    return (options.get("rtsp_transport") or "tcp").lower() in ("tcp", "udp")



