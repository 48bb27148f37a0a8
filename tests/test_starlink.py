"""The Starlink driver against the dish simulator (hil.starlink), with no gateway process:
the driver runs on its own with a fake DriverContext that keeps what it publishes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha import reflection_pb2

from drivers.starlink.driver import StarlinkDriver
from drivers.starlink.reflection import ReflectionError, learn_method
from drivers.starlink.status import DishStatus, NotADish, build_request, read_status
from gateway.backoff import Backoff
from gateway.driver_api import DeviceSpec, LinkSpec
from gateway.kit import KitError, load_kit
from gateway.model import Event, LinkHealth, OnlineChange, StatusUpdate, Telemetry
from tests.procs import free_port, write_kit
from tests.serial_sims import OrderedCollector, SimProcess, supervised

pytestmark = pytest.mark.timeout(30)
DISH = "dish-1"


class Sim(SimProcess):
    def __init__(self) -> None:
        super().__init__("hil.starlink", ["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", "--seed", "3"],
                         ready_timeout=30.0)
        self.transport = "grpc://{}:{}".format(*self.ready["grpc"])


@pytest.fixture
def sim() -> Iterator[Sim]:
    s = Sim()
    yield s
    s.stop()


def make_driver(transport: str, **options: Any) -> tuple[StarlinkDriver, OrderedCollector]:
    ctx = OrderedCollector()
    spec = DeviceSpec(DISH, "satcom", "Dish", transport, options={"poll_s": 0.2, "timeout_s": 0.5, **options})
    return StarlinkDriver(LinkSpec("starlink", transport, (spec,)), ctx), ctx


def running(driver: StarlinkDriver, ctx: OrderedCollector) -> AbstractAsyncContextManager[list[Exception]]:
    """What gateway.supervisor does for a link: run, mark offline when a run ends, back off, run again."""
    return supervised(driver, ctx=ctx, backoff=Backoff(initial=0.2, maximum=1.0))


def statuses(ctx: OrderedCollector) -> list[dict[str, Any]]:
    return [m.status for m in ctx.of(StatusUpdate)]


async def test_values_read_by_name(sim: Sim) -> None:
    for line in ("set pop_ping_latency_ms 42.5", "set pop_ping_drop_rate 0.0125", "set downlink_throughput_bps 123456789",
                 "set uplink_throughput_bps 9876543", "set fraction_obstructed 0.0625"):
        await sim.control_ok(line)
    driver, ctx = make_driver(sim.transport)
    async with running(driver, ctx):
        status = await ctx.wait(lambda: next(iter(statuses(ctx)), None), 8.0, "a status")
        values = await ctx.wait(lambda: next(iter(ctx.of(Telemetry)), None), 8.0, "telemetry")
    assert status["latency_ms"] == pytest.approx(42.5) and status["drop_rate"] == pytest.approx(0.0125)
    assert status["downlink_bps"] == pytest.approx(123456789, rel=1e-6)  # a float field on the dish
    assert status["uplink_bps"] == pytest.approx(9876543, rel=1e-6)
    assert status["fraction_obstructed"] == pytest.approx(0.0625) and status["currently_obstructed"] is False
    assert status["alerts"] == [] and status["software_version"] and isinstance(status["uptime_s"], int)
    assert status["link_up"] is True
    assert values.values == pytest.approx({"latency_ms": 42.5, "drop_rate": 0.0125, "downlink_bps": 123456789,
                                           "uplink_bps": 9876543, "obstructed_pct": 6.25}, rel=1e-6)
    online = ctx.of(OnlineChange)
    assert online[0].online is True and "answering" in online[0].reason
    assert ctx.health()[0].up is True
    assert driver.stats()["reflections"] == 1 and driver.stats()["polls"] >= 1


async def test_link_health_follows_drop_rate_and_obstruction(sim: Sim) -> None:
    driver, ctx = make_driver(sim.transport, obstruction_grace_s=1.0)
    async with running(driver, ctx):
        await ctx.wait(lambda: ctx.health(), 8.0, "first link report")
        assert [h.up for h in ctx.health()] == [True]

        await sim.control_ok("set pop_ping_drop_rate 0.8")
        await ctx.wait(lambda: not ctx.health()[-1].up, 8.0, "link down on drops")
        assert "drop rate 80%" in ctx.health()[-1].detail
        await asyncio.sleep(0.6)  # still down, and said once: LinkHealth goes out on a change only
        assert [h.up for h in ctx.health()] == [True, False]
        await sim.control_ok("set pop_ping_drop_rate auto")
        await ctx.wait(lambda: ctx.health()[-1].up, 8.0, "link up again")

        await sim.control_ok("set currently_obstructed true")
        started = await ctx.wait(lambda: [e for e in ctx.of(Event) if e.type == "obstruction"], 8.0, "obstruction event")
        seen = time.monotonic()
        assert started[0].severity == "warning" and started[0].extra["obstructed"] is True
        assert ctx.health()[-1].up  # within the grace the link still counts as up
        await ctx.wait(lambda: not ctx.health()[-1].up, 8.0, "link down after the grace")
        waited = time.monotonic() - seen
        assert 0.7 < waited < 2.0, waited
        assert "obstructed for" in ctx.health()[-1].detail
        await sim.control_ok("set currently_obstructed auto")
        await ctx.wait(lambda: ctx.health()[-1].up, 8.0, "link up when the sky clears")
        ended = [e for e in ctx.of(Event) if e.type == "obstruction"][-1]
        assert ended.extra["obstructed"] is False and ended.severity == "info"
    assert [h.up for h in ctx.health()] == [True, False, True, False, True]


def test_drop_rate_needs_two_good_polls_to_count_as_up_again() -> None:
    driver, ctx = make_driver("grpc://127.0.0.1:9200")
    for rate in (0.01, 0.6, 0.2, 0.7, 0.2, 0.1, 0.3):
        driver._take(DishStatus(latency_ms=40.0, drop_rate=rate))
    assert [(h.up, h.detail.split(" (")[0]) for h in ctx.health()] == [
        (True, "dish online, latency 40 ms, drop rate 1.0%"), (False, "PoP ping drop rate 60%"),
        (True, "dish online, latency 40 ms, drop rate 10.0%")]
    assert [s["link_up"] for s in statuses(ctx)] == [True, False, False, False, False, True, True]


async def test_alerts_become_events(sim: Sim) -> None:
    await sim.control_ok("alert motors_stuck on")  # already raised when the driver starts: news too
    driver, ctx = make_driver(sim.transport)
    async with running(driver, ctx):
        await ctx.wait(lambda: [e for e in ctx.of(Event) if e.extra.get("alert") == "motors_stuck"], 8.0, "first alert")
        await sim.control_ok("alert thermal_throttle on")
        await ctx.wait(lambda: [e for e in ctx.of(Event) if e.extra.get("alert") == "thermal_throttle"], 8.0, "second alert")
        assert statuses(ctx)[-1]["alerts"] == ["motors_stuck", "thermal_throttle"]
        await sim.control_ok("alert motors_stuck off")
        await ctx.wait(lambda: [e for e in ctx.of(Event) if e.extra.get("active") is False], 8.0, "alert cleared")
        await asyncio.sleep(0.5)
    alerts = [(e.extra["alert"], e.extra["active"], e.severity) for e in ctx.of(Event) if e.type == "dish_alert"]
    assert alerts == [("motors_stuck", True, "warning"), ("thermal_throttle", True, "warning"),
                      ("motors_stuck", False, "info")]
    assert statuses(ctx)[-1]["alerts"] == ["thermal_throttle"]
    assert all(h.up for h in ctx.health())  # alerts alone do not take the link down


async def test_dish_down_goes_offline_then_recovers(sim: Sim) -> None:
    driver, ctx = make_driver(sim.transport, max_failures=3)
    async with running(driver, ctx) as failures:
        await ctx.wait(lambda: ctx.health(), 8.0, "link up")
        await asyncio.sleep(1.2)
        await sim.control_ok("down 2")
        await ctx.wait(lambda: not ctx.health()[-1].up, 8.0, "link down while the dish is silent")
        assert "not answering" in ctx.health()[-1].detail
        await ctx.wait(lambda: failures, 8.0, "the run to end")
        assert isinstance(failures[0], ConnectionError)
        await ctx.wait(lambda: ctx.health()[-1].up, 10, "link up after the reboot")
        await ctx.wait(lambda: ctx.of(OnlineChange)[-1].online, 8.0, "online again")
    kinds = [(type(m).__name__, getattr(m, "up", getattr(m, "online", None))) for m in ctx.messages
             if isinstance(m, LinkHealth | OnlineChange)]
    first_down = kinds.index(("LinkHealth", False))
    first_offline = kinds.index(("OnlineChange", False))
    assert kinds[0] == ("OnlineChange", True) and first_down < first_offline  # reported down before the run ended
    assert [h.up for h in ctx.health()] == [True, False, True]  # said once each way, whatever the retries
    after = [s for s in statuses(ctx) if "uptime_s" in s][-1]
    assert after["uptime_s"] < 5  # the dish rebooted
    stats = driver.stats()
    assert stats["failed_polls"] >= 3 and stats["reflections"] >= 2 and stats["link_up"] is True
    assert (await sim.control_ok("stats"))["downs"] == 1


async def test_no_dish_at_all_reports_the_link_down() -> None:
    driver, ctx = make_driver(f"grpc://127.0.0.1:{free_port()}")
    with pytest.raises(ConnectionError, match="cannot learn"):
        await driver.run()
    assert [h.up for h in ctx.health()] == [False] and not ctx.of(OnlineChange)
    with pytest.raises(ConnectionError):
        await driver.run()
    assert len(ctx.health()) == 1 and driver.stats()["reflection_failures"] == 2


class OneFileReflection:
    """A reflection service (v1 only) that sends one file per answer and no well-known types, as some
    servers do: the client must ask for imports by name and bring google/protobuf/*.proto itself."""

    def __init__(self, files: list[descriptor_pb2.FileDescriptorProto]) -> None:
        self.files = {f.name: f for f in files}
        self.asked: list[str] = []

    async def info(self, requests: Any, context: Any) -> Any:
        async for req in requests:
            kind = req.WhichOneof("message_request")
            self.asked.append(f"{kind}={getattr(req, kind)}")
            if kind == "file_containing_symbol":
                found = [f for f in self.files.values() if any(f"{f.package}.{s.name}" == req.file_containing_symbol
                                                                for s in f.service)]
            else:
                found = [self.files[req.file_by_filename]] if req.file_by_filename in self.files else []
            if found:
                yield reflection_pb2.ServerReflectionResponse(file_descriptor_response=reflection_pb2.FileDescriptorResponse(
                    file_descriptor_proto=[found[0].SerializeToString()]))
            else:
                yield reflection_pb2.ServerReflectionResponse(error_response=reflection_pb2.ErrorResponse(
                    error_code=grpc.StatusCode.NOT_FOUND.value[0], error_message="not found"))


async def test_reflection_follows_imports_and_falls_back_to_v1() -> None:
    F = descriptor_pb2.FieldDescriptorProto
    types = descriptor_pb2.FileDescriptorProto(name="fw/types.proto", package="Fw", syntax="proto3",
                                               dependency=["google/protobuf/timestamp.proto"])
    status = types.message_type.add(name="Status")
    status.field.add(name="pop_ping_drop_rate", number=40, type=F.TYPE_FLOAT, label=F.LABEL_OPTIONAL)
    status.field.add(name="when", number=41, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                     type_name=".google.protobuf.Timestamp")
    device = descriptor_pb2.FileDescriptorProto(name="fw/device.proto", package="Fw", syntax="proto3",
                                                dependency=["fw/types.proto"])
    device.message_type.add(name="Ask").field.add(name="get_status", number=3, type=F.TYPE_MESSAGE,
                                                  label=F.LABEL_OPTIONAL, type_name=".Fw.Status")
    device.service.add(name="Device").method.add(name="Handle", input_type=".Fw.Ask", output_type=".Fw.Status")
    servicer = OneFileReflection([types, device])
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("grpc.reflection.v1.ServerReflection", {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.info, request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        method = await learn_method(channel, "Fw.Device", "Handle", 5.0)
        with pytest.raises(ReflectionError, match="no method Nope"):
            await learn_method(channel, "Fw.Device", "Nope", 5.0)
        with pytest.raises(ReflectionError, match="not found"):
            await learn_method(channel, "Fw.Other", "Handle", 5.0)
    finally:
        await channel.close()
        await server.stop(None)
    assert method.path == "/Fw.Device/Handle"
    assert build_request(method.request).HasField("get_status")
    reply = method.response(pop_ping_drop_rate=0.5)
    reply.when.seconds = 1_700_000_000
    assert method.response.FromString(reply.SerializeToString()).when.seconds == 1_700_000_000
    assert servicer.asked[:3] == ["file_containing_symbol=Fw.Device", "file_by_filename=fw/types.proto",
                                  "file_by_filename=google/protobuf/timestamp.proto"]


def _types(status_fields: list[tuple[str, int, int]]) -> tuple[Any, Any]:
    """Request/Response of a made-up firmware whose status has only `status_fields`."""
    F = descriptor_pb2.FieldDescriptorProto
    fd = descriptor_pb2.FileDescriptorProto(name="fw.proto", package="Fw", syntax="proto3")
    status = fd.message_type.add(name="DishGetStatusResponse")
    for name, number, ftype in status_fields:
        status.field.add(name=name, number=number, type=ftype, label=F.LABEL_OPTIONAL)
    fd.message_type.add(name="WifiGetStatusResponse")
    resp = fd.message_type.add(name="Response")
    resp.field.add(name="id", number=1, type=F.TYPE_UINT64, label=F.LABEL_OPTIONAL)
    resp.field.add(name="dish_get_status", number=77, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                   type_name=".Fw.DishGetStatusResponse")
    resp.field.add(name="wifi_get_status", number=78, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                   type_name=".Fw.WifiGetStatusResponse")
    fd.message_type.add(name="Request").field.add(name="id", number=1, type=F.TYPE_UINT64, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return (GetMessageClass(pool.FindMessageTypeByName("Fw.Request")),
            GetMessageClass(pool.FindMessageTypeByName("Fw.Response")))


def test_missing_fields_are_left_out() -> None:
    F = descriptor_pb2.FieldDescriptorProto
    request_cls, response_cls = _types([("pop_ping_drop_rate", 9, F.TYPE_FLOAT), ("pop_ping_latency_ms", 5, F.TYPE_DOUBLE)])
    response = response_cls()
    response.dish_get_status.pop_ping_drop_rate = 0.25
    s = read_status(response)
    assert s.drop_rate == 0.25 and s.latency_ms == 0.0 and s.downlink_bps is None and s.currently_obstructed is None
    assert s.status() == {"drop_rate": 0.25, "latency_ms": 0.0, "alerts": []}
    assert s.values() == {"drop_rate": 0.25, "latency_ms": 0.0}
    with pytest.raises(NotADish, match="get_status"):
        build_request(request_cls)  # a device without get_status
    router = response_cls()
    router.wifi_get_status.SetInParent()
    with pytest.raises(NotADish, match="wifi_get_status"):
        read_status(router)


def test_kit_checks(tmp_path: Path) -> None:
    good = write_kit(tmp_path / "good.yaml", [
        {"id": "dish", "driver": "starlink", "transport": "grpc://192.168.100.1:9200",
         "options": {"poll_s": 5, "max_drop_rate": 0.3, "obstruction_grace_s": 0, "max_failures": 3}}],
        uplinks=[{"name": "starlink", "broker": "mqtt://127.0.0.1:1883", "health_from": ["dish"]}])
    loaded = load_kit(good)
    assert loaded.device_kind(loaded.kit.devices[0]) == "satcom"
    bad = write_kit(tmp_path / "bad.yaml", [
        {"id": "dish", "driver": "starlink", "transport": "grpc://192.168.100.1:9200/x",
         "options": {"poll_s": 0, "max_drop_rate": 1.5, "max_failures": 2.5, "pol_s": 3, "obstruction_grace_s": True}},
        {"id": "dish-2", "driver": "starlink", "transport": "grpc://192.168.100.1:9200/x"}])
    with pytest.raises(KitError) as info:
        load_kit(bad)
    text = "\n".join(info.value.problems)
    for where in ("devices.0.options.poll_s: poll_s must be a number 0.1..3600",
                  "devices.0.options.max_drop_rate:", "devices.0.options.max_failures: max_failures must be a whole number",
                  "devices.0.options.pol_s: unknown option", "devices.0.options.obstruction_grace_s:",
                  "devices.0.options: transport must be grpc://HOST:PORT", "devices.1.options: one dish per grpc://"):
        assert where in text, (where, text)
