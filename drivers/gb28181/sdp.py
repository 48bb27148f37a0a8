"""The SDP of a GB/T 28181 live-view INVITE (`s=Play`, PS/90000, `y=` SSRC) and of the device's answer."""

from __future__ import annotations

from dataclasses import dataclass

PS_PT = 96


@dataclass(frozen=True)
class Offer:
    origin_id: str  # the platform's SIP id
    ip: str  # where the device sends media (UDP, TCP passive) or where we come from (TCP active)
    port: int
    ssrc: str  # 10 decimal digits
    transport: str = "udp"  # udp | tcp-passive (we listen) | tcp-active (we connect)

    def encode(self) -> bytes:
        proto = "RTP/AVP" if self.transport == "udp" else "TCP/RTP/AVP"
        lines = ["v=0", f"o={self.origin_id} 0 0 IN IP4 {self.ip}", "s=Play", f"c=IN IP4 {self.ip}", "t=0 0",
                 f"m=video {self.port} {proto} {PS_PT}", "a=recvonly", f"a=rtpmap:{PS_PT} PS/90000"]
        if self.transport != "udp":
            lines += [f"a=setup:{'passive' if self.transport == 'tcp-passive' else 'active'}", "a=connection:new"]
        lines.append(f"y={self.ssrc}")
        return ("\r\n".join(lines) + "\r\n").encode()


@dataclass(frozen=True)
class Answer:
    ip: str
    port: int
    tcp: bool
    setup: str  # "", active, passive
    ssrc: str
    payload_type: int
    encoding: str  # "PS", "H264", ... from the rtpmap
    f_line: str


class SdpError(ValueError):
    pass


def parse_answer(body: bytes) -> Answer:
    try:
        text = body.decode("utf-8", "replace")
    except Exception:  # pragma: no cover - decode with replace never raises
        raise SdpError("undecodable") from None
    ip, port, tcp, setup, ssrc, f_line = "", 0, False, "", "", ""
    pts: list[int] = []
    rtpmap: dict[int, str] = {}
    in_video = False
    for raw in text.splitlines():
        line = raw.strip()
        key, _, value = line.partition("=")
        if key == "c" and value.startswith("IN IP4 "):
            ip = value[7:].split("/")[0].strip()
        elif key == "m":
            parts = value.split()
            in_video = len(parts) >= 3 and parts[0] == "video"
            if in_video:
                if not parts[1].isdigit() or not 0 <= int(parts[1]) <= 65535:
                    raise SdpError(f"bad media port {parts[1]!r}")
                port, tcp = int(parts[1]), parts[2].upper().startswith("TCP")
                pts = [int(p) for p in parts[3:] if p.isdigit() and int(p) < 128]
        elif key == "a" and in_video:
            if value.startswith("rtpmap:"):
                num, _, enc = value[7:].partition(" ")
                if num.isdigit():
                    rtpmap[int(num)] = enc.split("/")[0].upper()
            elif value.startswith("setup:"):
                setup = value[6:].strip()
        elif key == "y":
            ssrc = value.strip()
        elif key == "f":
            f_line = value.strip()
    if not ip or not port and not (tcp and setup == "active"):
        raise SdpError("no c= address or m=video port in the answer")
    pt = next((p for p in pts if rtpmap.get(p) == "PS"), pts[0] if pts else PS_PT)
    return Answer(ip, port, tcp, setup, ssrc, pt, rtpmap.get(pt, "PS" if pt == PS_PT else ""), f_line)
