"""The dispatcher's own logic: fitting text to a channel, priorities, retries,
failover, waiting for an offline carrier, and surviving a restart.

The channels here are an in-process Driver subclass standing in for a modem
(its send outcome is scripted), so the dispatcher's decisions are tested on
their own; tests/test_dispatch_e2e.py drives the real drivers and simulators.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.bus import Bus
from gateway.dispatch import Dispatcher, DispatchRefused
from gateway.dispatch_split import ELLIPSIS, fit
from gateway.driver_api import CommandError, Driver, LinkSpec, OnSent, TextRoute
from gateway.model import Device, OnlineChange, now_ms
from gateway.registry import DeviceRegistry

PREFIX = re.compile(r"^\(\d+/\d+\)")


def ucs2(text: str) -> int:
    return len(text.encode("utf-16-be"))


@settings(max_examples=300, deadline=None)
@given(text=st.text(min_size=1, max_size=400), max_size=st.integers(16, 200), max_parts=st.integers(1, 6))
@example(text=".0\U00010000000\U00010000", max_size=16, max_parts=2)  # shortened into one part: no "(1/1)"
def test_fit_parts_fit_and_keep_the_text(text: str, max_size: int, max_parts: int) -> None:
    parts, note = fit(text, ucs2, max_size, max_parts)
    assert 1 <= len(parts) <= max_parts
    assert all(ucs2(p) <= max_size for p in parts), parts
    body = "".join(PREFIX.sub("", p) if len(parts) > 1 else p for p in parts)
    if note.startswith("shortened"):
        assert body.endswith(ELLIPSIS) and text.startswith(body[: -len(ELLIPSIS)])
    else:
        assert body == text
        assert (note == "") == (len(parts) == 1)


def test_fit_says_how_it_split() -> None:
    parts, note = fit("撤离到二号高地，沿河堤向北，注意落石。" * 4, ucs2, 40, 8)
    assert len(parts) > 1 and parts[0].startswith("(1/") and "split into" in note


class ScriptedModem(Driver):
    """A stand-in modem: each send's outcome comes from `outcomes` (None = delivered)."""

    name = "scripted"
    default_kind = "radio"
    transport_schemes = ("test",)

    def __init__(self, carrier: str, targets: dict[str, str], max_size: int = 100) -> None:
        super().__init__(LinkSpec("scripted", "test://", ()), ctx=None)  # type: ignore[arg-type]
        self.carrier = carrier
        self.targets = targets  # device id → address
        self.max_size = max_size
        self.outcomes: list[CommandError | None] = []
        self.sent: list[tuple[str, str]] = []

    def text_route(self, device_id: str) -> TextRoute | None:
        addr = self.targets.get(device_id)
        return TextRoute("test", self.carrier, addr, self.max_size, ucs2) if addr else None

    def command_timeout(self, command: str) -> float | None:
        return 2.0

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def execute(self, device_id: str, command: str, args: dict[str, Any], on_sent: OnSent) -> str:
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        on_sent()
        self.sent.append((args["to"], args["text"]))
        return f"delivered to {args['to']}"


class Kit:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.bus = Bus()
        self.registry = DeviceRegistry()
        self.bus.add_tap(self.registry.tap)
        self.drivers: dict[str, ScriptedModem] = {}
        self.radio = ScriptedModem("radio-modem", {"team-1": "1001", "team-2": "1002"})
        self.sat = ScriptedModem("sat-modem", {"team-1-sat": "0123456"})
        for modem in (self.radio, self.sat):
            self._add(modem.carrier, modem, "radio")
            for dev in modem.targets:
                self._add(dev, modem, "radio")
        self._add("drone-1", None, "uav")

    def _add(self, dev_id: str, driver: ScriptedModem | None, kind: str) -> None:
        self.registry.add(Device(id=dev_id, kind=kind, driver="scripted", name=dev_id))
        if driver is not None:
            self.drivers[dev_id] = driver

    def online(self, dev_id: str, up: bool = True) -> None:
        self.bus.publish(OnlineChange(dev_id, now_ms(), up))

    def dispatcher(self, via: dict[str, list[str]] | None = None) -> Dispatcher:
        return Dispatcher(self.bus, self.registry, self.drivers.get, self.tmp, set(), via or {}, retry_initial_s=0.01)


async def wait_done(disp: Dispatcher, dispatch_id: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        d = await disp.get(dispatch_id)
        assert d is not None
        if d.done:
            return d.public()
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"dispatch not done: {d.public()}")
        await asyncio.sleep(0.02)


async def test_bad_orders_are_refused_with_a_reason(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    disp = kit.dispatcher()
    await disp.open()
    try:
        for body, code in [({"text": " ", "targets": "all"}, "empty_text"),
                           ({"text": "x", "targets": ["team-9"]}, "unknown_target"),
                           ({"text": "x", "targets": []}, "bad_targets"),
                           ({"text": "x", "targets": "all", "priority": "urgent"}, "bad_priority"),
                           ({"text": "x" * 5000, "targets": "all"}, "text_too_long"),
                           ([1, 2], "bad_dispatch")]:
            with pytest.raises(DispatchRefused) as info:
                await disp.submit(body, "test")
            assert info.value.code == code and info.value.http_status == 400
        d = await disp.submit({"text": "go", "targets": ["drone-1"]}, "test")
        assert d.deliveries[0].status == "failed" and "no channel" in d.deliveries[0].detail
    finally:
        await disp.close()


async def test_flash_goes_first_and_waits_for_an_offline_carrier(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    disp = kit.dispatcher()
    await disp.open()
    try:
        routine = await disp.submit({"text": "routine order", "targets": ["team-1", "team-2"]}, "test")
        flash = await disp.submit({"text": "FLASH order", "targets": ["team-2"], "priority": "flash"}, "test")
        await asyncio.sleep(0.1)
        assert kit.radio.sent == [] and all(dl.status == "queued" for dl in routine.deliveries)
        kit.online("radio-modem")
        await wait_done(disp, routine.id)
        await wait_done(disp, flash.id)
        assert kit.radio.sent[0] == ("1002", "FLASH order")
        assert sorted(kit.radio.sent[1:]) == [("1001", "routine order"), ("1002", "routine order")]
    finally:
        await disp.close()


async def test_retries_then_fails_over_to_the_teams_next_channel(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    kit.online("radio-modem")
    kit.online("sat-modem")
    disp = kit.dispatcher(via={"team-1": ["team-1-sat"]})
    await disp.open()
    try:
        kit.radio.outcomes = [CommandError("failed", "no delivery report")] * 2
        d = await disp.submit({"text": "hold position", "targets": ["team-1"]}, "test")
        done = await wait_done(disp, d.id)
        assert done["deliveries"][0]["status"] == "delivered" and done["deliveries"][0]["attempts"] == 3
        kit.radio.outcomes = [CommandError("failed", "radio refused")] * 10
        d = await disp.submit({"text": "move north", "targets": ["team-1"]}, "test")
        done = await wait_done(disp, d.id)
        dl = done["deliveries"][0]
        assert dl["status"] == "delivered" and dl["channel"] == "test" and "gave up" in dl["detail"], dl
        assert kit.sat.sent == [("0123456", "move north")]
    finally:
        await disp.close()


async def test_a_split_order_arrives_in_parts_in_order(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    kit.radio.max_size = 40
    kit.online("radio-modem")
    disp = kit.dispatcher()
    await disp.open()
    try:
        text = "全体队员立即撤离至二号高地集结，等待进一步命令。"
        d = await disp.submit({"text": text, "targets": ["team-1"]}, "test")
        done = await wait_done(disp, d.id)
        assert done["deliveries"][0]["parts"] > 1 and "split into" in done["deliveries"][0]["detail"]
        assert "".join(PREFIX.sub("", t) for _, t in kit.radio.sent) == text
    finally:
        await disp.close()


async def test_open_deliveries_survive_a_restart(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    disp = kit.dispatcher()
    await disp.open()
    d = await disp.submit({"text": "stay put", "targets": ["team-1", "team-2"], "priority": "flash"}, "test")
    await disp.close()  # the gateway stops with both deliveries still queued (the radio never came up)

    kit2 = Kit(tmp_path)
    disp2 = kit2.dispatcher()
    await disp2.open()
    try:
        again = await disp2.get(d.id)
        assert again is not None and [dl.status for dl in again.deliveries] == ["queued", "queued"]
        kit2.online("radio-modem")
        done = await wait_done(disp2, d.id)
        assert [dl["status"] for dl in done["deliveries"]] == ["delivered", "delivered"]
        assert "resumed after a gateway restart" in done["deliveries"][0]["detail"]
        assert sorted(kit2.radio.sent) == [("1001", "stay put"), ("1002", "stay put")]
    finally:
        await disp2.close()


async def test_a_flash_order_waits_for_one_part_not_a_whole_long_order(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    kit.radio.max_size = 30
    disp = kit.dispatcher()
    await disp.open()
    try:
        long = await disp.submit({"text": "routine: " + "move the pumps to the school yard " * 3, "targets": ["team-1"]}, "t")
        assert len(long.deliveries[0].parts) >= 3
        flash = await disp.submit({"text": "FLASH", "targets": ["team-2"], "priority": "flash"}, "t")
        kit.online("radio-modem")
        await wait_done(disp, flash.id)
        await wait_done(disp, long.id)
        assert [to for to, _ in kit.radio.sent].index("1002") <= 1  # after at most the part already on air
    finally:
        await disp.close()


async def test_each_part_gets_its_own_retries(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    kit.radio.max_size = 30
    kit.online("radio-modem")
    disp = kit.dispatcher()
    await disp.open()
    try:
        fail = CommandError("failed", "no report")
        kit.radio.outcomes = [fail, None, fail, None, fail, None]  # every part fails once, then goes
        d = await disp.submit({"text": "part one. part two. part three. part four.", "targets": ["team-1"]}, "t")
        done = await wait_done(disp, d.id)
        assert done["deliveries"][0]["status"] == "delivered" and done["deliveries"][0]["channel"] == "test"
    finally:
        await disp.close()


async def test_waiting_orders_move_to_a_channel_that_comes_online(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    disp = kit.dispatcher(via={"team-1": ["team-1-sat"]})
    await disp.open()
    try:
        d = await disp.submit({"text": "regroup", "targets": ["team-1"]}, "t")  # both modems offline: waits on the radio
        await asyncio.sleep(0.1)
        assert d.deliveries[0].carrier == "radio-modem" and d.deliveries[0].status == "queued"
        kit.online("sat-modem")
        done = await wait_done(disp, d.id)
        assert done["deliveries"][0]["status"] == "delivered" and kit.sat.sent == [("0123456", "regroup")]
        assert kit.radio.sent == []
    finally:
        await disp.close()


async def test_an_order_that_cannot_be_stored_is_refused_and_not_remembered(tmp_path: Path) -> None:
    kit = Kit(tmp_path)
    kit.online("radio-modem")
    disp = kit.dispatcher()
    await disp.open()
    try:
        store = disp._store
        assert store is not None
        real = store.save_many

        def broken(batch: Any) -> None:
            raise OSError(28, "No space left on device")

        store.save_many = broken  # type: ignore[method-assign]
        with pytest.raises(DispatchRefused) as info:
            await disp.submit({"id": "order-1", "text": "x", "targets": ["team-1"]}, "t")
        assert info.value.http_status == 503 and kit.radio.sent == []
        store.save_many = real  # type: ignore[method-assign]
        d = await disp.submit({"id": "order-1", "text": "x", "targets": ["team-1"]}, "t")  # the retry really sends
        done = await wait_done(disp, d.id)
        assert done["deliveries"][0]["status"] == "delivered" and kit.radio.sent == [("1001", "x")]
    finally:
        await disp.close()
