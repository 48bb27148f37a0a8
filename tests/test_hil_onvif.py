"""The ONVIF PTZ dome camera simulator (hil.onvif), run as a real subprocess on 127.0.0.1.

Driven the way the gateway's driver will drive a camera: with onvif-zeep-async (zeep and the ONVIF WSDLs),
and with raw SOAP built here (UsernameToken digests computed independently of hil.onvif) for what a
client library would never send: wrong tokens, replays, malformed XML, entity expansion.
The RTSP stream it names is opened with PyAV in a child process and a frame decoded.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.procs import ROOT
from tests.serial_sims import SimProcess

onvif = pytest.importorskip("onvif")
zeep = pytest.importorskip("zeep")

USER, PASSWORD = "admin", "s3cret!"
ENV = "http://www.w3.org/2003/05/soap-envelope"
DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"

DECODE = r"""
import json, sys
import av
c = av.open(sys.argv[1], options={"rtsp_transport": "tcp"}, timeout=10)
for frame in c.decode(video=0):
    print(json.dumps({"width": frame.width, "height": frame.height, "codec": c.streams.video[0].codec_context.name}))
    break
c.close()
"""


class Sim(SimProcess):
    def __init__(self, *args: str) -> None:
        super().__init__("hil.onvif", ["--user", f"{USER}:{PASSWORD}", "--log-level", "INFO", *args],
                         ready_timeout=60.0)
        self.host, self.port = self.ready["http"]


@pytest.fixture(scope="module")
def cam() -> Iterator[Sim]:
    sim = Sim("--ptz-timeout", "2", "--gps", "30.5,104.1,480")
    yield sim
    assert sim.stop() == 0


def decode_one(url: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", DECODE, url], cwd=ROOT, capture_output=True, text=True, timeout=40)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- raw SOAP, independent of hil.onvif ------------------------------------------------------------------

def token(user: str = USER, password: str = PASSWORD, kind: str = DIGEST, created: str | None = None,
          nonce: bytes | None = None) -> str:
    created = created or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    nonce = nonce if nonce is not None else os.urandom(16)
    pw = (base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()
          if kind == DIGEST else password)
    return ('<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" '
            'xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd" '
            f'env:mustUnderstand="true"><wsse:UsernameToken><wsse:Username>{user}</wsse:Username>'
            f'<wsse:Password Type="{kind}">{pw}</wsse:Password><wsse:Nonce>{base64.b64encode(nonce).decode()}'
            f"</wsse:Nonce><wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>")


def soap(body: str, header: str = "") -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="{ENV}" '
            'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" '
            'xmlns:tptz="http://www.onvif.org/ver20/ptz/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">'
            f"<env:Header>{header}</env:Header><env:Body>{body}</env:Body></env:Envelope>").encode()


def post(sim: Sim, path: str, data: bytes, method: str = "POST") -> tuple[int, str]:
    conn = http.client.HTTPConnection(sim.host, sim.port, timeout=10)
    try:
        conn.request(method, path, body=data, headers={"Content-Type": "application/soap+xml; charset=utf-8"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def subcodes(text: str) -> list[str]:
    import xml.etree.ElementTree as ET
    root = ET.fromstring(text)
    return [v.text or "" for v in root.iter(f"{{{ENV}}}Value")]


# -- zeep ---------------------------------------------------------------------------------------------------

async def client(sim: Sim, password: str = PASSWORD, adjust_time: bool = True) -> onvif.ONVIFCamera:
    c = onvif.ONVIFCamera(sim.host, sim.port, USER, password, adjust_time=adjust_time, no_cache=True)
    await c.update_xaddrs()
    return c


def fault_codes(exc: BaseException) -> list[str]:
    if isinstance(exc, zeep.exceptions.Fault):
        return [str(getattr(s, "localname", s)) for s in (exc.subcodes or [])]
    return [str(exc)]


async def test_discovery_profiles_stream_uri_and_video_plays(cam: Sim) -> None:
    c = await client(cam)
    try:
        assert c.xaddrs["http://www.onvif.org/ver20/ptz/wsdl"] == f"http://{cam.host}:{cam.port}/onvif/ptz_service"
        dev = await c.create_devicemgmt_service()
        info = await dev.GetDeviceInformation()
        assert info.Manufacturer == "fieldgw-hil" and info.Model
        media = await c.create_media_service()
        profiles = await media.GetProfiles()
        assert [p.token for p in profiles] == ["Profile_1", "Profile_2"]
        main = profiles[0]
        assert main.VideoEncoderConfiguration.Encoding == "H264"
        assert (main.VideoEncoderConfiguration.Resolution.Width, main.VideoEncoderConfiguration.Resolution.Height) \
            == (1280, 720)
        assert main.VideoEncoderConfiguration.RateControl.FrameRateLimit == 25
        assert main.PTZConfiguration.token == "PTZConfig_1"
        uri = await media.GetStreamUri({"StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                                        "ProfileToken": "Profile_1"})
        assert uri.Uri == cam.ready["profiles"]["Profile_1"] and uri.Uri.startswith("rtsp://127.0.0.1:")
        frame = await asyncio.to_thread(decode_one, uri.Uri)
        assert frame == {"width": 1280, "height": 720, "codec": "h264"}
        with pytest.raises(zeep.exceptions.Fault) as exc:  # multicast is not offered
            await media.GetStreamUri({"StreamSetup": {"Stream": "RTP-Multicast", "Transport": {"Protocol": "UDP"}},
                                      "ProfileToken": "Profile_1"})
        assert "InvalidStreamSetup" in fault_codes(exc.value)
    finally:
        await c.close()


async def test_wrong_password_refused_with_not_authorized(cam: Sim) -> None:
    before = cam.control("status")["auth_failures"]
    c = onvif.ONVIFCamera(cam.host, cam.port, USER, "wrong", adjust_time=True, no_cache=True)
    try:
        dev = await c.create_devicemgmt_service()
        # the clock is open to anyone, as on real cameras
        assert (await dev.GetSystemDateAndTime()).UTCDateTime.Date.Year >= 2024
        with pytest.raises(Exception) as exc:
            await dev.GetDeviceInformation()
        assert "NotAuthorized" in fault_codes(exc.value)
    finally:
        await c.close()
    st = cam.control("status")
    assert st["auth_failures"] == before + 1 and "wrong password digest" in st["last_auth_failure"]


def test_raw_usernametoken_digest_text_missing_stale_replay(cam: Sim) -> None:
    body = "<tds:GetDeviceInformation/>"
    assert post(cam, "/onvif/device_service", soap(body, token()))[0] == 200
    assert post(cam, "/onvif/device_service", soap(body, token(kind=TEXT)))[0] == 200
    status, text = post(cam, "/onvif/device_service", soap(body))
    assert status == 400 and subcodes(text) == ["env:Sender", "ter:NotAuthorized"]
    status, text = post(cam, "/onvif/device_service", soap(body, token(password="nope", kind=TEXT)))
    assert status == 400 and "ter:NotAuthorized" in subcodes(text)
    stale = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, text = post(cam, "/onvif/device_service", soap(body, token(created=stale)))
    assert status == 400 and "ter:NotAuthorized" in subcodes(text)
    assert "from the camera's clock" in cam.control("status")["last_auth_failure"]
    once = token(nonce=b"0123456789abcdef")
    assert post(cam, "/onvif/device_service", soap(body, once))[0] == 200
    status, _ = post(cam, "/onvif/device_service", soap(body, once))  # the same nonce again: a replay
    assert status == 400 and cam.control("status")["last_auth_failure"] == "nonce replayed"
    # GetSystemDateAndTime needs no token at all
    status, text = post(cam, "/onvif/device_service", soap("<tds:GetSystemDateAndTime/>"))
    assert status == 200 and "UTCDateTime" in text


def test_malformed_entities_unknown_actions_and_http_errors(cam: Sim) -> None:
    status, text = post(cam, "/onvif/device_service", b"<env:Envelope xmlns:env='" + ENV.encode() + b"'><env:Body>")
    assert status == 400 and "ter:WellFormed" in subcodes(text)
    laughs = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">'
              b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]>'
              + soap("<tds:GetDeviceInformation>&lol3;</tds:GetDeviceInformation>", token())[38:])
    status, text = post(cam, "/onvif/device_service", laughs)
    assert status == 400 and "ter:WellFormed" in subcodes(text) and "lollol" not in text
    status, text = post(cam, "/onvif/device_service", soap("<tds:NoSuchThing/>", token()))
    assert status == 500 and subcodes(text) == ["env:Receiver", "ter:ActionNotSupported"]
    status, text = post(cam, "/onvif/device_service", soap("<x:Foo xmlns:x='urn:x'/>", token()))
    assert status == 400 and "ter:UnknownAction" in subcodes(text)
    status, text = post(cam, "/onvif/device_service", soap("<trt:GetProfiles/>", token()))  # wrong XAddr
    assert status == 400 and "ter:UnknownAction" in subcodes(text)
    soap11 = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x/></s:Body></s:Envelope>'
    status, text = post(cam, "/onvif/device_service", soap11)
    assert status == 500 and subcodes(text) == ["env:VersionMismatch"]
    header = '<h:Thing xmlns:h="urn:h" env:mustUnderstand="true"/>'
    status, text = post(cam, "/onvif/device_service", soap("<tds:GetSystemDateAndTime/>", header))
    assert status == 500 and subcodes(text) == ["env:MustUnderstand"]
    assert post(cam, "/onvif/device_service", b"", method="GET")[0] == 405
    assert post(cam, "/nothing", b"x")[0] == 404
    assert post(cam, "/onvif/device_service", b"x" * (300 * 1024))[0] == 413
    with socket.create_connection((cam.host, cam.port), timeout=5) as s:  # junk: 400 and closed, nobody else hurt
        s.sendall(b"\x16\x03\x01\x00\xff garbage\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    assert post(cam, "/onvif/device_service", soap("<tds:GetDeviceInformation/>", token()))[0] == 200
    assert cam.control("status")["faults"]["ter:WellFormed"] >= 2


async def test_ptz_continuous_stop_timeout_absolute_and_status(cam: Sim) -> None:
    c = await client(cam)
    try:
        ptz = await c.create_ptz_service()
        prof = {"ProfileToken": "Profile_1"}
        await ptz.AbsoluteMove({**prof, "Position": {"PanTilt": {"x": 0, "y": 0}, "Zoom": {"x": 0}}})
        await asyncio.sleep(0.1)
        st = await ptz.GetStatus(prof)
        assert st.MoveStatus.PanTilt == "IDLE" and st.Position.PanTilt.x == pytest.approx(0, abs=1e-6)
        assert st.Position.PanTilt.space.endswith("PositionGenericSpace")
        # vendor-specific GPS in the PTZStatus extension (documented as this simulator's own)
        geo = st._value_1[0]
        assert geo.tag == "{urn:fieldgw:hil:onvif}GeoLocation" and float(geo.get("lat")) == pytest.approx(30.5)

        await ptz.ContinuousMove({**prof, "Velocity": {"PanTilt": {"x": 0.5, "y": -0.2}, "Zoom": {"x": 0.4}}})
        await asyncio.sleep(0.6)
        st = await ptz.GetStatus(prof)
        assert st.MoveStatus.PanTilt == "MOVING" and st.MoveStatus.Zoom == "MOVING"
        assert st.Position.PanTilt.x > 0.1 and st.Position.PanTilt.y < -0.03 and st.Position.Zoom.x > 0.05
        await ptz.Stop(prof)
        stopped = await ptz.GetStatus(prof)
        assert stopped.MoveStatus.PanTilt == "IDLE" and stopped.MoveStatus.Zoom == "IDLE"
        await asyncio.sleep(0.4)
        later = await ptz.GetStatus(prof)
        assert later.Position.PanTilt.x == pytest.approx(stopped.Position.PanTilt.x, abs=1e-6)
        # pan 0.5 = 0.25 generic units per second (the fastest is 0.5/s)
        assert stopped.Position.PanTilt.x == pytest.approx(0.25 * 0.6, abs=0.08)

        # a move with a Timeout stops by itself
        await ptz.ContinuousMove({**prof, "Velocity": {"PanTilt": {"x": -1, "y": 0}}, "Timeout": dt.timedelta(seconds=0.3)})
        await asyncio.sleep(0.6)
        st = await ptz.GetStatus(prof)
        assert st.MoveStatus.PanTilt == "IDLE"
        assert st.Position.PanTilt.x == pytest.approx(stopped.Position.PanTilt.x - 0.15, abs=0.03)

        with pytest.raises(zeep.exceptions.Fault) as exc:
            await ptz.ContinuousMove({**prof, "Velocity": {"PanTilt": {"x": 1.5, "y": 0}}})
        assert "InvalidVelocity" in fault_codes(exc.value)
        with pytest.raises(zeep.exceptions.Fault) as exc:
            await ptz.GetStatus({"ProfileToken": "nope"})
        assert "NoProfile" in fault_codes(exc.value)

        await ptz.AbsoluteMove({**prof, "Position": {"PanTilt": {"x": 0.2, "y": 0.1}, "Zoom": {"x": 0.5}},
                                "Speed": {"PanTilt": {"x": 1, "y": 1}, "Zoom": {"x": 1}}})
        st = await ptz.GetStatus(prof)
        assert st.MoveStatus.PanTilt == "MOVING" or st.Position.PanTilt.x == pytest.approx(0.2)
        await asyncio.sleep(2.2)
        st = await ptz.GetStatus(prof)
        assert st.MoveStatus.PanTilt == "IDLE" and st.MoveStatus.Zoom == "IDLE"
        assert (st.Position.PanTilt.x, st.Position.PanTilt.y, st.Position.Zoom.x) == pytest.approx((0.2, 0.1, 0.5))
        assert cam.control("status")["ptz"]["pan"] == pytest.approx(0.2)
    finally:
        await c.close()


async def test_presets_set_get_goto_remove(cam: Sim) -> None:
    cam.control("ptz -0.5 0.25 0.3")
    c = await client(cam)
    try:
        ptz = await c.create_ptz_service()
        prof = {"ProfileToken": "Profile_1"}
        tok = await ptz.SetPreset({**prof, "PresetName": "gate"})
        with pytest.raises(zeep.exceptions.Fault) as exc:
            await ptz.SetPreset({**prof, "PresetName": "gate"})
        assert "PresetExist" in fault_codes(exc.value)
        presets = await ptz.GetPresets(prof)
        gate = next(p for p in presets if p.token == tok)
        assert gate.Name == "gate"
        assert (gate.PTZPosition.PanTilt.x, gate.PTZPosition.PanTilt.y, gate.PTZPosition.Zoom.x) \
            == pytest.approx((-0.5, 0.25, 0.3))
        cam.control("ptz 0.5 0 0")
        await ptz.GotoPreset({**prof, "PresetToken": tok})
        await asyncio.sleep(2.5)  # half a turn the short way round (across ±1) at full speed
        st = await ptz.GetStatus(prof)
        assert (st.Position.PanTilt.x, st.Position.PanTilt.y, st.Position.Zoom.x) == pytest.approx((-0.5, 0.25, 0.3))
        await ptz.RemovePreset({**prof, "PresetToken": tok})
        with pytest.raises(zeep.exceptions.Fault) as exc:
            await ptz.GotoPreset({**prof, "PresetToken": tok})
        assert "NoToken" in fault_codes(exc.value)
    finally:
        await c.close()


async def test_encoder_configuration_round_trip_restarts_the_stream(cam: Sim) -> None:
    c = await client(cam)
    try:
        media = await c.create_media_service()
        opts = await media.GetVideoEncoderConfigurationOptions({"ConfigurationToken": "VideoEncoder_2"})
        assert {(r.Width, r.Height) for r in opts.H264.ResolutionsAvailable} >= {(320, 180), (640, 360)}
        conf = await media.GetVideoEncoderConfiguration({"ConfigurationToken": "VideoEncoder_2"})
        conf.Resolution.Width, conf.Resolution.Height = 320, 180
        conf.RateControl.FrameRateLimit, conf.RateControl.BitrateLimit, conf.H264.GovLength = 10, 300, 20
        await media.SetVideoEncoderConfiguration({"Configuration": conf, "ForcePersistence": True})
        back = await media.GetVideoEncoderConfiguration({"ConfigurationToken": "VideoEncoder_2"})
        assert (back.Resolution.Width, back.Resolution.Height, back.RateControl.FrameRateLimit,
                back.RateControl.BitrateLimit, back.H264.GovLength) == (320, 180, 10, 300, 20)
        profiles = await media.GetProfiles()
        assert profiles[1].VideoEncoderConfiguration.Resolution.Width == 320
        conf.Resolution.Width, conf.Resolution.Height = 333, 111
        with pytest.raises(zeep.exceptions.Fault) as exc:
            await media.SetVideoEncoderConfiguration({"Configuration": conf, "ForcePersistence": True})
        assert "ConfigModify" in fault_codes(exc.value)
        deadline = time.monotonic() + 20
        while cam.control("status")["profiles"][1]["video"]["starts"] < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        frame = await asyncio.to_thread(decode_one, cam.ready["profiles"]["Profile_2"])  # same URL, new size
        assert (frame["width"], frame["height"]) == (320, 180)
    finally:
        await c.close()


async def test_camera_clock_off_needs_time_adjustment() -> None:
    sim = Sim("--profiles", "1", "--clock-offset", "-3600", "--rtsp-url", "rtsp://127.0.0.1:9/none")
    try:
        status, _ = post(sim, "/onvif/device_service", soap("<tds:GetDeviceInformation/>", token()))
        assert status == 400  # our Created is an hour ahead of the camera's clock
        c = await client(sim, adjust_time=True)  # reads GetSystemDateAndTime, signs with the camera's time
        try:
            dev = await c.create_devicemgmt_service()
            assert (await dev.GetDeviceInformation()).SerialNumber == "SIM0001"
        finally:
            await c.close()
    finally:
        assert sim.stop() == 0


def test_reboot_set_password_and_ws_discovery() -> None:
    sim = Sim("--profiles", "1", "--reboot-s", "1.5", "--discovery", "127.0.0.1:0")
    try:
        body = soap("<tds:GetDeviceInformation/>", token())
        assert post(sim, "/onvif/device_service", body)[0] == 200
        # WS-Discovery Probe on loopback → ProbeMatch naming the device service
        probe = (f'<s:Envelope xmlns:s="{ENV}" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
                 'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
                 'xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><s:Header><a:MessageID>urn:uuid:1234</a:MessageID>'
                 '<a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>'
                 '<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action></s:Header>'
                 '<s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body></s:Envelope>')
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(3)
            u.sendto(probe.encode(), tuple(sim.ready["discovery"]))
            reply = u.recv(65536).decode()
        assert "ProbeMatch" in reply and "urn:uuid:1234" in reply and sim.ready["device_service"] in reply

        assert sim.control("reboot")["ok"]
        time.sleep(0.5)
        with pytest.raises(OSError):
            post(sim, "/onvif/device_service", soap("<tds:GetDeviceInformation/>", token()))
        deadline = time.monotonic() + 20
        while True:
            try:
                if post(sim, "/onvif/device_service", soap("<tds:GetDeviceInformation/>", token()))[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the camera did not come back"
            time.sleep(0.2)
        assert decode_one(sim.ready["profiles"]["Profile_1"])["width"] == 1280  # RTSP back on the same URL
        assert sim.control("set_password n3w")["ok"]
        assert post(sim, "/onvif/device_service", soap("<tds:GetDeviceInformation/>", token()))[0] == 400
        assert post(sim, "/onvif/device_service",
                    soap("<tds:GetDeviceInformation/>", token(password="n3w")))[0] == 200
        st = sim.control("status")
        assert st["reboots"] == 1 and st["auth_failures"] == 1 and st["requests"]["GetDeviceInformation"] >= 3
    finally:
        assert sim.stop() == 0
