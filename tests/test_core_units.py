"""Unit tests of the core parts: backoff, bus, command argument rules, kit manifests."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.backoff import Backoff
from gateway.bus import Bus
from gateway.command_specs import check_args
from gateway.kit import KitError, load_kit
from gateway.model import Event, Position
from tests.conftest import ROOT


def test_backoff_grows_bounded_with_jitter_and_resets() -> None:
    b = Backoff(initial=1.0, maximum=8.0, jitter=0.2, reset_after=0.0)
    delays = [b.next_delay() for _ in range(8)]
    assert 0.8 <= delays[0] <= 1.2
    assert 1.6 <= delays[1] <= 2.4
    assert all(d <= 8.0 * 1.2 for d in delays)
    assert 6.4 <= delays[-1] <= 9.6
    assert len({round(d, 6) for d in delays[4:]}) > 1  # jitter spreads the capped delays
    b.connected()
    assert 0.8 <= b.next_delay() <= 1.2  # stayed up long enough (reset_after=0): back to the start
    with pytest.raises(ValueError):
        Backoff(initial=0)


async def test_bus_full_subscriber_drops_oldest_and_counts() -> None:
    bus = Bus()
    slow = bus.subscribe("slow", (Position,), maxsize=3)
    events = bus.subscribe("events", (Event,), maxsize=10)
    for i in range(5):
        bus.publish(Position("d", i, 1.0, 2.0))
    bus.publish(Event("d", 9, "x", "info", "hello"))
    assert slow.dropped == 2
    assert [slow.get_nowait().ts for _ in range(3)] == [2, 3, 4]
    assert events.queue.qsize() == 1 and events.dropped == 0
    with pytest.raises(ValueError):
        bus.subscribe("unbounded", (Position,), maxsize=0)


async def test_bus_taps_run_before_fan_out_and_may_add_messages() -> None:
    bus = Bus()
    seen: list[str] = []

    def tap(msg: object) -> list | None:
        seen.append(type(msg).__name__)
        if isinstance(msg, Position):
            return [Event("d", 1, "derived", "info", "from a position")]
        return None

    bus.add_tap(tap)
    sub = bus.subscribe("all", (Position, Event))
    bus.publish(Position("d", 1, 0.0, 0.0))
    assert seen == ["Position", "Event"]
    assert [type(sub.get_nowait()).__name__ for _ in range(2)] == ["Position", "Event"]
    await asyncio.sleep(0)


@pytest.mark.parametrize(("kind", "command", "args", "problem"), [
    ("uav", "goto", {"lat": 91, "lon": 0, "alt_m": 10}, "lat"),
    ("uav", "goto", {"lat": 10, "lon": -181, "alt_m": 10}, "lon"),
    ("uav", "goto", {"lat": 10, "lon": 10, "alt_m": 20000}, "alt_m"),
    ("uav", "goto", {"lat": "10", "lon": 10, "alt_m": 10}, "number"),
    ("uav", "goto", {"lat": True, "lon": 10, "alt_m": 10}, "number"),
    ("uav", "goto", {"lat": float("nan"), "lon": 10, "alt_m": 10}, "finite"),
    ("uav", "goto", {"lat": 10, "lon": 10}, "alt_m"),
    ("uav", "rtl", {"now": 1}, "unknown argument"),
    ("uav", "ptz_move", {}, "unknown command"),
    ("camera", "ptz_move", {"pan": 1.5}, "pan"),
    ("camera", "ptz_preset", {"preset": 2.5}, "integer"),
    ("radio", "text", {"to": "", "text": "x"}, "to"),
    ("uav", "rtl", [1], "object"),
])
def test_command_args_are_checked(kind: str, command: str, args: object, problem: str) -> None:
    clean, reason = check_args(kind, command, args)
    assert clean is None and problem in reason


def test_command_args_are_coerced() -> None:
    clean, reason = check_args("uav", "goto", {"lat": 30, "lon": 104.5, "alt_m": 550})
    assert reason == "" and clean == {"lat": 30.0, "lon": 104.5, "alt_m": 550.0}
    clean, _ = check_args("camera", "ptz_move", {"pan": -1, "zoom": 0.5})
    assert clean == {"pan": -1.0, "zoom": 0.5}
    assert check_args("uav", "rtl", None) == ({}, "")


BAD_KIT = """\
kit: Bad_Kit
devices:
  - id: drone-1
    driver: mavlink
    transport: udp-listen://127.0.0.1
    profile: mavlink/nope.yaml
    options:
      system_id: 300
      colour: red
  - id: drone-1
    driver: teleport
    transport: tcp://host:1
  - id: d4
    driver: mavlink
    transport: udp-listen://127.0.0.1:5
  - id: d5
    driver: mavlink
    transport: udp-listen://127.0.0.1:5
    options: {signing_key: "abc"}
"""


def test_kit_check_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_KIT)
    with pytest.raises(KitError) as info:
        load_kit(path)
    problems = info.value.problems
    expected = {
        1: "kit: String should match pattern",
        5: "has no port",
        6: "no profile file 'mavlink/nope.yaml'",
        8: "system_id: must be an integer 1..255",
        9: "colour: unknown MAVLink option",
        10: "duplicate device id 'drone-1' (first on line 3)",
        11: "unknown driver 'teleport'",
        19: "signing_key: a MAVLink signing key is 32 bytes",
    }
    for line, text in expected.items():
        assert any(p.startswith(f"{path}:{line}: ") and text in p for p in problems), (line, text, problems)
    assert any("system id 1 is also 'd4'" in p for p in problems)
    # the CLI prints the same, one per line, and exits 2; `run` refuses the kit the same way
    for args in (["kit", "check", str(path)], ["run", str(path), "--data-dir", str(tmp_path / "d")]):
        proc = subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2
        assert set(proc.stderr.strip().splitlines()) == set(problems)


@pytest.mark.parametrize(("text", "line", "message"), [
    ("kit: a\ndevices:\n  - id: x\n    driver: [\n", 5, "YAML syntax"),
    ("- just\n- a list\n", 1, "a kit manifest is a YAML mapping"),
    ("kit: a\ndevices:\n  - id: x\n    driver: mavlink\n", 3, "transport: Field required"),
    ("kit: a\nbroker: http://x\n", 2, "broker url must be"),
])
def test_kit_syntax_and_schema_errors(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(text)
    with pytest.raises(KitError) as info:
        load_kit(path)
    assert any(p.startswith(f"{path}:{line}:") and message in p for p in info.value.problems), info.value.problems


def test_demo_kit_is_valid() -> None:
    loaded = load_kit(ROOT / "field_kits" / "demo.yaml")
    assert {d.id for d in loaded.kit.devices} >= {"drone-1", "drone-2"}
    assert loaded.profiles["drone-1"]["stream_rates_hz"]["GLOBAL_POSITION_INT"] > 0
    proc = subprocess.run([sys.executable, "-m", "gateway.cli", "kit", "check", str(ROOT / "field_kits" / "demo.yaml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_kit_uplinks_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "k.yaml"
    path.write_text(
        "kit: k\n"
        "uplinks:\n"
        "  - name: lte\n"
        "    broker: mqtt://127.0.0.1:1883\n"
        "    health_from: [modem-9]\n"
        "  - name: lte\n"
        "    budget_kbps: -5\n"
        "outbox: {cap_mb: 0}\n"
        "devices: []\n")
    with pytest.raises(KitError) as info:
        load_kit(path)
    text = "\n".join(info.value.problems)
    assert f"{path}:5: uplinks.0.health_from.0: no device 'modem-9'" in text
    assert f"{path}:6: uplinks.1.name: duplicate uplink 'lte'" in text
    assert f"{path}:7: uplinks.1.budget_kbps" in text
    assert f"{path}:8: outbox.cap_mb" in text


def test_candidates_are_rewritten_for_a_1to1_nat() -> None:
    from media.whep import advertise

    sdp = ("v=0\r\na=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host\r\n"
           "a=candidate:2 1 udp 2130706431 127.0.0.1 40001 typ host\r\n")
    out = advertise(sdp, {"10.0.0.5": "203.0.113.7"})
    assert "203.0.113.7 40000 typ host" in out and "10.0.0.5" not in out and "127.0.0.1 40001" in out
    assert advertise(sdp, {}) == sdp


def test_recordings_are_pruned_by_size_and_age_never_the_current_one(tmp_path: Path) -> None:
    import os
    import time

    from media.recorder import RecordPolicy, Recorder

    rec = Recorder("cam", tmp_path, RecordPolicy(segment_s=60, max_age_h=1, max_total_mb=0.25))
    try:
        now = time.time()
        for i, age_h in enumerate((5, 0.5, 0.4, 0.3)):
            f = tmp_path / f"cam-2026112{i}T000000Z.mp4"
            f.write_bytes(b"x" * 100_000)
            os.utime(f, (now - age_h * 3600, now - age_h * 3600))
        rec._prune()  # noqa: SLF001
        left = [f["name"] for f in rec.list()]
        # the 5 h old one goes for age; then the oldest until <= 0.25 MB; the newest is kept
        assert left == ["cam-20261122T000000Z.mp4", "cam-20261123T000000Z.mp4"]
    finally:
        rec.close()


def test_run_listens_where_told_and_warns_off_loopback(tmp_path: Path) -> None:
    import time

    import httpx

    from tests.conftest import free_port
    from tests.helpers import write_kit

    kit = write_kit(tmp_path / "kit.yaml", [])
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "run", str(kit), "--data-dir", str(tmp_path / "d"),
                             "--http-host", "127.0.0.2", "--http-port", str(port), "--mqtt-port", str(free_port())],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.2:{port}/api/v1/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise AssertionError("not listening on 127.0.0.2")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "without TLS: passwords and bearer tokens cross the network in clear text" in out


def test_a_kit_can_coalesce_a_devices_telemetry(tmp_path: Path) -> None:
    from gateway.app import Gateway, GatewayOptions
    from tests.procs import drone, free_port, write_kit

    kit = write_kit(tmp_path / "kit.yaml", [{**drone("drone-1", free_port(), 1), "telemetry_every_s": 5},
                                            drone("drone-2", free_port(), 2)])
    gw = Gateway(load_kit(kit), GatewayOptions(data_dir=tmp_path / "data", http_port=0, mqtt_port=free_port()))
    assert gw.uplinks.telemetry_every_s == {"drone-1": 5}  # drone-2: every message, the default
    gw.users.close()
    bad = write_kit(tmp_path / "bad.yaml", [{**drone("drone-1", free_port(), 1), "telemetry_every_s": 0}])
    with pytest.raises(KitError, match="telemetry_every_s"):
        load_kit(bad)


def test_a_device_that_offers_its_stream_at_a_new_url_is_followed(tmp_path: Path) -> None:
    from gateway.app import Gateway, GatewayOptions
    from gateway.model import StreamOffer
    from tests.procs import free_port, write_kit

    gw = Gateway(load_kit(write_kit(tmp_path / "kit.yaml", [])), GatewayOptions(data_dir=tmp_path / "d", http_port=0,
                                                                                mqtt_port=free_port()))
    try:
        gw.bus.publish(StreamOffer("cam-1", 1, "cam-1-video", "rtsp://127.0.0.1:1/a", on_demand=True))
        gw.bus.publish(StreamOffer("cam-1", 2, "cam-1-video", "rtsp://127.0.0.1:1/b", on_demand=True))  # after a reboot
        assert [s.cfg.url for s in gw.media.sources.values()] == ["rtsp://127.0.0.1:1/b"]
        gw.bus.publish(StreamOffer("cam-2", 3, "cam-1-video", "rtsp://127.0.0.1:2/x", on_demand=True))  # not its stream
        assert gw.media.sources["cam-1-video"].cfg.url == "rtsp://127.0.0.1:1/b"
    finally:
        gw.users.close()
