"""LIP reporting control in the TETRA radio simulator (hil.tetra): team radios answer the LIP long PDUs of
docs/serial-protocols.md ("LIP reporting control"), driven over the pty with AT commands typed here.

The PDUs are built and read bit by bit in this file, from the spec page's layout and its worked hex
examples (not with hil.tetra's codec, nor the gateway's driver).
"""
from __future__ import annotations

import time

from tests.test_hil_tetra import (GROUP, OWN, STILL, TEAM, Pei, Sim, cmgs, decode_lip, pei, setup_host, sim, sim_args,
                                  with_args)

__all__ = ["pei", "sim", "sim_args"]  # the simulator and PEI fixtures, shared with test_hil_tetra

REPORT_TYPES = {"long": 0, "long_time_elapsed": 1, "long_time_of_position": 2, "short": 3}
UNSPECIFIED_ERROR = 0x02


def pdu_from_bits(bits: str) -> tuple[bytes, int]:
    """A PDU as whole bytes, zero-padded at the end, and its length in bits."""
    padded = bits + "0" * (-len(bits) % 8)
    return int(padded, 2).to_bytes(len(padded) // 8, "big"), len(bits)


def set_request(code: int, report_type: str) -> bytes:
    """Basic location parameters request: PID, 01, 0101, 0, interval (7), report type (2)."""
    return pdu_from_bits(f"{0x0A:08b}01" "0101" "0" f"{code:07b}{REPORT_TYPES[report_type]:02b}")[0]


def report_request() -> bytes:
    """Report basic location parameters request: PID, 01, 1001, 0."""
    return pdu_from_bits(f"{0x0A:08b}01" "1001" "0")[0]


def read_response(fields: list[str], pdu: bytes) -> dict[str, object]:
    """A LIP long response from a team radio, field by field."""
    bits = "".join(f"{b:08b}" for b in pdu)[: int(fields[5])]
    assert bits[:8] == f"{0x0A:08b}" and bits[8:10] == "01", bits
    out: dict[str, object] = {"ext": bits[10:14], "response": bits[14] == "1", "result": int(bits[15:23], 2),
                              "bits": len(bits)}
    if out["ext"] == "1001" and out["result"] == 0:
        out["interval_code"] = int(bits[23:30], 2)
        out["report_type"] = {v: k for k, v in REPORT_TYPES.items()}[int(bits[30:32], 2)]
    return out


def exchange(pei: Pei, to: int, pdu: bytes, bits: int | None = None) -> tuple[list[str], bytes]:
    """Send one request; the next LIP long PDU back (short location reports are passed over)."""
    assert pei.command(cmgs(to, pdu, bits))[-1] == "OK"
    while True:
        fields, answer = pei.sds(pid=0x0A)
        if answer[1] >> 6 == 0b01:
            return fields, answer


def short_reports(pei: Pei, issi: int, n: int, timeout: float) -> list[float]:
    """Arrival times of the next `n` short location reports from `issi`."""
    times: list[float] = []
    deadline = time.monotonic() + timeout
    while len(times) < n:
        fields, pdu = pei.sds(timeout=max(0.1, deadline - time.monotonic()), pid=0x0A)
        if fields[1] == str(issi) and pdu[1] >> 6 == 0b00:
            d = decode_lip(pdu)
            assert fields[5] == "84" and d["type"] == 0 and d["reason"] == 129
            times.append(time.monotonic())
    return times


def test_spec_examples_encode_as_built_here() -> None:
    assert set_request(10, "short").hex().upper() == "0A542B"
    assert set_request(60, "long").hex().upper() == "0A54F0"
    assert report_request().hex().upper() == "0A64"


@with_args("--lip-interval", "30")
def test_set_interval_answers_and_reports_come_at_the_new_interval(sim: Sim, pei: Pei) -> None:
    setup_host(pei)
    fields, pdu = exchange(pei, TEAM, set_request(1, "short"))      # 1 s
    assert fields == ["12", str(TEAM), "0", str(OWN), "0", "23"]
    assert pdu.hex().upper() == "0A5600"                                # success (spec example)
    assert read_response(fields, pdu) == {"ext": "0101", "response": True, "result": 0, "bits": 23}
    times = short_reports(pei, TEAM, 4, timeout=6.0)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.8 < g < 1.3 for g in gaps), gaps                       # not the 30 s it started with
    status = sim.control(f"status {TEAM}")
    assert status["ok"] and status["min_interval_code"] == 1 and status["min_interval_s"] == 1
    assert status["lip_interval_s"] == 1 and status["report_type"] == "short" and status["lip_requests"] == 1
    others = sim.control(f"status {STILL}")
    assert others["min_interval_s"] == 30 and others["lip_requests"] == 0   # only the addressed radio changed
    msgs = sim.control("received")["messages"]
    assert msgs[-1]["pdu_hex"] == "0A5407" and msgs[-1]["lip_control"]["min_interval_s"] == 1


@with_args("--lip-interval", "5")
def test_report_request_answers_the_current_parameters(sim: Sim, pei: Pei) -> None:
    setup_host(pei)
    fields, pdu = exchange(pei, TEAM, report_request(), bits=16)        # sent as whole bytes, as in the spec
    assert fields[1] == str(TEAM) and fields[5] == "32"
    assert read_response(fields, pdu) == {"ext": "1001", "response": True, "result": 0, "bits": 32,
                                          "interval_code": 5, "report_type": "short"}
    assert read_response(*exchange(pei, TEAM, set_request(10, "short")))["result"] == 0
    fields, pdu = exchange(pei, TEAM, report_request(), bits=15)        # the exact length is fine too
    assert pdu.hex().upper() == "0A66002B"                              # "success, 10 s, short" (spec example)
    assert read_response(*exchange(pei, TEAM, set_request(60, "long")))["result"] == 0    # 60 = 1 min
    answer = read_response(*exchange(pei, TEAM, report_request()))
    assert (answer["interval_code"], answer["report_type"]) == (60, "long")
    assert read_response(*exchange(pei, TEAM, set_request(62, "long_time_of_position")))["result"] == 0
    assert sim.control(f"status {TEAM}")["lip_interval_s"] == 180       # 62 = 3 min
    answer = read_response(*exchange(pei, STILL, report_request()))    # the other radio kept its own
    assert (answer["interval_code"], answer["report_type"]) == (5, "short")


@with_args("--lip-interval", "5")
def test_reserved_interval_and_unsupported_report_type_are_refused(sim: Sim, pei: Pei) -> None:
    setup_host(pei)
    for code in (120, 127):                                             # reserved interval codes
        fields, pdu = exchange(pei, TEAM, set_request(code, "short"))
        assert fields[5] == "23" and read_response(fields, pdu)["result"] == UNSPECIFIED_ERROR
        assert pdu.hex().upper() in ("0A5604",)                         # "refused, unspecified error" (spec)
    assert sim.control(f"lip_support {TEAM} short,long")["report_types_supported"] == ["long", "short"]
    answer = read_response(*exchange(pei, TEAM, set_request(10, "long_time_elapsed")))
    assert answer["result"] == UNSPECIFIED_ERROR
    answer = read_response(*exchange(pei, TEAM, report_request()))
    assert (answer["interval_code"], answer["report_type"]) == (5, "short")    # nothing changed
    status = sim.control(f"status {TEAM}")
    assert status["lip_refused"] == 3 and status["lip_interval_s"] == 5
    assert read_response(*exchange(pei, TEAM, set_request(10, "long")))["result"] == 0   # a supported one
    assert sim.control(f"lip_support {TEAM} sideways")["ok"] is False


@with_args("--lip-interval", "5")
def test_control_port_change_is_read_back(sim: Sim, pei: Pei) -> None:
    setup_host(pei)
    assert read_response(*exchange(pei, TEAM, set_request(10, "short")))["result"] == 0
    r = sim.control(f"lip_interval {TEAM} 30")                           # behind the gateway's back
    assert r["ok"] and r["min_interval_code"] == 30 and r["lip_interval_s"] == 30
    assert sim.control(f"lip_report_type {TEAM} long_time_elapsed")["report_type"] == "long_time_elapsed"
    answer = read_response(*exchange(pei, TEAM, report_request()))
    assert (answer["interval_code"], answer["report_type"]) == (30, "long_time_elapsed")
    assert sim.control(f"lip_interval {TEAM} 600")["min_interval_code"] == 69   # 10 min
    assert read_response(*exchange(pei, TEAM, report_request()))["interval_code"] == 69
    teams = sim.control("status")["teams"]
    assert [(t["issi"], t["min_interval_s"]) for t in teams] == [(TEAM, 600), (STILL, 5)]
    # told to refuse: both requests answered with that code, nothing applied
    assert sim.control(f"lip_refuse {TEAM} 5")["lip_refuse"] == 5
    fields, pdu = exchange(pei, TEAM, report_request())
    assert fields[5] == "23" and pdu.hex().upper() == "0A660A"         # result only: 0x05 absent subscriber
    assert read_response(fields, pdu) == {"ext": "1001", "response": True, "result": 5, "bits": 23}
    assert read_response(*exchange(pei, TEAM, set_request(20, "short")))["result"] == 5
    assert sim.control(f"lip_refuse {TEAM} 0")["ok"]
    assert read_response(*exchange(pei, TEAM, report_request()))["interval_code"] == 69
    assert sim.control(f"lip_interval {GROUP} 10")["ok"] is False        # not a team radio
    assert sim.control(f"lip_interval {TEAM} -1")["ok"] is False


@with_args("--lip-interval", "0")
def test_control_port_interval_drives_the_reports(sim: Sim, pei: Pei) -> None:
    setup_host(pei)
    assert b"+CTSDSR" not in pei.drain(1.2)                              # 0: no periodic reports
    assert sim.control(f"lip_interval {STILL} 0.3")["ok"]
    times = short_reports(pei, STILL, 3, timeout=3.0)
    assert all(0.15 < b - a < 0.6 for a, b in zip(times, times[1:]))
    answer = read_response(*exchange(pei, STILL, report_request()))
    assert answer["interval_code"] == 1                                  # the nearest the 7 bits can say


@with_args("--lip-interval", "0")
def test_garbage_and_unanswerable_pdus_are_counted_not_answered(sim: Sim, pei: Pei) -> None:
    setup_host(pei)
    junk = [
        (bytes.fromhex("0A"), 8),                   # the PID alone
        (bytes.fromhex("0A54"), 16),                # a set request cut before its report type
        (bytes.fromhex("0A542B"), 20),              # the same, cut by the bit count
        (bytes.fromhex("0A00"), 16),                # a short location report cut short
        (bytes.fromhex("0AC000"), 24),              # reserved PDU type 11
        (bytes.fromhex("0A5600"), 23),              # a response, sent to a team radio
        (bytes.fromhex("0A44"), 16),                # immediate location report request: not answered here
        (bytes.fromhex("FF00"), 16),                # not LIP at all
    ]
    for pdu, bits in junk:
        assert pei.command(cmgs(TEAM, pdu, bits))[-1] == "OK"               # the radio puts it on air
    assert pei.command(cmgs(GROUP, set_request(10, "short")))[-1] == "OK"   # never answered by a group
    assert pei.command(cmgs(4444, report_request()))[-1] == "OK"             # nobody there
    assert b"+CTSDSR" not in pei.drain(0.6)
    stats = sim.control("stats")
    assert stats["lip_bad_from_host"] == 5 and stats["lip_control_ignored"] == 2
    assert stats["lip_control_to_group"] == 1 and stats["lip_control_to_unknown"] == 1
    assert "lip_control_answered" not in stats
    assert sim.control(f"status {TEAM}")["lip_requests"] == 0
    # muted: the next request gets no answer (a retry does)
    assert sim.control(f"lip_mute {TEAM} 1")["lip_mute"] == 1
    assert pei.command(cmgs(TEAM, report_request()))[-1] == "OK"
    assert b"+CTSDSR" not in pei.drain(0.5)
    answer = read_response(*exchange(pei, TEAM, report_request()))
    assert answer["result"] == 0 and answer["interval_code"] == 0
    stats = sim.control("stats")
    assert stats["lip_control_unanswered"] == 1 and stats["lip_control_answered"] == 1
    assert pei.command(b"AT\r\n") == ["OK"]


@with_args("--lip-interval", "0")
def test_response_needs_the_lip_route(sim: Sim, pei: Pei) -> None:
    """A response is an SDS like any other: it reaches the PEI only when the host routes PID 10 there."""
    assert pei.command(b"ATE0\r\n")[-1] == "OK"
    assert pei.command(b"AT+CTSDS=12,0,0,0,1\r\n")[-1] == "OK"
    assert pei.command(cmgs(TEAM, report_request()))[-1] == "OK"
    assert b"+CTSDSR" not in pei.drain(0.5)
    stats = sim.control("stats")
    assert stats["lip_control_answered"] == 1 and stats["not_routed"] == 1
    assert pei.command(b"AT+CTSP=1,3,10\r\n")[-1] == "OK"
    assert read_response(*exchange(pei, TEAM, report_request()))["result"] == 0
