"""MSB-first bit packing for SDS PDUs (LIP fields are not byte aligned)."""
from __future__ import annotations


class BitWriter:
    """Appends unsigned/two's-complement fields, most significant bit first."""

    def __init__(self) -> None:
        self._value = 0
        self.length = 0

    def put(self, value: int, width: int) -> BitWriter:
        if width <= 0:
            raise ValueError(f"field width must be > 0, got {width}")
        if not 0 <= value < (1 << width):
            raise ValueError(f"{value} does not fit in {width} unsigned bits")
        self._value = (self._value << width) | value
        self.length += width
        return self

    def put_signed(self, value: int, width: int) -> BitWriter:
        half = 1 << (width - 1)
        if not -half <= value < half:
            raise ValueError(f"{value} does not fit in {width} two's-complement bits")
        return self.put(value & ((1 << width) - 1), width)

    def put_bytes(self, data: bytes) -> BitWriter:
        for b in data:
            self.put(b, 8)
        return self

    def to_bytes(self) -> bytes:
        """The bits, zero-padded at the end to a whole byte."""
        nbytes = (self.length + 7) // 8
        return (self._value << (nbytes * 8 - self.length)).to_bytes(nbytes, "big") if nbytes else b""


class BitReader:
    """Reads fields MSB first; raises ValueError past the end."""

    def __init__(self, data: bytes, length: int | None = None) -> None:
        self._value = int.from_bytes(data, "big")
        self._total = len(data) * 8
        self.length = self._total if length is None else min(length, self._total)
        self.pos = 0

    @property
    def remaining(self) -> int:
        return self.length - self.pos

    def get(self, width: int) -> int:
        if width <= 0 or self.pos + width > self.length:
            raise ValueError(f"cannot read {width} bits at {self.pos} of {self.length}")
        shift = self._total - self.pos - width
        self.pos += width
        return (self._value >> shift) & ((1 << width) - 1)

    def get_signed(self, width: int) -> int:
        v = self.get(width)
        return v - (1 << width) if v >> (width - 1) else v
