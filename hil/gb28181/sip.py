"""SIP messages (RFC 3261 §7) for the GB/T 28181 device: parse, build, dialog fields, digest (RFC 2617).

Only what a device needs: a request/response model with ordered headers, compact header forms,
a stream splitter for SIP over TCP (Content-Length framing), tags/branches, and the MD5 digest
response. Bodies are bytes (MANSCDP bodies may be GB2312). Stdlib only.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field

MAX_MESSAGE = 256 * 1024   # a message (or a TCP buffer without one) larger than this is dropped
BRANCH_MAGIC = "z9hG4bK"
COMPACT = {"i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length", "c": "Content-Type",
           "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via", "o": "Event"}
CANONICAL = {n.lower(): n for n in ("Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Expires",
                                    "Content-Type", "Content-Length", "User-Agent", "Subject", "Event",
                                    "Subscription-State", "WWW-Authenticate", "Authorization", "Date",
                                    "Record-Route", "Route", "Allow", "Supported")}
REASONS = {100: "Trying", 200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 415: "Unsupported Media Type", 481:
           "Call/Transaction Does Not Exist", 486: "Busy Here", 488: "Not Acceptable Here", 489: "Bad Event",
           500: "Server Internal Error", 501: "Not Implemented"}
_START_REQUEST = re.compile(r"^([A-Z]+) (\S+) SIP/2\.0$")
_START_RESPONSE = re.compile(r"^SIP/2\.0 (\d{3}) ?(.*)$")


class SipError(ValueError):
    """Not a SIP message we can use."""


def random_token(n: int = 8) -> str:
    return os.urandom(n).hex()


def new_branch() -> str:
    return BRANCH_MAGIC + random_token(8)


def canonical(name: str) -> str:
    low = name.strip().lower()
    if low in COMPACT:
        return COMPACT[low]
    return CANONICAL.get(low, name.strip())


@dataclass
class Message:
    """A request (`method` and `uri` set) or a response (`status` set)."""
    method: str = ""
    uri: str = ""
    status: int = 0
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    source: tuple[str, int] | None = None   # where a received UDP message came from

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def get(self, name: str, default: str = "") -> str:
        want = canonical(name).lower()
        for k, v in self.headers:
            if k.lower() == want:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        want = canonical(name).lower()
        return [v for k, v in self.headers if k.lower() == want]

    def set(self, name: str, value: str) -> None:
        """Replace the first header of this name (dropping any others), or append it."""
        name = canonical(name)
        want = name.lower()
        out: list[tuple[str, str]] = []
        done = False
        for k, v in self.headers:
            if k.lower() == want:
                if not done:
                    out.append((name, value))
                    done = True
                continue
            out.append((k, v))
        if not done:
            out.append((name, value))
        self.headers = out

    def add(self, name: str, value: str) -> None:
        self.headers.append((canonical(name), value))

    @property
    def call_id(self) -> str:
        return self.get("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        num, _, method = self.get("CSeq").strip().partition(" ")
        try:
            return int(num), method.strip().upper()
        except ValueError:
            raise SipError(f"bad CSeq {self.get('CSeq')!r}") from None

    @property
    def branch(self) -> str:
        return param(self.get("Via"), "branch") or ""

    @property
    def from_tag(self) -> str:
        return param(self.get("From"), "tag") or ""

    @property
    def to_tag(self) -> str:
        return param(self.get("To"), "tag") or ""

    def content_type(self) -> str:
        return self.get("Content-Type").split(";")[0].strip().lower()

    def encode(self) -> bytes:
        start = f"{self.method} {self.uri} SIP/2.0" if self.is_request else f"SIP/2.0 {self.status} {self.reason}"
        lines = [start] + [f"{k}: {v}" for k, v in self.headers if k.lower() != "content-length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body

    def summary(self) -> str:
        if self.is_request:
            return f"{self.method} {self.uri}"
        return f"{self.status} {self.reason} ({self.get('CSeq')})"


def param(header: str, name: str) -> str | None:
    """A `;name=value` parameter of a header value (outside <...>), None if absent ('' if valueless)."""
    rest = header.rsplit(">", 1)[-1] if ">" in header else header.split(";", 1)[-1] if ";" in header else ""
    for part in rest.split(";"):
        k, eq, v = part.strip().partition("=")
        if k.strip().lower() == name.lower():
            return v.strip().strip('"') if eq else ""
    return None


def uri_of(header: str) -> str:
    """The URI inside a From/To/Contact value (`"name" <sip:x@y>;tag=1` -> `sip:x@y`)."""
    m = re.search(r"<([^>]*)>", header)
    return m.group(1).strip() if m else header.split(";", 1)[0].strip()


def user_of(uri: str) -> str:
    """The user part of a sip: URI (`sip:3402...@3402000000` -> `3402...`)."""
    u = uri_of(uri)
    u = u.split(":", 1)[1] if ":" in u.split("@", 1)[0] else u
    return u.split("@", 1)[0] if "@" in u else ""


def host_port_of(uri: str, default_port: int = 5060) -> tuple[str, int]:
    """(host, port) of a sip: URI."""
    u = uri_of(uri).split(":", 1)[-1].split(";", 1)[0]
    u = u.split("@", 1)[-1]
    host, sep, port = u.rpartition(":")
    if sep and port.isdigit():
        return host, int(port)
    return u, default_port


def parse(data: bytes) -> Message:
    """One whole message (a UDP datagram, or what `StreamSplitter` cut). SipError if unusable."""
    if len(data) > MAX_MESSAGE:
        raise SipError(f"message of {len(data)} bytes is too large")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
        if not sep:
            raise SipError("no end of headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0].strip()
    msg = Message()
    if m := _START_REQUEST.match(start):
        msg.method, msg.uri = m.group(1), m.group(2)
    elif m := _START_RESPONSE.match(start):
        msg.status, msg.reason = int(m.group(1)), m.group(2)
    else:
        raise SipError(f"bad start line {start[:80]!r}")
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t" and msg.headers:  # folded continuation (RFC 3261 §7.3.1)
            k, v = msg.headers[-1]
            msg.headers[-1] = (k, v + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise SipError(f"bad header line {line[:80]!r}")
        msg.headers.append((canonical(name), value.strip()))
    for required in ("Via", "From", "To", "Call-ID", "CSeq"):
        if not msg.get(required):
            raise SipError(f"missing {required}")
    msg.cseq  # noqa: B018 - validates
    length = msg.get("Content-Length")
    if length:
        if not length.strip().isdigit():
            raise SipError(f"bad Content-Length {length!r}")
        n = int(length)
        if n > len(body):
            raise SipError(f"Content-Length {n} but {len(body)} body bytes")
        body = body[:n]
    msg.body = body
    return msg


class StreamSplitter:
    """Cuts SIP messages out of a TCP byte stream by Content-Length (RFC 3261 §18.3); CRLF keep-alives are skipped."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out: list[bytes] = []
        while True:
            self.buf = self.buf.lstrip(b"\r\n")
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_MESSAGE:
                    raise SipError("header section too large")
                return out
            head = self.buf[:end].decode("latin-1")
            m = re.search(r"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*$", head)
            n = int(m.group(1)) if m else 0
            if n > MAX_MESSAGE:
                raise SipError(f"Content-Length {n} too large")
            total = end + 4 + n
            if len(self.buf) < total:
                return out
            out.append(self.buf[:total])
            self.buf = self.buf[total:]


def response(req: Message, status: int, reason: str = "", to_tag: str = "") -> Message:
    """A response to `req` (RFC 3261 §8.2.6): Via/From/To/Call-ID/CSeq copied, a To tag added if given."""
    r = Message(status=status, reason=reason or REASONS.get(status, ""))
    for v in req.get_all("Via"):
        r.add("Via", v)
    r.add("From", req.get("From"))
    to = req.get("To")
    if to_tag and param(to, "tag") is None:
        to = f"{to};tag={to_tag}"
    r.add("To", to)
    r.add("Call-ID", req.call_id)
    r.add("CSeq", req.get("CSeq"))
    return r


# -- digest (RFC 2617 with RFC 3261 §22.4) ------------------------------------------------------

def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - the protocol's algorithm


def parse_challenge(value: str) -> dict[str, str]:
    """`Digest realm="x", nonce="y", qop="auth"` -> {"realm": "x", ...} (keys lower-case)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise SipError(f"not a digest challenge: {value[:60]!r}")
    out: dict[str, str] = {}
    for m in re.finditer(r'([A-Za-z\-]+)\s*=\s*("([^"]*)"|[^,\s]+)', rest):
        out[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2)
    return out


def digest_authorization(challenge: dict[str, str], method: str, uri: str, username: str, password: str,
                         nc: int = 1, cnonce: str | None = None) -> str:
    """The Authorization header value answering `challenge` (MD5; qop=auth if offered)."""
    algorithm = challenge.get("algorithm", "MD5")
    if algorithm.upper() != "MD5":
        raise SipError(f"digest algorithm {algorithm} not supported")
    realm, nonce = challenge.get("realm", ""), challenge.get("nonce", "")
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in qops:
        cnonce = cnonce or random_token(8)
        ncs = f"{nc:08x}"
        resp = _md5(f"{ha1}:{nonce}:{ncs}:{cnonce}:auth:{ha2}")
        parts += [f'response="{resp}"', "algorithm=MD5", f'cnonce="{cnonce}"', "qop=auth", f"nc={ncs}"]
    else:
        resp = _md5(f"{ha1}:{nonce}:{ha2}")
        parts += [f'response="{resp}"', "algorithm=MD5"]
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    return "Digest " + ", ".join(parts)
