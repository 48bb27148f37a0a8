"""Console load: the command-centre page with 200 devices moving at 1 Hz, against the same page with 20.

One real gateway process (`python -m gateway.cli run KIT`) and one TETRA simulator (`python -m hil.tetra`,
its own process, a pty) with N team radios, each moving along its own heading at 20-40 km/h and sending a
LIP position every second (`--lip-interval 1`, spread evenly over the second); the kit lists the N radios
as tetra_pei devices. Headless Debian Chromium (Playwright) opens the console (`/`, 1920×1080) and, after
a warm-up, the page is measured for a window of W seconds:

  SSE messages/s   what the gateway served to the page over `GET /api/v1/events` (counted by the page,
                   all types; `position` separately)
  main thread      Chrome's own accounting (CDP `Performance.getMetrics`): TaskDuration = everything the
                   renderer's main thread did (script, style, layout, paint, GC, parsing SSE), and its
                   Script/Layout/RecalcStyle parts; per second and per SSE message (= per update)
  long tasks       tasks over 50 ms (PerformanceObserver `longtask`) in the window
  gateway CPU      the gateway process's CPU seconds per second over the same window

RATIO 200/20 of main-thread time per update (the target: ≤ 5×, the page's cost per update must not grow
with the fleet), and also of main-thread time per second (10× the updates) and of messages/s.

    .venv/bin/python -m bench.console_load [--small 20] [--large 200] [--seconds 30] [--quick] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench._common import GatewayProcess, cpu_seconds, machine_note, write_kit
from tests.serial_sims import SimProcess

LAT0, LON0 = 30.6586, 104.0648
OWN_ISSI = 2001
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-background-timer-throttling",
                 "--disable-renderer-backgrounding"]
LONGTASKS = """
window.__longtasks = {count: 0, ms: 0};
try {
  new PerformanceObserver(list => { for (const e of list.getEntries()) { window.__longtasks.count++; window.__longtasks.ms += e.duration; } })
    .observe({type: "longtask", buffered: true});
} catch (e) {}
"""


def teams(n: int, seed: int = 7) -> list[tuple[str, int, str]]:
    """(device id, ISSI, --team spec) for n radios spread over ~3 km, each with its own heading and speed."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        r, a = 1500 * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        lat = LAT0 + r * math.cos(a) / 111_320
        lon = LON0 + r * math.sin(a) / (111_320 * math.cos(math.radians(LAT0)))
        spec = f"{1001 + k}:{lat:.5f},{lon:.5f}:{rng.randrange(360)}:{rng.randrange(20, 41)}"
        out.append((f"team-{k + 1:03d}", 1001 + k, spec))
    return out


def build_kit(path: Path, dev: Path, n: int) -> Path:
    tetra = f"serial://{dev}/tetra?baud=38400"
    devices: list[dict[str, Any]] = [{"id": "radio-gw", "driver": "tetra_pei", "transport": tetra, "options": {"poll_s": 10}}]
    devices += [{"id": i, "name": f"Team {issi}", "driver": "tetra_pei", "transport": tetra, "options": {"address": str(issi)}}
                for i, issi, _ in teams(n)]
    return write_kit(path, devices, kit="consolebench")


def viewer_token(data_dir: Path) -> str:
    """A viewer's token from the kit's user store (made before the gateway starts); "" without auth."""
    try:
        from tests.auth import bearer
    except ImportError:
        return ""
    data_dir.mkdir(parents=True, exist_ok=True)
    return bearer(data_dir, "viewer")["Authorization"].split(" ", 1)[1]


def get_json(base: str, path: str, token: str) -> Any:
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


async def measure(n: int, seconds: float, warmup: float, work: Path) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    run_dir = work / f"n{n}"
    dev = run_dir / "dev"
    dev.mkdir(parents=True)
    kit = build_kit(run_dir / "kit.yaml", dev, n)
    data = run_dir / "data"
    token = viewer_token(data)
    sim = SimProcess("hil.tetra", ["--link", str(dev / "tetra"), "--issi", str(OWN_ISSI), "--lip-interval", "1",
                                   *[a for _, _, spec in teams(n) for a in ("--team", spec)]], log=run_dir / "tetra.log")
    gw = None
    try:
        gw = GatewayProcess(kit, data)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            devs = get_json(gw.base, "/api/v1/devices", token)
            if sum(1 for d in devs if d["position"]) >= n:
                break
            await asyncio.sleep(0.5)
        else:
            raise RuntimeError(f"only {sum(1 for d in devs if d['position'])} of {n} radios have a position")
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1920, "height": 1080})
                await page.add_init_script(LONGTASKS)
                await page.goto(gw.base + "/" + (f"#token={token}" if token else ""))
                await page.wait_for_function("window.fieldgwConsole && window.fieldgwConsole.ready", timeout=20000)
                await page.wait_for_function(f"document.querySelectorAll('.dev-icon').length >= {n}", timeout=30000)
                await asyncio.sleep(warmup)
                cdp = await page.context.new_cdp_session(page)
                await cdp.send("Performance.enable", {"timeDomain": "threadTicks"})

                async def snap() -> dict[str, Any]:
                    metrics = {m["name"]: m["value"] for m in (await cdp.send("Performance.getMetrics"))["metrics"]}
                    page_side = await page.evaluate("""() => ({perf: JSON.parse(JSON.stringify(window.fieldgwConsole.perf)),
                        map: {...window.fieldgwConsole.map.perf}, long: {...window.__longtasks}, now: performance.now()})""")
                    return {"m": metrics, "p": page_side, "cpu": cpu_seconds(gw.proc.pid), "t": time.monotonic()}

                a = await snap()
                await asyncio.sleep(seconds)
                b = await snap()
                await page.screenshot(path=str(run_dir / f"console-{n}.png"))
            finally:
                await browser.close()
    finally:
        if gw is not None:
            gw.stop()
        sim.stop()
    wall = b["t"] - a["t"]
    msgs = b["p"]["perf"]["messages"] - a["p"]["perf"]["messages"]
    pos = b["p"]["perf"]["byType"].get("position", 0) - a["p"]["perf"]["byType"].get("position", 0)
    d = {k: b["m"].get(k, 0.0) - a["m"].get(k, 0.0) for k in ("TaskDuration", "ScriptDuration", "LayoutDuration",
                                                              "RecalcStyleDuration")}
    flushes = b["p"]["map"]["flushes"] - a["p"]["map"]["flushes"]
    return {
        "n": n, "seconds": wall, "messages": msgs, "msgs_per_s": msgs / wall, "positions_per_s": pos / wall,
        "task_ms_per_s": d["TaskDuration"] * 1000 / wall, "task_ms_per_update": d["TaskDuration"] * 1000 / max(msgs, 1),
        "script_ms_per_s": d["ScriptDuration"] * 1000 / wall, "layout_ms_per_s": d["LayoutDuration"] * 1000 / wall,
        "style_ms_per_s": d["RecalcStyleDuration"] * 1000 / wall,
        "handler_ms_per_update": (b["p"]["perf"]["handleMs"] - a["p"]["perf"]["handleMs"]) / max(msgs, 1),
        "flushes_per_s": flushes / wall,
        "flush_ms_each": (b["p"]["map"]["flushMs"] - a["p"]["map"]["flushMs"]) / max(flushes, 1),
        "longtasks": b["p"]["long"]["count"] - a["p"]["long"]["count"],
        "gateway_cpu_per_s": (b["cpu"] - a["cpu"]) / wall,
        "screenshot": str(run_dir / f"console-{n}.png"),
    }


def show(r: dict[str, Any]) -> None:
    print(f"  {r['n']:>4} devices: {r['msgs_per_s']:7.1f} SSE msg/s ({r['positions_per_s']:.1f} positions/s); main thread "
          f"{r['task_ms_per_s']:6.1f} ms/s = {r['task_ms_per_update']:.3f} ms/update (script {r['script_ms_per_s']:.1f}, "
          f"layout {r['layout_ms_per_s']:.1f}, style {r['style_ms_per_s']:.1f} ms/s); SSE handlers "
          f"{r['handler_ms_per_update']:.3f} ms/update; map {r['flushes_per_s']:.1f} batches/s, {r['flush_ms_each']:.2f} ms each; "
          f"long tasks {r['longtasks']}; gateway CPU {r['gateway_cpu_per_s']:.2f} s/s", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=20)
    ap.add_argument("--large", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window per run (default 30)")
    ap.add_argument("--quick", action="store_true", help="10 s windows")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (kits, logs, screenshots)")
    args = ap.parse_args(argv)
    seconds, warmup = (10.0, 3.0) if args.quick else (args.seconds, 8.0)
    if not Path(CHROMIUM).exists():
        print("chromium is not installed (apt install chromium)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="fieldgw-console-bench-"))
    print(f"console load ({machine_note()}): {args.small} vs {args.large} devices at 1 Hz, {seconds:.0f} s windows", flush=True)
    try:
        small = asyncio.run(measure(args.small, seconds, warmup, work))
        show(small)
        large = asyncio.run(measure(args.large, seconds, warmup, work))
        show(large)
    finally:
        if args.keep:
            print(f"  work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    per_update = large["task_ms_per_update"] / small["task_ms_per_update"]
    per_s = large["task_ms_per_s"] / small["task_ms_per_s"]
    msgs = large["msgs_per_s"] / small["msgs_per_s"]
    print(f"  {args.large}/{args.small}: SSE messages/s x{msgs:.2f}, main thread per second x{per_s:.2f}, per update x{per_update:.2f}")
    print(f"RATIO console main-thread time per update, {args.large}/{args.small} devices = {per_update:.2f} (target <= 5: "
          f"{'met' if per_update <= 5 else 'NOT met'}); per second {per_s:.2f} for {msgs:.1f}x the messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
