"""WS-Discovery (2005/04, as ONVIF devices use it): answers Probe with ProbeMatches.

Off unless ``--discovery HOST:PORT`` is given. The responder binds that address and answers each Probe
by unicast to its sender. Only with port 3702 does it also join the multicast group 239.255.255.250 on
the interface of HOST (use 127.0.0.1 in tests: nothing goes to the LAN). It sends no Hello or Bye.
A Probe matches when every Type it names (by local name: NetworkVideoTransmitter, Device) is one of ours
and every Scope it names is a prefix of one of ours (RFC 3986 matching, simplified to prefixes).
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
import uuid
from typing import Any

from .camera import Camera
from .soap import SoapFault, attr, esc, local, parse_xml

log = logging.getLogger(__name__)

WSD = "http://schemas.xmlsoap.org/ws/2005/04/discovery"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
GROUP = "239.255.255.250"
TYPES = {"NetworkVideoTransmitter", "Device"}


class Discovery(asyncio.DatagramProtocol):
    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self.transport: asyncio.DatagramTransport | None = None
        self.probes = 0
        self.matches = 0
        self.ignored = 0
        self.sequence = 0
        self.instance = 1

    async def start(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if port == 3702:
            sock.bind(("", port) if host == GROUP else (host, port))
            try:
                mreq = struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton(host if host != GROUP else "127.0.0.1"))
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
            except OSError as exc:
                log.warning("could not join %s: %s (unicast probes still answered)", GROUP, exc)
        else:
            sock.bind((host, port))
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        return sock.getsockname()[:2]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            root = parse_xml(data)
        except SoapFault:
            self.ignored += 1
            return
        probe = next((el for el in root.iter() if el.tag == f"{{{WSD}}}Probe"), None)
        msg_id = next((el.text for el in root.iter() if el.tag == f"{{{WSA}}}MessageID"), None)
        if probe is None or self.camera.rebooting:
            self.ignored += 1
            return
        self.probes += 1
        types = (probe.findtext(f"{{{WSD}}}Types") or "").split()
        scopes = (probe.findtext(f"{{{WSD}}}Scopes") or "").split()
        ours = self.camera.scopes()
        if any(t.rpartition(":")[2] not in TYPES for t in types) or any(
                not any(o.startswith(s) for o in ours) for s in scopes):
            return
        self.matches += 1
        self.sequence += 1
        if self.transport is not None:
            self.transport.sendto(self.probe_match(msg_id or ""), addr)

    def probe_match(self, relates_to: str) -> bytes:
        cam = self.camera
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
                f'xmlns:a="{WSA}" xmlns:d="{WSD}" xmlns:dn="http://www.onvif.org/ver10/network/wsdl" '
                f'xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><s:Header>'
                f"<a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID><a:RelatesTo>{esc(relates_to)}</a:RelatesTo>"
                f"<a:To>{WSA}/role/anonymous</a:To><a:Action>{WSD}/ProbeMatches</a:Action>"
                f"<d:AppSequence InstanceId={attr(self.instance)} MessageNumber={attr(self.sequence)}/></s:Header>"
                f"<s:Body><d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:{cam.cfg.endpoint_uuid}"
                f"</a:Address></a:EndpointReference><d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>"
                f"<d:Scopes>{esc(' '.join(cam.scopes()))}</d:Scopes><d:XAddrs>{esc(cam.xaddr('/onvif/device_service'))}"
                f"</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches></s:Body>"
                f"</s:Envelope>").encode("utf-8")

    def stats(self) -> dict[str, int]:
        return {"probes": self.probes, "matches": self.matches, "ignored": self.ignored}


__all__ = ["Discovery", "local"]
