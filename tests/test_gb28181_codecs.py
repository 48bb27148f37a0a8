"""GB/T 28181 codecs under hypothesis: the SIP parser, the MANSCDP reader, RTP / RFC 4571 framing and the
reordering window, the PTZCmd encoder, digest auth; plus known vectors from the standard's examples."""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.gb28181 import digest, manscdp, ptz, rtp, sdp, sip

# -- SIP -------------------------------------------------------------------------------

_token = st.text(string.ascii_letters + string.digits + "-.!%*_+`'~", min_size=1, max_size=12)
_value = st.text(string.ascii_letters + string.digits + " <>@:;=.,/\"-_", min_size=0, max_size=40).map(str.strip)


@st.composite
def sip_messages(draw: st.DrawFn) -> sip.SipMessage:
    method = draw(st.sampled_from(["REGISTER", "MESSAGE", "INVITE", "BYE", "NOTIFY", "SUBSCRIBE", "OPTIONS"]))
    is_request = draw(st.booleans())
    msg = sip.SipMessage(method=method if is_request else "", uri=f"sip:{draw(_token)}@host" if is_request else "",
                         status=0 if is_request else draw(st.integers(100, 699)),
                         reason="" if is_request else draw(_value.filter(bool)), body=draw(st.binary(max_size=300)))
    extra = draw(st.lists(st.tuples(_token.filter(lambda t: t.lower() not in sip.COMPACT and
                                                  sip.canonical(t) not in ("Content-Length", "CSeq")), _value), max_size=6))
    msg.headers = [("Via", f"SIP/2.0/UDP 10.0.0.1:5060;branch={sip.new_branch()}"), ("From", f"<sip:{draw(_token)}@x>;tag=1"),
                   ("To", "<sip:a@b>"), ("Call-ID", draw(_token)), ("CSeq", f"{draw(st.integers(0, 2**31 - 1))} {method}")]
    msg.headers += [(sip.canonical(k), v) for k, v in extra]
    return msg


@settings(max_examples=400, deadline=None)
@given(sip_messages())
def test_sip_parse_of_encode_is_identity(msg: sip.SipMessage) -> None:
    for stream in (False, True):
        back = sip.parse(msg.encode(), stream=stream)
        assert (back.method, back.uri, back.status, back.reason, back.body) == (msg.method, msg.uri, msg.status, msg.reason, msg.body)
        assert [(k, v) for k, v in back.headers if k != "Content-Length"] == msg.headers


@settings(max_examples=800, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 20))
def test_sip_parser_raises_only_sip_error(data: bytes, cut: int) -> None:
    good = (b"MESSAGE sip:1@x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n"
            b"Call-ID: 1\r\nCSeq: 1 MESSAGE\r\nContent-Length: 5\r\n\r\nhello")
    for candidate in (data, good[: len(good) * cut // 20] + data, good + data, data.replace(b"\n", b"\r\n")):
        try:
            msg = sip.parse(candidate)
        except sip.SipError as exc:
            assert exc.status in (400, 413, 505)
            continue
        assert msg.method or msg.status


def test_sip_compact_headers_folding_and_answerable_errors() -> None:
    raw = (b"MESSAGE sip:34020000002000000001@3402000000 SIP/2.0\r\nv: SIP/2.0/UDP 1.2.3.4:5060;rport;branch=z9hG4bKa\r\n"
           b"f: <sip:34020000001320000001@3402000000>;tag=9\r\nt: <sip:34020000002000000001@3402000000>\r\ni: abc\r\n"
           b"CSeq: 20 MESSAGE\r\nSubject: a,\r\n  b\r\nl: 4\r\n\r\nbodyEXTRA")
    msg = sip.parse(raw)
    assert msg.call_id == "abc" and msg.body == b"body" and msg.get("Subject") == "a, b"
    assert sip.name_addr(msg.get("From")).user == "34020000001320000001" and sip.name_addr(msg.get("From")).tag == "9"
    resp = sip.response_to(msg, 200, "OK", "t1", ("5.6.7.8", 4000))
    assert "received=5.6.7.8" in resp.get("Via") and "rport=4000" in resp.get("Via") and resp.get("To").endswith(";tag=t1")
    with pytest.raises(sip.SipError) as bad:
        sip.parse(raw.replace(b"l: 4", b"l: 900"))
    assert bad.value.status == 400 and bad.value.partial is not None  # answerable: a 400 goes back
    with pytest.raises(sip.SipError) as big:
        sip.parse(raw.replace(b"l: 4", b"l: 99999"))
    assert big.value.status == 413
    with pytest.raises(sip.SipError) as headless:
        sip.parse(b"MESSAGE sip:a@b SIP/2.0\r\nVia: x\r\nno colon here\r\n\r\n")
    assert headless.value.partial is None  # no Call-ID/CSeq: nothing to answer, dropped


# -- digest -------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(password=st.text(string.printable.strip(), min_size=1, max_size=20), qop=st.booleans())
def test_digest_accepts_the_right_password_only(password: str, qop: bool) -> None:
    d = digest.Digest("3402000000")
    challenge = d.challenge() if qop else d.challenge().replace(', qop="auth"', "")
    user, uri = "34020000001320000001", "sip:34020000002000000001@3402000000"
    assert d.check(digest.answer(challenge, "REGISTER", uri, user, password), "REGISTER", user, password) == "ok"
    assert d.check(digest.answer(challenge, "REGISTER", uri, user, password + "x"), "REGISTER", user, password) == "wrong"
    assert d.check(digest.answer(challenge, "REGISTER", uri, user, password), "REGISTER", "other", password) == "bad"
    old = digest.Digest("3402000000", d._secret)
    stale = digest.answer(f'Digest realm="3402000000", nonce="{old.nonce(now=1.0)}"', "REGISTER", uri, user, password)
    assert d.check(stale, "REGISTER", user, password) == "stale"
    forged = digest.answer('Digest realm="3402000000", nonce="0123456789abcdef0123456789abcdef"', "REGISTER", uri, user, password)
    assert d.check(forged, "REGISTER", user, password) == "bad"


def test_digest_rfc2617_example() -> None:
    """RFC 2617 §3.5: Mufasa / Circle Of Life (the response for its qop=auth example)."""
    ha1 = digest.md5("Mufasa:testrealm@host.com:Circle Of Life")
    ha2 = digest.md5("GET:/dir/index.html")
    assert digest.md5(f"{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:00000001:0a4f113b:auth:{ha2}") == "6629fae49393a05397450978507c4ef1"


# -- MANSCDP -----------------------------------------------------------------------------

_xml_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)


@settings(max_examples=300, deadline=None)
@given(sn=st.integers(0, 10**8), device=st.from_regex(r"\d{20}", fullmatch=True), names=st.lists(_xml_text, max_size=5),
       charset=st.sampled_from(["GB2312", "UTF-8"]), total=st.integers(0, 50))
def test_manscdp_catalog_read_of_build_is_identity(sn: int, device: str, names: list[str], charset: str, total: int) -> None:
    if charset == "GB2312":
        names = [n for n in names if _gb_ok(n)]
    items = "".join(f"<Item><DeviceID>{device[:13]}{i:07d}</DeviceID><Name>{manscdp._escape(n)}</Name><Status>ON</Status>"
                    f"<Info><PTZType>1</PTZType></Info></Item>" for i, n in enumerate(names))
    body = manscdp.build("Response", "Catalog", sn, device, [("SumNum", str(total)),
                                                            ("<DeviceList>", f'<DeviceList Num="{len(names)}">{items}</DeviceList>')], charset)
    doc = manscdp.read(body, "Application/MANSCDP+xml")
    assert (doc.root, doc.cmd, doc.sn, doc.device_id) == ("Response", "Catalog", sn, device)
    part = manscdp.catalog(doc)
    assert part.sum_num == total and [i.name for i in part.items] == [n.strip() for n in names]
    assert all(i.ptz_type == 1 and i.status == "ON" for i in part.items)


def _gb_ok(text: str) -> bool:
    try:
        text.encode("gb18030").decode("gb18030")
        return "\r" not in text
    except UnicodeError:
        return False


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_manscdp_reader_raises_only_its_error(data: bytes) -> None:
    for body in (data, b'<?xml version="1.0" encoding="GB2312"?>' + data, b"<Notify><CmdType>" + data):
        try:
            manscdp.read(body)
        except manscdp.ManscdpError:
            pass


def test_manscdp_refuses_entities_and_reads_gb2312() -> None:
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
              b"<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>&lol2;</DeviceID></Notify>")
    with pytest.raises(manscdp.ManscdpError):
        manscdp.read(laughs)
    external = b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Notify><CmdType>&e;</CmdType></Notify>'
    with pytest.raises(manscdp.ManscdpError):
        manscdp.read(external)
    with pytest.raises(manscdp.ManscdpError):
        manscdp.read(b"<Notify>" + b"x" * 40000 + b"</Notify>")
    gb = '<?xml version="1.0" encoding="GB2312"?><Notify><CmdType>MobilePosition</CmdType><SN>7</SN><DeviceID>1</DeviceID>' \
         "<Name>球机一号</Name><Longitude>104.06</Longitude><Latitude>30.65</Latitude><Speed>36</Speed><Direction>370</Direction></Notify>"
    doc = manscdp.read(gb.encode("gb2312"))
    assert doc.text("Name") == "球机一号"
    pos = manscdp.mobile_position(doc)
    assert (pos.lat, pos.lon, pos.speed_kmh, pos.direction_deg, pos.alt_m) == (30.65, 104.06, 36.0, 10.0, None)
    # declared GB2312 but sent as UTF-8 (devices do this): still read
    assert manscdp.read(gb.encode("utf-8")).text("Name") == "球机一号"
    # charset only in the Content-Type
    bare = gb.replace(' encoding="GB2312"', "").encode("gb2312")
    assert manscdp.read(bare, "Application/MANSCDP+xml;charset=GB2312").text("Name") == "球机一号"


# -- PTZCmd ------------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(instr=st.integers(0, 255), d1=st.integers(0, 255), d2=st.integers(0, 255), d3=st.integers(0, 15),
       addr=st.integers(0, 0xFFF), version=st.integers(0, 15))
def test_ptzcmd_decode_of_encode_is_identity(instr: int, d1: int, d2: int, d3: int, addr: int, version: int) -> None:
    cmd = ptz.PtzCmd(instr, d1, d2, d3, addr, version)
    text = cmd.encode()
    assert len(text) == 16 and text.startswith("A5") and ptz.decode(text) == cmd
    b = bytes.fromhex(text)
    assert b[7] == sum(b[:7]) % 256 and b[6] >> 4 == d3  # zoom speed in the high nibble of byte 7
    broken = text[:14] + f"{(b[7] + 1) % 256:02X}"
    with pytest.raises(ptz.PtzError):
        ptz.decode(broken)


@settings(max_examples=300, deadline=None)
@given(pan=st.floats(-1, 1), tilt=st.floats(-1, 1), zoom=st.floats(-1, 1))
def test_ptz_speeds_survive_encoding_to_their_resolution(pan: float, tilt: float, zoom: float) -> None:
    back = ptz.speeds(ptz.decode(ptz.move(pan, tilt, zoom).encode()))
    for want, got, step in ((pan, back[0], 1 / 255), (tilt, back[1], 1 / 255), (zoom, back[2], 1 / 15)):
        assert abs(want - got) <= step / 2 + 1e-9 or (want != 0 and abs(got) == step)  # a slow move keeps speed 1
        assert (want > 0) == (got > 0) and (want < 0) == (got < 0)


def test_ptzcmd_known_vectors() -> None:
    # the research note's example (device-protocols.md): address 1, up, speeds 0x1E, zoom speed 1
    assert ptz.PtzCmd(0x08, 0x1E, 0x1E, 0x1, address=1).encode() == "A50F01081E1E1009"
    assert ptz.decode("A50F01081E1E1009") == ptz.PtzCmd(0x08, 0x1E, 0x1E, 1, 1)
    assert ptz.stop().encode() == "A50F0000000000B4"
    assert ptz.move(1.0, 0, 0).encode() == "A50F0001FF0000B4"  # right at full speed: 0xA5+0x0F+0x01+0xFF = 0x1B4
    assert ptz.preset(3).encode() == "A50F008200030039"  # call preset 3: number in byte 6
    for bad in (1.5, -1.01):
        with pytest.raises(ptz.PtzError):
            ptz.move(bad, 0, 0)


# -- RTP and RFC 4571 -------------------------------------------------------------------


@st.composite
def rtp_packets(draw: st.DrawFn) -> rtp.RtpPacket:
    return rtp.RtpPacket(draw(st.integers(0, 127)), draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 2**32 - 1)),
                         draw(st.integers(0, 2**32 - 1)), draw(st.booleans()), draw(st.binary(max_size=200)))


@settings(max_examples=300, deadline=None)
@given(st.lists(rtp_packets(), min_size=1, max_size=20), st.lists(st.integers(1, 50), min_size=1, max_size=10))
def test_rfc4571_framing_splits_back_whatever_the_chunking(packets: list[rtp.RtpPacket], cuts: list[int]) -> None:
    stream = b"".join(rtp.frame4571(p.encode()) for p in packets)
    dec = rtp.Rfc4571Decoder()
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(stream):
        n = cuts[i % len(cuts)]
        out += dec.feed(stream[pos:pos + n])
        pos += n
        i += 1
    assert [rtp.parse(b) for b in out] == packets and dec.pending == 0


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80))
def test_rtp_parser_raises_only_its_error(data: bytes) -> None:
    for candidate in (data, b"\x80" + data, b"\xb0" + data, b"\xa0" + data):
        try:
            pkt = rtp.parse(candidate)
        except rtp.RtpError:
            continue
        assert len(pkt.payload) <= len(candidate) - 12


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, 0xFFFF), n=st.integers(1, 200), seed=st.integers(0, 2**32), loss=st.floats(0, 0.2),
       dup=st.floats(0, 0.2))
def test_reorder_puts_back_in_order_counts_losses_and_duplicates(start: int, n: int, seed: int, loss: float, dup: float) -> None:
    rnd = random.Random(seed)
    sent = [rtp.RtpPacket(96, (start + i) & 0xFFFF, i, 1, False, bytes([i % 256])) for i in range(n)]
    lost = {i for i in range(1, n) if rnd.random() < loss}  # the first always arrives
    wire = [q for i, p in enumerate(sent) if i not in lost for q in ([p, p] if rnd.random() < dup else [p])]
    # shuffle within a small distance (as networks do), never more than the window
    keyed = sorted(range(len(wire)), key=lambda k: k + rnd.uniform(-5, 5) if k else -10)  # the first one starts it
    wire = [wire[k] for k in keyed]
    reorder = rtp.Reorder(window=16, max_wait_s=10.0)
    out = []
    for p in wire:
        out += reorder.push(p, 0.0)
    out += reorder._flush_all()
    seqs = [p.seq for p, _ in out]
    assert len(seqs) == len(set(seqs)), "nothing delivered twice"
    assert [(s - start) & 0xFFFF for s in seqs] == sorted((s - start) & 0xFFFF for s in seqs), "in order"
    assert set(seqs) == {p.seq for i, p in enumerate(sent) if i not in lost}, "every packet that came is delivered"
    assert reorder.counts["late_or_duplicate"] == len(wire) - len(set(p.seq for p in wire))
    assert reorder.counts["lost"] <= len(lost)


def test_reorder_gives_up_a_gap_after_the_window_and_restarts_on_a_jump() -> None:
    r = rtp.Reorder(window=4, max_wait_s=10.0)
    pk = [rtp.RtpPacket(96, s, 0, 1, False, b"x") for s in range(65530, 65536)] + [rtp.RtpPacket(96, s, 0, 1, False, b"x") for s in range(0, 10)]
    assert len(r.push(pk[0], 0)) == 1
    assert r.push(pk[2], 0) == []  # 65531 missing
    for p in pk[3:6]:
        assert r.push(p, 0) == []
    out = r.push(pk[6], 0)  # 5 held > window 4: the gap is given up, across the wrap
    assert [p.seq for p, _ in out] == [65532, 65533, 65534, 65535, 0] and out[0][1] is True
    assert r.counts["lost"] == 1
    assert r.push(pk[6], 0) == [] and r.counts["late_or_duplicate"] == 1
    far = rtp.RtpPacket(96, 30000, 0, 1, False, b"y")
    assert r.push(far, 0) == [] and r.counts["out_of_range"] == 1  # a lone stray: dropped
    assert [p.seq for p, _ in r.push(rtp.RtpPacket(96, 30001, 0, 1, False, b"y"), 0)] == [30001]  # ...unless followed
    assert r.counts["restarts"] == 1
    timed = rtp.Reorder(window=100, max_wait_s=0.2)
    timed.push(rtp.RtpPacket(96, 1, 0, 1, False, b""), 0.0)
    assert timed.push(rtp.RtpPacket(96, 3, 0, 1, False, b""), 0.0) == []
    assert [p.seq for p, _ in timed.push(rtp.RtpPacket(96, 4, 0, 1, False, b""), 0.5)] == [3, 4]


def test_rtp_header_extension_csrc_and_padding() -> None:
    pkt = bytes([0xB1, 0xE0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 7]) + b"CSRC" + b"\xbe\xde\x00\x01" + b"EXT!" + b"PS" + b"\x00\x00\x03"
    p = rtp.parse(pkt)
    assert (p.payload, p.marker, p.payload_type, p.seq, p.timestamp, p.ssrc) == (b"PS", True, 96, 5, 9, 7)


def test_sdp_offer_and_answer() -> None:
    offer = sdp.Offer("34020000002000000001", "10.1.2.3", 30000, "0200000001", "tcp-passive").encode().decode()
    for line in ("s=Play", "c=IN IP4 10.1.2.3", "m=video 30000 TCP/RTP/AVP 96", "a=rtpmap:96 PS/90000", "a=setup:passive",
                 "a=recvonly", "y=0200000001"):
        assert line + "\r\n" in offer
    ans = sdp.parse_answer(b"v=0\r\no=x 0 0 IN IP4 10.9.9.9\r\ns=Play\r\nc=IN IP4 10.9.9.9\r\nt=0 0\r\n"
                           b"m=video 40000 TCP/RTP/AVP 96\r\na=sendonly\r\na=rtpmap:96 PS/90000\r\na=setup:active\r\ny=0200000001\r\nf=v/2/5/25/1/1000a///\r\n")
    assert (ans.ip, ans.port, ans.tcp, ans.setup, ans.ssrc, ans.encoding) == ("10.9.9.9", 40000, True, "active", "0200000001", "PS")
    with pytest.raises(sdp.SdpError):
        sdp.parse_answer(b"v=0\r\n")
