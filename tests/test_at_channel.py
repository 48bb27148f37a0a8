"""drivers/common/at.py on a scripted byte stream: echo, prompts, binary answers, unsolicited lines."""

from __future__ import annotations

import asyncio

import pytest

from drivers.common.at import AtChannel, AtError


class Wire:
    """The modem end: what the channel wrote, and a reader the test feeds."""

    def __init__(self) -> None:
        self.reader = asyncio.StreamReader()
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.reader.feed_eof()


def channel(wire: Wire, urcs: list[list[str]]) -> AtChannel:
    return AtChannel(wire.reader, wire, urcs.append, ("+CTSDSR:", "SBDRING"), {"+CTSDSR:": 1},  # type: ignore[arg-type]
                     lambda line: all(c in "0123456789ABCDEFabcdef" for c in line))


async def test_a_cut_unsolicited_result_never_swallows_the_next_line() -> None:
    wire, urcs = Wire(), []
    at = channel(wire, urcs)
    serving = asyncio.create_task(at.serve())
    pending = asyncio.create_task(at.command("AT+CSQ?", timeout=2))
    await asyncio.sleep(0)
    # the PDU line after the header was lost on the wire: the answer's OK comes next
    wire.reader.feed_data(b"\r\n+CTSDSR: 12,1001,0,2001,0,84\r\n\r\n+CSQ: 25,99\r\n\r\nOK\r\n")
    assert await pending == ["+CSQ: 25,99"]
    # and a header right after a lost PDU starts its own result
    wire.reader.feed_data(b"+CTSDSR: 12,1001,0,2001,0,84\r\n+CTSDSR: 12,1002,0,2001,0,84\r\n0A00\r\n")
    await asyncio.sleep(0.01)
    assert urcs == [["+CTSDSR: 12,1001,0,2001,0,84"], ["+CTSDSR: 12,1001,0,2001,0,84"],
                    ["+CTSDSR: 12,1002,0,2001,0,84", "0A00"]]
    assert at.stats["short_urcs"] == 2
    serving.cancel()


async def test_echo_prompt_binary_and_errors() -> None:
    wire, urcs = Wire(), []
    at = channel(wire, urcs)
    serving = asyncio.create_task(at.serve())
    first = asyncio.create_task(at.command("AT+SBDWB=3", timeout=2, prompt="READY", payload=b"abc\x01\x26"))
    await asyncio.sleep(0)
    wire.reader.feed_data(b"AT+SBDWB=3\r\r\nREADY\r\n")  # echo, then the prompt
    await asyncio.sleep(0.01)
    assert wire.written.endswith(b"abc\x01\x26")
    wire.reader.feed_data(b"\r\n0\r\n\r\nOK\r\n")
    assert await first == ["0"]

    got: list[bytes] = []

    def frame(buf: bytearray) -> int | None:
        if len(buf) < 2 or len(buf) < 2 + buf[1]:
            return None
        got.append(bytes(buf[2:2 + buf[1]]))
        return 2 + buf[1]

    binary = asyncio.create_task(at.command("AT+SBDRB", timeout=2, binary=frame))
    await asyncio.sleep(0)
    wire.reader.feed_data(b"\x00\x04\r\nOK\r\nOK\r\n")  # the message itself contains "\r\nOK"
    assert await binary == [] and got == [b"\r\nOK"]

    failing = asyncio.create_task(at.command("AT+CMGS=1,8", timeout=2))
    await asyncio.sleep(0)
    wire.reader.feed_data(b"\r\n+CME ERROR: 35\r\n")
    with pytest.raises(AtError) as info:
        await failing
    assert info.value.result == "+CME ERROR: 35"
    with pytest.raises(AtError) as info:
        await at.command("AT", timeout=0.05)
    assert "no answer" in info.value.result
    wire.reader.feed_data(b"SBDRING\r\nnoise line\r\n")
    await asyncio.sleep(0.01)
    assert urcs == [["SBDRING"]] and at.stats["unexpected_lines"] == 1
    serving.cancel()
