"""Link emulator (hil.link): bandwidth, latency and jitter, outages, scenarios, the
control port, bounded memory, and the optional namespace/tc path.

Real sockets on 127.0.0.1 (or a namespace the test creates); the emulator runs
in-process (LinkEmulator) or as ``python -m hil.link``. Every figure asserted is
measured at the receiving socket.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Self

import pytest

from hil.link import PROFILES, QUEUE_LIMIT, READ_CHUNK, LinkEmulator, Profile, ProfileError, load_scenario, netem
from hil.link import main as link_main
from hil.link.profile import from_text, from_value

ROOT = Path(__file__).resolve().parents[1]
LOCAL = "127.0.0.1"


# ---------------------------------------------------------------- targets


class Target:
    """A loopback TCP server: echo, sink (records arrivals) or source (sends N bytes)."""

    def __init__(self, mode: str, send_bytes: int = 0, rcvbuf: int | None = None) -> None:
        self.mode = mode
        self.send_bytes = send_bytes
        self.rcvbuf = rcvbuf
        self.arrivals: list[tuple[float, int, int]] = []  # (time, connection, bytes)
        self.data: dict[int, bytearray] = {}
        self.eof: dict[int, asyncio.Event] = {}
        self.active = 0
        self.gate = asyncio.Event()  # a sink reads only once this is set
        self.gate.set()
        self._n = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task] = set()
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        sock.bind((LOCAL, 0))
        self._server = await asyncio.start_server(self._handle, sock=sock)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.gate.set()
        for writer in self._writers:  # handlers see EOF and end by themselves
            writer.transport.abort()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=2.0)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def wait_eof(self, conn: int, timeout: float) -> bytes:
        """The bytes connection ``conn`` (0 = the first accepted) sent, once it sent FIN."""
        await asyncio.wait_for(self.eof.setdefault(conn, asyncio.Event()).wait(), timeout)
        return bytes(self.data[conn])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = self._n
        self._n += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.data[conn] = bytearray()
        self.eof.setdefault(conn, asyncio.Event())
        self.active += 1
        try:
            if self.mode == "source":
                writer.write(bytes(i % 251 for i in range(self.send_bytes)))
                await writer.drain()
                writer.write_eof()
            await self.gate.wait()
            while data := await reader.read(65536):
                self.arrivals.append((time.monotonic(), conn, len(data)))
                self.data[conn] += data
                if self.mode == "echo":
                    writer.write(data)
                    await writer.drain()
            self.eof[conn].set()
        except ConnectionError:
            pass
        finally:
            self.active -= 1
            self._writers.discard(writer)
            self._handlers.discard(task)
            writer.close()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(LOCAL, port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def round_trip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, msg: bytes = b"ping") -> float:
    t0 = time.monotonic()
    writer.write(msg)
    assert await asyncio.wait_for(reader.readexactly(len(msg)), 5.0) == msg
    return time.monotonic() - t0


async def is_closed(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True when the peer closes or resets within ``timeout`` without sending anything."""
    try:
        data = await asyncio.wait_for(reader.read(1024), timeout)
    except (ConnectionError, OSError):
        return True
    except TimeoutError:
        return False
    return data == b""


async def refused(port: int) -> bool:
    """A new connection is reset at once (or cannot be made) and echoes nothing."""
    try:
        reader, writer = await connect(port)
    except ConnectionError:
        return True
    try:
        writer.write(b"hello?")
        return await is_closed(reader, 1.0)
    except ConnectionError:
        return True
    finally:
        writer.close()


def steady_rate(arrivals: list[tuple[float, int, int]], skip_s: float) -> float:
    """Bytes/s from the first arrival ``skip_s`` after the first one (past the
    bucket's burst) to the last: the bytes of the arrivals after it over that time."""
    k = next(i for i, a in enumerate(arrivals) if a[0] >= arrivals[0][0] + skip_s)
    seconds = arrivals[-1][0] - arrivals[k][0]
    assert seconds > 0.5, "transfer too short to measure"
    return sum(n for _t, _c, n in arrivals[k + 1:]) / seconds


# ---------------------------------------------------------------- the emulator as a process


class LinkProcess:
    def __init__(self, proc: asyncio.subprocess.Process, ports: dict[str, list], log: Path) -> None:
        self.proc, self.ports, self.log = proc, ports, log

    @property
    def port(self) -> int:
        return int(self.ports["listen"][1])

    async def control(self, line: str) -> dict:
        reader, writer = await asyncio.open_connection(LOCAL, self.ports["control"][1])
        try:
            writer.write(line.encode() + b"\n")
            return json.loads(await asyncio.wait_for(reader.readline(), 5.0))
        finally:
            writer.close()

    async def terminate(self) -> tuple[int, float]:
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(self.proc.wait(), 5.0)
        return rc, time.monotonic() - t0


@pytest.fixture
async def link_process(tmp_path: Path) -> AsyncIterator:
    started: list[LinkProcess] = []

    async def start(*args: str) -> LinkProcess:
        log = tmp_path / f"link{len(started)}.log"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hil.link", "--print-port", "--log-level", "INFO", *args,
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=log.open("w"))
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 15.0)
        if not line:
            raise AssertionError(f"hil.link exited {await proc.wait()}: {log.read_text()}")
        lp = LinkProcess(proc, json.loads(line), log)
        started.append(lp)
        return lp

    yield start
    for lp in started:
        if lp.proc.returncode is None:
            lp.proc.kill()
            await lp.proc.wait()


# ---------------------------------------------------------------- bandwidth


async def test_bandwidth_64kbit_is_64kbit() -> None:
    payload = os.urandom(40_000)
    async with Target("sink") as sink, \
            LinkEmulator(target=(LOCAL, sink.port), profile=Profile(bandwidth_kbps=64)) as emu:
        _r, w = await connect(emu.port)
        t0 = time.monotonic()
        w.write(payload)
        w.write_eof()
        got = await sink.wait_eof(0, 10.0)
        elapsed = sink.arrivals[-1][0] - t0
        assert got == payload
        steady_kbps = steady_rate(sink.arrivals, 0.5) * 8 / 1000
        overall_kbps = len(payload) * 8 / 1000 / elapsed
        print(f"\n64 kbit/s profile: 40000 B in {elapsed:.2f} s; steady {steady_kbps:.1f} kbit/s, "
              f"overall {overall_kbps:.1f} kbit/s")
        assert 64 * 0.85 <= steady_kbps <= 64 * 1.15
        assert 64 * 0.85 <= overall_kbps <= 64 * 1.15
        assert emu.stats()["bytes"]["up"] == len(payload)
        w.close()


async def test_bandwidth_is_shared_by_connections_in_a_direction() -> None:
    """Two downloads at once through 256 kbit/s: together 256 kbit/s, and they interleave."""
    size = 24_000
    async with Target("source", send_bytes=size) as source, \
            LinkEmulator(target=(LOCAL, source.port), profile=Profile(bandwidth_kbps=256)) as emu:
        arrivals: list[tuple[float, int, int]] = []

        async def download(conn: int) -> float:
            r, w = await connect(emu.port)
            total = 0
            while data := await r.read(65536):
                total += len(data)
                arrivals.append((time.monotonic(), conn, len(data)))
            w.close()
            assert total == size
            return time.monotonic()

        t0 = time.monotonic()
        ends = await asyncio.wait_for(asyncio.gather(download(0), download(1)), 10.0)
        arrivals.sort()
        rate_kbps = steady_rate(arrivals, 0.3) * 8 / 1000
        window = [(c, n) for t, c, n in arrivals if arrivals[0][0] + 0.3 <= t <= min(ends) - 0.1]
        share0 = sum(n for c, n in window if c == 0) / sum(n for _c, n in window)
        print(f"\n2 x {size} B down through 256 kbit/s: {max(ends) - t0:.2f} s, steady {rate_kbps:.1f} kbit/s, "
              f"connection 0's share while both ran {share0:.0%}")
        assert 256 * 0.85 <= rate_kbps <= 256 * 1.15
        assert 0.35 <= share0 <= 0.65, "one connection starved the other"
        assert emu.stats()["bytes"]["down"] == 2 * size


# ---------------------------------------------------------------- latency and jitter


async def test_latency_is_added_each_way() -> None:
    async with Target("echo") as echo, \
            LinkEmulator(target=(LOCAL, echo.port), profile=Profile(latency_ms=300)) as emu:
        r, w = await connect(echo.port)
        direct = min([await round_trip(r, w) for _ in range(3)])
        w.close()
        r, w = await connect(emu.port)
        rtts = [await round_trip(r, w) for _ in range(3)]
        print(f"\n300 ms one-way: round trips {[round(x, 3) for x in rtts]} s (direct {direct * 1000:.2f} ms)")
        assert min(rtts) - direct >= 0.600
        assert max(rtts) <= 0.600 + 0.100
        w.close()


async def test_jitter_spreads_delays_but_never_reorders() -> None:
    count = 150
    async with Target("sink") as sink, \
            LinkEmulator(target=(LOCAL, sink.port), profile=Profile(latency_ms=100, jitter_ms=80), seed=7) as emu:
        _r, w = await connect(emu.port)
        sent_at = []
        for i in range(count):
            sent_at.append(time.monotonic())
            w.write(struct.pack(">I", i))
            await asyncio.sleep(0.004)
        w.write_eof()
        got = await sink.wait_eof(0, 5.0)
        assert got == b"".join(struct.pack(">I", i) for i in range(count)), "bytes reordered or lost"
        arrived_at: list[float] = []
        total = 0
        for t, _c, n in sink.arrivals:  # the arrival of each 4-byte message
            total += n
            arrived_at += [t] * (total // 4 - len(arrived_at))
        delays = [a - s for a, s in zip(arrived_at, sent_at)]
        print(f"\n100 ± 80 ms: one-way delays {min(delays) * 1000:.0f}..{max(delays) * 1000:.0f} ms, "
              f"mean {sum(delays) / len(delays) * 1000:.0f} ms over {count} messages, in order")
        assert min(delays) >= 0.020 - 0.002
        assert max(delays) <= 0.180 + 0.040
        assert max(delays) - min(delays) >= 0.060, "no jitter visible"
        w.close()


# ---------------------------------------------------------------- outages


async def test_outage_resets_connections_and_refuses_new_ones_until_it_ends() -> None:
    async with Target("echo") as echo, LinkEmulator(target=(LOCAL, echo.port)) as emu:
        r, w = await connect(emu.port)
        await round_trip(r, w)
        assert echo.active == 1
        t0 = time.monotonic()
        await emu.outage(1.0)
        assert await is_closed(r, 0.5), "open connection survived the outage"
        w.close()
        await asyncio.sleep(0.1)
        assert echo.active == 0, "upstream side not closed"
        assert await refused(emu.port)
        await asyncio.sleep(max(0.0, 0.8 - (time.monotonic() - t0)))
        assert await refused(emu.port), "accepted before the outage ended"
        stats = emu.stats()
        assert stats["state"] == "outage" and stats["connections"]["refused"] == 2
        await asyncio.wait_for(emu.wait_up(), 2.0)
        up_after = time.monotonic() - t0
        print(f"\noutage of 1.0 s: link up again after {up_after:.3f} s")
        assert 0.95 <= up_after <= 1.15
        r, w = await connect(emu.port)
        assert await round_trip(r, w) < 0.1
        assert emu.stats()["state"] == "up"
        w.close()


async def test_upstream_refusing_resets_the_client() -> None:
    with socket.socket() as s:
        s.bind((LOCAL, 0))
        dead_port = s.getsockname()[1]  # nothing listens there
    async with LinkEmulator(target=(LOCAL, dead_port)) as emu:
        r, w = await connect(emu.port)
        assert await is_closed(r, 2.0)
        w.close()
        await asyncio.sleep(0.05)
        assert emu.stats()["connections"]["upstream_failed"] == 1


# ---------------------------------------------------------------- scenario files


async def test_scenario_file_drives_outage_and_profile(tmp_path: Path, link_process) -> None:
    scenario = tmp_path / "drop.yaml"
    scenario.write_text(textwrap.dedent("""\
        # t=0 50 ms each way; t=1 outage for 1 s; t=2.5 slower link
        profile: {latency_ms: 50}
        steps:
          - at: 1.0
            outage: 1.0
          - at: 2.5
            profile: {base: lan, latency_ms: 250}
        """))
    async with Target("echo") as echo:
        lp = await link_process("--listen", f"{LOCAL}:0", "--target", f"{LOCAL}:{echo.port}",
                                "--scenario", str(scenario))
        t0 = time.monotonic()
        r, w = await connect(lp.port)
        rtt0 = await round_trip(r, w)
        assert 0.100 <= rtt0 < 0.200
        assert await is_closed(r, 2.0)
        closed_at = time.monotonic() - t0
        w.close()
        assert 0.8 <= closed_at <= 1.3
        assert await refused(lp.port)
        await asyncio.sleep(max(0.0, 2.15 - (time.monotonic() - t0)))
        r, w = await connect(lp.port)
        rtt1 = await round_trip(r, w)
        assert 0.100 <= rtt1 < 0.200
        await asyncio.sleep(max(0.0, 2.65 - (time.monotonic() - t0)))
        rtt2 = await round_trip(r, w)
        print(f"\nscenario: rtt {rtt0:.3f} s, reset at t={closed_at:.2f} s, rtt after outage {rtt1:.3f} s, "
              f"after the profile step {rtt2:.3f} s")
        assert 0.500 <= rtt2 < 0.650
        w.close()
        rc, _ = await lp.terminate()
        assert rc == 0


BAD_SCENARIOS = {
    "unknown-key": ("profile: satcom\nstepz: []\n", "unknown key(s) stepz"),
    "negative-outage": ("steps:\n  - {at: 1, outage: -5}\n", "steps[0].outage: must be a number of seconds > 0"),
    "unknown-profile": ("profile: satcon\n", "unknown profile 'satcon'"),
    "bad-field": ("profile: {bandwidth_kbps: fast}\n", "profile: bandwidth_kbps: must be a number"),
    "out-of-order": ("steps:\n  - {at: 5, up: true}\n  - {at: 2, outage: 1}\n", "steps[1].at: 2 is before"),
    "no-action": ("steps:\n  - {at: 5}\n", "steps[0]: needs an action"),
    "bad-yaml": ("steps: [\n", "invalid YAML at line"),
    "empty": ("", "empty scenario"),
}


@pytest.mark.parametrize("name", sorted(BAD_SCENARIOS))
def test_bad_scenario_exits_2_with_file_and_reason(name: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    text, expected = BAD_SCENARIOS[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    rc = link_main(["--listen", f"{LOCAL}:0", "--target", f"{LOCAL}:1", "--scenario", str(path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith(f"{path}: ") and expected in err, err


def test_bad_scenario_exit_code_of_the_process(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("steps:\n  - {at: 1, outage: soon}\n")
    proc = subprocess.run([sys.executable, "-m", "hil.link", "--listen", f"{LOCAL}:0", "--target", f"{LOCAL}:1",
                           "--scenario", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=20, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{path}: steps[0].outage: must be a number of seconds > 0, got 'soon'"
    assert proc.stdout == ""


def test_profile_syntax() -> None:
    assert from_text("satcom latency_ms=300") == Profile(bandwidth_kbps=64, latency_ms=300, jitter_ms=50)
    assert from_text("bandwidth_kbps=unlimited latency_ms=5") == Profile(latency_ms=5)
    assert from_value({"base": "bgan", "jitter_ms": 20}) == Profile(256, 800, 20)
    assert from_value({"bandwidth_kbps": 0}) == Profile()
    for bad in ("satcom speed=1", "latency_ms=-1", "bogus", "latency_ms"):
        with pytest.raises(ProfileError):
            from_text(bad)


def test_shipped_scenarios_are_valid() -> None:
    files = sorted((ROOT / "hil" / "link" / "scenarios").glob("*.yaml"))
    assert files
    for path in files:
        scenario = load_scenario(path)
        assert scenario.steps and scenario.profile is not None


# ---------------------------------------------------------------- a real broker behind the link

MQTT_CONNECT = bytes.fromhex("100d00044d5154540402003c000174")  # MQTT 3.1.1, clean session, client id "t"
MQTT_CONNACK = bytes.fromhex("20020000")
MQTT_PINGREQ, MQTT_PINGRESP = bytes.fromhex("c000"), bytes.fromhex("d000")


async def test_mosquitto_through_the_satcom_profile(mosquitto: str) -> None:
    broker_port = int(mosquitto.rsplit(":", 1)[1])
    async with LinkEmulator(target=(LOCAL, broker_port), profile=PROFILES["satcom"], seed=3) as emu:
        r, w = await connect(emu.port)
        t0 = time.monotonic()
        w.write(MQTT_CONNECT)
        assert await asyncio.wait_for(r.readexactly(4), 5.0) == MQTT_CONNACK
        connack_s = time.monotonic() - t0
        t0 = time.monotonic()
        w.write(MQTT_PINGREQ)
        assert await asyncio.wait_for(r.readexactly(2), 5.0) == MQTT_PINGRESP
        ping_s = time.monotonic() - t0
        print(f"\nMosquitto over satcom: CONNACK after {connack_s:.3f} s, PINGRESP after {ping_s:.3f} s")
        for rtt in (connack_s, ping_s):
            assert 2 * (0.600 - 0.050) <= rtt <= 2 * (0.600 + 0.050) + 0.150
        await emu.outage(0.5)
        assert await is_closed(r, 1.0)
        w.close()
        await asyncio.wait_for(emu.wait_up(), 2.0)
        r, w = await connect(emu.port)
        w.write(MQTT_CONNECT)
        assert await asyncio.wait_for(r.readexactly(4), 5.0) == MQTT_CONNACK
        w.close()


# ---------------------------------------------------------------- control port and signals


async def test_control_port_and_sigterm(link_process) -> None:
    async with Target("echo") as echo:
        lp = await link_process("--listen", f"{LOCAL}:0", "--target", f"{LOCAL}:{echo.port}",
                                "--control", f"{LOCAL}:0", "--profile", "lan")
        r, w = await connect(lp.port)
        assert await round_trip(r, w, b"x" * 100) < 0.1
        stats = await lp.control("stats")
        assert stats["ok"] and stats["state"] == "up"
        assert stats["bytes"] == {"up": 100, "down": 100}
        assert stats["connections"]["accepted"] == 1 and stats["connections"]["active"] == 1

        reply = await lp.control("profile bandwidth_kbps=64 latency_ms=200 jitter_ms=0")
        assert reply == {"ok": True, "profile": {"bandwidth_kbps": 64.0, "latency_ms": 200.0, "jitter_ms": 0.0}}
        assert await round_trip(r, w) >= 0.400

        assert (await lp.control("outage 5"))["ok"]
        assert await is_closed(r, 1.0)
        w.close()
        assert await refused(lp.port)
        stats = await lp.control("stats")
        assert stats["state"] == "outage" and 3.0 < stats["outage_remaining_s"] <= 5.0
        assert stats["connections"]["refused"] == 1 and stats["connections"]["closed"] == 1
        assert (await lp.control("up"))["ok"]
        r, w = await connect(lp.port)
        assert await round_trip(r, w) >= 0.400
        assert (await lp.control("profile lan"))["ok"]
        assert await round_trip(r, w) < 0.1 + 0.400  # a piece shaped before the change may still wait
        assert await round_trip(r, w) < 0.1
        bad = await lp.control("explode now")
        assert bad["ok"] is False and "unknown command" in bad["error"]
        assert (await lp.control("outage -1"))["ok"] is False

        rc, seconds = await lp.terminate()  # with a connection open
        print(f"\nSIGTERM with an open connection: exit {rc} in {seconds:.3f} s")
        assert rc == 0 and seconds < 1.0
        w.close()


# ---------------------------------------------------------------- bounded memory


async def test_queue_stays_bounded_when_the_target_reads_slowly() -> None:
    """The target does not read for 1 s: the sender must stall (back-pressure), the
    emulator must hold no more than its limit plus one read, and nothing is lost."""
    async with Target("sink", rcvbuf=16384) as sink, \
            LinkEmulator(target=(LOCAL, sink.port), profile=Profile(latency_ms=20)) as emu:
        sink.gate.clear()
        _r, w = await connect(emu.port)
        w.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        block = os.urandom(65536)
        peak_seen = 0
        sent = 0
        stalled = False

        async def watch() -> None:  # an outside view of the queue, besides the emulator's own peak
            nonlocal peak_seen
            while True:
                peak_seen = max(peak_seen, emu.stats()["queued"]["up"])
                await asyncio.sleep(0.005)

        watcher = asyncio.create_task(watch())
        while sent < 256 * 1024 * 1024:
            w.write(block)
            try:
                await asyncio.wait_for(w.drain(), 0.5)
            except TimeoutError:
                stalled = True
                break
            sent += len(block)
        sent += len(block)  # the block that stalled is in the writer's buffer
        stats = emu.stats()
        print(f"\nslow target: sender stalled after {sent / 1e6:.1f} MB; emulator queue "
              f"{stats['queued']['up']} B now, peak {stats['peak_queued']['up']} B "
              f"(watched {peak_seen} B), limit {QUEUE_LIMIT} + read {READ_CHUNK}")
        assert stalled, "sender never felt back-pressure"
        assert stats["queued"]["up"] >= QUEUE_LIMIT, "the queue did not fill: the test proves nothing"
        assert stats["peak_queued"]["up"] <= QUEUE_LIMIT + READ_CHUNK
        assert peak_seen <= QUEUE_LIMIT + READ_CHUNK
        sink.gate.set()
        await asyncio.wait_for(w.drain(), 10.0)
        w.write_eof()
        got = await sink.wait_eof(0, 20.0)
        watcher.cancel()
        assert len(got) == sent and got == block * (sent // len(block))
        assert emu.stats()["queued"]["up"] == 0
        w.close()


# ---------------------------------------------------------------- kernel path (namespace + tc)

NETNS_SERVER = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 0)); s.listen(); print(s.getsockname()[1], flush=True)
c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
mode, total, first, last = sys.argv[2], 0, None, None
while data := c.recv(65536):
    if mode == "echo":
        c.sendall(data)
    now = time.monotonic(); first = first or now; last = now; total += len(data)
c.sendall(f"{total} {(last or 0) - (first or 0)}".encode()); c.close()
"""


def _netns_server(link: netem.NetnsLink, mode: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(["ip", "netns", "exec", link.namespace, sys.executable, "-c", NETNS_SERVER,
                             link.ns_ip, mode], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _need_netns() -> None:
    reason = netem.unavailable_reason()
    if reason:
        pytest.skip(f"namespace + tc path: {reason}")


def _index() -> int:
    return 100 + os.getpid() % 100


def test_netns_link_rate_and_teardown() -> None:
    """Namespace + veth + rate shaping (netem, or tbf where the kernel lacks netem)."""
    _need_netns()
    with netem.netns_link(_index(), netem.NetemSpec(rate_kbit=1000)) as (link, kind):
        proc, port = _netns_server(link, "sink")
        try:
            with socket.create_connection((link.ns_ip, port), timeout=10) as c:
                c.sendall(os.urandom(200_000))
                c.shutdown(socket.SHUT_WR)
                total, seconds = c.recv(100).decode().split()
        finally:
            proc.wait(10)
        kbps = int(total) * 8 / 1000 / float(seconds)
        print(f"\nnetns {link.namespace} via {kind}: 200000 B at {kbps:.0f} kbit/s (1000 configured)")
        assert int(total) == 200_000
        assert 1000 * 0.8 <= kbps <= 1000 * 1.2
    assert link.namespace not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    assert subprocess.run(["ip", "link", "show", link.host_if], capture_output=True, check=False).returncode != 0


def test_netns_link_netem_delay() -> None:
    _need_netns()
    if not netem.netem_supported():
        pytest.skip("kernel has no sch_netem (CONFIG_NET_SCH_NETEM)")
    with netem.netns_link(_index(), netem.NetemSpec(delay_ms=100, jitter_ms=0)) as (link, kind):
        assert kind == "netem"
        proc, port = _netns_server(link, "echo")
        try:
            with socket.create_connection((link.ns_ip, port), timeout=10) as c:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t0 = time.monotonic()
                c.sendall(b"ping")
                assert c.recv(4) == b"ping"
                rtt = time.monotonic() - t0
                c.shutdown(socket.SHUT_WR)
        finally:
            proc.wait(10)
        assert 0.200 <= rtt < 0.300


def test_netem_arguments_and_honest_refusal() -> None:
    spec = netem.NetemSpec(delay_ms=300, jitter_ms=20, rate_kbit=64, loss_pct=1)
    assert spec.netem_args() == ["netem", "delay", "300ms", "20ms", "rate", "64kbit", "loss", "1%"]
    _need_netns()
    if netem.netem_supported():
        pytest.skip("this kernel has netem: the refusal path does not apply")
    link = netem.NetnsLink(_index())
    with pytest.raises(netem.NetemError, match="no sch_netem"):
        netem.up(link, spec)
    assert link.namespace not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                                check=False).stdout
