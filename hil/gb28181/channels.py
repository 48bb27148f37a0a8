"""Device and channel identities (GB/T 28181 appendix D, 20-digit codes) and catalog entries.

A code is: centre code (8 digits: province, city, district, grassroots unit), industry (2), type (3),
network (1), serial (6). Type codes used here: 132 network camera (IPC, the dome), 138 mobile
transmission device (the body-worn transmitter; see the doc on how sure that is), 131 camera
(a channel), 200 centre server (the platform).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .ptz import PtzState

KINDS = ("dome", "bodycam")
DEVICE_TYPE = {"dome": "132", "bodycam": "138"}
CHANNEL_TYPE = "131"
PTZ_TYPE = {"dome": 1, "bodycam": 3}  # 1 dome, 2 hemisphere, 3 fixed box camera, 4 remote-controlled box camera
DEFAULT_NAMES = {"dome": "球机", "bodycam": "执法记录仪"}  # shown in GB2312: the catalog exercises the charset


def check_id(text: str, what: str = "id") -> str:
    if len(text) != 20 or not text.isdigit():
        raise ValueError(f"{what} must be 20 digits, got {text!r}")
    return text


def with_serial(code: str, serial: int) -> str:
    """The code with its last 6 digits (the serial) replaced."""
    if not 0 <= serial <= 999_999:
        raise ValueError(f"serial {serial} out of range")
    return code[:14] + f"{serial:06d}"


def nth_device(first: str, i: int) -> str:
    """The i-th device id after `first` (ids in sequence: the serial counts up)."""
    return with_serial(first, int(first[14:]) + i)


def channel_ids(device_id: str, count: int) -> list[str]:
    """Channel codes of a device.

    Each channel is `device[:10] + "131" + device[13] + serial`, where the serial is (the device's
    serial - 1) times 100 plus the channel number (1..99), modulo 10^6: device 000001 has channels
    000001..000099, device 000002 has 000101..., so devices in sequence do not collide."""
    base = (int(device_id[14:]) - 1) * 100
    return [device_id[:10] + CHANNEL_TYPE + device_id[13] + f"{(base + n) % 1_000_000:06d}" for n in range(1, count + 1)]


@dataclass
class Channel:
    id: str
    number: int               # 1-based
    name: str
    ptz: PtzState | None      # None: not steerable (body-worn)
    streams: dict[str, object] = field(default_factory=dict)  # call-id -> media.StreamSession
