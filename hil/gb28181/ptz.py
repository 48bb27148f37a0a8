"""PTZCmd of GB/T 28181 (appendix A.3, front-end device control): 8 bytes, sent as 16 hex digits.

    byte 1  0xA5                      leading code
    byte 2  version (high nibble, 0) | check (low nibble) = (0xA + 0x5 + version) % 16 -> 0x0F
    byte 3  address, low 8 bits
    byte 4  instruction
    byte 5  data 1 (PTZ: pan speed;  preset: 0x00)
    byte 6  data 2 (PTZ: tilt speed; preset: preset number 1..255)
    byte 7  data 3 in the high nibble (PTZ: zoom speed 0..15) | address high 4 bits in the low nibble
    byte 8  checksum = (byte 1 + ... + byte 7) % 256

Instruction bits for PTZ (bits 7..6 = 00): bit 5 zoom out (wide), bit 4 zoom in (tele), bit 3 tilt up,
bit 2 tilt down, bit 1 pan left, bit 0 pan right; 0x00 stops. 0x4x are focus/iris (FI) commands,
0x81 set preset, 0x82 go to preset, 0x83 delete preset; other codes (cruise, scan, aux) are not
simulated. Stdlib only.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

LEAD = 0xA5
RIGHT, LEFT, DOWN, UP, ZOOM_IN, ZOOM_OUT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
PRESET_SET, PRESET_GOTO, PRESET_DELETE = 0x81, 0x82, 0x83

MAX_PAN_DEG_S = 120.0   # at pan speed 0xFF
MAX_TILT_DEG_S = 60.0   # at tilt speed 0xFF
MAX_ZOOM_X_S = 6.0      # zoom factor change per second at zoom speed 15
TILT_RANGE = (0.0, 90.0)  # degrees below the horizon: 0 level, 90 straight down ("up" lowers it)
ZOOM_RANGE = (1.0, 30.0)


class PtzError(ValueError):
    """A PTZCmd that is not well-formed (length, hex, leading code, check nibble or checksum)."""


@dataclass(frozen=True)
class PtzCommand:
    instruction: int
    data1: int = 0
    data2: int = 0
    data3: int = 0        # 0..15
    address: int = 1      # 0..4095
    version: int = 0      # 0..15

    @property
    def kind(self) -> str:
        i = self.instruction
        if i & 0xC0 == 0:
            return "stop" if i == 0 else "move"
        if i & 0xF0 == 0x40:
            return "fi"
        return {PRESET_SET: "preset_set", PRESET_GOTO: "preset_goto", PRESET_DELETE: "preset_delete"}.get(i, "other")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "instruction": self.instruction, "data1": self.data1, "data2": self.data2,
                "data3": self.data3, "address": self.address}


def encode(cmd: PtzCommand) -> str:
    """16 upper-case hex digits."""
    if not (0 <= cmd.instruction <= 255 and 0 <= cmd.data1 <= 255 and 0 <= cmd.data2 <= 255
            and 0 <= cmd.data3 <= 15 and 0 <= cmd.address <= 0xFFF and 0 <= cmd.version <= 15):
        raise ValueError(f"PTZ command field out of range: {cmd}")
    b2 = (cmd.version << 4) | ((0xA + 0x5 + cmd.version) % 16)
    body = bytes((LEAD, b2, cmd.address & 0xFF, cmd.instruction, cmd.data1, cmd.data2,
                  (cmd.data3 << 4) | (cmd.address >> 8)))
    return (body + bytes((sum(body) % 256,))).hex().upper()


def decode(text: str) -> PtzCommand:
    """A PTZCmd from its hex text; PtzError if anything is off (the checksum included)."""
    t = text.strip()
    if len(t) != 16:
        raise PtzError(f"PTZCmd must be 16 hex digits, got {len(t)}")
    try:
        b = bytes.fromhex(t)
    except ValueError:
        raise PtzError("PTZCmd is not hex") from None
    if b[0] != LEAD:
        raise PtzError(f"leading code {b[0]:02X}, expected A5")
    version = b[1] >> 4
    if b[1] & 0x0F != (0xA + 0x5 + version) % 16:
        raise PtzError(f"check nibble of byte 2 ({b[1]:02X}) is wrong")
    if sum(b[:7]) % 256 != b[7]:
        raise PtzError(f"checksum {b[7]:02X}, expected {sum(b[:7]) % 256:02X}")
    return PtzCommand(instruction=b[3], data1=b[4], data2=b[5], data3=b[6] >> 4,
                      address=((b[6] & 0x0F) << 8) | b[2], version=version)


@dataclass
class PtzState:
    """Pan/tilt/zoom of one channel, moving at constant rates until stopped (evaluated lazily)."""
    pan: float = 0.0      # degrees 0..360
    tilt: float = 10.0    # degrees below the horizon
    zoom: float = 1.0     # optical zoom factor
    pan_rate: float = 0.0   # deg/s, + = right
    tilt_rate: float = 0.0  # deg/s, + = down
    zoom_rate: float = 0.0  # x/s, + = in
    since: float = field(default_factory=time.monotonic)
    presets: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    commands: int = 0
    last: str = ""

    @property
    def moving(self) -> bool:
        return bool(self.pan_rate or self.tilt_rate or self.zoom_rate)

    def update(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        dt = max(0.0, now - self.since)
        self.since = now
        if not dt:
            return
        self.pan = (self.pan + self.pan_rate * dt) % 360.0
        tilt = self.tilt + self.tilt_rate * dt
        self.tilt = min(max(tilt, TILT_RANGE[0]), TILT_RANGE[1])
        zoom = self.zoom + self.zoom_rate * dt
        self.zoom = min(max(zoom, ZOOM_RANGE[0]), ZOOM_RANGE[1])

    def apply(self, cmd: PtzCommand, now: float | None = None) -> None:
        """Obey a decoded command (FI and unknown instructions are accepted and change nothing)."""
        self.update(now)
        self.commands += 1
        kind = cmd.kind
        self.last = kind
        i = cmd.instruction
        if kind in ("stop", "move"):
            pan = cmd.data1 / 255 * MAX_PAN_DEG_S
            tilt = cmd.data2 / 255 * MAX_TILT_DEG_S
            zoom = cmd.data3 / 15 * MAX_ZOOM_X_S
            self.pan_rate = pan if i & RIGHT and not i & LEFT else -pan if i & LEFT and not i & RIGHT else 0.0
            self.tilt_rate = tilt if i & DOWN and not i & UP else -tilt if i & UP and not i & DOWN else 0.0
            self.zoom_rate = zoom if i & ZOOM_IN and not i & ZOOM_OUT else -zoom if i & ZOOM_OUT and not i & ZOOM_IN else 0.0
        elif kind == "preset_set" and cmd.data2:
            self.presets[cmd.data2] = (self.pan, self.tilt, self.zoom)
        elif kind == "preset_goto" and cmd.data2 in self.presets:
            self.pan_rate = self.tilt_rate = self.zoom_rate = 0.0
            self.pan, self.tilt, self.zoom = self.presets[cmd.data2]
        elif kind == "preset_delete":
            self.presets.pop(cmd.data2, None)

    def to_json(self) -> dict[str, Any]:
        self.update()
        return {"pan": round(self.pan, 2), "tilt": round(self.tilt, 2), "zoom": round(self.zoom, 2),
                "moving": self.moving, "pan_rate": round(self.pan_rate, 2), "tilt_rate": round(self.tilt_rate, 2),
                "zoom_rate": round(self.zoom_rate, 2), "presets": sorted(self.presets), "commands": self.commands,
                "last": self.last}

    def overlay_numbers(self) -> tuple[int, int, int]:
        """(pan degrees 0..359, tilt degrees 0..90, zoom x10) as burned into the picture."""
        self.update()
        return int(math.floor(self.pan)) % 360, int(round(self.tilt)), int(round(self.zoom * 10))
