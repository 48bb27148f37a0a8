"""The durable outbox in-process: order, classes, restart replay, disk cap, thinning, bad files, disk full."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.outbox import BULK, POSITIONS, TELEMETRY, URGENT, Outbox
from gateway.outbox_store import OutboxStore
from tests.conftest import ROOT


def _payload(i: int, **extra: object) -> bytes:
    return json.dumps({"id": f"m{i}", "n": i, **extra}).encode()


async def _settle(ob: Outbox) -> None:
    for _ in range(50):
        await asyncio.sleep(0.01)
        if not ob._pending:  # noqa: SLF001 - test looks at the commit having happened
            return


async def _drain(ob: Outbox, n: int, ack: bool = True) -> list:
    items = []
    for _ in range(n):
        item = await asyncio.wait_for(ob.take(), 2)
        items.append(item)
        if ack:
            ob.acked(item)
    return items


async def test_classes_drain_in_order_keeping_enqueue_order(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3")
    await ob.open()
    ob.online = True
    ob.put("t/bulk", _payload(1), BULK, "d1")
    for i in range(2, 6):
        ob.put("t/pos", _payload(i), POSITIONS, "d1")
    ob.put("t/tel", _payload(6), TELEMETRY, "d1")
    ob.put("t/ack", _payload(7), URGENT, "d1")
    await _settle(ob)
    got = [json.loads(i.row.payload)["n"] for i in await _drain(ob, 7)]
    assert got == [7, 2, 3, 4, 5, 6, 1]
    await ob.close()


async def test_unacked_messages_come_back_after_restart_marked_replayed(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ob = Outbox(path)
    await ob.open()
    ob.online = True
    for i in range(10):
        ob.put("t/pos", _payload(i), POSITIONS, "d1")
    assert ob.next_position_seq("d1") == 1 and ob.next_position_seq("d1") == 2
    await _settle(ob)
    first = await _drain(ob, 4)  # 0..3 acknowledged
    taken = await _drain(ob, 2, ack=False)  # 4, 5 in flight when we stop
    assert not any(i.replayed for i in first + taken)
    await asyncio.sleep(0.1)  # acks deleted by the next commit
    await ob.close()

    ob2 = Outbox(path)
    await ob2.open()
    again = await _drain(ob2, 6)
    assert [json.loads(i.row.payload)["n"] for i in again] == [4, 5, 6, 7, 8, 9]
    assert all(i.replayed for i in again)
    assert ob2.next_position_seq("d1") == 3  # the counter survived
    await ob2.close()


async def test_rewind_puts_inflight_back_in_front_in_order(tmp_path: Path) -> None:
    ob = Outbox(None)
    await ob.open()
    ob.online = True
    for i in range(5):
        ob.put("t", _payload(i), POSITIONS, "d")
    await _settle(ob)
    await _drain(ob, 3, ack=False)
    ob.rewind()
    items = await _drain(ob, 5)
    assert [json.loads(i.row.payload)["n"] for i in items] == [0, 1, 2, 3, 4]
    assert [i.replayed for i in items] == [True, True, True, False, False]
    await ob.close()


KILLER = """
import asyncio, json, sys
from gateway.outbox import Outbox, POSITIONS
async def main():
    ob = Outbox(__import__("pathlib").Path(sys.argv[1]))
    await ob.open()
    for i in range(2000):
        ob.put("t", json.dumps({"n": i}).encode(), POSITIONS, "d")
        if i % 100 == 99:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    print("committed", flush=True)
    await asyncio.sleep(60)
asyncio.run(main())
"""


async def test_kill_9_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "committed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ob = Outbox(path)
    await ob.open()
    assert ob.stats()["messages"] == 2000
    got = [json.loads(i.row.payload)["n"] for i in await _drain(ob, 2000)]
    assert got == list(range(2000))  # in order, across pages
    await ob.close()


async def test_disk_cap_drops_oldest_of_lowest_class_never_urgent(tmp_path: Path) -> None:
    drops: list[tuple[str, int, int]] = []
    ob = Outbox(tmp_path / "o.sqlite3", cap_bytes=20_000, on_drop=lambda d, c, n, r: drops.append((d, c, n)))
    await ob.open()
    filler = "x" * 200
    for i in range(40):
        ob.put("t/ack", _payload(i, f=filler), URGENT, "d")
    for i in range(40):
        ob.put("t/pos", _payload(100 + i, f=filler), POSITIONS, "d")
    for i in range(40):
        ob.put("t/tel", _payload(200 + i, f=filler), TELEMETRY, "d")
    await _settle(ob)
    await asyncio.sleep(0.1)
    stats = ob.stats()
    assert stats["bytes"] <= 20_000 or stats["backlog"]["positions"]["messages"] == 0
    assert stats["backlog"]["urgent"]["dropped"] == 0 and stats["backlog"]["urgent"]["messages"] == 40
    assert stats["backlog"]["telemetry"]["dropped"] == 40  # the lowest class present went entirely first
    assert stats["backlog"]["positions"]["dropped"] > 0  # then the oldest positions
    kept = [json.loads(i.row.payload)["n"] for i in await _drain(ob, stats["messages"])]
    assert kept[:40] == list(range(40))
    positions = kept[40:]
    assert positions == sorted(positions) and positions[-1] == 139  # the newest positions kept
    assert sum(n for _, c, n in drops if c == TELEMETRY) == 40 and all(c != URGENT for _, c, _ in drops)
    await ob.close()


async def test_thinning_keeps_one_position_per_device_per_interval_when_backlogged(tmp_path: Path) -> None:
    ob = Outbox(None, thin_every_s=5.0, thin_after_s=0.0)
    await ob.open()
    now = int(time.time() * 1000)
    assert ob.admit_position("d1", now)  # no backlog yet
    ob.put("t", _payload(0), POSITIONS, "d1")
    await _settle(ob)
    admitted = [ob.admit_position("d1", now + 100 * k) for k in range(1, 120)]  # 12 s at 10 Hz
    assert sum(admitted) == 2  # at 5 s and 10 s
    assert ob.admit_position("d2", now + 50)  # another device is not thinned by d1
    assert ob.thinned == 117
    await ob.close()


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, "foreign"])
async def test_corrupt_or_foreign_file_is_moved_aside(tmp_path: Path, content: object) -> None:
    path = tmp_path / "o.sqlite3"
    if content == "foreign":
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE photos(x)")
        db.commit()
        db.close()
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    ob = Outbox(path)
    await ob.open()
    assert ob.notice and "moved aside" in ob.notice
    assert len(list(tmp_path.glob("o.sqlite3.bad-*"))) == 1
    ob.put("t", _payload(1), URGENT, "d")
    await _settle(ob)
    assert (await _drain(ob, 1))[0].row.topic == "t"
    await ob.close()


async def test_disk_full_keeps_urgent_in_memory_and_sends_it(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ob = Outbox(path)
    await ob.open()
    ob.online = True
    # A real SQLITE_FULL: cap the file's page count at what it has now.
    store: OutboxStore = ob._store  # noqa: SLF001
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count={pages}")
    for i in range(300):
        ob.put("t/ack", _payload(i, f="y" * 300), URGENT, "d")
    await asyncio.sleep(0.3)
    assert ob.disk_full and "full" in ob.disk_full
    items = await _drain(ob, 300)  # still sendable from memory
    assert [json.loads(i.row.payload)["n"] for i in items] == list(range(300))
    store.db.execute("PRAGMA max_page_count=1073741823")
    ob.put("t/ack", _payload(999), URGENT, "d")
    for _ in range(100):
        await asyncio.sleep(0.05)
        if not ob.disk_full:
            break
    assert ob.disk_full is None
    assert (await _drain(ob, 1))[0].row.payload == _payload(999)
    await ob.close()


async def test_close_right_after_a_burst_saves_every_message(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ob = Outbox(path)
    await ob.open()
    for burst in range(4):
        for i in range(2000):
            ob.put("t", _payload(burst * 2000 + i), POSITIONS, "d")
        await asyncio.sleep(0)  # the writer takes a batch and starts its commit …
    await ob.close()  # … and closing at once must not lose it
    ob2 = Outbox(path)
    await ob2.open()
    assert ob2.stats()["messages"] == 8000
    await ob2.close()
