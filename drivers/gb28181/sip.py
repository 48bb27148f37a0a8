"""SIP messages (RFC 3261 §7, §20): parse and build, with the limits a field gateway needs.

Pure and fuzzable: bytes in, a `SipMessage` out, or a `SipError` that says which
status to answer (when enough of the message was read to answer at all).
Header names are kept in their canonical long form (compact forms expanded).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 16 * 1024  # start line + headers
MAX_BODY_BYTES = 32 * 1024  # a MANSCDP body; a Catalog part is a few KB
MAX_HEADERS = 100

COMPACT = {"i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length", "c": "Content-Type",
           "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via", "o": "Event", "u": "Allow-Events"}
_CANON = {n.lower(): n for n in ("Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Expires",
                                 "Content-Type", "Content-Length", "Authorization", "WWW-Authenticate", "Date",
                                 "User-Agent", "Subject", "Event", "Subscription-State", "Allow", "Route",
                                 "Record-Route", "Supported", "Content-Encoding", "Allow-Events")}
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")


class SipError(Exception):
    """A message that cannot be used. `status`: what to answer (400, 413, 505) if `partial` can be answered."""

    def __init__(self, status: int, reason: str, partial: SipMessage | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.partial = partial


@dataclass
class SipMessage:
    method: str = ""  # a request's method; "" for a response
    uri: str = ""
    status: int = 0  # a response's status code
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def get(self, name: str, default: str = "") -> str:
        name = canonical(name)
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        name = canonical(name)
        return [v for k, v in self.headers if k == name]

    def set(self, name: str, value: str) -> None:
        name = canonical(name)
        self.headers = [(k, v) for k, v in self.headers if k != name]
        self.headers.append((name, value))

    @property
    def call_id(self) -> str:
        return self.get("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        num, _, method = self.get("CSeq").strip().partition(" ")
        return int(num), method.strip()

    def encode(self) -> bytes:
        start = f"{self.method} {self.uri} SIP/2.0" if self.method else f"SIP/2.0 {self.status} {self.reason}"
        lines = [start] + [f"{k}: {v}" for k, v in self.headers if k != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


def canonical(name: str) -> str:
    low = name.strip().lower()
    if low in COMPACT:
        return COMPACT[low]
    return _CANON.get(low, name.strip())


def split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """(head, rest) at the blank line ending the headers, or None when it has not come yet."""
    i = data.find(b"\r\n\r\n")
    if i >= 0:
        return data[:i], data[i + 4:]
    i = data.find(b"\n\n")
    return (data[:i], data[i + 2:]) if i >= 0 else None


def content_length(head: bytes) -> int | None:
    """The Content-Length a head declares (for stream framing); None when it declares none; SipError if bad."""
    for raw in head.split(b"\n")[1:]:
        name, sep, value = raw.partition(b":")
        if sep and name.strip().lower() in (b"content-length", b"l"):
            text = value.strip()
            if not text.isdigit() or len(text) > 9:
                raise SipError(400, "bad Content-Length")
            return int(text)
    return None


def parse(data: bytes, stream: bool = False) -> SipMessage:
    """One whole message. Over a datagram a body longer than Content-Length is cut to it (RFC 3261 §18.3);
    a shorter one is refused. `stream`: the caller framed it by Content-Length already."""
    parts = split_head(data)
    if parts is None:
        raise SipError(400, "no blank line after the headers")
    head, body = parts
    if len(head) > MAX_HEADER_BYTES:
        raise SipError(413, "headers too large")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipError(400, "headers are not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)  # leading CRLFs (keep-alives) before a message
    if not lines:
        raise SipError(400, "empty message")
    msg = _start_line(lines[0])
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            k, v = headers[-1]
            headers[-1] = (k, v + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.match(name.strip() or "-") or not name.strip():
            _fail(msg, headers, 400, f"malformed header line {line[:40]!r}")
        headers.append((canonical(name), value.strip()))
        if len(headers) > MAX_HEADERS:
            _fail(msg, headers, 413, "too many headers")
    msg.headers = headers
    for req in _REQUIRED:
        if not msg.get(req):
            _fail(msg, headers, 400, f"missing {req}")
    try:
        num, method = msg.cseq
    except ValueError:
        _fail(msg, headers, 400, "malformed CSeq")
    if not 0 <= num < 2**31 or not _TOKEN.match(method or "-") or (msg.method and method != msg.method):
        _fail(msg, headers, 400, "CSeq does not match the request")
    declared = msg.get("Content-Length")
    if declared:
        if not declared.isdigit() or len(declared) > 9:
            _fail(msg, headers, 400, "bad Content-Length")
        n = int(declared)
        if n > MAX_BODY_BYTES:
            _fail(msg, headers, 413, f"body of {n} bytes (at most {MAX_BODY_BYTES})")
        if len(body) < n:
            _fail(msg, headers, 400, f"body shorter ({len(body)}) than its Content-Length ({n})")
        body = body[:n]
    elif stream:
        body = b""
    if len(body) > MAX_BODY_BYTES:
        _fail(msg, headers, 413, f"body of {len(body)} bytes (at most {MAX_BODY_BYTES})")
    msg.body = body
    return msg


def _fail(msg: SipMessage, headers: list[tuple[str, str]], status: int, reason: str) -> None:
    msg.headers = headers
    answerable = msg.is_request and all(msg.get(h) for h in _REQUIRED)
    if answerable:
        try:
            msg.cseq
        except ValueError:
            answerable = False
    raise SipError(status, reason, msg if answerable else None)


def _start_line(line: str) -> SipMessage:
    parts = line.split(" ", 2)
    if len(parts) == 3 and parts[0] == "SIP/2.0":
        if not (parts[1].isdigit() and len(parts[1]) == 3 and 100 <= int(parts[1]) < 700):
            raise SipError(400, "bad status code")
        return SipMessage(status=int(parts[1]), reason=parts[2].strip())
    if len(parts) == 3 and _TOKEN.match(parts[0]) and parts[2].strip() == "SIP/2.0" and ":" in parts[1]:
        return SipMessage(method=parts[0], uri=parts[1])
    if len(parts) == 3 and parts[2].strip().startswith("SIP/"):
        raise SipError(505, "only SIP/2.0")
    raise SipError(400, f"bad start line {line[:40]!r}")


# -- header values -------------------------------------------------------------------


@dataclass(frozen=True)
class NameAddr:
    uri: str
    params: dict[str, str]
    display: str = ""

    @property
    def tag(self) -> str:
        return self.params.get("tag", "")

    @property
    def user(self) -> str:
        return uri_user(self.uri)

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        return display + f"<{self.uri}>" + "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())


def name_addr(value: str) -> NameAddr:
    """`"Name" <sip:user@host>;tag=x` or `sip:user@host;tag=x` (then the parameters are the header's)."""
    value = value.strip()
    display = ""
    if "<" in value:
        display, _, rest = value.partition("<")
        uri, sep, after = rest.partition(">")
        if not sep:
            raise ValueError("unclosed <")
        display = display.strip().strip('"')
    else:
        uri, _, after = value.partition(";")
        after = ";" + after if after else ""
    return NameAddr(uri.strip(), params(after), display)


def params(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.split(";"):
        k, _, v = item.strip().partition("=")
        if k:
            out[k.strip().lower()] = v.strip().strip('"')
    return out


def uri_user(uri: str) -> str:
    """`sip:34020000001320000001@3402000000` → `34020000001320000001`."""
    _, _, rest = uri.partition(":")
    user, at, _ = rest.partition("@")
    return user if at else ""


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def branch(self) -> str:
        return self.params.get("branch", "")


def top_via(msg: SipMessage) -> Via:
    value = msg.get("Via").split(",")[0].strip()
    proto, _, rest = value.partition(" ")
    sent_by, _, prm = rest.strip().partition(";")
    host, _, port = sent_by.strip().rpartition(":") if sent_by.count(":") == 1 else (sent_by.strip(), "", "")
    parts = proto.split("/")
    if len(parts) != 3 or not host:
        raise ValueError(f"bad Via {value[:60]!r}")
    return Via(parts[2].upper(), host, int(port) if port.isdigit() else None, params(prm))


def new_tag() -> str:
    return secrets.token_hex(5)


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(10)}@{host}"


def response_to(req: SipMessage, status: int, reason: str, to_tag: str = "",
                received: tuple[str, int] | None = None, headers: list[tuple[str, str]] | None = None,
                body: bytes = b"") -> SipMessage:
    """A response copying the request's Via (with RFC 3581 received/rport), From, To (+tag), Call-ID, CSeq."""
    vias = req.get_all("Via")
    if vias and received is not None:
        first, *rest = vias[0].split(",")
        prm = first.split(";")
        prm = [p for p in prm if p.strip().split("=")[0] not in ("rport", "received")] + [f"received={received[0]}"]
        if ";rport" in first or first.rstrip().endswith("rport"):
            prm.append(f"rport={received[1]}")
        vias = [";".join(prm) + ("," + ",".join(rest) if rest else "")] + vias[1:]
    to = req.get("To")
    if to_tag and status > 100 and "tag=" not in to:
        to = f"{to};tag={to_tag}"
    out = SipMessage(status=status, reason=reason, body=body)
    out.headers = [("Via", v) for v in vias] + [("From", req.get("From")), ("To", to), ("Call-ID", req.call_id),
                                                ("CSeq", req.get("CSeq"))] + list(headers or [])
    return out
