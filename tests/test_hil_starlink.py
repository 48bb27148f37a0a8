"""Starlink dish simulator (hil.starlink), seen as a real client sees a dish: the
message types come from gRPC server reflection only (no .proto, no import of the
simulator's message module), fields are read by name.

The simulator runs as ``python -m hil.starlink``; scripted states go through its
control port or a ``--script`` file.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.procs import ROOT
from tests.serial_sims import SimProcess

SERVICE = "SpaceX.API.Device.Device"
pytestmark = pytest.mark.timeout(30)


class Sim(SimProcess):
    def __init__(self, tmp_path: Path, *extra: str) -> None:
        super().__init__("hil.starlink", ["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--seed", "7", *extra],
                         ready_timeout=30.0, keep_control=True)
        assert self.ready["ready"] is True
        self.target = "%s:%d" % tuple(self.ready["grpc"])


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    s = Sim(tmp_path)
    yield s
    s.stop()


class ReflectingClient:
    """Learns Request/Response by reflection, then calls Handle — as starlink-grpc-tools does."""

    def __init__(self, target: str) -> None:
        # Quick reconnects, so that a test of the dish coming back needs no long waits.
        self.channel = grpc.insecure_channel(target, options=[("grpc.initial_reconnect_backoff_ms", 100),
                                                              ("grpc.max_reconnect_backoff_ms", 300)])
        self.pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(self.channel))
        method = self.pool.FindServiceByName(SERVICE).methods_by_name["Handle"]
        self.Request = GetMessageClass(method.input_type)
        self.Response = GetMessageClass(method.output_type)
        self.handle: Callable[..., Any] = self.channel.unary_unary(
            f"/{SERVICE}/Handle", request_serializer=self.Request.SerializeToString,
            response_deserializer=self.Response.FromString)

    def status(self, timeout: float = 3.0) -> Any:
        response = self.handle(self.Request(get_status={}), timeout=timeout)
        assert response.WhichOneof("response") == "dish_get_status"
        return response.dish_get_status

    def close(self) -> None:
        self.channel.close()


@pytest.fixture
def client(sim: Sim) -> Iterator[ReflectingClient]:
    c = ReflectingClient(sim.target)
    yield c
    c.close()


def test_reflection_lists_the_dish_service(sim: Sim, client: ReflectingClient) -> None:
    services = set(ProtoReflectionDescriptorDatabase(client.channel).get_services())
    assert SERVICE in services and "grpc.reflection.v1alpha.ServerReflection" in services
    status_type = client.pool.FindMessageTypeByName("SpaceX.API.Device.DishGetStatusResponse")
    names = {f.name for f in status_type.fields}
    assert {"device_info", "device_state", "pop_ping_latency_ms", "pop_ping_drop_rate", "downlink_throughput_bps",
            "uplink_throughput_bps", "obstruction_stats", "alerts", "boresight_azimuth_deg",
            "boresight_elevation_deg", "gps_stats"} <= names
    alerts = {f.name for f in status_type.fields_by_name["alerts"].message_type.fields}
    assert {"motors_stuck", "thermal_throttle", "thermal_shutdown", "unexpected_location",
            "mast_not_near_vertical", "slow_ethernet_speeds"} <= alerts


def test_get_status_online_values_vary_realistically(client: ReflectingClient) -> None:
    samples = [client.status() for _ in range(20)]
    s = samples[0]
    assert s.device_info.id.startswith("ut") and s.device_info.hardware_version and s.device_info.software_version
    assert s.gps_stats.gps_valid and s.gps_stats.gps_sats >= 4
    assert 0 < s.boresight_elevation_deg <= 90
    latencies = [x.pop_ping_latency_ms for x in samples]
    assert all(25 <= v <= 60 for v in latencies) and len(set(latencies)) > 5  # noisy, in range
    assert all(x.pop_ping_drop_rate < 0.01 for x in samples)
    assert all(x.downlink_throughput_bps > 0 and x.uplink_throughput_bps > 0 for x in samples)
    assert not any(x.obstruction_stats.currently_obstructed for x in samples)
    assert not any(getattr(x.alerts, f.name) for x in samples for f in x.alerts.DESCRIPTOR.fields)


def test_scripted_obstruction_drop_rate_and_alerts(sim: Sim, client: ReflectingClient) -> None:
    assert sim.control("state obstructed") == {"ok": True, "state": "obstructed"}
    s = client.status()
    assert s.obstruction_stats.currently_obstructed and s.obstruction_stats.fraction_obstructed > 0.1
    assert s.pop_ping_drop_rate > 0.2
    assert sim.control("set pop_ping_drop_rate 0.6")["ok"]
    assert sim.control("set obstruction_stats.fraction_obstructed 0.42")["ok"]
    assert sim.control("alert thermal_throttle on")["ok"]
    s = client.status()
    assert s.pop_ping_drop_rate == pytest.approx(0.6)
    assert s.obstruction_stats.fraction_obstructed == pytest.approx(0.42)
    assert s.alerts.thermal_throttle and not s.alerts.motors_stuck

    assert sim.control("state offline")["ok"]  # answering, but no service: pins cleared, alert kept
    s = client.status()
    assert s.pop_ping_drop_rate == 1.0 and s.downlink_throughput_bps == 0 and s.alerts.thermal_throttle
    assert sim.control("alert thermal_throttle off")["ok"] and sim.control("state degraded")["ok"]
    s = client.status()
    assert 0 < s.pop_ping_drop_rate < 0.2 and not s.alerts.thermal_throttle

    for bad in ("state sideways", "set no_such_field 1", "set pop_ping_drop_rate 1.5", "alert motors_stuck maybe",
                "set gps_valid perhaps", "down -1", "frobnicate"):
        reply = sim.control(bad)
        assert reply["ok"] is False and reply["error"], bad
    stats = sim.control("stats")
    assert stats["ok"] and stats["served"] == 4 and stats["state"] == "degraded" and stats["up"] is True


def test_empty_request_is_unimplemented(client: ReflectingClient) -> None:
    with pytest.raises(grpc.RpcError) as err:
        client.handle(client.Request(id=5), timeout=3)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert client.status() is not None  # the channel still works


def test_down_refuses_then_recovers_as_after_a_reboot(sim: Sim, client: ReflectingClient) -> None:
    time.sleep(1.1)
    assert client.status().device_state.uptime_s >= 1
    assert sim.control("down 1.5") == {"ok": True, "down_s": 1.5}
    with pytest.raises(grpc.RpcError) as err:
        client.status(timeout=0.5)
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    with socket.socket() as s:  # refused outright, not just slow
        host, port = sim.target.rsplit(":", 1)
        assert s.connect_ex((host, int(port))) != 0
    assert sim.control("stats")["up"] is False
    deadline = time.monotonic() + 6
    while True:  # the same channel (and the types learned before) work again
        try:
            s = client.status(timeout=0.5)
            break
        except grpc.RpcError:
            assert time.monotonic() < deadline, "dish did not come back"
            time.sleep(0.1)
    assert s.device_state.uptime_s < 2  # rebooted
    stats = sim.control("stats")
    assert stats["up"] is True and stats["downs"] == 1 and stats["reboots"] == 1


def test_script_file_plays_in_order(tmp_path: Path) -> None:
    script = tmp_path / "dish.txt"
    script.write_text("# a dish losing its view of the sky\n0 set pop_ping_drop_rate 0.05\n"
                      "0.6 state obstructed   # a tree\n0.6 alert mast_not_near_vertical on\n")
    sim = Sim(tmp_path, "--script", str(script))
    client = ReflectingClient(sim.target)
    try:
        time.sleep(0.2)
        assert client.status().pop_ping_drop_rate == pytest.approx(0.05)
        deadline = time.monotonic() + 5
        while not client.status().alerts.mast_not_near_vertical:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert client.status().obstruction_stats.currently_obstructed
        assert sim.control("stats")["script"] == {"steps": 3, "played": 3, "failed": 0}
    finally:
        client.close()
        sim.stop()


def test_bad_script_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "bad.txt"
    script.write_text("0 state online\n2 sideways 3\n")
    proc = subprocess.run([sys.executable, "-m", "hil.starlink", "--listen", "127.0.0.1:0", "--script", str(script)],
                          cwd=ROOT, capture_output=True, timeout=20)
    assert proc.returncode == 2 and b"bad.txt:2" in proc.stderr and not proc.stdout
