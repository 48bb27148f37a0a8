"""A real browser plays a stream by WHEP from the page the gateway serves (headless Debian Chromium)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.app import Gateway, GatewayOptions
from gateway.kit import load_kit
from media import ice
from tests.auth import bearer
from tests.conftest import free_port, need_binary
from tests.helpers import write_kit
from tests.test_media_whep import H, W, make_clip

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required",
                 "--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns"]


async def test_chromium_plays_a_stream_by_whep(tmp_path: Path) -> None:
    chromium = need_binary("chromium")
    from playwright.async_api import async_playwright

    clip = tmp_path / "clip.mp4"
    make_clip(clip, seconds=6)
    kit = write_kit(tmp_path / "kit.yaml", [], streams=[{"id": "cam-1", "url": str(clip)}],
                    media={"ice_addresses": ["127.0.0.1"]})
    gw = Gateway(load_kit(kit), GatewayOptions(data_dir=tmp_path / "data", http_port=0, mqtt_port=free_port()))
    await gw.start()
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{gw.http_port}/player.html?stream=cam-1&token={bearer(gw.users, 'viewer')['Authorization'][7:]}")
                await page.wait_for_function("window.fieldgw && window.fieldgw.framesDecoded > 10", timeout=20000)
                width = await page.evaluate("document.getElementById('video').videoWidth")
                assert width == W
                first = await page.evaluate("window.fieldgw.framesDecoded")
                await asyncio.sleep(2)
                later = await page.evaluate("window.fieldgw.framesDecoded")
                assert later > first + 20, (first, later)  # keeps decoding, not a frozen picture
                assert gw.media.get("cam-1").stats()["viewers"] == 1
                assert await page.evaluate("document.getElementById('video').videoHeight") == H
            finally:
                await browser.close()
    finally:
        await gw.stop()
        ice.pin_addresses(None)
