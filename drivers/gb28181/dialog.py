"""Requests the platform sends to a device, in and out of dialogs (RFC 3261 §8.1, §12)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from drivers.gb28181 import sip
from drivers.gb28181.sip import SipMessage
from drivers.gb28181.transport import Peer, SipTransport

USER_AGENT = "fieldgw-gb28181"
MANSCDP = "Application/MANSCDP+xml"


@dataclass
class Dialog:
    """One dialog (an INVITE's or a SUBSCRIBE's): what later requests in it carry."""

    call_id: str
    local: str  # our From, with our tag
    remote: str  # the device's To, with its tag once answered
    target: str  # the Request-URI of requests in the dialog (the device's Contact)
    peer: Peer
    cseq: int = 1
    subject: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def absorb(self, resp: SipMessage) -> None:
        """Take the remote tag and Contact from a 2xx."""
        self.remote = resp.get("To") or self.remote
        contact = resp.get("Contact")
        if contact:
            try:
                self.target = sip.name_addr(contact).uri or self.target
            except ValueError:
                pass


class Requests:
    """Builds the platform's requests: From is the platform id, Via our address towards the device."""

    _cseq = itertools.count(1)

    def __init__(self, transport: SipTransport, server_id: str, realm: str) -> None:
        self.transport = transport
        self.server_id = server_id
        self.realm = realm

    def contact(self, peer: Peer) -> str:
        return f"<sip:{self.server_id}@{self.transport.local_ip(peer.addr[0])}:{self.transport.port}>"

    def target_uri(self, gb_id: str, peer: Peer) -> str:
        return f"sip:{gb_id}@{peer.addr[0]}:{peer.addr[1]}"

    def new_dialog(self, gb_id: str, peer: Peer) -> Dialog:
        host = self.transport.local_ip(peer.addr[0])
        return Dialog(call_id=sip.new_call_id(host), local=f"<sip:{self.server_id}@{self.realm}>;tag={sip.new_tag()}",
                      remote=f"<sip:{gb_id}@{self.realm}>", target=self.target_uri(gb_id, peer), peer=peer)

    def in_dialog(self, dlg: Dialog, method: str, body: bytes = b"", content_type: str = "",
                  headers: list[tuple[str, str]] | None = None, cseq: int | None = None) -> SipMessage:
        if cseq is None:
            dlg.cseq += 1
            cseq = dlg.cseq
        msg = SipMessage(method=method, uri=dlg.target, body=body)
        msg.headers = [("Via", self.transport.via(dlg.peer)), ("From", dlg.local), ("To", dlg.remote),
                       ("Call-ID", dlg.call_id), ("CSeq", f"{cseq} {method}"), ("Max-Forwards", "70"),
                       ("Contact", self.contact(dlg.peer)), ("User-Agent", USER_AGENT)] + list(headers or [])
        if body:
            msg.headers.append(("Content-Type", content_type))
        return msg

    def message(self, gb_id: str, peer: Peer, body: bytes) -> SipMessage:
        """A MESSAGE out of any dialog (a Query or Control)."""
        dlg = self.new_dialog(gb_id, peer)
        msg = self.in_dialog(dlg, "MESSAGE", body, MANSCDP, cseq=next(self._cseq) % 2**31)
        msg.headers = [(k, v) for k, v in msg.headers if k != "Contact"]
        return msg

    def ack(self, dlg: Dialog, invite_cseq: int) -> SipMessage:
        msg = self.in_dialog(dlg, "ACK", cseq=invite_cseq)
        msg.headers = [(k, v) for k, v in msg.headers if k != "Contact"]
        return msg
