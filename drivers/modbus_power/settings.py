"""A unit's settings: the register map's writable holding registers and the values its profile wants.

`fieldgw config audit` reads them back and names each register that differs;
`fieldgw config apply` writes them and reads back. They are read and written
in contiguous blocks of writable registers (FC03 to read; FC06 for a single
register, FC16 for several): an EPEVER takes 0x9000-0x900E written together
and refuses thresholds that are inconsistent on their own, so writing one
register at a time could be refused halfway. A writable register without a
`value` keeps what the unit holds (it is read first and written back as it
was). Values go through the map's scale, signedness and word order
(`Register.encode`); they are compared as register words, so 14.4 V at
scale 0.01 matches exactly 1440 and nothing is lost to float noise.

The requests themselves are the driver's (one line, one request at a time
with the poller); this module only plans them and judges the answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from drivers.modbus_power.link import Answer
from drivers.modbus_power.maps import Block, Register, RegisterMap, plan
from gateway.driver_api import CommandError, ConfigDiff

WRITE_MAX = 123  # registers per FC16 request (Modbus limit)
# What a refused write usually means, by exception code.
WHY_REFUSED = {2: ": the unit has no such holding register (check the map's addresses for this firmware)",
               3: ": a value the unit does not accept (out of its range)",
               4: ": the unit refuses the combination (EPEVER: thresholds out of order, or the battery type "
                  "is not 'user' for custom voltages)"}

Read = Callable[[Block], Awaitable[Answer]]
Write = Callable[[Block, list[int]], Awaitable[Answer]]


def setting_blocks(rmap: RegisterMap) -> list[Block]:
    """The blocks of writable registers that hold at least one profile value."""
    blocks = plan([r for r in rmap.registers if r.writable], min(rmap.max_block, WRITE_MAX))
    return [b for b in blocks if any(r.value is not None for r in b.registers)]


def _words(block: Block, reg: Register, words: Sequence[int]) -> list[int]:
    start = reg.address - block.address
    return list(words[start:start + reg.size])


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def wanted(block: Block, words: Sequence[int]) -> list[int]:
    """`words` (what the unit holds) with every profile value put in."""
    out = list(words)
    for reg in block.registers:
        if reg.value is not None:
            start = reg.address - block.address
            out[start:start + reg.size] = reg.encode(reg.value)
    return out


def differences(block: Block, words: Sequence[int]) -> list[ConfigDiff]:
    """Each register of `block` with a profile value that `words` do not hold."""
    return [ConfigDiff(reg.name, _number(reg.value), _number(reg.decode(_words(block, reg, words))))
            for reg in block.registers
            if reg.value is not None and reg.encode(reg.value) != _words(block, reg, words)]


def _failed(action: str, ans: Answer) -> CommandError:
    return CommandError("failed", f"cannot {action}: {ans.detail}{WHY_REFUSED.get(ans.exception_code or 0, '')}")


async def audit(blocks: Sequence[Block], read: Read) -> list[ConfigDiff]:
    diffs: list[ConfigDiff] = []
    for block in blocks:
        ans = await read(block)
        if ans.words is None:
            raise _failed("read the settings", ans)
        diffs.extend(differences(block, ans.words))
    return diffs


async def apply(blocks: Sequence[Block], read: Read, write: Write) -> None:
    """Write every block whose words differ from the profile."""
    for block in blocks:
        ans = await read(block)
        if ans.words is None:
            raise _failed("read the settings before writing them", ans)
        new = wanted(block, ans.words)
        if new == ans.words:
            continue
        done = await write(block, new)
        if done.words is None:
            raise _failed("write the settings", done)
