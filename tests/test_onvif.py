"""ONVIF cameras (drivers/onvif) against the ONVIF camera simulator (hil.onvif): the stream URI found and
the video played through the gateway by a WHEP client, PTZ moves, stops, presets and the move timeout
(checked on the simulator's control port), wrong passwords, a wrong camera clock, a reboot, the encoder
profile audited and applied; and the driver's XML safety against a hostile answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from drivers.onvif import encoder
from drivers.onvif.driver import OnvifDriver, with_credentials
from drivers.onvif.session import CameraSession, OnvifError
from gateway.config_tool import run_config
from gateway.driver_api import DeviceSpec, LinkSpec
from gateway.kit import load_kit
from gateway.model import Event, Position, StatusUpdate, StreamOffer
from tests.procs import FIRMWARE, write_kit
from tests.serial_sims import OrderedCollector, SimProcess, supervised, until
from tests.test_media_whep import first_frame, media_gateway

PROFILE = FIRMWARE / "onvif" / "sim_dome.yaml"
USER, PASSWORD = "operator", "s3cret-Pa55"


@contextlib.contextmanager
def camera(*args: str) -> Iterator[SimProcess]:
    sim = SimProcess("hil.onvif", ["--listen", "127.0.0.1:0", "--user", f"{USER}:{PASSWORD}", *args], ready_timeout=30)
    try:
        yield sim
    finally:
        sim.stop()


def device(sim: SimProcess, dev_id: str = "dome-1", password: str = PASSWORD, **options: Any) -> dict[str, Any]:
    host, port = sim.ready["http"]
    return {"id": dev_id, "driver": "onvif", "kind": "camera", "transport": f"onvif://{host}:{port}",
            "profile": "onvif/sim_dome.yaml",
            "options": {"user": USER, "password": password, "status_s": 0.3, "timeout_s": 2, **options}}


def driver_for(sim: SimProcess, password: str = PASSWORD, **options: Any) -> tuple[OnvifDriver, OrderedCollector]:
    d = device(sim, password=password, **options)
    spec = DeviceSpec(d["id"], "camera", d["id"], d["transport"], yaml.safe_load(PROFILE.read_text()), d["options"])
    ctx = OrderedCollector()
    return OnvifDriver(LinkSpec("onvif", d["transport"], (spec,)), ctx), ctx


def ptz(sim: SimProcess) -> dict[str, Any]:
    return sim.control("status")["ptz"]


async def wait_json(client: httpx.AsyncClient, path: str, pred: Any, timeout: float, what: str) -> Any:
    found: list[Any] = []

    async def poll() -> Any:
        while True:
            body = (await client.get(path)).json()
            found[:] = [body]
            if pred(body):
                return body
            await asyncio.sleep(0.1)
    try:
        return await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}; last: {found}") from None


async def command(client: httpx.AsyncClient, dev: str, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await client.post(f"/api/v1/devices/{dev}/commands", json={"command": name, "args": args or {}})
    assert r.status_code == 202, r.text
    cmd_id = r.json()["id"]
    return await wait_json(client, f"/api/v1/commands/{cmd_id}", lambda c: c["status"] in ("done", "failed", "timeout"),
                           10, f"{name} to finish")


# -- against the simulator, through the gateway ----------------------------------------------------------

async def test_stream_plays_ptz_moves_stops_and_goes_to_a_preset(tmp_path: Path) -> None:
    with camera() as sim:
        async with media_gateway(tmp_path, [], devices=[device(sim)]) as (gw, client):
            dev = await wait_json(client, "/api/v1/devices/dome-1", lambda d: d["online"] and d["streams"], 20,
                                  "the camera online with its stream")
            assert dev["streams"] == ["dome-1-video"] and set(dev["commands"]) == {"ptz_move", "ptz_stop", "ptz_preset"}
            assert dev["status"]["onvif"]["profile"] == "Profile_1" and dev["status"]["auth"] == "ok"
            await wait_json(client, "/api/v1/streams", lambda ss: any(x["id"] == "dome-1-video" and x["state"] == "live"
                                                                     for x in ss), 20, "the stream live")
            frame = await first_frame(client, "dome-1-video", timeout=20)
            assert (frame.width, frame.height) == (1280, 720)  # the main profile's stream, from GetStreamUri
            # the camera's GPS (the simulator's vendor element in PTZStatus) becomes its position
            dev = await wait_json(client, "/api/v1/devices/dome-1", lambda d: d["position"], 5, "a position")
            assert dev["position"]["source"] == "onvif"
            assert dev["position"]["lat"] == pytest.approx(30.6586) and dev["position"]["lon"] == pytest.approx(104.0648)

            # out of range: refused by the gateway, nothing reaches the camera
            moves = ptz(sim)["moves"]
            r = await client.post("/api/v1/devices/dome-1/commands", json={"command": "ptz_move", "args": {"pan": 1.5}})
            assert r.status_code == 400
            assert ptz(sim)["moves"] == moves

            done = await command(client, "dome-1", "ptz_move", {"pan": 0.8, "tilt": 0.4})
            assert done["status"] == "done", done
            await until(lambda: ptz(sim)["moving"]["pan_tilt"] and ptz(sim)["pan"] > 0.05, 5, "the dome turning")
            await wait_json(client, "/api/v1/devices/dome-1", lambda d: d["status"]["ptz"]["moving"], 5,
                            "GetStatus says moving")
            assert ptz(sim)["velocity"]["pan"] == pytest.approx(0.8) and ptz(sim)["velocity"]["tilt"] == pytest.approx(0.4)
            # each ptz_move is the whole motion: an axis it does not name stops
            assert (await command(client, "dome-1", "ptz_move", {"zoom": 0.5}))["status"] == "done"
            await until(lambda: ptz(sim)["velocity"] == {"pan": 0.0, "tilt": 0.0, "zoom": 0.5}, 3, "zoom only")
            assert (await command(client, "dome-1", "ptz_stop"))["status"] == "done"
            await until(lambda: not ptz(sim)["moving"]["pan_tilt"], 3, "the dome stopped")
            still = ptz(sim)["pan"]
            await asyncio.sleep(0.5)
            assert ptz(sim)["pan"] == still
            await wait_json(client, "/api/v1/devices/dome-1", lambda d: d["status"]["ptz"]["moving"] is False, 5,
                            "GetStatus says stopped")

            # a preset set on the camera after the gateway connected: found by number
            sim.control("ptz 0.5 -0.2 0.3")
            setter = CameraSession(*sim.ready["http"], USER, PASSWORD, 5)
            try:
                facts = await setter.connect(None)
                await setter.call("SetPreset", setter._ptz.SetPreset({"ProfileToken": facts.profile.token,
                                                                    "PresetName": "gate"}))
            finally:
                await setter.close()
            sim.control("ptz 0 0 0")
            assert (await command(client, "dome-1", "ptz_preset", {"preset": 1}))["status"] == "done"
            await until(lambda: ptz(sim)["pan"] == pytest.approx(0.5, abs=0.01) and ptz(sim)["zoom"] == pytest.approx(0.3, abs=0.01),
                        5, "the dome at preset 1")
            failed = await command(client, "dome-1", "ptz_preset", {"preset": 9})
            assert failed["status"] == "failed" and "no preset 9" in failed["detail"]


async def test_move_timeout_stops_the_dome_when_the_stop_is_lost() -> None:
    with camera() as sim:
        drv, ctx = driver_for(sim, move_timeout_s=1)
        async with supervised(drv, ctx=ctx):
            await ctx.wait(lambda: ctx.online.get("dome-1"), 20, "online")
            await drv.execute("dome-1", "ptz_move", {"zoom": 1.0}, lambda: None)
            await until(lambda: ptz(sim)["moving"]["zoom"], 3, "zooming")
            await until(lambda: not ptz(sim)["moving"]["zoom"], 3, "stopped by the move's own Timeout")
            assert 0.15 < ptz(sim)["zoom"] < 0.4  # 0.25 a second for about one second


@pytest.mark.parametrize("fail_status", ["400", "401"])
async def test_wrong_password_is_refused_and_never_online(fail_status: str) -> None:
    with camera("--auth-fail-status", fail_status) as sim:
        drv, ctx = driver_for(sim, password="wrong")
        async with supervised(drv, ctx=ctx, restart_after_s=0.3) as failures:
            await until(lambda: len(failures) >= 3, 15, "three refused attempts")
        assert "dome-1" not in ctx.online or ctx.online["dome-1"] is False
        assert not ctx.of(StreamOffer)
        auth = [m.status["auth"] for m in ctx.of(StatusUpdate, "dome-1") if "auth" in m.status]
        assert auth and all(a.startswith("refused") for a in auth)
        events = [e for e in ctx.of(Event, "dome-1") if e.type == "auth_failed"]
        assert len(events) == 1  # one event for the streak, not one per attempt
        assert sim.control("status")["auth_failures"] >= 3


async def test_wrong_clock_reboot_and_password_change() -> None:
    with camera("--clock-offset", "-5400", "--profiles", "1") as sim:
        drv, ctx = driver_for(sim)
        async with supervised(drv, ctx=ctx, restart_after_s=0.5):
            await ctx.wait(lambda: ctx.online.get("dome-1"), 20, "online despite the camera's clock")
            onvif = next(m.status["onvif"] for m in ctx.of(StatusUpdate, "dome-1") if "onvif" in m.status)
            assert onvif["clock_offset_s"] == pytest.approx(-5400, abs=3)
            assert len(ctx.of(StreamOffer)) == 1
            sim.control("reboot 2")
            await ctx.wait(lambda: ctx.online.get("dome-1") is False, 10, "offline while it reboots")
            await ctx.wait(lambda: ctx.online.get("dome-1"), 20, "online after the reboot")
            offers = ctx.of(StreamOffer)
            assert len(offers) == 2 and offers[0].url == offers[1].url  # offered again; the relay reconnects
            # the password is changed on the camera: the session is refused, visibly, and stays offline
            sim.control(f"set_password another-one {USER}")
            sim.control("reboot 1")
            await ctx.wait(lambda: any(e.type == "auth_failed" for e in ctx.of(Event, "dome-1")), 20, "auth_failed")
            assert ctx.online.get("dome-1") is False


async def test_encoder_profile_audit_apply_round_trip(tmp_path: Path) -> None:
    with camera("--main", "640x360", "--fps", "15") as sim:
        kit = load_kit(write_kit(tmp_path / "kit.yaml", [device(sim)]))
        said: list[str] = []
        assert await run_config(kit, None, apply=False, timeout_s=20, say=said.append) == 1
        text = "\n".join(said)
        assert "encoder.width: profile 1280, device 640" in text and "encoder.fps: profile 25, device 15" in text
        assert "encoder.gov_length: profile 50, device 30" in text and "encoder.codec" not in text
        said.clear()
        assert await run_config(kit, "dome-1", apply=True, timeout_s=20, say=said.append) == 0, said
        enc = sim.control("status")["profiles"][0]["encoder"]
        assert (enc["width"], enc["height"], enc["fps"], enc["bitrate_kbps"], enc["gov_length"]) == (1280, 720, 25, 2048, 50)
        assert enc["changes"] == 1 and enc["quality"] == 5.0 and enc["profile"] == "Baseline"  # the rest kept
        said.clear()
        assert await run_config(kit, None, apply=False, timeout_s=20, say=said.append) == 0, said
        assert "matches its profile" in said[0]
        # drift behind the gateway's back is reported when the camera comes online
        drv, ctx = driver_for(sim)
        async with supervised(drv, ctx=ctx):
            await ctx.wait(lambda: any(m.status.get("config") for m in ctx.of(StatusUpdate, "dome-1")), 20, "audited")
        assert [m.status["config"] for m in ctx.of(StatusUpdate, "dome-1") if "config" in m.status] == ["matches profile"]
        assert not [e for e in ctx.of(Event, "dome-1") if e.type == "config_drift"]

# -- XML safety: a camera (or whoever answers at its address) cannot make the driver expand entities ------

SOAP_TIME = """<?xml version="1.0" encoding="UTF-8"?>{doctype}
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl"
 xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body><tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>
<tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>
<tt:TimeZone><tt:TZ>{tz}</tt:TZ></tt:TimeZone><tt:UTCDateTime><tt:Time><tt:Hour>1</tt:Hour><tt:Minute>2</tt:Minute>
<tt:Second>3</tt:Second></tt:Time><tt:Date><tt:Year>2026</tt:Year><tt:Month>1</tt:Month><tt:Day>2</tt:Day></tt:Date>
</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse></s:Body></s:Envelope>"""
LAUGHS = ('\n<!DOCTYPE s:Envelope [<!ENTITY a "lollollollollollollollollollol">'
          + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8)) + "]>")


async def _http_server(body: str, hits: list[str]) -> asyncio.AbstractServer:
    """Answers every request with `body` as SOAP; records each request line."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            hits.append(head.split(b"\r\n")[0].decode())
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            data = body.encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml; charset=utf-8\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(data) + data)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
    return await asyncio.start_server(serve, "127.0.0.1", 0)


@pytest.mark.parametrize("doctype, tz", [
    (LAUGHS, "&i;"),  # a billion laughs: 10^8 'lol's if it were expanded
    ('\n<!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/xxe">]>', "&x;"),  # XXE
    ('\n<!DOCTYPE s:Envelope SYSTEM "http://127.0.0.1:{port}/dtd">', "UTC"),  # an external DTD
])
async def test_xml_entities_and_dtds_are_refused(doctype: str, tz: str) -> None:
    outside: list[str] = []
    tracker = await _http_server("nothing", outside)  # where an external entity or DTD would be fetched from
    hits: list[str] = []
    evil = SOAP_TIME.format(doctype=doctype.format(port=tracker.sockets[0].getsockname()[1]), tz=tz)
    server = await _http_server(evil, hits)
    port = server.sockets[0].getsockname()[1]
    session = CameraSession("127.0.0.1", port, "admin", "pw", timeout_s=5)
    try:
        t0 = asyncio.get_running_loop().time()
        if doctype == LAUGHS:  # the driver too: a clear status, never online
            spec = DeviceSpec("cam", "camera", "cam", f"onvif://127.0.0.1:{port}", None, {"user": "a", "password": "b"})
            ctx = OrderedCollector()
            with pytest.raises(OnvifError):
                await OnvifDriver(LinkSpec("onvif", spec.transport, (spec,)), ctx).run()
            assert "unsafe XML refused" in ctx.of(StatusUpdate, "cam")[-1].status["link"]
            assert ctx.online.get("cam") is not True
        with pytest.raises(OnvifError, match=r"unsafe XML refused \((DTD|Entities)Forbidden\)"):
            await session.connect(None)
        assert asyncio.get_running_loop().time() - t0 < 3
        assert hits and hits[0].startswith("POST /onvif/device_service")
        assert outside == []  # nothing was fetched on the answer's behalf
    finally:
        await session.close()
        server.close()
        tracker.close()


async def test_the_same_answer_without_a_dtd_is_read() -> None:
    """The fixture is sound: without the DTD the camera's clock is read (and the next call is made)."""
    hits: list[str] = []
    server = await _http_server(SOAP_TIME.format(doctype="", tz="UTC"), hits)
    session = CameraSession("127.0.0.1", server.sockets[0].getsockname()[1], "admin", "pw", timeout_s=5)
    try:
        with pytest.raises(OnvifError):  # GetServices gets a clock for an answer: malformed, but parsed
            await session.connect(None)
        assert len(hits) >= 2
    finally:
        await session.close()
        server.close()


# -- the driver's pieces on their own ----------------------------------------------------------------

def test_kit_checks_and_profile_schema() -> None:
    check = OnvifDriver.check_device
    assert check({"user": "admin", "password": "pw"}, "onvif://127.0.0.1:8080") == []
    assert check({}, "http://127.0.0.1:80")[0][1].startswith("transport")
    problems = dict(check({"password": 1234, "status_s": 0, "colour": "red", "offer_stream": "yes"}, "onvif://h:1"))
    assert set(problems) == {("password",), ("status_s",), ("colour",), ("offer_stream",), ("user",)}
    assert OnvifDriver.check_profile(yaml.safe_load(PROFILE.read_text())) == []
    bad = {"version": 0, "encoder": {"codec": "H265", "width": 1280.5, "fps": 0, "colour": 1}}
    assert len(OnvifDriver.check_profile(bad)) == 7  # version, colour, height and bitrate missing, codec, width, fps
    assert OnvifDriver.commands_for("camera") == ["ptz_move", "ptz_stop", "ptz_preset"]


def test_encoder_diff_and_patch_keep_what_the_profile_does_not_name() -> None:
    have = {"token": "enc0", "Name": "main", "Encoding": "H264", "Resolution": {"Width": 640, "Height": 360},
            "Quality": 5.0, "RateControl": {"FrameRateLimit": 15, "EncodingInterval": 1, "BitrateLimit": 1024},
            "H264": {"GovLength": 30, "H264Profile": "Main"}}
    want = encoder.wanted({"encoder": {"codec": "H264", "width": 1280, "height": 720, "fps": 25, "bitrate_kbps": 2048}})
    diffs = encoder.differences(want, encoder.read(have))
    assert [(d.name, d.want, d.have) for d in diffs] == [
        ("encoder.width", 1280, 640), ("encoder.height", 720, 360), ("encoder.fps", 25, 15),
        ("encoder.bitrate_kbps", 2048, 1024)]
    patched = encoder.patch(have, want)
    assert encoder.differences(want, encoder.read(patched)) == []
    assert patched["Quality"] == 5.0 and patched["H264"] == {"GovLength": 30, "H264Profile": "Main"}
    assert patched["RateControl"]["EncodingInterval"] == 1


def test_rtsp_credentials_are_escaped_and_never_doubled() -> None:
    assert with_credentials("rtsp://10.0.0.5:554/s0", "ad min", "p@ss:/w") == "rtsp://ad%20min:p%40ss%3A%2Fw@10.0.0.5:554/s0"
    assert with_credentials("rtsp://u:p@10.0.0.5/s0", "admin", "x") == "rtsp://u:p@10.0.0.5/s0"
    assert with_credentials("rtsp://10.0.0.5/s0", "", "") == "rtsp://10.0.0.5/s0"
