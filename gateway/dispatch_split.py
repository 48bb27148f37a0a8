"""Fitting an order to a channel: split into numbered parts, or shortened when too long.

A part's size is measured by the channel's own rule (bytes of UCS-2 in a
TETRA SDS, GB18030 bytes in a BeiDou message, ...). Parts carry a `(k/n)`
prefix so the reader can put them together; beyond `max_parts` the order is
shortened to what fits and ends with `…`, and the delivery says so.
"""

from __future__ import annotations

from collections.abc import Callable

ELLIPSIS = "…"


def _take(text: str, fits: Callable[[str], bool]) -> int:
    """The longest prefix length of `text` that fits (binary search; sizes grow with length)."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(text[:mid]):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _split_into(text: str, size: Callable[[str], int], max_size: int, count: int) -> list[str] | None:
    """Split into parts with a `(k/count)` prefix; None if it needs more than `count` parts."""
    parts: list[str] = []
    rest = text
    while rest:
        k = len(parts) + 1
        if k > count:
            return None
        prefix = f"({k}/{count})" if count > 1 else ""
        n = _take(rest, lambda s, p=prefix: size(p + s) <= max_size)
        if n == 0:
            return None
        cut = n
        if n < len(rest):  # prefer to cut after a space or punctuation in the last fifth
            for i in range(n, max(n * 4 // 5, 1) - 1, -1):
                if rest[i - 1] in " ，。,.;；!！?？\n":
                    cut = i
                    break
        parts.append(prefix + rest[:cut])
        rest = rest[cut:]
    return parts if len(parts) == count or count == 1 else _renumber(parts, len(parts))


def _renumber(parts: list[str], n: int) -> list[str]:
    """Fewer parts than planned: number them again (one part carries no `(1/1)`)."""
    bodies = [p[p.index(")") + 1:] for p in parts]
    return bodies if n == 1 else [f"({k}/{n})" + body for k, body in enumerate(bodies, 1)]


def fit(text: str, size: Callable[[str], int], max_size: int, max_parts: int) -> tuple[list[str], str]:
    """(parts, note): the note says when the text was split or shortened."""
    if size(text) <= max_size:
        return [text], ""
    for count in range(2, max_parts + 1):
        parts = _split_into(text, size, max_size, count)
        if parts is not None:
            return parts, f"split into {len(parts)} messages (one carries {max_size})"
    # Too long even in max_parts parts: keep what fits, end with an ellipsis.
    budget = max_parts
    n = _take(text, lambda s: _split_into(s + ELLIPSIS, size, max_size, budget) is not None)
    parts = _split_into(text[:n] + ELLIPSIS, size, max_size, budget) or [ELLIPSIS]
    return parts, f"shortened to {n} of {len(text)} characters in {len(parts)} message(s): the channel carries {max_size} per message"
