"""The tamper-evident audit log: chain, concurrency, reopen, tampering, torn writes, paging, round-trips."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import audit
from gateway.audit import GENESIS, AuditLog, canonical, command_record, dispatch_record, make_record, read, verify


def _rec(i: int) -> dict[str, Any]:
    return command_record(user=f"op{i % 3}", role="operator", address="10.0.0.7", device="uav-1",
                          command="goto", args={"lat": 1.5, "lon": 2.25, "alt_m": 100 + i}, outcome="accepted",
                          cmd_id=f"c{i}")


async def _write(path: Path, n: int, start: int = 0) -> list[dict[str, Any]]:
    async with AuditLog(path) as log:
        return [await log.append(_rec(start + i)) for i in range(n)]


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _problem_lines(problems: list[str]) -> set[int]:
    return {int(p.split(":")[0].removeprefix("line ")) for p in problems}


async def test_concurrent_appends_form_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    async with AuditLog(path) as log:
        async def worker(w: int) -> list[dict[str, Any]]:
            return [await log.append(_rec(w * 1000 + i)) for i in range(60)]
        results = await asyncio.gather(*(worker(w) for w in range(8)))
        assert log.head[0] == 480
    seqs = sorted(r["seq"] for rs in results for r in rs)
    assert seqs == list(range(1, 481))
    result = verify(path)
    assert result.ok, result.problems
    assert result.records == 480 and result.last_seq == 480
    first = json.loads(_lines(path)[0])
    assert first["prev"] == GENESIS and first["seq"] == 1
    for raw in _lines(path):  # every line is the canonical form of its record
        assert canonical(json.loads(raw)) + b"\n" == raw


async def test_record_shape_and_helpers(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    async with AuditLog(path) as log:
        c = await log.append(command_record(user="ana", role="operator", address="192.168.1.4", device="uav-1",
                                            command="rtl", args=None, outcome="rejected", reason="device offline"))
        d = await log.append(dispatch_record(user="bo", role="admin", address="::1", targets=["r-1", "r-2"],
                                             text="Regroupez au point B", priority="flash", outcome="accepted",
                                             dispatch_id="d-9"))
        a = await log.append(dispatch_record(user="bo", role="admin", address="::1", targets="all", text="x",
                                             priority="routine", outcome="accepted"))
        g = await log.append(make_record("login", user="ana", role="operator", address="1.2.3.4", target="",
                                         outcome="ok", ts=1234))
    assert set(c) == set(audit.FIELDS)
    assert (c["action"], c["target"], c["outcome"]) == ("command", "uav-1", "rejected")
    assert c["detail"] == {"command": "rtl", "args": {}, "reason": "device offline"}
    assert (d["action"], d["target"], d["detail"]["targets"], d["detail"]["id"]) == ("dispatch", "r-1,r-2", ["r-1", "r-2"], "d-9")
    assert a["target"] == "all" and a["detail"]["targets"] == "all"
    assert g["ts"] == 1234 and g["detail"] == {}
    assert d["prev"] == c["hash"] and isinstance(c["ts"], int)
    assert [r["seq"] for r in read(path, 10)] == [4, 3, 2, 1]


async def test_reopen_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "audit.jsonl"
    first = await _write(path, 10)
    second = await _write(path, 5, start=10)
    assert second[0]["seq"] == 11 and second[0]["prev"] == first[-1]["hash"]
    result = verify(path)
    assert result.ok and result.records == 15
    assert not list(path.parent.glob("*.broken-*"))


async def test_one_byte_edit_anywhere_in_a_middle_record_is_named(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await _write(path, 5)
    lines = _lines(path)
    original = lines[2]
    for i in range(len(original) - 1):  # every byte but the newline
        for new in {original[i] ^ 0x01, ord("0") if original[i] != ord("0") else ord("1")}:
            if new == ord("\n"):
                continue
            lines[2] = original[:i] + bytes([new]) + original[i + 1:]
            path.write_bytes(b"".join(lines))
            result = verify(path)
            assert not result.ok, (i, lines[2])
            assert 3 in _problem_lines(result.problems), (i, result.problems)
            assert _problem_lines(result.problems) <= {3, 4}, (i, result.problems)


async def test_deleted_record_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await _write(path, 6)
    lines = _lines(path)
    path.write_bytes(b"".join(lines[:3] + lines[4:]))
    result = verify(path)
    assert not result.ok
    assert any(p.startswith("line 4: seq 5 where 4") for p in result.problems), result.problems
    assert any(p.startswith("line 4: prev") for p in result.problems), result.problems
    path.write_bytes(b"".join(lines[1:]))  # the first one
    assert _problem_lines(verify(path).problems) == {1}


async def test_reordered_records_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    await _write(path, 6)
    lines = _lines(path)
    lines[2], lines[3] = lines[3], lines[2]
    path.write_bytes(b"".join(lines))
    result = verify(path)
    assert not result.ok
    assert _problem_lines(result.problems) >= {3, 4}, result.problems
    assert not any("hash mismatch" in p for p in result.problems)  # each record intact, the order is not


async def test_torn_last_line_is_reported_and_set_aside_on_open(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    written = await _write(path, 4)
    data = path.read_bytes()
    last = _lines(path)[-1]
    torn = data[: len(data) - len(last) // 2]
    path.write_bytes(torn)
    result = verify(path)
    assert not result.ok and result.records == 3
    assert _problem_lines(result.problems) == {4}
    assert any("incomplete last line" in p for p in result.problems)

    async with AuditLog(path) as log:
        assert log.reset_notice and "line 4" in log.reset_notice
        after = await log.append(_rec(99))
    broken = list(tmp_path.glob("audit.jsonl.broken-*"))
    assert len(broken) == 1 and broken[0].read_bytes() == torn  # kept byte for byte
    records = [json.loads(raw) for raw in _lines(path)]
    reset = records[0]
    assert (reset["seq"], reset["prev"], reset["action"]) == (1, GENESIS, "audit_reset")
    assert reset["target"] == broken[0].name and reset["detail"]["file"] == broken[0].name
    assert reset["detail"]["records"] == 3 and reset["detail"]["last_hash"] == written[2]["hash"]
    assert any("incomplete last line" in p for p in reset["detail"]["problems"])
    assert after["seq"] == 2 and after["prev"] == reset["hash"]
    assert verify(path).ok

    path.write_bytes(path.read_bytes().replace(b"op0", b"op9"))  # tampered again: a second file aside
    async with AuditLog(path) as log:
        await log.append(_rec(1))
    assert len(list(tmp_path.glob("audit.jsonl.broken-*"))) == 2 and verify(path).ok


async def test_writes_do_not_block_the_loop_and_queue_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(0.02)
        real_fsync(fd)

    monkeypatch.setattr(audit.os, "fsync", slow_fsync)
    path = tmp_path / "audit.jsonl"
    ticks = 0
    async with AuditLog(path, max_pending=3) as log:
        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1
        t = asyncio.create_task(ticker())
        appends = [asyncio.create_task(log.append(_rec(i))) for i in range(12)]
        depth = 0
        while not all(a.done() for a in appends):
            assert log._queue is not None  # noqa: SLF001 - the bound itself is under test
            depth = max(depth, log._queue.qsize())  # noqa: SLF001
            await asyncio.sleep(0.002)
        t.cancel()
    assert depth <= 3
    assert ticks >= 20  # 12 x 20 ms of fsync happened beside a running loop
    assert verify(path).ok and verify(path).records == 12


async def test_failed_write_is_cut_back_and_the_chain_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.jsonl"
    real_write = os.write
    fail = {"on": False}

    def half_then_enospc(fd: int, data: Any) -> int:
        if fail["on"]:
            fail["on"] = False
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(audit.os, "write", half_then_enospc)
    async with AuditLog(path) as log:
        ok1 = await log.append(_rec(1))
        fail["on"] = True
        with pytest.raises(OSError):
            await log.append(_rec(2))
        assert log.head == (1, ok1["hash"])
        ok2 = await log.append(_rec(3))
    assert ok2["seq"] == 2 and ok2["prev"] == ok1["hash"]
    assert verify(path).ok and verify(path).records == 2


async def test_read_pages_newest_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "_BLOCK", 97)  # many block boundaries inside lines
    path = tmp_path / "audit.jsonl"
    await _write(path, 25)
    assert [r["seq"] for r in read(path, 10)] == list(range(25, 15, -1))
    assert [r["seq"] for r in read(path, 10, before_seq=16)] == list(range(15, 5, -1))
    assert [r["seq"] for r in read(path, 10, before_seq=6)] == [5, 4, 3, 2, 1]
    assert read(path, 10, before_seq=1) == [] and read(path, 0) == []
    assert read(tmp_path / "none.jsonl", 5) == []
    assert verify(tmp_path / "none.jsonl").ok


async def test_odd_values_are_normalised_and_verify(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    async with AuditLog(path) as log:
        rec = await log.append(make_record("command", user="x\ud800y", role="operator", address="a", target="t",
                                           outcome="ok", detail={1: float("nan"), "p": Path("/x"), "t": (1, 2)}))
    assert rec["user"] == "x?y"
    assert rec["detail"] == {"1": "NaN", "p": "/x", "t": [1, 2]}
    assert read(path, 1) == [rec] and verify(path).ok


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(details=st.lists(st.dictionaries(st.text(), json_values, max_size=5), min_size=1, max_size=4),
       user=st.text(max_size=20))
def test_random_details_round_trip_and_verify(details: list[dict[str, Any]], user: str) -> None:
    async def run(path: Path) -> list[dict[str, Any]]:
        async with AuditLog(path) as log:
            return [await log.append(make_record("command", user=user, role="viewer", address="a", target="t",
                                                 outcome="ok", detail=d)) for d in details]

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.jsonl"
        written = asyncio.run(run(path))
        assert [w["detail"] for w in written] == details
        assert [w["user"] for w in written] == [user] * len(details)
        assert read(path, 100) == written[::-1]
        result = verify(path)
        assert result.ok, result.problems
        assert result.records == len(details)
