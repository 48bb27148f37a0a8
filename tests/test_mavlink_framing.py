"""The MAVLink frame parser never loses a valid frame to line noise, and counts what it drops."""

from __future__ import annotations

import os

os.environ.setdefault("MAVLINK20", "1")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymavlink.dialects.v20 import ardupilotmega as m2

from drivers.mavlink.framing import FrameParser

ENC = m2.MAVLink(None, srcSystem=1, srcComponent=1)


def _frame(i: int) -> bytes:
    kind = i % 4
    if kind == 0:
        msg = ENC.heartbeat_encode(2, 3, 81, i, 4)
    elif kind == 1:
        msg = ENC.global_position_int_encode(i, 306586000 + i, 1040648000 - i, 500000, 30000, 10, -20, 0, 9000)
    elif kind == 2:
        msg = ENC.statustext_encode(4, f"text {i}".encode())
    else:
        msg = ENC.attitude_encode(i, 0.1, -0.2, 1.5, 0.0, 0.0, 0.0)
    buf = msg.pack(ENC)
    ENC.seq = (ENC.seq + 1) % 256
    return bytes(buf)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    garbage=st.lists(st.binary(max_size=80), min_size=1, max_size=12),
    marker_bias=st.lists(st.sampled_from([b"", b"\xfd", b"\xfe", b"\xfd\xff", b"\xfe\xff\x00"]), min_size=12, max_size=12),
    chunk=st.integers(min_value=1, max_value=300),
)
def test_every_valid_frame_survives_interleaved_garbage(garbage: list[bytes], marker_bias: list[bytes], chunk: int) -> None:
    frames = [_frame(i) for i in range(len(garbage))]
    stream = b"".join(marker_bias[i] + g + f for i, (g, f) in enumerate(zip(garbage, frames)))
    parser = FrameParser()
    out = []
    for start in range(0, len(stream), chunk):
        out.extend(parser.feed(stream[start:start + chunk]))
    out.extend(parser.flush())
    got = [bytes(m.get_msgbuf()) for m in out]
    # every valid frame comes out, in order (noise may not invent frames: CRC + crc_extra)
    assert [g for g in got if g in frames] == frames
    assert len(got) == len(frames)
    assert parser.pending() == 0


def test_bad_crc_and_unknown_ids_are_counted_not_raised() -> None:
    good = _frame(1)
    bad = bytearray(_frame(2))
    bad[-1] ^= 0xFF  # break the CRC
    unknown = bytearray(_frame(3))
    unknown[7:10] = (60000).to_bytes(3, "little")  # a message id no dialect has
    parser = FrameParser()
    out = parser.feed(bytes(bad) + bytes(unknown) + good + b"\x00\x01\x02")
    out += parser.flush()
    assert [bytes(m.get_msgbuf()) for m in out] == [good]
    assert parser.counts.bad_crc == 1
    assert parser.counts.unknown_id >= 1  # a re-scan may meet more unknown-looking headers
    assert parser.counts.garbage_bytes >= 3
    assert parser.counts.ok == 1


def test_truncated_frame_then_valid_frame() -> None:
    first, second = _frame(5), _frame(6)
    parser = FrameParser()
    out = parser.feed(first[:9] + second)  # the first frame was cut short
    out += parser.flush()
    assert [bytes(m.get_msgbuf()) for m in out] == [second]
