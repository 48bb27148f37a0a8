"""The GB/T 28181 device simulator (hil.gb28181) against a minimal platform written here.

The platform side is plain asyncio sockets, hashlib and ElementTree, written from RFC 3261/2617 and
GB/T 28181 independently of hil.gb28181 (and of drivers/ and gateway/): REGISTER with a 401 digest
challenge, MESSAGE/NOTIFY bodies read in their declared charset, INVITE with an SDP offer, RTP
received on UDP or TCP (RFC 4571), reassembled by sequence number and demuxed by PyAV's `mpeg`
(program stream) demuxer into H.264 that must decode. The simulator runs as a real subprocess.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import re
import select
import struct
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import av
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hil.camera.sei import find_stamp
from hil.gb28181 import ps as ps_mod
from hil.gb28181.ptz import PtzCommand, PtzError, decode, encode
from tests.procs import ROOT, stop_process

HOST = "127.0.0.1"
PLATFORM_ID = "34020000002000000001"
REALM = "3402000000"
PASSWORD = "s3cret-pw"
DOME = "34020000001320000001"
BODYCAM = "34020000001380000007"
WIDTH, HEIGHT = 320, 240


# -- a minimal SIP platform -------------------------------------------------------------------

@dataclass
class Sip:
    start: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    source: Any = None

    @property
    def is_request(self) -> bool:
        return not self.start.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        return self.start.split(" ", 1)[0]

    @property
    def uri(self) -> str:
        return self.start.split(" ")[1]

    @property
    def status(self) -> int:
        return int(self.start.split(" ")[1])

    def h(self, name: str, default: str = "") -> str:
        compact = {"i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact", "l": "content-length",
                   "c": "content-type"}
        for k, v in self.headers:
            if compact.get(k.lower(), k.lower()) == name.lower():
                return v
        return default

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def parse_sip(data: bytes) -> Sip:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8").split("\r\n")
    headers = []
    for line in lines[1:]:
        k, colon, v = line.partition(":")
        assert colon, f"bad header line {line!r}"
        headers.append((k.strip(), v.strip()))
    msg = Sip(lines[0], headers)
    n = int(msg.h("content-length", "0"))
    assert len(body) >= n, "short body"
    msg.body = body[:n]
    for required in ("via", "from", "to", "call-id", "cseq"):
        assert msg.h(required), f"missing {required}"
    return msg


def build_sip(start: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    text = start + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + f"Content-Length: {len(body)}\r\n\r\n"
    return text.encode() + body


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest_params(value: str) -> dict[str, str]:
    assert value.startswith("Digest ")
    return {m.group(1): m.group(3) if m.group(3) is not None else m.group(2)
            for m in re.finditer(r'(\w+)=("([^"]*)"|[^,\s]+)', value[7:])}


def read_xml(body: bytes) -> tuple[ET.Element, str]:
    """The element tree and declared encoding of a MANSCDP body (decoded by its prolog's charset)."""
    m = re.match(rb'<\?xml[^>]*encoding="([^"]+)"', body)
    enc = m.group(1).decode() if m else "utf-8"
    text = body.decode("gb18030" if enc.upper() in ("GB2312", "GBK") else enc)
    return ET.fromstring(re.sub(r"^<\?xml[^>]*\?>", "", text).strip()), enc


def tag() -> str:
    return os.urandom(4).hex()


class Platform:
    """A SIP server on UDP or TCP that registers devices and sends them requests."""

    def __init__(self, proto: str, password: str = PASSWORD, qop: bool = True) -> None:
        self.proto = proto
        self.password = password
        self.qop = qop
        self.port = 0
        self.nonce = os.urandom(8).hex()
        self.requests: list[Sip] = []           # every request from a device, in order
        self.register_log: list[tuple[str, int, bool]] = []  # (device, status sent, had Authorization)
        self.bad = 0
        self.answer_keepalives = True
        self.addr: dict[str, Any] = {}           # device id -> UDP address or TCP writer
        self._pending: dict[str, asyncio.Future[Sip]] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.base_events.Server | None = None
        self._cseq = 100

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.proto == "udp":
            platform = self

            class Proto(asyncio.DatagramProtocol):
                def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                    platform._received(data, addr)
            self._udp, _ = await loop.create_datagram_endpoint(Proto, local_addr=(HOST, 0))
            self.port = self._udp.get_extra_info("sockname")[1]
        else:
            self._server = await asyncio.start_server(self._client, HOST, 0)
            self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
        for w in self.addr.values():
            if isinstance(w, asyncio.StreamWriter):
                w.close()

    @property
    def url(self) -> str:
        return f"{self.proto}://{HOST}:{self.port}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                buf += data
                while (end := buf.find(b"\r\n\r\n")) >= 0:
                    m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", buf[:end + 2])
                    total = end + 4 + (int(m.group(1)) if m else 0)
                    if len(buf) < total:
                        break
                    self._received(buf[:total], writer)
                    buf = buf[total:]

    def _send(self, data: bytes, to: Any) -> None:
        if isinstance(to, asyncio.StreamWriter):
            to.write(data)
        else:
            assert self._udp is not None
            self._udp.sendto(data, to)

    def _received(self, data: bytes, source: Any) -> None:
        try:
            msg = parse_sip(data)
        except (AssertionError, ValueError, UnicodeDecodeError):
            self.bad += 1
            return
        msg.source = source
        if not msg.is_request:
            if msg.status >= 200:
                fut = self._pending.pop(msg.h("call-id") + msg.h("cseq"), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            return
        self.requests.append(msg)
        if msg.method == "REGISTER":
            self._register(msg)
        elif msg.method == "MESSAGE" and not self.answer_keepalives and b"Keepalive" in msg.body:
            return
        elif msg.method != "ACK":
            self.reply(msg, 200)

    def reply(self, req: Sip, status: int, reason: str = "OK", extra: list[tuple[str, str]] = ()) -> None:
        to = req.h("to")
        if status >= 200 and ";tag=" not in to:
            to += f";tag={tag()}"
        headers = [("Via", v) for v in req.all("Via")] + [("From", req.h("from")), ("To", to),
                                                           ("Call-ID", req.h("call-id")), ("CSeq", req.h("cseq"))]
        self._send(build_sip(f"SIP/2.0 {status} {reason}", headers + list(extra)), req.source)

    def _register(self, req: Sip) -> None:
        device = re.search(r"sip:(\d{20})@", req.h("from")).group(1)  # type: ignore[union-attr]
        self.addr[device] = req.source
        auth = req.h("authorization")
        if not auth:
            qop = ', qop="auth"' if self.qop else ""
            self.register_log.append((device, 401, False))
            self.reply(req, 401, "Unauthorized",
                       [("WWW-Authenticate", f'Digest realm="{REALM}", nonce="{self.nonce}", algorithm=MD5{qop}')])
            return
        p = digest_params(auth)
        ha1 = md5(f"{p['username']}:{REALM}:{self.password}")
        ha2 = md5(f"REGISTER:{p['uri']}")
        if "qop" in p:
            want = md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}")
        else:
            want = md5(f"{ha1}:{p['nonce']}:{ha2}")
        ok = p["response"] == want and p["username"] == device and p["nonce"] == self.nonce
        self.register_log.append((device, 200 if ok else 403, True))
        if ok:
            self.reply(req, 200, "OK", [("Date", time.strftime("%Y-%m-%dT%H:%M:%S")), ("Expires", req.h("expires"))])
        else:
            self.reply(req, 403, "Forbidden")

    async def request(self, device: str, method: str, body: bytes = b"", content_type: str = "Application/MANSCDP+xml",
                      extra: list[tuple[str, str]] = (), call_id: str | None = None, to_tag: str = "",
                      from_tag: str | None = None, uri: str | None = None) -> Sip:
        self._cseq += 1
        call_id = call_id or f"{tag()}@{HOST}"
        cseq = f"{self._cseq} {method}"
        to = f"<sip:{device}@{REALM}>" + (f";tag={to_tag}" if to_tag else "")
        headers = [("Via", f"SIP/2.0/{self.proto.upper()} {HOST}:{self.port};rport;branch=z9hG4bK{tag()}"),
                   ("From", f"<sip:{PLATFORM_ID}@{REALM}>;tag={from_tag or tag()}"), ("To", to),
                   ("Call-ID", call_id), ("CSeq", cseq), ("Max-Forwards", "70"),
                   ("Contact", f"<sip:{PLATFORM_ID}@{HOST}:{self.port}>"), *extra]
        if body:
            headers.append(("Content-Type", content_type))
        fut: asyncio.Future[Sip] = asyncio.get_running_loop().create_future()
        self._pending[call_id + cseq] = fut
        self._send(build_sip(f"{method} {uri or f'sip:{device}@{REALM}'} SIP/2.0", headers, body), self.addr[device])
        return await asyncio.wait_for(fut, 5.0)

    def ack(self, device: str, invite_resp: Sip) -> None:
        cseq = invite_resp.h("cseq").split()[0]
        headers = [("Via", f"SIP/2.0/{self.proto.upper()} {HOST}:{self.port};rport;branch=z9hG4bK{tag()}"),
                   ("From", invite_resp.h("from")), ("To", invite_resp.h("to")), ("Call-ID", invite_resp.h("call-id")),
                   ("CSeq", f"{cseq} ACK"), ("Max-Forwards", "70")]
        self._send(build_sip(f"ACK sip:{device}@{REALM} SIP/2.0", headers), self.addr[device])

    def bodies(self, cmd: str, method: str = "MESSAGE") -> list[tuple[Sip, ET.Element, str]]:
        out = []
        for r in self.requests:
            if r.method == method and r.body and f"<CmdType>{cmd}</CmdType>".encode() in r.body:
                root, enc = read_xml(r.body)
                out.append((r, root, enc))
        return out

    def registered(self, device: str) -> int:
        return sum(1 for d, status, _ in self.register_log if d == device and status == 200)


def query(cmd: str, device: str, sn: int, extra: str = "", root: str = "Query") -> bytes:
    return (f'<?xml version="1.0" encoding="GB2312"?>\r\n<{root}>\r\n<CmdType>{cmd}</CmdType>\r\n<SN>{sn}</SN>\r\n'
            f"<DeviceID>{device}</DeviceID>\r\n{extra}</{root}>\r\n").encode("gb2312")


# -- the simulator process ---------------------------------------------------------------------

class Sim:
    def __init__(self, platform: Platform, *args: str) -> None:
        argv = [sys.executable, "-m", "hil.gb28181", "--platform", platform.url, "--platform-id", PLATFORM_ID,
                "--realm", REALM, "--password", PASSWORD, "--listen", f"{HOST}:0", "--width", str(WIDTH),
                "--height", str(HEIGHT), "--register-retry", "0.5", "--log-level", "INFO", *args]
        self.stderr = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would stall the simulator
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        self.result: tuple[int, str] | None = None
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 20.0)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"simulator not ready: {self.stop()[1][-3000:]}")
        self.ready: dict[str, Any] = json.loads(line)

    async def control(self, line: str) -> dict[str, Any]:
        reader, writer = await asyncio.open_connection(*self.ready["control"])
        try:
            writer.write(line.encode() + b"\n")
            return json.loads(await asyncio.wait_for(reader.readline(), 5.0))
        finally:
            writer.close()

    def stop(self) -> tuple[int, str]:
        """SIGTERM; (exit code, its stderr). Idempotent."""
        if self.result is None:
            rc = stop_process(self.proc)
            self.stderr.seek(0)
            self.result = rc, self.stderr.read()
            self.stderr.close()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        return self.result


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def setup(proto: str, *args: str, password: str = PASSWORD, qop: bool = True) -> AsyncIterator[tuple[Platform, Sim]]:
    platform = Platform(proto, password, qop)
    await platform.start()
    sim = await asyncio.to_thread(Sim, platform, *args)
    try:
        yield platform, sim
    except BaseException:
        print("simulator stderr:\n" + (await asyncio.to_thread(sim.stop))[1][-6000:])  # shown with the failure
        raise
    finally:
        rc, err = await asyncio.to_thread(sim.stop)
        await platform.close()
    assert rc == 0, err[-3000:]
    assert "Traceback" not in err, err[-5000:]


# -- media: RTP receivers, reassembly, PS demux --------------------------------------------------

@dataclass
class Rtp:
    packets: list[bytes] = field(default_factory=list)
    sources: set[tuple[str, int]] = field(default_factory=set)
    port: int = 0
    closer: Callable[[], None] = lambda: None
    connected: bool = False


async def udp_rtp() -> Rtp:
    rtp = Rtp()

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            rtp.packets.append(data)
            rtp.sources.add(addr)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Proto, local_addr=(HOST, 0))
    rtp.port = transport.get_extra_info("sockname")[1]
    rtp.closer = transport.close
    return rtp


async def read_4571(reader: asyncio.StreamReader, rtp: Rtp) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            (n,) = struct.unpack(">H", await reader.readexactly(2))
            rtp.packets.append(await reader.readexactly(n))


async def tcp_rtp_listen() -> Rtp:
    """The platform listens (its offer says a=setup:passive); the device connects."""
    rtp = Rtp()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rtp.connected = True
        await read_4571(reader, rtp)
        writer.close()
    server = await asyncio.start_server(accepted, HOST, 0)
    rtp.port = server.sockets[0].getsockname()[1]
    rtp.closer = server.close
    return rtp


async def tcp_rtp_connect(port: int) -> Rtp:
    """The platform connects (its offer says a=setup:active) to the port the device answered."""
    rtp = Rtp(port=port)
    reader, writer = await asyncio.open_connection(HOST, port)
    rtp.connected = True
    task = asyncio.create_task(read_4571(reader, rtp))

    def close() -> None:
        writer.close()
        task.cancel()
    rtp.closer = close
    return rtp


def reassemble(packets: list[bytes], ssrc: int) -> tuple[bytes, int]:
    """The RTP payloads in sequence order as one PS byte string, and the number of frames (markers).
    Checks version, payload type 96, the SSRC, and that the marker ends each timestamp's run."""
    parsed = []
    for p in packets:
        b0, b1, seq, ts, pssrc = struct.unpack(">BBHII", p[:12])
        assert b0 >> 6 == 2 and not b0 & 0x20 and not b0 & 0x10 and b0 & 0x0F == 0, f"RTP header {b0:02x}"
        assert b1 & 0x7F == 96
        assert pssrc == ssrc, f"SSRC {pssrc} != {ssrc}"
        parsed.append((seq, ts, bool(b1 & 0x80), p[12:]))
    first = parsed[0][0]
    parsed.sort(key=lambda x: (x[0] - first) & 0xFFFF)
    seqs = [(x[0] - first) & 0xFFFF for x in parsed]
    assert seqs == list(range(len(seqs))), "RTP sequence has gaps on loopback"
    frames = 0
    for i, (_, ts, marker, _) in enumerate(parsed):
        last_of_ts = i + 1 == len(parsed) or parsed[i + 1][1] != ts
        if i + 1 < len(parsed):
            assert marker == last_of_ts, f"marker bit wrong at packet {i}"
        frames += marker
    return b"".join(x[3] for x in parsed), frames


def demux(ps: bytes) -> dict[str, Any]:
    """PyAV's program stream demuxer + decoder over the reassembled bytes."""
    container = av.open(io.BytesIO(ps), format="mpeg")
    stream = container.streams.video[0]
    frames, sizes, stamps = 0, set(), []
    for packet in container.demux(stream):
        if not packet.size:
            continue
        stamp = find_stamp(bytes(packet))
        if stamp is not None:
            stamps.append(stamp[0])
        for frame in packet.decode():
            frames += 1
            sizes.add((frame.width, frame.height))
    codec = stream.codec_context.name
    container.close()
    return {"codec": codec, "frames": frames, "sizes": sizes, "stamps": stamps}


def offer(port: int, ssrc: str, tcp: bool = False, setup: str = "passive") -> bytes:
    lines = ["v=0", f"o={PLATFORM_ID} 0 0 IN IP4 {HOST}", "s=Play", f"c=IN IP4 {HOST}", "t=0 0",
             f"m=video {port} {'TCP/RTP/AVP' if tcp else 'RTP/AVP'} 96 97 98", "a=recvonly", "a=rtpmap:96 PS/90000",
             "a=rtpmap:98 H264/90000", "a=rtpmap:97 MPEG4/90000"]
    if tcp:
        lines += [f"a=setup:{setup}", "a=connection:new"]
    lines += [f"y={ssrc}", ""]
    return "\r\n".join(lines).encode()


async def invite(platform: Platform, device: str, channel: str, ssrc: str, rtp: Rtp, tcp: bool = False,
                 setup: str = "passive") -> Sip:
    resp = await platform.request(device, "INVITE", offer(rtp.port, ssrc, tcp, setup), "application/sdp",
                                  [("Subject", f"{channel}:{ssrc},{PLATFORM_ID}:0")], uri=f"sip:{channel}@{REALM}")
    assert resp.status == 200, resp.start
    return resp


def sdp_answer(resp: Sip) -> dict[str, str]:
    text = resp.body.decode()
    out = {}
    for line in text.split("\r\n"):
        if "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, v)
            if k == "a":
                out[f"a:{v.split(':')[0]}"] = v
    return out


async def bye(platform: Platform, device: str, resp: Sip) -> Sip:
    return await platform.request(device, "BYE", call_id=resp.h("call-id"),
                                  to_tag=re.search(r"tag=([^;>]+)", resp.h("to")).group(1),  # type: ignore[union-attr]
                                  from_tag=re.search(r"tag=([^;>]+)", resp.h("from")).group(1))  # type: ignore[union-attr]


# -- tests ------------------------------------------------------------------------------------

async def test_register_digest_keepalive_and_unregister() -> None:
    async with setup("udp", "--keepalive", "0.5", "--charset", "gb2312") as (platform, sim):
        await until(lambda: platform.registered(DOME), 10, "registration")
        first = [(s, a) for d, s, a in platform.register_log if d == DOME][:2]
        assert first == [(401, False), (200, True)]
        reg = [r for r in platform.requests if r.method == "REGISTER"][0]
        assert reg.uri == f"sip:{PLATFORM_ID}@{REALM}"
        assert reg.h("expires") == "3600" and f"sip:{DOME}@" in reg.h("contact")
        await until(lambda: len(platform.bodies("Keepalive")) >= 3, 10, "keepalives")
        msg, root, enc = platform.bodies("Keepalive")[0]
        assert enc == "GB2312" and "charset=GB2312" in msg.h("content-type")
        assert msg.h("content-type").startswith("Application/MANSCDP+xml")
        assert root.tag == "Notify" and root.findtext("DeviceID") == DOME and root.findtext("Status") == "OK"
        sns = [int(r.findtext("SN") or 0) for _, r, _ in platform.bodies("Keepalive")]
        assert sns == sorted(sns) and len(set(sns)) == len(sns)
        status = await sim.control("status")
        assert status["ok"] and status["registered"] and status["state"] == "registered"
        assert status["keepalives_ok"] >= 2 and status["platform_date"]
        # stop: the device unregisters with Expires: 0
        await asyncio.to_thread(sim.stop)
        regs = [r for r in platform.requests if r.method == "REGISTER"]
        assert regs[-1].h("expires") == "0" and regs[-1].h("authorization")


async def test_utf8_and_no_qop_digest() -> None:
    async with setup("tcp", "--keepalive", "0.5", "--charset", "utf-8", qop=False) as (platform, sim):
        await until(lambda: platform.registered(DOME), 10, "registration over TCP")
        await until(lambda: platform.bodies("Keepalive"), 5, "keepalive")
        msg, _, enc = platform.bodies("Keepalive")[0]
        assert enc == "UTF-8" and "charset=UTF-8" in msg.h("content-type")
        assert "SIP/2.0/TCP" in msg.h("via")


async def test_wrong_password_is_refused_and_retried() -> None:
    async with setup("udp", password="not-the-password") as (platform, sim):
        await until(lambda: sum(1 for d, s, _ in platform.register_log if s == 403) >= 2, 10, "two refused attempts")
        status = await sim.control("status")
        assert status["state"] == "forbidden" and not status["registered"]
        assert status["auth_failures"] >= 2 and status["last_register_status"] == 403
        assert platform.registered(DOME) == 0


async def test_wrong_password_fault_then_fixed() -> None:
    async with setup("udp", "--keepalive", "30") as (platform, sim):
        await until(lambda: platform.registered(DOME), 10, "registration")
        assert (await sim.control("wrong_password on"))["wrong_password"]
        await until(lambda: platform.register_log[-1][1] == 403, 5, "a refused registration")
        assert (await sim.control("status"))["state"] == "forbidden"
        await sim.control("wrong_password off")
        await until(lambda: platform.registered(DOME) >= 2, 10, "registered again with the right password")


async def test_catalog_split_device_info_and_status() -> None:
    async with setup("udp", "--channels", "10", "--catalog-batch", "4", "--keepalive", "30") as (platform, sim):
        await until(lambda: platform.registered(DOME), 10, "registration")
        resp = await platform.request(DOME, "MESSAGE", query("Catalog", DOME, 77))
        assert resp.status == 200
        parts = await until(lambda: len(platform.bodies("Catalog")) >= 3 and platform.bodies("Catalog"), 5, "catalog")
        await asyncio.sleep(0.3)
        parts = platform.bodies("Catalog")
        assert len(parts) == 3
        nums, ids, names = [], [], []
        for _, root, enc in parts:
            assert root.tag == "Response" and enc == "GB2312"
            assert root.findtext("SN") == "77" and root.findtext("SumNum") == "10"
            dl = root.find("DeviceList")
            assert dl is not None
            items = dl.findall("Item")
            assert int(dl.get("Num", "-1")) == len(items)
            nums.append(len(items))
            for item in items:
                ids.append(item.findtext("DeviceID"))
                names.append(item.findtext("Name"))
                assert item.findtext("ParentID") == DOME and item.findtext("Status") == "ON"
                assert item.findtext("Info/PTZType") == "1"
        assert sorted(nums) == [2, 4, 4]
        assert len(set(ids)) == 10 and all(len(i) == 20 and i[10:13] == "131" for i in ids)
        assert ids == sim.ready["channels"]
        assert all(n.startswith("球机") for n in names)  # GB2312 decoded
        await platform.request(DOME, "MESSAGE", query("DeviceInfo", DOME, 78))
        info = (await until(lambda: platform.bodies("DeviceInfo"), 5, "DeviceInfo"))[0][1]
        assert info.findtext("Result") == "OK" and info.findtext("Channel") == "10" and info.findtext("SN") == "78"
        await platform.request(DOME, "MESSAGE", query("DeviceStatus", DOME, 79))
        st_ = (await until(lambda: platform.bodies("DeviceStatus"), 5, "DeviceStatus"))[0][1]
        assert st_.findtext("Online") == "ONLINE" and st_.findtext("Status") == "OK"
        # bad XML and unknown targets
        assert (await platform.request(DOME, "MESSAGE", b"<Query><CmdType>Catalog")).status == 400
        evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Query><CmdType>Catalog</CmdType></Query>'
        assert (await platform.request(DOME, "MESSAGE", evil)).status == 400
        assert (await platform.request(DOME, "MESSAGE", query("Catalog", "34020000001329999999", 80))).status == 404
        assert (await sim.control("status"))["bad_xml"] == 2


async def stream_and_check(platform: Platform, sim: Sim, device: str, channel: str, ssrc: str, tcp: bool,
                           setup_: str = "passive", seconds: float = 2.5, codec: str = "h264") -> dict[str, Any]:
    if not tcp:
        rtp = await udp_rtp()
    elif setup_ == "passive":
        rtp = await tcp_rtp_listen()
    else:
        rtp = Rtp(port=9)  # the platform connects: the discard port in its offer (RFC 4145)
    resp = await invite(platform, device, channel, ssrc, rtp, tcp, setup_)
    answer = sdp_answer(resp)
    assert answer["s"] == "Play" and answer["y"] == ssrc
    assert "PS/90000" in answer["a:rtpmap"] and answer.get("a:sendonly") == "sendonly"
    assert answer["f"].startswith("v/2/" if codec == "h264" else "v/5/")
    m = answer["m"].split()
    assert m[0] == "video" and m[2] == ("TCP/RTP/AVP" if tcp else "RTP/AVP") and m[3] == "96"
    if tcp:
        assert answer["a:setup"] == ("setup:active" if setup_ == "passive" else "setup:passive")
    if tcp and setup_ == "active":
        rtp = await tcp_rtp_connect(int(m[1]))
    platform.ack(device, resp)
    await until(lambda: len(rtp.packets) > 0, 10, "first RTP packet")
    await asyncio.sleep(seconds)
    status = await sim.control("status")
    streams = [s for s in status["streams"] if s["ssrc"] == ssrc]
    assert streams and streams[0]["packets"] > 0 and streams[0]["state"] == "streaming"
    assert (await bye(platform, device, resp)).status == 200
    await asyncio.sleep(0.3)
    count = len(rtp.packets)
    await asyncio.sleep(0.5)
    assert len(rtp.packets) == count, "RTP went on after BYE"
    rtp.closer()
    if not tcp:
        assert rtp.sources == {(HOST, int(m[1]))}, "RTP comes from the port in the answer"
    ps, frames = reassemble(rtp.packets, int(ssrc))
    assert ps.startswith(ps_mod.PACK_START), "the stream must start at a pack header"
    assert ps[14:18] == ps_mod.SYSTEM_HEADER_START, "the first frame is a key frame with a system header"
    assert bytes([ps_mod.STREAM_TYPE[codec], 0xE0]) in ps[:80], "the PSM names the codec's stream_type"
    result = demux(ps)
    assert result["codec"] == ("h264" if codec == "h264" else "hevc")
    assert result["sizes"] == {(WIDTH, HEIGHT)}
    assert result["frames"] >= 25 and abs(result["frames"] - frames) <= 1
    st_ = result["stamps"]
    assert st_ == sorted(st_) and st_[-1] - st_[0] >= len(st_) - 1  # the burned-in counter moves on
    return status


@pytest.mark.parametrize("sip_proto", ["udp", "tcp"])
async def test_invite_udp_media(sip_proto: str) -> None:
    async with setup(sip_proto, "--keepalive", "30") as (platform, sim):
        await until(lambda: platform.registered(DOME), 10, "registration")
        channel = sim.ready["channels"][0]
        await stream_and_check(platform, sim, DOME, channel, "0340200001", tcp=False)
        assert (await sim.control("status"))["streams"] == []


@pytest.mark.parametrize("setup_", ["passive", "active"])
async def test_invite_tcp_media(setup_: str) -> None:
    async with setup("tcp", "--keepalive", "30") as (platform, sim):
        await until(lambda: platform.registered(DOME), 10, "registration")
        await stream_and_check(platform, sim, DOME, sim.ready["channels"][0], "0340200002", tcp=True, setup_=setup_)


async def test_invite_h265() -> None:
    async with setup("udp", "--keepalive", "30", "--codec", "h265") as (platform, sim):
        await until(lambda: platform.registered(DOME), 10, "registration")
        await stream_and_check(platform, sim, DOME, sim.ready["channels"][0], "0340200003", tcp=False, codec="h265")


async def test_concurrent_invites_on_two_channels_and_device_bye() -> None:
    async with setup("udp", "--channels", "2", "--keepalive", "30") as (platform, sim):
        await until(lambda: platform.registered(DOME), 10, "registration")
        ch1, ch2 = sim.ready["channels"]
        rtp1, rtp2 = await udp_rtp(), await udp_rtp()
        r1 = await invite(platform, DOME, ch1, "0340200011", rtp1)
        r2 = await invite(platform, DOME, ch2, "0340200012", rtp2)
        platform.ack(DOME, r1)
        platform.ack(DOME, r2)
        await until(lambda: len(rtp1.packets) > 50 and len(rtp2.packets) > 50, 10, "both streams")
        status = await sim.control("status")
        assert {s["channel"] for s in status["streams"]} == {ch1, ch2}
        assert all(c["streams"] == 1 for c in status["channels"])
        # the device hangs up channel 2: a BYE comes to the platform in the INVITE's dialog
        assert (await sim.control(f"bye {ch2}"))["ended"] == [r2.h("call-id")]
        byes = await until(lambda: [r for r in platform.requests if r.method == "BYE"], 5, "device BYE")
        assert byes[0].h("call-id") == r2.h("call-id") and byes[0].h("from") == r2.h("to")
        rtp1.closer()
        rtp2.closer()
        for rtp, ssrc in ((rtp1, 340200011), (rtp2, 340200012)):
            ps, _ = reassemble(rtp.packets, ssrc)
            assert demux(ps)["frames"] > 0


async def test_ptz_commands_move_the_state() -> None:
    async with setup("udp", "--keepalive", "30") as (platform, sim):
        await until(lambda: platform.registered(DOME), 10, "registration")
        channel = sim.ready["channels"][0]

        async def ptz(hex_: str) -> None:
            body = query("DeviceControl", channel, 5, f"<PTZCmd>{hex_}</PTZCmd>\r\n", root="Control")
            assert (await platform.request(DOME, "MESSAGE", body)).status == 200

        async def state() -> dict[str, Any]:
            return (await sim.control("status"))["channels"][0]["ptz"]

        before = await state()
        # right at pan speed 0x80 and zoom in at 8 (A5 0F 01 11 80 00 80 cs)
        cmd = bytes.fromhex("A50F0111800080")
        await ptz((cmd + bytes([sum(cmd) % 256])).hex().upper())
        await asyncio.sleep(0.6)
        moving = await state()
        assert moving["moving"] and moving["pan_rate"] > 0 and moving["zoom_rate"] > 0
        assert moving["pan"] != before["pan"] and moving["zoom"] > before["zoom"]
        stop = bytes.fromhex("A50F0100000000")
        await ptz((stop + bytes([sum(stop) % 256])).hex().upper())
        s1 = await state()
        await asyncio.sleep(0.3)
        s2 = await state()
        assert not s2["moving"] and s1["pan"] == s2["pan"]
        # preset 3: set here, move away, go back
        await ptz(encode(PtzCommand(0x81, 0, 3)))
        await ptz(encode(PtzCommand(0x0A, 0xFF, 0xFF)))  # left + up
        await asyncio.sleep(0.3)
        await ptz(encode(PtzCommand(0)))
        assert (await state())["pan"] != s2["pan"]
        await ptz(encode(PtzCommand(0x82, 0, 3)))
        s3 = await state()
        assert (s3["pan"], s3["tilt"], s3["zoom"]) == (s2["pan"], s2["tilt"], s2["zoom"]) and s3["presets"] == [3]
        # a bad checksum: ignored, counted, answered with Result ERROR
        await ptz("A50F011180008000")
        await until(lambda: platform.bodies("DeviceControl"), 5, "DeviceControl response")
        status = await sim.control("status")
        assert status["ptz_bad"] == 1 and status["ptz_commands"] == 6
        assert platform.bodies("DeviceControl")[0][1].findtext("Result") == "ERROR"


def overlay_strips(ps: bytes) -> list[Any]:
    """The luma inside the overlay box (channel and PTZ numbers; 320x240: rows 3..33, columns 5..219) of
    each decoded frame."""
    container = av.open(io.BytesIO(ps), format="mpeg")
    strips = [f.to_ndarray()[4:32, 6:200].astype(int)
              for p in container.demux(container.streams.video[0]) for f in p.decode()]
    container.close()
    return strips


async def test_ptz_state_is_burned_into_the_picture() -> None:
    async with setup("udp", "--keepalive", "30") as (platform, sim):
        await until(lambda: platform.registered(DOME), 10, "registration")
        channel = sim.ready["channels"][0]
        rtp = await udp_rtp()
        resp = await invite(platform, DOME, channel, "0340200031", rtp)
        platform.ack(DOME, resp)
        await until(lambda: len(rtp.packets) > 0, 10, "stream")
        await asyncio.sleep(1.0)
        still = len(rtp.packets)
        body = query("DeviceControl", channel, 6, f"<PTZCmd>{encode(PtzCommand(0x01, 0xFF))}</PTZCmd>\r\n", "Control")
        await platform.request(DOME, "MESSAGE", body)  # pan right at full speed: 120 degrees/s
        await asyncio.sleep(1.0)
        await bye(platform, DOME, resp)
        rtp.closer()
        ps, _ = reassemble(rtp.packets, 340200031)
        cut = len(reassemble(rtp.packets[:still], 340200031)[0])
        before, after = overlay_strips(ps[:cut]), overlay_strips(ps)[len(overlay_strips(ps[:cut])):]
        assert len(before) >= 10 and len(after) >= 10

        def changes(strips: list[Any]) -> int:
            return sum(1 for a, b in zip(strips, strips[1:]) if abs(a - b).mean() > 1.0)
        assert changes(before) == 0, "the strip stands still while the dome does"
        assert changes(after) >= len(after) // 3, "the pan digits run while the dome turns"


async def test_reboot_reregisters_and_drops_streams() -> None:
    async with setup("udp", "--keepalive", "30", "--reboot-s", "1") as (platform, sim):
        await until(lambda: platform.registered(DOME), 10, "registration")
        rtp = await udp_rtp()
        resp = await invite(platform, DOME, sim.ready["channels"][0], "0340200021", rtp)
        platform.ack(DOME, resp)
        await until(lambda: len(rtp.packets) > 20, 10, "stream")
        regs_before = len(platform.register_log)
        assert (await sim.control("reboot"))["reboot_s"] == 1
        await asyncio.sleep(0.4)
        status = await sim.control("status")
        assert status["state"] == "rebooting" and status["streams"] == []
        count = len(rtp.packets)
        await until(lambda: platform.registered(DOME) >= 2, 10, "registration after the reboot")
        assert len(rtp.packets) - count < 5, "the stream must stop at the reboot"
        new = platform.register_log[regs_before:]
        assert new[0][1:] == (401, False), "a rebooted device starts a fresh registration"
        assert not [r for r in platform.requests if r.method == "BYE"], "a power cut sends no BYE"
        status = await sim.control("status")
        assert status["registered"] and status["reboots"] == 1 and status["registrations"] == 2
        # the platform invites again and video comes back
        rtp2 = await udp_rtp()
        resp2 = await invite(platform, DOME, sim.ready["channels"][0], "0340200022", rtp2)
        platform.ack(DOME, resp2)
        await until(lambda: len(rtp2.packets) > 20, 10, "stream after the reboot")
        rtp.closer()
        rtp2.closer()


async def test_keepalive_faults_and_garbage() -> None:
    async with setup("udp", "--keepalive", "0.3", "--keepalive-misses", "2", "--sip-timeout", "0.6") as (platform, sim):
        await until(lambda: platform.registered(DOME), 10, "registration")
        await until(lambda: len(platform.bodies("Keepalive")) >= 2, 5, "keepalives")
        await sim.control("stop_keepalive")
        await asyncio.sleep(0.5)
        n = len(platform.bodies("Keepalive"))
        await asyncio.sleep(1.0)
        assert len(platform.bodies("Keepalive")) == n
        await sim.control("stop_keepalive off")
        await until(lambda: len(platform.bodies("Keepalive")) > n, 5, "keepalives resume")
        # unanswered keepalives: the device registers anew
        platform.answer_keepalives = False
        await until(lambda: platform.registered(DOME) >= 2, 10, "re-registration after missed keepalives")
        platform.answer_keepalives = True
        assert (await sim.control("status"))["keepalive_misses"] >= 2
        for kind in ("headers", "startline", "bytes"):
            assert (await sim.control(f"garbage {kind}"))["ok"]
        await until(lambda: platform.bad >= 3, 5, "malformed messages at the platform")
        assert not (await sim.control("garbage nonsense"))["ok"]


async def test_mobile_position_subscribe_notify() -> None:
    async with setup("udp", "--kind", "bodycam", "--device-id", BODYCAM, "--speed-kmh", "36", "--keepalive", "30") \
            as (platform, sim):
        await until(lambda: platform.registered(BODYCAM), 10, "registration")
        body = query("MobilePosition", BODYCAM, 9, "<Interval>1</Interval>\r\n")
        resp = await platform.request(BODYCAM, "SUBSCRIBE", body, extra=[("Event", "presence"), ("Expires", "60")])
        assert resp.status == 200 and resp.h("expires") == "60"
        notes = await until(lambda: len(platform.bodies("MobilePosition", "NOTIFY")) >= 3
                            and platform.bodies("MobilePosition", "NOTIFY"), 6, "three NOTIFYs")
        req, root, _ = notes[0]
        assert req.h("event") == "presence" and req.h("subscription-state").startswith("active")
        assert req.h("call-id") == resp.h("call-id") and req.h("from") == resp.h("to")
        points = [(float(r.findtext("Latitude") or 0), float(r.findtext("Longitude") or 0)) for _, r, _ in notes]
        assert len(set(points)) >= 2, "the team walks"
        assert abs(points[0][0] - 30.6586) < 0.01 and abs(points[0][1] - 104.0648) < 0.01
        assert float(root.findtext("Speed") or 0) == 36 and root.findtext("Time")
        # unsubscribe
        tag_ = re.search(r"tag=([^;>]+)", resp.h("to")).group(1)  # type: ignore[union-attr]
        from_tag = re.search(r"tag=([^;>]+)", resp.h("from")).group(1)  # type: ignore[union-attr]
        resp0 = await platform.request(BODYCAM, "SUBSCRIBE", body, extra=[("Event", "presence"), ("Expires", "0")],
                                       call_id=resp.h("call-id"), to_tag=tag_, from_tag=from_tag)
        assert resp0.status == 200
        await until(lambda: any(r.h("subscription-state").startswith("terminated")
                                for r, _, _ in platform.bodies("MobilePosition", "NOTIFY")), 5, "final NOTIFY")
        assert (await sim.control("status"))["subscriptions"] == []
        # catalog of a bodycam: not steerable
        await platform.request(BODYCAM, "MESSAGE", query("Catalog", BODYCAM, 1))
        item = (await until(lambda: platform.bodies("Catalog"), 5, "catalog"))[0][1].find("DeviceList/Item")
        assert item is not None and item.findtext("Info/PTZType") == "3" and item.findtext("Name", "").startswith("执法")


async def test_mobile_position_message_mode() -> None:
    async with setup("udp", "--kind", "bodycam", "--position-mode", "message", "--position-interval", "0.5",
                     "--keepalive", "30") as (platform, _sim):
        device = "34020000001380000001"
        await until(lambda: len(platform.bodies("MobilePosition")) >= 2, 10, "MobilePosition MESSAGEs")
        root = platform.bodies("MobilePosition")[0][1]
        assert root.tag == "Notify" and root.findtext("DeviceID") == device


async def test_many_devices_register_in_sequence() -> None:
    async with setup("udp", "--devices", "20", "--register-rate", "200", "--keepalive", "0.5") as (platform, sim):
        ids = [f"340200000013200000{n:02d}" for n in range(1, 21)]
        await until(lambda: all(platform.registered(i) for i in ids), 15, "20 registrations")
        await until(lambda: {r.findtext("DeviceID") for _, r, _ in platform.bodies("Keepalive")} >= set(ids), 5,
                    "keepalives from every device")
        status = await sim.control("stats")
        assert status["devices"] == 20 and status["registered_devices"] == 20
        other = await sim.control(f"status {ids[5]}")
        assert other["device_id"] == ids[5] and other["registered"]
        assert len({tuple(a) for a in platform.addr.values()}) == 20, "each device has its own SIP port"


# -- property tests of the pure parts ---------------------------------------------------------------

@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(0, 15), st.integers(0, 0xFFF))
def test_ptz_decode_encode_roundtrip(instr: int, d1: int, d2: int, d3: int, addr: int) -> None:
    cmd = PtzCommand(instr, d1, d2, d3, addr)
    text = encode(cmd)
    raw = bytes.fromhex(text)
    assert raw[0] == 0xA5 and raw[1] == 0x0F and raw[7] == sum(raw[:7]) % 256
    assert decode(text) == cmd
    broken = raw[:7] + bytes([(raw[7] + 1) % 256])
    with pytest.raises(PtzError):
        decode(broken.hex())


def _crc32_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        for i in range(7, -1, -1):
            bit = ((byte >> i) & 1) ^ (crc >> 31)
            crc = ((crc << 1) & 0xFFFFFFFF) ^ (0x04C11DB7 if bit else 0)
    return crc


def _read_ts(b: bytes) -> int:
    assert b[0] & 1 and b[2] & 1 and b[4] & 1, "marker bits"
    return ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def parse_ps(data: bytes) -> list[tuple[int, int | None, bytes]]:
    """(SCR, PTS of the first PES, payload) for each pack; checks lengths, markers and the PSM CRC."""
    out: list[tuple[int, int | None, bytes]] = []
    pos = 0
    while pos < len(data):
        assert data[pos:pos + 4] == b"\x00\x00\x01\xba"
        h = data[pos + 4:pos + 14]
        assert h[0] >> 6 == 1 and h[0] & 4 and h[2] & 4 and h[4] & 4 and h[5] & 1
        scr = ((h[0] >> 3) & 7) << 30 | (h[0] & 3) << 28 | h[1] << 20 | (h[2] >> 3) << 15 | (h[2] & 3) << 13 \
            | h[3] << 5 | h[4] >> 3
        pos += 14 + (h[9] & 7)
        pts, payload = None, b""
        while pos < len(data) and data[pos:pos + 4] != b"\x00\x00\x01\xba":
            sid = data[pos + 3]
            (length,) = struct.unpack(">H", data[pos + 4:pos + 6])
            packet = data[pos:pos + 6 + length]
            assert len(packet) == 6 + length
            if sid == 0xBC:
                assert struct.unpack(">I", packet[-4:])[0] == _crc32_bitwise(packet[:-4])
                es_len = struct.unpack(">H", packet[10:12])[0]
                assert packet[12] in (0x1B, 0x24) and packet[13] == 0xE0 and es_len == 4
            elif sid == 0xE0:
                flags, hlen = packet[7], packet[8]
                assert packet[6] >> 6 == 2
                if flags & 0x80:
                    assert pts is None
                    pts = _read_ts(packet[9:14])
                payload += packet[9 + hlen:]
            else:
                assert sid == 0xBB
            pos += 6 + length
        out.append((scr, pts, payload))
    return out


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=200_000), st.integers(0, 2**33 - 1), st.booleans(), st.sampled_from(["h264", "h265"]))
@example(b"\x00\x00\x01\xbb", 0, False, "h264")  # a payload that is itself a system header start code
def test_ps_packer_roundtrip(payload: bytes, pts: int, key: bool, codec: str) -> None:
    data = ps_mod.PsMuxer(codec).frame(payload, pts, key)
    [(scr, got_pts, got)] = parse_ps(data)
    assert got == payload and got_pts == pts and scr == pts
    after_pack = 14 + (data[13] & 0x07)  # pack header + its stuffing: a key frame's system header comes next
    assert (data[after_pack:after_pack + 4] == ps_mod.SYSTEM_HEADER_START) == key  # (not searched: a payload may hold it)
