"""TETRA LIP reporting control (docs/serial-protocols.md, "LIP reporting control"): the PDU codecs under
hypothesis and against the spec's worked hex, the profile schema, and the driver's config apply/audit and
drift report against a team radio played in the test from the spec (the PEI over tcp://), and (once
hil/tetra answers LIP control) `fieldgw config apply` / `audit` against the simulator."""

from __future__ import annotations

import asyncio
import binascii
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.tetra_pei import lip, lip_control
from drivers.tetra_pei.driver import TetraPeiDriver
from drivers.tetra_pei.lip_control import BasicParams, LipControlError, LipProfile
from gateway.driver_api import CommandError, DeviceSpec, LinkSpec
from gateway.kit import load_kit
from gateway.model import Event, StatusUpdate
from tests.procs import ROOT, stop_process, write_kit
from tests.serial_sims import Collector, SimProcess, supervised

PROFILE = yaml.safe_load((ROOT / "firmware_configs/tetra/lip_reporting.yaml").read_text())
INCIDENT = yaml.safe_load((ROOT / "firmware_configs/tetra/lip_reporting_incident.yaml").read_text())

# -- codecs ------------------------------------------------------------------------------------

codes = st.integers(0, lip_control.INTERVAL_RESERVED_FROM - 1)
report_types = st.integers(0, 3)


@settings(max_examples=300, deadline=None)
@given(code=codes, rtype=report_types)
def test_set_request_round_trip(code: int, rtype: int) -> None:
    params = BasicParams(code, rtype)
    pdu = lip_control.set_request(params)
    assert len(pdu) == 3 and lip_control.is_control(pdu)
    assert lip_control.parse_request(pdu) == (lip_control.EXT_BASIC_PARAMS, params)
    assert lip_control.parse_request(pdu, 24) == (lip_control.EXT_BASIC_PARAMS, params)


@settings(max_examples=300, deadline=None)
@given(result=st.integers(0, 255), code=st.integers(0, 127), rtype=report_types)
def test_responses_round_trip(result: int, code: int, rtype: int) -> None:
    assert lip_control.parse_response(lip_control.set_response(result), 23) == lip_control.Response(
        lip_control.EXT_BASIC_PARAMS, result)
    params = BasicParams(code, rtype) if result == lip_control.SUCCESS else None
    pdu = lip_control.report_response(result, params)
    bits = 32 if params else 23
    assert len(pdu) == (bits + 7) // 8
    assert lip_control.parse_response(pdu, bits) == lip_control.Response(lip_control.EXT_REPORT_BASIC_PARAMS, result, params)


@settings(max_examples=200, deadline=None)
@given(code=codes)
def test_interval_coding_round_trip(code: int) -> None:
    secs = lip_control.interval_seconds(code)
    assert secs is not None and lip_control.interval_code(secs) == code


@settings(max_examples=300, deadline=None)
@given(secs=st.one_of(st.integers(-10, 4000), st.floats(allow_nan=True, allow_infinity=True)))
def test_interval_code_says_a_value_exactly_or_refuses(secs: float) -> None:
    try:
        code = lip_control.interval_code(secs)
    except LipControlError as exc:
        assert "cannot be sent" in str(exc) or "not a number" in str(exc)
        return
    assert lip_control.interval_seconds(code) == secs


def test_reserved_interval_codes_and_nearest() -> None:
    assert all(lip_control.interval_seconds(c) is None for c in range(120, 128))
    assert lip_control.nearest_intervals(90) == [60, 120]
    with pytest.raises(LipControlError):
        lip_control.set_request(BasicParams(120, 3))


def test_the_spec_worked_examples() -> None:
    """The hex in docs/serial-protocols.md: both sides are written from these."""
    assert lip_control.set_request(BasicParams(lip_control.interval_code(10), 3)).hex().upper() == "0A542B"
    assert lip_control.set_request(BasicParams(lip_control.interval_code(60), 0)).hex().upper() == "0A54F0"
    assert lip_control.report_request().hex().upper() == "0A64"
    ok = lip_control.parse_response(bytes.fromhex("0A66002B"), 32)
    assert ok.ok and ok.params is not None and ok.params.min_interval_s == 10 and ok.params.report_type_name == "short"
    assert lip_control.parse_response(bytes.fromhex("0A5600"), 23) == lip_control.Response(lip_control.EXT_BASIC_PARAMS, 0)
    refused = lip_control.parse_response(bytes.fromhex("0A5604"), 23)
    assert refused.result == 0x02 and lip_control.result_name(refused.result) == "unspecified error"
    assert lip_control.result_name(0x99) == "result code 0x99"
    doc = (ROOT / "docs/serial-protocols.md").read_text()
    for hexpdu in ("0A542B", "0A54F0", "0A64", "0A66002B", "0A5600", "0A5604"):
        assert hexpdu in doc


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=12), bits=st.integers(0, 120))
def test_parsers_raise_nothing_but_their_error(data: bytes, bits: int) -> None:
    for pdu in (data, bytes([lip_control.PID_LIP]) + data, bytes([lip_control.PID_LIP, 0x40 | (data[:1] or b"\0")[0] & 0x3F]) + data[1:]):
        for parse in (lip_control.parse_response, lip_control.parse_request, lip_control.head):
            for b in (None, bits):
                try:
                    parse(pdu, b)
                except LipControlError:
                    pass
        lip_control.is_control(pdu)


def test_a_short_report_is_not_control_and_a_control_pdu_is_not_a_short_report() -> None:
    short = lip.encode(30.6, 104.0)
    assert not lip_control.is_control(short)
    with pytest.raises(lip.LipError):
        lip.decode(lip_control.report_response(0, BasicParams(10, 3)) + bytes(8))


# -- profile schema ----------------------------------------------------------------------------


def test_profiles_in_firmware_configs_are_valid() -> None:
    assert lip_control.check_profile(PROFILE) == [] and lip_control.check_profile(INCIDENT) == []
    assert LipProfile.of(INCIDENT) == LipProfile(10, "short")
    assert LipProfile.of(PROFILE) == LipProfile(60, "short")
    assert LipProfile.of({"protocol": "mavlink"}) is None


def test_profile_problems_are_named() -> None:
    problems = lip_control.check_profile({"protocol": "tetra_lip", "version": 0, "extra": 1,
                                          "lip": {"min_interval_s": 90, "report_type": "tiny", "rate": 2}})
    text = "\n".join(problems)
    for needle in ("unknown key 'extra'", "version", "lip.min_interval_s: 90 s cannot be sent", "nearest: 60, 120",
                   "lip.report_type", "unknown key 'rate'"):
        assert needle in text, text
    assert "lip: a mapping" in "\n".join(lip_control.check_profile({"protocol": "tetra_lip", "version": 1}))
    assert lip_control.check_profile({"protocol": "tetra_lip", "version": 1, "lip": {"min_interval_s": True}})
    assert "at least 1 s" in "\n".join(lip_control.check_profile({"protocol": "tetra_lip", "version": 1,
                                                                    "lip": {"min_interval_s": 0}}))
    assert lip_control.check_profile({"protocol": "tetra_lip", "version": 1, "lip": {"min_interval_s": 3600}}) == []


def _devices(tmp_path: Path, profile: str) -> list[dict[str, Any]]:
    transport = f"serial://{tmp_path}/tetra?baud=38400"
    return [{"id": "radio-gw", "kind": "radio", "driver": "tetra_pei", "transport": transport},
            {"id": "team-1", "kind": "radio", "driver": "tetra_pei", "transport": transport,
             "options": {"address": "1001"}, "profile": profile}]


def test_a_kit_names_the_profile_and_kit_check_validates_it(tmp_path: Path) -> None:
    loaded = load_kit(write_kit(tmp_path / "kit.yaml", _devices(tmp_path, "tetra/lip_reporting.yaml")))
    assert loaded.profiles["team-1"]["lip"] == {"min_interval_s": 60, "report_type": "short"}
    odd = tmp_path / "profiles" / "tetra"
    odd.mkdir(parents=True)
    (odd / "odd.yaml").write_text("protocol: tetra_lip\nversion: 1\nlip: {min_interval_s: 75}\n")
    kit = write_kit(tmp_path / "kit.yaml", _devices(tmp_path, "tetra/odd.yaml"), profiles_dir=str(tmp_path / "profiles"))
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "kit", "check", str(kit)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "75 s cannot be sent" in out.stdout + out.stderr, out.stdout + out.stderr


# -- the driver against a team radio played from the spec ------------------------------------------


@dataclass
class Team:
    interval_code: int = 30  # 30 s
    report_type: int = 3
    result: int = 0  # what a set request is answered
    silent: bool = False  # answers nothing
    requests: list[bytes] = field(default_factory=list)


class FakeRadio:
    """The gateway's radio on PEI (just what the driver needs) with team radios that answer LIP control
    as docs/serial-protocols.md says, over TCP (the driver's tcp:// transport)."""

    def __init__(self, teams: dict[int, Team]) -> None:
        self.teams = teams
        self.writers: list[asyncio.StreamWriter] = []
        self.cmgs: list[tuple[int, int, str]] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"tcp://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.close()

    def send(self, data: str) -> None:
        for w in self.writers:
            w.write(data.encode())

    def sds(self, calling: int, pdu: bytes, bits: int) -> None:
        self.send(f"\r\n+CTSDSR: 12,{calling},0,2001,0,{bits}\r\n{pdu.hex().upper()}\r\n")

    def lip(self, calling: int) -> None:
        self.sds(calling, lip.encode(30.66, 104.06), 84)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        buf = b""
        while data := await reader.read(4096):
            buf += data
            while True:
                buf = buf.lstrip(b"\r\n")
                if buf.startswith(b"AT+CMGS="):
                    if b"\x1a" not in buf:
                        break
                    unit, _, buf = buf.partition(b"\x1a")
                    head, _, hexpdu = unit.partition(b"\r\n")
                    self._cmgs(head.decode(), hexpdu.decode())
                    continue
                if b"\r" not in buf:
                    break
                line, _, buf = buf.partition(b"\r")
                self._command(line.decode())

    def _command(self, cmd: str) -> None:
        answers = {"AT+CNUMF?": "+CNUMF: 0,2001\r\n", "AT+CSQ?": "+CSQ: 25,99\r\n", "AT+CREG?": "+CREG: 0,1\r\n"}
        self.send("\r\n" + answers.get(cmd, "") + "OK\r\n")

    def _cmgs(self, head: str, hexpdu: str) -> None:
        m = re.fullmatch(r"AT\+CMGS=(\d+),(\d+)", head)
        assert m, head
        to, bits = int(m.group(1)), int(m.group(2))
        pdu = binascii.unhexlify(hexpdu)
        assert bits == len(pdu) * 8, "whole bytes, as the spec says"
        self.cmgs.append((to, bits, hexpdu))
        self.send(f"\r\n+CMGS: 0,{len(self.cmgs) % 256}\r\n\r\nOK\r\n")
        team = self.teams.get(to)
        if team is None or team.silent:
            return
        team.requests.append(pdu)
        ext, params = lip_control.parse_request(pdu, bits)
        if ext == lip_control.EXT_BASIC_PARAMS:
            assert params is not None
            if team.result == 0:
                team.interval_code, team.report_type = params.interval_code, params.report_type
            answer, abits = lip_control.set_response(team.result), 23
        else:
            answer, abits = lip_control.report_response(0, BasicParams(team.interval_code, team.report_type)), 32
        asyncio.get_running_loop().call_later(0.05, self.sds, to, answer, abits)


def _driver(url: str, profile: dict[str, Any] | None, group_profile: dict[str, Any] | None = None,
            response_s: float = 0.5, stale_s: float = 900.0) -> tuple[TetraPeiDriver, Collector]:
    devs = (DeviceSpec("radio-gw", "radio", "radio", url, None, {"lip_response_s": response_s, "poll_s": 60,
                                                                  "stale_s": stale_s}),
            DeviceSpec("team-1", "radio", "Team 1", url, profile, {"address": "1001"}),
            DeviceSpec("team-2", "radio", "Team 2", url, None, {"address": "1002"}),
            DeviceSpec("rescue", "radio", "Rescue", url, group_profile, {"address": "9001", "group": True,
                                                                        "members": ["1100-1199"]}))
    ctx = Collector()
    return TetraPeiDriver(LinkSpec("tetra_pei", url, devs), ctx), ctx


async def test_apply_then_audit_matches_and_a_change_behind_its_back_is_named() -> None:
    teams = {1001: Team()}
    radio = FakeRadio(teams)
    url = await radio.start()
    driver, ctx = _driver(url, INCIDENT)
    try:
        async with supervised(driver) as failures:
            await ctx.wait(lambda: ctx.online.get("radio-gw"), 5, "radio online")
            assert await driver.config_apply("team-1") == []
            assert (teams[1001].interval_code, teams[1001].report_type) == (10, 3)
            sent = [h for to, _, h in radio.cmgs if to == 1001]
            assert sent[0] == "0A64"  # the read-back at start
            assert sent[-2:] == ["0A542B", "0A64"]  # the spec's hex: set, then read back
            assert await driver.config_audit("team-1") == []
            teams[1001].interval_code = lip_control.interval_code(120)  # changed behind the gateway's back
            diffs = await driver.config_audit("team-1")
            assert [(d.name, d.want, d.have) for d in diffs] == [("min_interval_s", 10, 120)]
            teams[1001].report_type = 0
            assert {d.name for d in await driver.config_audit("team-1")} == {"min_interval_s", "report_type"}
            assert not failures
    finally:
        await radio.close()


async def test_a_profile_with_one_setting_keeps_the_other_as_the_radio_has_it() -> None:
    teams = {1001: Team(interval_code=45, report_type=1)}
    radio = FakeRadio(teams)
    url = await radio.start()
    driver, ctx = _driver(url, {"protocol": "tetra_lip", "version": 1, "lip": {"min_interval_s": 20}})
    try:
        async with supervised(driver):
            await ctx.wait(lambda: ctx.online.get("radio-gw"), 5, "radio online")
            assert await driver.config_apply("team-1") == []
            assert (teams[1001].interval_code, teams[1001].report_type) == (20, 1)
    finally:
        await radio.close()


async def test_refused_and_unanswered_requests_are_clear_errors() -> None:
    teams = {1001: Team(result=0x02)}
    radio = FakeRadio(teams)
    url = await radio.start()
    driver, ctx = _driver(url, INCIDENT, response_s=0.3)
    try:
        async with supervised(driver):
            await ctx.wait(lambda: ctx.online.get("radio-gw"), 5, "radio online")
            with pytest.raises(CommandError) as info:
                await driver.config_apply("team-1")
            assert "refused" in info.value.detail and "unspecified error (0x02)" in info.value.detail
            assert [p.hex().upper() for p in teams[1001].requests].count("0A542B") == 1  # a refusal is not retried
            teams[1001].silent = True
            with pytest.raises(CommandError) as info:
                await driver.config_audit("team-1")
            assert "no answer from 1001" in info.value.detail and "3 attempts" in info.value.detail
            asks = sum(1 for to, _, h in radio.cmgs if to == 1001 and h == "0A64")
            with pytest.raises(CommandError):
                await driver.config_audit("team-1")
            assert sum(1 for to, _, h in radio.cmgs if to == 1001 and h == "0A64") == asks + 3
            for dev, why in (("radio-gw", "gateway's own radio"), ("team-2", "no LIP reporting profile"),
                             ("nobody", "no device")):
                with pytest.raises(CommandError) as info:
                    await driver.config_audit(dev)
                assert why in info.value.detail
            assert driver.stats()["lip_control_timeouts"] == 6
    finally:
        await radio.close()


async def test_a_team_radio_first_heard_is_audited_and_drift_reported() -> None:
    teams = {1001: Team(interval_code=30), 1101: Team(interval_code=10), 1102: Team(interval_code=60)}
    radio = FakeRadio(teams)
    url = await radio.start()
    driver, ctx = _driver(url, INCIDENT, group_profile=INCIDENT, stale_s=1.0)
    try:
        async with supervised(driver) as failures:
            await ctx.wait(lambda: ctx.online.get("radio-gw"), 5, "radio online")
            with pytest.raises(CommandError) as info:
                await driver.config_audit("rescue")
            assert "no member radio heard yet" in info.value.detail
            # at start: the listed team radio is read back; its answer shows it is there
            ev = await ctx.wait(lambda: [e for e in ctx.of(Event, "team-1") if e.type == "config_drift"], 5, "drift")
            assert ev[0].severity == "warning" and ev[0].extra["diffs"] == [{"name": "min_interval_s", "want": 10, "have": 30}]
            assert ctx.online.get("team-1")
            st_ = [s for s in ctx.of(StatusUpdate, "team-1") if "config" in s.status]
            assert st_[-1].status["config"] == "1 differ"
            radio.lip(1001)  # heard while still fresh: not asked again
            await asyncio.sleep(0.3)
            assert sum(1 for to, _, _ in radio.cmgs if to == 1001) == 1
            await ctx.wait(lambda: ctx.online.get("team-1") is False, 5, "team-1 stale")
            radio.lip(1001)  # heard after a silence: read back again
            await ctx.wait(lambda: sum(1 for to, _, _ in radio.cmgs if to == 1001) == 2, 5, "a second read-back")
            radio.lip(1101)  # a member of the talk group, audited against the group's profile
            st_ = await ctx.wait(lambda: [s for s in ctx.of(StatusUpdate, "rescue-1101") if "config" in s.status], 5, "audit")
            assert st_[0].status["config"] == "matches profile"
            radio.lip(1102)
            await ctx.wait(lambda: [e for e in ctx.of(Event, "rescue-1102") if e.type == "config_drift"], 5, "member drift")
            diffs = await driver.config_apply("rescue")  # every member heard, one by one
            assert diffs == [] and teams[1102].interval_code == 10
            assert not any(to == 9001 for to, _, _ in radio.cmgs)  # never the group address
            radio.lip(1002)  # a radio without a profile: not asked
            await asyncio.sleep(0.3)
            assert not any(to == 1002 for to, _, _ in radio.cmgs)
            assert not failures
    finally:
        await radio.close()


async def test_an_unexpected_or_unknown_control_pdu_is_counted_not_fatal() -> None:
    radio = FakeRadio({})
    url = await radio.start()
    driver, ctx = _driver(url, None)
    try:
        async with supervised(driver) as failures:
            await ctx.wait(lambda: ctx.online.get("radio-gw"), 5, "radio online")
            radio.sds(1001, lip_control.set_response(0), 23)  # nobody asked
            radio.sds(1001, bytes.fromhex("0A4C00"), 24)  # a long location report (ext 0011): not handled
            radio.sds(1001, lip_control.set_request(BasicParams(10, 3)), 24)  # a request, to us
            radio.lip(1002)
            await ctx.wait(lambda: driver.stats().get("lip_reports"), 5, "the short report after them")
            assert driver.stats()["lip_control_unexpected"] == 1 and driver.stats()["lip_control_unhandled"] == 2
            assert not failures
    finally:
        await radio.close()


# -- fieldgw config apply / audit against the TETRA simulator (hil/tetra) ------------------------


def _fieldgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_config_apply_then_audit_against_the_simulator(tmp_path: Path) -> None:
    sim = SimProcess("hil.tetra", ["--link", str(tmp_path / "tetra"), "--issi", "2001", "--lip-interval", "30",
                                   "--team", "1001:30.6586,104.0648:90:5", "--team", "1002:30.7,104.1",
                                   "--report-delay", "0.05"])
    try:
        probe = sim.control("lip_interval 1001 30")
        if not probe.get("ok") and "unknown command" in str(probe.get("error")):
            pytest.skip("hil/tetra does not answer LIP reporting control yet")
        assert probe["ok"], probe
        transport = f"serial://{tmp_path / 'tetra'}?baud=38400"
        kit = write_kit(tmp_path / "kit.yaml", [
            {"id": "radio-gw", "kind": "radio", "driver": "tetra_pei", "transport": transport,
             "options": {"lip_response_s": 3}},
            {"id": "team-1", "kind": "radio", "driver": "tetra_pei", "transport": transport,
             "options": {"address": "1001"}, "profile": "tetra/lip_reporting_incident.yaml"},
            {"id": "team-2", "kind": "radio", "driver": "tetra_pei", "transport": transport,
             "options": {"address": "1002"}}])
        before = _fieldgw("config", "audit", str(kit), "--timeout", "20")
        assert before.returncode == 1 and "min_interval_s: profile 10, device 30" in before.stdout, before.stdout + before.stderr
        assert "report_type" not in before.stdout

        applied = _fieldgw("config", "apply", str(kit), "team-1", "--timeout", "20")
        assert applied.returncode == 0 and "applied; matches its profile" in applied.stdout, applied.stdout + applied.stderr
        again = _fieldgw("config", "audit", str(kit), "--timeout", "20")
        assert again.returncode == 0 and "team-1: matches its profile" in again.stdout, again.stdout + again.stderr
        sent = [m for m in sim.control("received")["messages"] if m["to"] == 1001 and m["pid"] == lip_control.PID_LIP]
        assert "0A542B" in [m["pdu_hex"].upper() for m in sent]  # the spec's bytes: 10 s, short

        # the interval changed behind the gateway's back (the radio's menu, another dispatcher): named
        assert sim.control("lip_interval 1001 120")["ok"]
        drift = _fieldgw("config", "audit", str(kit), "--timeout", "20")
        assert drift.returncode == 1 and "min_interval_s: profile 10, device 120" in drift.stdout, drift.stdout + drift.stderr
        assert "team-2" not in drift.stdout  # no profile: not audited

        # a radio that is heard but stops answering LIP control: a clear error, exit 1
        assert sim.control("lip_mute 1001 99")["ok"]
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "config", "audit", str(kit), "--timeout", "30"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # the team radio reports now and then (its next periodic one is 2 min away) until the tool, once it
            # has the line and LIP routing set up, hears it and gives up on its muted answers
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                assert sim.control("lip 1001")["ok"]
                time.sleep(1.0)
            out, err = proc.communicate(timeout=10)
        finally:
            stop_process(proc)
        assert proc.returncode == 1 and "no answer from 1001" in out and "3 attempts" in out, out + err
    finally:
        sim.stop()
