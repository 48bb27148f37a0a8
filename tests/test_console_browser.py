"""The command-centre console (gateway/web/index.html) in a real browser (headless Debian Chromium).

Against `fieldgw demo` (its own process, data dir and ports): log in as operator, every demo device on
the map, a drone's video decoding in a tile, `rtl` to drone-1 through the confirmation with its ack
shown; a viewer finds no command buttons and no dispatch form, an admin finds the audit view; text
received from a radio, a dispatch's text and a device's name containing HTML are shown as text and
run nothing. Screenshots go to the test's tmp_path (`shots/`), at 1920×1080 and 1366×768.

The demo's simulators use fixed ports, so only one demo runs at a time: the demo is started once for
this module and stopped at its end.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, free_port, need_binary, stop_process
from tests.test_browser_whep import CHROMIUM_ARGS

pytestmark = [pytest.mark.timeout(300), pytest.mark.demo]  # fixed ports: one demo at a time (Makefile)

EVIL = '<img src=x onerror="window.__pwned=1"><b>bold</b>'
TETRA_CONTROL = 19301  # the demo's TETRA simulator control port (field_kits/demo.yaml)
WIDE, LAPTOP = {"width": 1920, "height": 1080}, {"width": 1366, "height": 768}


class Demo:
    def __init__(self, proc: subprocess.Popen[str], base: str, data: Path) -> None:
        self.proc, self.base, self.data = proc, base, data
        self.auth = httpx.get(base + "/api/v1/auth/me").status_code != 404
        self.passwords: dict[str, str] = {}
        if self.auth:
            path = data / "demo-passwords.json"
            deadline = time.monotonic() + 10
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            self.passwords = json.loads(path.read_text())

    def headers(self, role: str = "admin") -> dict[str, str]:
        if not self.auth:
            return {}
        tokens = json.loads((self.data / "demo-credentials.json").read_text())
        return {"Authorization": f"Bearer {tokens[role]}"}

    def get(self, path: str) -> Any:
        r = httpx.get(self.base + path, headers=self.headers(), timeout=10)
        r.raise_for_status()
        return r.json()


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what} ({last})")


def run_kit(kit: Path, data: Path, role: str) -> tuple[subprocess.Popen[bytes], str, str]:
    """`fieldgw run KIT` as its own process, up; (process, base URL, "#token=…" for a `role` user, "" without auth)."""
    fragment = ""
    try:  # with auth: a token made in the kit's user store before the gateway starts, handed over in the fragment
        from tests.auth import bearer

        fragment = "#token=" + bearer(data, role)["Authorization"].split(" ", 1)[1]
    except ImportError:
        pass
    http_port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", str(kit), "--data-dir", str(data),
                             "--http-port", str(http_port), "--mqtt-port", str(free_port())],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{http_port}"
    try:
        _wait(lambda: httpx.get(base + "/api/v1/health").status_code == 200, 30, "the gateway up")
    except BaseException:
        stop_process(proc)
        raise
    return proc, base, fragment


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    need_binary("chromium")
    tmp = tmp_path_factory.mktemp("console-demo")
    http_port = free_port()
    args = [sys.executable, "-m", "gateway.cli", "demo", "--data-dir", str(tmp / "data"), "--http-port", str(http_port),
            "--mqtt-port", str(free_port()), "--gcs", f"udp://127.0.0.1:{free_port()}"]
    log = (tmp / "demo.log").open("w")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if "fieldgw demo is running" not in first:
            raise AssertionError(f"the demo did not start: {first!r}\n{(tmp / 'demo.log').read_text()[-3000:]}")
        d = Demo(proc, f"http://127.0.0.1:{http_port}", tmp / "data")
        _wait(lambda: all(x["online"] for x in d.get("/api/v1/devices") if x["id"] in ("drone-1", "drone-2", "team-1")),
              30, "the demo's drones and team-1 online")
        _wait(lambda: {s["id"]: s["state"] for s in d.get("/api/v1/streams")}.get("drone-1-video1") == "live",
              30, "drone-1's video live")
        yield d
    finally:
        stop_process(proc)  # type: ignore[arg-type]
        log.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    chromium = need_binary("chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def open_console(browser: Any, base: str, viewport: dict[str, int], errors: list[str], fragment: str = "") -> Any:
    page = await browser.new_page(viewport=viewport)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: errors.append(f"unexpected browser dialog: {d.message}"))
    await page.goto(base + "/" + fragment)
    await page.wait_for_function("window.fieldgwConsole && window.fieldgwConsole.ready", timeout=15000)
    return page


async def login(page: Any, demo: Demo, role: str) -> None:
    if demo.auth:
        assert await page.locator("#login").is_visible()
        await page.fill("#login-form input[name=username]", role)
        await page.fill("#login-form input[name=password]", demo.passwords[role])
        await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#app", state="visible", timeout=10000)
    assert await page.evaluate("sessionStorage.getItem('fieldgw.token') !== null") or not demo.auth
    await page.wait_for_selector("#live[data-live=true]", timeout=10000)


async def shot(page: Any, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(folder / f"{name}.png"))


async def test_operator_sees_every_device_plays_video_and_sends_rtl(demo: Demo, browser: Any, tmp_path: Path) -> None:
    errors: list[str] = []
    shots = tmp_path / "shots"
    page = await open_console(browser, demo.base, WIDE, errors)
    if demo.auth:
        await shot(page, shots, "login-1920")
        # a wrong password is refused on the login screen
        await page.fill("#login-form input[name=username]", "operator")
        await page.fill("#login-form input[name=password]", "not-the-password")
        await page.click("#login-form button[type=submit]")
        await page.wait_for_function("document.getElementById('login-error').textContent.length > 0")
        assert await page.locator("#app").is_hidden()
    await login(page, demo, "operator")
    if demo.auth:
        assert "operator" in (await page.text_content("#user") or "") or "操作员" in (await page.text_content("#user") or "")

    # every device on the map: a marker where it is, or listed in the map's "no position" box
    devices = demo.get("/api/v1/devices")
    with_pos = {d["id"] for d in devices if d["position"]}
    without = {d["id"] for d in devices if not d["position"]}
    ids = json.dumps(sorted(with_pos | without))
    await page.wait_for_function(f"""(() => {{
        const shown = new Set([...document.querySelectorAll('.dev-icon, .nopos-item')].map(e => e.dataset.device));
        const rows = new Set([...document.querySelectorAll('.dev-row')].map(e => e.dataset.device));
        return {ids}.every(id => shown.has(id) && rows.has(id)) && document.querySelectorAll('.dev-icon').length >= {len(with_pos)};
    }})()""", timeout=15000)
    on_map = set(await page.eval_on_selector_all(".dev-icon", "els => els.map(e => e.dataset.device)"))
    listed = set(await page.eval_on_selector_all(".nopos-item", "els => els.map(e => e.dataset.device)"))
    assert with_pos <= on_map, with_pos - on_map
    assert without <= on_map | listed, without - on_map - listed
    assert len(await page.query_selector_all(".dev-row")) >= len(devices)
    # the markers move: drone-1's marker follows its positions, and its track grows
    t0 = await page.evaluate("window.fieldgwConsole.map.entries.get('drone-1').points.length")
    await asyncio.sleep(2)
    assert await page.evaluate("window.fieldgwConsole.map.entries.get('drone-1').points.length") > t0
    # kit health in the header
    await page.wait_for_selector("#health-chips .chip[data-health]")
    # no tile server configured: no tiles asked for, the lat/lon grid instead
    assert await page.locator("img.leaflet-tile").count() == 0
    assert await page.locator("canvas.graticule").count() == 1
    await shot(page, shots, "operator-map-1920")

    # drone-1's panel, its video in a tile, frames decoded
    await page.click(".dev-row[data-device='drone-1']")
    await page.wait_for_selector("#device-panel .dev-title")
    assert await page.text_content("#device-panel .dev-title") == "Drone 1 (rescue quad)"
    await page.click("#device-panel [data-open-stream='drone-1-video1']")
    tile = ".tile[data-stream='drone-1-video1']"
    await page.wait_for_function(
        f"(() => {{ const v = document.querySelector(\"{tile} video\"); return v && v.getVideoPlaybackQuality().totalVideoFrames > 10; }})()",
        timeout=30000)
    first = await page.evaluate(f"document.querySelector(\"{tile} video\").getVideoPlaybackQuality().totalVideoFrames")
    await asyncio.sleep(2)
    later = await page.evaluate(f"document.querySelector(\"{tile} video\").getVideoPlaybackQuality().totalVideoFrames")
    assert later > first + 20, (first, later)  # keeps decoding
    assert await page.evaluate(f"document.querySelector(\"{tile} video\").videoWidth") == 640
    # stream stats on hover
    await page.hover(tile)
    stats = await page.text_content(f"{tile} .tile-stats") or ""
    assert await page.locator(f"{tile} .tile-stats").is_visible()
    assert "h264" in stats.lower() and "640" in stats, stats
    await asyncio.sleep(1)
    await shot(page, shots, "operator-video-1920")

    # rtl with the confirmation dialog; its ack shown in the panel
    await page.click("#device-panel .cmd-btn[data-command='rtl']")
    await page.wait_for_selector("#confirm[open]")
    assert "drone-1" in (await page.text_content("#confirm-body") or "")
    await shot(page, shots, "operator-confirm-1920")
    await page.click("#confirm-ok")
    await page.wait_for_selector(".cmd-row[data-command='rtl'][data-status='done']", timeout=30000)
    cmd_id = await page.get_attribute(".cmd-row[data-command='rtl']", "data-id")
    record = demo.get(f"/api/v1/commands/{cmd_id}")
    assert record["command"] == "rtl" and record["device"] == "drone-1" and record["status"] == "done"
    if demo.auth:
        assert record["issued_by"] == "operator"
    assert "→" in (await page.text_content(".cmd-row[data-command='rtl'] .cmd-status") or "")  # accepted → sent → done
    # cancelling the dialog sends nothing
    before = len(await page.query_selector_all(".cmd-row"))
    await page.click("#device-panel .cmd-btn[data-command='land']")
    await page.wait_for_selector("#confirm[open]")
    await page.click("#confirm-cancel")
    await asyncio.sleep(0.5)
    assert len(await page.query_selector_all(".cmd-row")) == before
    await shot(page, shots, "operator-ack-1920")

    # English, and the laptop layout
    await page.click("#lang")
    assert await page.text_content("#device-panel .dev-commands h4") == "Commands"
    await page.set_viewport_size(LAPTOP)
    await asyncio.sleep(1.5)
    await shot(page, shots, "operator-1366-en")
    await page.click("#lang")
    await page.click(".tabs button[data-tab-button='events']")
    await asyncio.sleep(0.5)
    await shot(page, shots, "operator-events-1366")
    await page.click(".tabs button[data-tab-button='dispatch']")
    assert await page.locator("#dispatch-form").is_visible()
    await shot(page, shots, "operator-dispatch-1366")
    # closing the tile ends the WHEP session
    await page.click(f"{tile} .tile-close")
    _wait(lambda: {s["id"]: s["viewers"] for s in demo.get("/api/v1/streams")}["drone-1-video1"] == 0, 10, "viewer gone")
    assert not errors, errors


async def test_viewer_sees_no_controls_and_admin_sees_the_audit(demo: Demo, browser: Any, tmp_path: Path) -> None:
    errors: list[str] = []
    shots = tmp_path / "shots"
    page = await open_console(browser, demo.base, WIDE, errors)
    await login(page, demo, "viewer")
    await page.wait_for_selector(".dev-row[data-device='drone-1']")
    await page.click(".dev-row[data-device='drone-1']")
    await page.wait_for_selector("#device-panel .dev-title")
    await asyncio.sleep(0.5)
    await shot(page, shots, "viewer-1920")
    if demo.auth:
        assert await page.locator(".cmd-btn").count() == 0
        assert await page.locator(".cmd-form").count() == 0
        assert not await page.locator("#dispatch-form").is_visible()
        assert not await page.locator(".tabs button[data-tab-button='dispatch']").is_visible()
        assert not await page.locator("#audit-section").is_visible()
        # and the API refuses a viewer's command anyway
        r = httpx.post(demo.base + "/api/v1/devices/drone-1/commands", json={"command": "rtl"}, headers=demo.headers("viewer"))
        assert r.status_code == 403
        await page.set_viewport_size(LAPTOP)
        await asyncio.sleep(1)
        assert not await page.locator("#dispatch-form").is_visible()
        await shot(page, shots, "viewer-1366")
        # log out: back to the login screen, the token revoked
        token = await page.evaluate("sessionStorage.getItem('fieldgw.token')")
        await page.click("#logout")
        await page.wait_for_selector("#login", state="visible")
        assert await page.evaluate("sessionStorage.getItem('fieldgw.token')") is None
        assert httpx.get(demo.base + "/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401

        # admin: the audit view shows the operator's rtl (when the first test ran), verified
        await login(page, demo, "admin")
        await page.click(".tabs button[data-tab-button='audit']")
        await page.wait_for_selector("#audit-view [data-verified]", timeout=10000)
        assert await page.get_attribute("#audit-view [data-verified]", "data-verified") == "true"
        await shot(page, shots, "admin-audit-1366")
        # the token revoked behind the page's back (another tab logged out): the next API call's 401 → login
        token = await page.evaluate("sessionStorage.getItem('fieldgw.token')")
        assert httpx.post(demo.base + "/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        await page.wait_for_selector("#login", state="visible", timeout=15000)
        assert await page.locator("#app").is_hidden()
        assert await page.text_content("#login-error")
    assert not errors, errors


async def test_received_text_and_dispatch_text_are_shown_as_text(demo: Demo, browser: Any, tmp_path: Path) -> None:
    errors: list[str] = []
    page = await open_console(browser, demo.base, WIDE, errors)
    await login(page, demo, "operator")
    # a team radio sends a text SDS with HTML in it (the TETRA simulator's control port)
    with socket.create_connection(("127.0.0.1", TETRA_CONTROL), timeout=5) as s:
        s.sendall(f"text 1001 {EVIL}\n".encode())
        assert json.loads(s.makefile().readline())["ok"]
    row = page.locator(".ev-row .ev-text", has_text="window.__pwned")
    await row.first.wait_for(timeout=20000)
    assert await row.first.text_content() == EVIL
    # a dispatch with HTML in its text
    await page.fill("#dispatch-form textarea[name=text]", f"test {EVIL}")
    await page.click("#dispatch-form button[type=submit]")
    card = page.locator(".dispatch-card .dispatch-text", has_text="window.__pwned")
    await card.first.wait_for(timeout=10000)
    assert await card.first.text_content() == f"test {EVIL}"
    await asyncio.sleep(1)
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("#app img:not(.leaflet-tile), #app b").count() == 0
    await shot(page, tmp_path / "shots", "injection-events")
    assert not errors, errors


async def test_device_name_with_html_is_shown_as_text(browser: Any, tmp_path: Path) -> None:
    """A tiny kit of its own: one drone, named with HTML, flown by the uav simulator (so it gets a marker)."""
    from tests.procs import drone, write_kit

    udp = free_port(socket.SOCK_DGRAM)
    evil = drone("evil-1", udp, 1)
    evil["name"] = EVIL
    kit = write_kit(tmp_path / "kit.yaml", [evil], kit="xss")
    proc, base, fragment = run_kit(kit, tmp_path / "data", "operator")
    sim = subprocess.Popen([sys.executable, "-m", "hil.uav", "--sysid", "1", "--udp-out", f"127.0.0.1:{udp}"],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "MAVLINK20": "1"})
    try:
        errors: list[str] = []
        # a basemap from an (absent) offline tile server: its tiles are asked for, the grid stays
        tiles = f"http://127.0.0.1:{free_port()}/{{z}}/{{x}}/{{y}}.png"
        page = await open_console(browser, base, LAPTOP, errors, "?tiles=" + tiles.replace("{", "%7B").replace("}", "%7D") + fragment)
        if fragment:
            assert "token" not in page.url  # taken from the address bar
        prefix = tiles.split("{")[0]
        await page.wait_for_function(f"[...document.querySelectorAll('img.leaflet-tile')].some(i => i.src.startsWith('{prefix}'))")
        assert await page.locator("canvas.graticule").count() == 1
        await page.wait_for_selector(".dev-row[data-device='evil-1']", timeout=15000)
        assert await page.text_content(".dev-row[data-device='evil-1'] .dev-name") == EVIL
        await page.click(".dev-row[data-device='evil-1']")
        assert await page.text_content("#device-panel .dev-title") == EVIL
        # once the simulator flies, the marker's label and tooltip carry the name as text
        await page.wait_for_selector(".dev-icon[data-device='evil-1']", timeout=20000)
        await asyncio.sleep(1)
        assert await page.text_content(".dev-icon[data-device='evil-1'] .dev-label") == EVIL
        await page.click(".tabs button[data-tab-button='events']")
        await asyncio.sleep(1)
        await shot(page, tmp_path / "shots", "injection-name-1366")
        assert await page.evaluate("window.__pwned") is None
        assert await page.locator("#app img:not(.leaflet-tile), #app b").count() == 0
        assert not errors, errors
    finally:
        stop_process(sim)
        stop_process(proc)


async def test_video_tile_waits_for_a_stream_and_comes_back_with_it(browser: Any, tmp_path: Path) -> None:
    """A tile opened before its camera sends waits (409 + Retry-After), plays when it does, and plays again
    after the camera has been away (the peer connection or the frozen-video check starts a new session)."""
    from tests.procs import write_kit

    udp = free_port(socket.SOCK_DGRAM)
    kit = write_kit(tmp_path / "kit.yaml", [], kit="wall", streams=[{"id": "cam-late", "url": f"udp://127.0.0.1:{udp}"}],
                    media={"ice_addresses": ["127.0.0.1"]})
    proc, base, fragment = run_kit(kit, tmp_path / "data", "viewer")
    camera_args = [sys.executable, "-m", "hil.camera", "ts", "--to", f"udp://127.0.0.1:{udp}", "--width", "320",
                   "--height", "240", "--gop-s", "1"]
    camera: subprocess.Popen[bytes] | None = None
    tile = ".tile[data-stream='cam-late']"
    frames = f"document.querySelector(\"{tile} video\").getVideoPlaybackQuality().totalVideoFrames"
    try:
        errors: list[str] = []
        page = await open_console(browser, base, LAPTOP, errors, fragment)
        await page.click(".stream-chip[data-stream='cam-late']")
        await page.wait_for_function(f"['waiting', 'retrying'].includes(document.querySelector(\"{tile}\").dataset.state)",
                                     timeout=15000)
        assert "409" in (await page.text_content(f"{tile} .tile-stats") or "")  # not live yet: the gateway said 409
        camera = subprocess.Popen(camera_args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await page.wait_for_function(f"{frames} > 10", timeout=30000)
        assert await page.evaluate(f"document.querySelector(\"{tile}\").dataset.state") == "playing"
        # the camera goes away and comes back: the tile plays again by itself
        stop_process(camera)
        await page.wait_for_function(f"document.querySelector(\"{tile}\").dataset.state !== 'playing'", timeout=20000)
        camera = subprocess.Popen(camera_args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await page.wait_for_function(f"document.querySelector(\"{tile}\").dataset.state === 'playing' && {frames} > 10",
                                     timeout=40000)
        before = await page.evaluate(frames)
        await asyncio.sleep(2)
        assert await page.evaluate(frames) > before + 20
        await shot(page, tmp_path / "shots", "video-back-1366")
        assert not errors, errors
    finally:
        if camera is not None:
            stop_process(camera)
        stop_process(proc)
