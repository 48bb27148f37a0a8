"""PTZCmd of a DeviceControl (GB/T 28181-2016 Appendix A.3): eight bytes as 16 hex digits.

    byte 1  A5
    byte 2  version << 4 | (0xA + 0x5 + version) % 16   (0x0F for version 0)
    byte 3  address, low 8 bits
    byte 4  instruction: PTZ bits 0x01 right, 0x02 left, 0x04 down, 0x08 up, 0x10 zoom in, 0x20 zoom out;
            0x81/0x82/0x83 set/call/delete preset
    byte 5  data 1: pan speed 0..255 (preset commands: 0)
    byte 6  data 2: tilt speed 0..255 (preset commands: the preset number)
    byte 7  data 3 (zoom speed 0..15) << 4 | address, high 4 bits
    byte 8  checksum: sum of bytes 1..7 mod 256
"""

from __future__ import annotations

from dataclasses import dataclass

RIGHT, LEFT, DOWN, UP, ZOOM_IN, ZOOM_OUT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
PRESET_SET, PRESET_CALL, PRESET_DELETE = 0x81, 0x82, 0x83


class PtzError(ValueError):
    pass


@dataclass(frozen=True)
class PtzCmd:
    instruction: int
    data1: int = 0
    data2: int = 0
    data3: int = 0  # 4 bits
    address: int = 0  # 12 bits
    version: int = 0  # 4 bits

    def encode(self) -> str:
        if not (0 <= self.instruction <= 0xFF and 0 <= self.data1 <= 0xFF and 0 <= self.data2 <= 0xFF
                and 0 <= self.data3 <= 0xF and 0 <= self.address <= 0xFFF and 0 <= self.version <= 0xF):
            raise PtzError(f"a field is out of range: {self}")
        b = [0xA5, self.version << 4 | (0xA + 0x5 + self.version) % 16, self.address & 0xFF, self.instruction,
             self.data1, self.data2, self.data3 << 4 | self.address >> 8]
        b.append(sum(b) % 256)
        return bytes(b).hex().upper()


def decode(text: str) -> PtzCmd:
    try:
        b = bytes.fromhex(text.strip())
    except ValueError:
        raise PtzError(f"not hex: {text[:20]!r}") from None
    if len(b) != 8 or b[0] != 0xA5:
        raise PtzError("a PTZCmd is 8 bytes starting A5")
    version = b[1] >> 4
    if b[1] & 0xF != (0xA + 0x5 + version) % 16:
        raise PtzError("bad check nibble in byte 2")
    if sum(b[:7]) % 256 != b[7]:
        raise PtzError("bad checksum")
    return PtzCmd(b[3], b[4], b[5], b[6] >> 4, (b[6] & 0xF) << 8 | b[2], version)


def move(pan: float, tilt: float, zoom: float) -> PtzCmd:
    """The contract's speeds (-1..1: pan right +, tilt up +, zoom in +) as one PTZ instruction."""
    for name, v in (("pan", pan), ("tilt", tilt), ("zoom", zoom)):
        if not -1.0 <= v <= 1.0:
            raise PtzError(f"{name} speed {v} is outside -1..1")
    instr = (RIGHT if pan > 0 else LEFT if pan < 0 else 0) | (UP if tilt > 0 else DOWN if tilt < 0 else 0) \
        | (ZOOM_IN if zoom > 0 else ZOOM_OUT if zoom < 0 else 0)
    d1, d2, d3 = round(abs(pan) * 255), round(abs(tilt) * 255), round(abs(zoom) * 15)
    # a direction asked for never goes at speed 0 (which many domes read as "stand still")
    return PtzCmd(instr, max(d1, 1) if pan else 0, max(d2, 1) if tilt else 0, max(d3, 1) if zoom else 0)


def stop() -> PtzCmd:
    return PtzCmd(0)


def preset(number: int, instruction: int = PRESET_CALL) -> PtzCmd:
    if not 1 <= number <= 255:
        raise PtzError(f"preset {number} is outside 1..255")
    return PtzCmd(instruction, 0, number, 0)


def speeds(cmd: PtzCmd) -> tuple[float, float, float]:
    """The contract's speeds a PTZ instruction stands for (the inverse of `move`, to its resolution)."""
    i = cmd.instruction
    pan = cmd.data1 / 255 * (1 if i & RIGHT else -1 if i & LEFT else 0)
    tilt = cmd.data2 / 255 * (1 if i & UP else -1 if i & DOWN else 0)
    zoom = cmd.data3 / 15 * (1 if i & ZOOM_IN else -1 if i & ZOOM_OUT else 0)
    return pan, tilt, zoom
