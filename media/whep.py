"""WHEP sessions (draft-ietf-wish-whep): an SDP offer in, an answer with every candidate out.

One RTCPeerConnection per viewer, sending the stream's packets as they are
(passthrough). The codec preference is set before the remote description,
or aiortc silently negotiates VP8 and feeds it H.264 (a black screen).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from media.fanout import use_fanout
from media.source import StreamSource, Viewer
from media.track import AudioPassthroughTrack, PassthroughTrack

log = logging.getLogger(__name__)

MAX_SESSIONS = 64


class WhepError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


@dataclass
class WhepSession:
    id: str
    stream: StreamSource
    pc: RTCPeerConnection
    viewer: Viewer


_MIME = {"h264": "video/H264", "vp8": "video/VP8"}


def _check_offer(sdp: str) -> None:
    if not sdp.lstrip().startswith("v=0") or "\nm=" not in sdp:
        raise WhepError(400, "bad_sdp", "the body is not an SDP offer (v=0 … m=video …)")
    if "m=video" not in sdp:
        raise WhepError(400, "bad_sdp", "the offer has no video m-line")


def advertise(sdp: str, mapping: dict[str, str]) -> str:
    """Rewrite host candidates for a 1:1 NAT: browsers get the address they can reach."""
    if not mapping:
        return sdp
    out = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=candidate:"):
            parts = line.split(" ")
            if len(parts) > 4 and parts[4] in mapping:
                parts[4] = mapping[parts[4]]
                line = " ".join(parts)
        out.append(line)
    return "\r\n".join(out)


class WhepSessions:
    def __init__(self, advertise: dict[str, str] | None = None) -> None:
        self.sessions: dict[str, WhepSession] = {}
        self.advertise = dict(advertise or {})

    async def create(self, stream: StreamSource, offer_sdp: str) -> tuple[str, str]:
        _check_offer(offer_sdp)
        if stream.state != "live" or stream.info is None:
            stream.start() if stream.cfg.on_demand else None
            raise WhepError(409, "stream_not_live", f"stream {stream.cfg.id} is {stream.state}", retry_after=2)
        mime = _MIME.get(stream.info.codec)
        if mime is None:
            raise WhepError(409, "codec_not_playable", f"stream {stream.cfg.id} is {stream.info.codec}; set mode: transcode")
        if len(self.sessions) >= MAX_SESSIONS:
            raise WhepError(503, "too_many_viewers", f"{MAX_SESSIONS} viewers already", retry_after=10)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        viewer = stream.subscribe()
        try:
            transceiver = pc.addTransceiver(PassthroughTrack(viewer), direction="sendonly")
            use_fanout(transceiver.sender)  # packetized once per stream, see media/fanout.py
            codecs = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == mime]
            if mime == "video/H264":  # packetization-mode 1, as aiortc's packetizer produces
                codecs = [c for c in codecs if c.parameters.get("packetization-mode") == "1"] or codecs
            transceiver.setCodecPreferences(codecs)
            if "m=audio" in offer_sdp and stream.audio_codec:
                audio = pc.addTransceiver(AudioPassthroughTrack(viewer.audio), direction="sendonly")
                wanted = f"audio/{stream.audio_codec}"
                audio.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("audio").codecs
                                           if c.mimeType.lower() == wanted.lower()])
            try:
                await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            except (ValueError, KeyError, IndexError) as exc:
                raise WhepError(400, "bad_sdp", f"the SDP offer could not be used: {exc}") from None
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except BaseException:
            stream.unsubscribe(viewer)
            await pc.close()
            raise
        session = WhepSession(uuid.uuid4().hex, stream, pc, viewer)
        self.sessions[session.id] = session

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.delete(session.id)

        return session.id, advertise(pc.localDescription.sdp, self.advertise)

    async def delete(self, session_id: str) -> bool:
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        session.stream.unsubscribe(session.viewer)
        await session.pc.close()
        return True

    async def close_all(self) -> None:
        await asyncio.gather(*(self.delete(s) for s in list(self.sessions)), return_exceptions=True)
