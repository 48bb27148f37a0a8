"""The current GOP (from the last keyframe), so a new viewer starts at once.

Without it a viewer joining mid-GOP sees nothing until the camera's next
keyframe (seconds), because passthrough cannot force one. Bounded: a GOP
longer than `max_packets` or `max_bytes` stops being cached until the next
keyframe (a late joiner then waits for it, as with any relay).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class VideoPacket:
    data: bytes  # Annex-B, parameter sets before keyframes
    pts: int  # 90 kHz, monotonic per stream
    keyframe: bool
    # RTP payloads by packetizer ("h264"), filled by the first viewer's sender and shared by all
    # (media/fanout.py): an access unit is packetized once per stream, not once per viewer
    rtp: dict[str, list[bytes]] = field(default_factory=dict, compare=False, repr=False)


class GopCache:
    def __init__(self, max_packets: int = 600, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        self._packets: list[VideoPacket] = []
        self._bytes = 0
        self._overflowed = False

    def add(self, pkt: VideoPacket) -> None:
        if pkt.keyframe:
            self._packets = [pkt]
            self._bytes = len(pkt.data)
            self._overflowed = False
            return
        if self._overflowed or not self._packets:
            return
        if len(self._packets) >= self.max_packets or self._bytes + len(pkt.data) > self.max_bytes:
            self._packets = []
            self._bytes = 0
            self._overflowed = True
            return
        self._packets.append(pkt)
        self._bytes += len(pkt.data)

    def snapshot(self) -> list[VideoPacket]:
        return list(self._packets)

    def clear(self) -> None:
        self._packets = []
        self._bytes = 0
