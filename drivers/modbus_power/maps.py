"""Modbus register maps as data (firmware_configs/modbus/*.yaml): check, plan, decode.

A map names one device model's registers with the normalized names of the
model; scaling, signedness, word order and status bits are declared in the
map, never coded per model. `check_map()` lists every problem in words a
person can act on, `RegisterMap.from_profile()` builds a checked map,
`plan()` groups the polled registers into contiguous blocks per function
code (one request per block: unmapped addresses in between would make a
device answer exception 0x02), and `Block.decode()` turns the words of one
answer into engineering values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

TYPES: dict[str, tuple[int, bool]] = {"uint16": (1, False), "int16": (1, True), "uint32": (2, False), "int32": (2, True)}
FUNCTIONS: dict[int, str] = {3: "holding registers", 4: "input registers"}
WORD_ORDERS = ("low_first", "high_first")
# The normalized names (any other snake_case name is allowed and passed on as it is). battery_a/_w are the
# net battery current and power (+ charging); charge_a/_w a charger's output (into battery and load).
NORMALIZED = ("battery_v", "battery_a", "battery_w", "soc_pct", "battery_temp_c", "pv_v", "pv_a", "pv_w",
              "load_v", "load_a", "load_w", "charge_a", "charge_w", "charger_stage", "charger_fault")
STATUS_NAMES = ("charger_stage", "charger_fault")  # reported in status, not as telemetry numbers
STAGES = ("off", "idle", "bulk", "absorption", "float", "boost", "equalize", "storage", "charging",
          "discharging", "fault")  # the normalized charger stages a map's `states` may name
MAX_BLOCK = 125  # registers per read request (Modbus limit)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_TOP_KEYS = {"profile", "protocol", "model", "version", "function", "default_unit", "max_block", "registers", "note"}
_REG_KEYS = {"name", "address", "function", "type", "word_order", "scale", "bits", "states", "writable", "value",
             "poll", "note"}


class MapError(ValueError):
    """A register map that cannot be used; `problems` lists all of it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(slots=True)
class Register:
    name: str
    function: int
    address: int
    type: str
    scale: float = 1.0
    word_order: str = "high_first"
    bits: tuple[int, int] | None = None  # first and last bit (inclusive) of a field in the register
    states: dict[int, str] = field(default_factory=dict)  # code → normalized name (charger_stage)
    writable: bool = False
    value: float | None = None  # the setting this profile wants (writable registers; `fieldgw config apply`)
    poll: bool = True

    @property
    def size(self) -> int:
        return TYPES[self.type][0]

    @property
    def end(self) -> int:
        return self.address + self.size - 1

    def label(self) -> str:
        return f"{self.name} (FC{self.function:02d} 0x{self.address:04X})"

    def raw(self, words: Sequence[int]) -> int:
        """The register's integer (signed for int types; the bit field when `bits`) from its words."""
        if self.size == 1:
            value = words[0] & 0xFFFF
        elif self.word_order == "low_first":
            value = (words[1] & 0xFFFF) << 16 | (words[0] & 0xFFFF)
        else:
            value = (words[0] & 0xFFFF) << 16 | (words[1] & 0xFFFF)
        if self.bits is not None:
            lo, hi = self.bits
            return (value >> lo) & ((1 << (hi - lo + 1)) - 1)
        width = 16 * self.size
        if TYPES[self.type][1] and value >= 1 << (width - 1):
            value -= 1 << width
        return value

    def decode(self, words: Sequence[int]) -> float:
        """The engineering value: the integer times `scale` (rounded off float noise)."""
        return round(self.raw(words) * self.scale, 6)

    def encode(self, value: float) -> list[int]:
        """The words that write `value` (engineering units) to a writable register; ValueError if it cannot."""
        if self.bits is not None:
            raise ValueError(f"{self.label()} is a bit field: it cannot be written on its own")
        raw = round(value / self.scale)
        width = 16 * self.size
        signed = TYPES[self.type][1]
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
        if not lo <= raw <= hi:
            raise ValueError(f"{value:g} does not fit {self.label()} ({self.type}, scale {self.scale:g})")
        raw &= (1 << width) - 1
        if self.size == 1:
            return [raw]
        high, low = raw >> 16, raw & 0xFFFF
        return [low, high] if self.word_order == "low_first" else [high, low]


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: `count` registers from `address` with one function code."""

    function: int
    address: int
    count: int
    registers: tuple[Register, ...]

    def label(self) -> str:
        return f"FC{self.function:02d} 0x{self.address:04X}+{self.count}"

    def decode(self, words: Sequence[int]) -> dict[str, float]:
        out: dict[str, float] = {}
        for reg in self.registers:
            start = reg.address - self.address
            out[reg.name] = reg.decode(words[start:start + reg.size])
        return out

    def split(self) -> list[Block]:
        """One block per register span (registers sharing one address, like bit fields, stay together)."""
        return plan(self.registers, max_block=1)


def plan(registers: Iterable[Register], max_block: int = MAX_BLOCK) -> list[Block]:
    """Contiguous blocks per function code, at most `max_block` registers each (one 32-bit value never split)."""
    blocks: list[Block] = []
    for function in sorted({r.function for r in registers}):
        current: list[Register] = []
        start = end = -1
        for reg in sorted((r for r in registers if r.function == function), key=lambda r: (r.address, r.end)):
            joined_end = max(end, reg.end)
            if current and reg.address <= end + 1 and (joined_end - start + 1 <= max_block or reg.end <= end):
                current.append(reg)
                end = joined_end
                continue
            if current:
                blocks.append(Block(function, start, end - start + 1, tuple(current)))
            current, start, end = [reg], reg.address, reg.end
        if current:
            blocks.append(Block(function, start, end - start + 1, tuple(current)))
    return blocks


@dataclass(frozen=True)
class RegisterMap:
    model: str
    version: int
    registers: tuple[Register, ...]
    default_unit: int = 1
    max_block: int = MAX_BLOCK
    profile: str = ""

    @property
    def blocks(self) -> list[Block]:
        """The requests of one poll."""
        return plan([r for r in self.registers if r.poll], self.max_block)

    def by_name(self, name: str) -> Register | None:
        return next((r for r in self.registers if r.name == name), None)

    @classmethod
    def from_profile(cls, data: Any) -> RegisterMap:
        problems = check_map(data)
        if problems:
            raise MapError(problems)
        default_fn = data.get("function")
        regs = tuple(_register(raw, default_fn) for raw in data["registers"])
        return cls(model=str(data["model"]), version=int(data["version"]), registers=regs,
                   default_unit=int(data.get("default_unit", 1)), max_block=int(data.get("max_block", MAX_BLOCK)),
                   profile=str(data.get("profile", "")))


def _register(raw: dict[str, Any], default_fn: int | None) -> Register:
    bits = raw.get("bits")
    if isinstance(bits, int):
        bits = (bits, bits)
    elif bits is not None:
        bits = (int(bits[0]), int(bits[1]))
    return Register(name=raw["name"], function=int(raw.get("function", default_fn)), address=int(raw["address"]),
                    type=raw["type"], scale=float(raw.get("scale", 1)), word_order=raw.get("word_order", "high_first"),
                    bits=bits, states={int(k): str(v) for k, v in (raw.get("states") or {}).items()},
                    writable=bool(raw.get("writable", False)),
                    value=float(raw["value"]) if raw.get("value") is not None else None, poll=bool(raw.get("poll", True)))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_map(data: Any) -> list[str]:
    """Every problem with a register map, each naming where it is and what would be right."""
    if not isinstance(data, dict):
        return ["a register map is a YAML mapping with model, version and registers"]
    problems = [f"unknown key {k!r} (known: {', '.join(sorted(_TOP_KEYS))})" for k in data if k not in _TOP_KEYS]
    if data.get("protocol", "modbus") != "modbus":
        problems.append(f"protocol is {data['protocol']!r}: a Modbus register map says protocol: modbus")
    if not isinstance(data.get("model"), str) or not data["model"].strip():
        problems.append("model: name the device model (text)")
    if not _is_int(data.get("version")) or data["version"] < 1:
        problems.append("version: a whole number >= 1 (raise it when the map changes)")
    default_fn = data.get("function")
    if default_fn is not None and default_fn not in FUNCTIONS:
        problems.append(f"function: {default_fn!r} is not 3 (holding registers) or 4 (input registers)")
        default_fn = None
    if "default_unit" in data and (not _is_int(data["default_unit"]) or not 0 <= data["default_unit"] <= 255):
        problems.append("default_unit: a unit (slave) id 0..255")
    if "max_block" in data and (not _is_int(data["max_block"]) or not 1 <= data["max_block"] <= MAX_BLOCK):
        problems.append(f"max_block: registers per request, 1..{MAX_BLOCK}")
    regs = data.get("registers")
    if not isinstance(regs, list) or not regs:
        problems.append("registers: a list of registers (name, address, type, scale, ...)")
        return problems
    good: list[Register] = []
    names: dict[str, int] = {}
    for i, raw in enumerate(regs):
        where = f"registers[{i}]" + (f" ({raw['name']})" if isinstance(raw, dict) and isinstance(raw.get("name"), str) else "")
        found = _check_register(raw, default_fn)
        problems.extend(f"{where}: {p}" for p in found)
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            if raw["name"] in names:
                problems.append(f"{where}: name {raw['name']!r} is also registers[{names[raw['name']]}]")
            names.setdefault(raw["name"], i)
        if not found:
            good.append(_register(raw, default_fn))
    problems.extend(_overlaps(good))
    return problems


def _check_register(raw: Any, default_fn: int | None) -> list[str]:
    if not isinstance(raw, dict):
        return ["a register is a mapping with name, address, type (and scale, word_order, bits, ...)"]
    out = [f"unknown key {k!r} (known: {', '.join(sorted(_REG_KEYS))})" for k in raw if k not in _REG_KEYS]
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        out.append(f"name {name!r}: lower-case snake_case, e.g. one of {', '.join(NORMALIZED[:4])}, ...")
    fn = raw.get("function", default_fn)
    if fn not in FUNCTIONS:
        out.append(f"function {fn!r}: 3 (holding registers) or 4 (input registers), per register or for the whole map")
    type_ = raw.get("type")
    size = 1
    if type_ not in TYPES:
        out.append(f"unknown type {type_!r} (known: {', '.join(TYPES)})")
    else:
        size = TYPES[type_][0]
    address = raw.get("address")
    if not _is_int(address) or not 0 <= address <= 0xFFFF - (size - 1):
        out.append(f"address {address!r}: a register address 0..0x{0xFFFF - (size - 1):X} (as the protocol numbers them, from 0)")
    order = raw.get("word_order")
    if size == 2 and order not in WORD_ORDERS:
        out.append(f"word_order {order!r}: a 32-bit register says low_first or high_first")
    elif size == 1 and order is not None and type_ in TYPES:
        out.append(f"word_order is for 32-bit registers, not {type_}")
    scale = raw.get("scale", 1)
    if not _is_number(scale) or scale == 0 or scale != scale or abs(scale) == float("inf"):
        out.append(f"bad scale {scale!r}: a non-zero number the register is multiplied by (0.01 for a value in hundredths)")
    out.extend(_check_bits(raw, type_, size))
    states = raw.get("states")
    if states is not None:
        if not isinstance(states, dict) or not all(_is_int(k) and isinstance(v, str) for k, v in states.items()):
            out.append("states: a mapping of register codes to names, e.g. {0: off, 1: float}")
        elif name == "charger_stage" and (bad := sorted({v for v in states.values() if v not in STAGES})):
            out.append(f"states: {', '.join(map(repr, bad))} not a normalized charger stage ({', '.join(STAGES)})")
    writable = raw.get("writable", False)
    if not isinstance(writable, bool):
        out.append("writable: true or false")
    elif writable and fn == 4:
        out.append("writable: input registers (function 4) are read-only; only holding registers (function 3) can be written")
    elif writable and raw.get("bits") is not None:
        out.append("writable: a bit field cannot be written on its own")
    if raw.get("value") is not None:
        if not writable:
            out.append("value: only a writable register has a value to apply")
        elif not _is_number(raw["value"]):
            out.append(f"value {raw['value']!r}: a number in engineering units")
    if not isinstance(raw.get("poll", True), bool):
        out.append("poll: true or false")
    return out


def _check_bits(raw: dict[str, Any], type_: Any, size: int) -> list[str]:
    bits = raw.get("bits")
    if bits is None:
        return []
    if type_ in ("int16", "int32"):
        return ["bits: a bit field reads an unsigned register (uint16 or uint32)"]
    pair = (bits, bits) if _is_int(bits) else tuple(bits) if isinstance(bits, list) and len(bits) == 2 else None
    if pair is None or not all(_is_int(b) for b in pair) or not 0 <= pair[0] <= pair[1] < 16 * size:
        return [f"bits {bits!r}: one bit number or [first, last] within 0..{16 * size - 1}"]
    return []


def _overlaps(regs: list[Register]) -> list[str]:
    """Registers that share words: allowed only for bit fields of one register that share no bit."""
    out = []
    for i, a in enumerate(regs):
        for b in regs[i + 1:]:
            if a.function != b.function or a.end < b.address or b.end < a.address:
                continue
            same_word = (a.address, a.size, a.type) == (b.address, b.size, b.type)
            if same_word and a.bits is not None and b.bits is not None and (a.bits[1] < b.bits[0] or b.bits[1] < a.bits[0]):
                continue
            why = "their bit fields overlap" if same_word and a.bits and b.bits else \
                "only bit fields of one register may share it" if same_word else "they share a register"
            out.append(f"registers {a.label()} and {b.label()} overlap: {why}")
    return out
