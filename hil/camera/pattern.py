"""Synthetic test-card frames (numpy, planar yuv420p) with a large frame counter and motion."""
from __future__ import annotations

import numpy as np

# Seven-segment layout: segment -> (row0, col0, row1, col1) in units of a 4 x 8 cell grid (w x h).
_SEGMENTS = {
    "a": (0, 0, 1, 4), "b": (0, 3, 4, 4), "c": (4, 3, 8, 4), "d": (7, 0, 8, 4),
    "e": (4, 0, 8, 1), "f": (0, 0, 4, 1), "g": (3.5, 0, 4.5, 4),
}
_DIGITS = {
    "0": "abcdef", "1": "bc", "2": "abged", "3": "abgcd", "4": "fgbc",
    "5": "afgcd", "6": "afgedc", "7": "abc", "8": "abcdefg", "9": "abcdfg",
}


def _draw_digits(y: np.ndarray, text: str, top: int, left: int, height: int, value: int) -> None:
    cell = height / 8.0
    digit_w = int(cell * 4)
    gap = max(2, int(cell * 1.5))
    for k, ch in enumerate(text):
        x0 = left + k * (digit_w + gap)
        for seg in _DIGITS[ch]:
            r0, c0, r1, c1 = _SEGMENTS[seg]
            y[top + int(r0 * cell):top + int(r1 * cell), x0 + int(c0 * cell):x0 + int(c1 * cell)] = value


draw_digits = _draw_digits  # public name: other simulators burn their own numbers in (hil/gb28181's PTZ overlay)


class CardPattern:
    """Frames for a loop of ``count`` frames of ``width`` x ``height``."""

    def __init__(self, width: int, height: int, count: int, seed: int = 1) -> None:
        self.width, self.height, self.count = width, height, count
        self.digits = max(2, len(str(count - 1)))
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:height, 0:width]
        self._ramp = ((xx + yy) * (255.0 / max(1, width + height)) * 2).astype(np.int32)
        # Fine texture ("sensor noise") refreshed every frame so the encoder spends a realistic
        # number of bits; a few precomputed fields are cycled to keep start-up fast.
        self._noise = [rng.integers(-14, 15, size=(height, width), dtype=np.int16) for _ in range(4)]
        cw, ch = width // 2, height // 2
        cy, cx = np.mgrid[0:ch, 0:cw]
        self._u = (128 + 60 * np.sin(cx / max(1, cw) * 2 * np.pi)).astype(np.uint8)
        self._v = (128 + 60 * np.cos(cy / max(1, ch) * 2 * np.pi)).astype(np.uint8)

    def frame(self, index: int) -> np.ndarray:
        """Planar yuv420p as one (height * 3 / 2, width) uint8 array."""
        w, h = self.width, self.height
        shift = index * 255 * 2 // self.count  # background scrolls once per loop
        y = (((self._ramp + shift) % 256) // 2 + 40).astype(np.int16)
        y += self._noise[index % len(self._noise)]
        np.clip(y, 16, 235, out=y)
        luma = y.astype(np.uint8)
        # Sweeping bar: crosses the picture once per loop.
        bar_w = max(8, w // 24)
        bx = (index * (w - bar_w)) // max(1, self.count - 1)
        luma[:, bx:bx + bar_w] = 235
        # Bouncing square.
        sq = max(8, h // 8)
        t = index / self.count
        sx = int((w - sq) * (0.5 + 0.5 * np.sin(2 * np.pi * t)))
        sy = int((h - sq) * (0.5 + 0.5 * np.sin(4 * np.pi * t)))
        luma[sy:sy + sq, sx:sx + sq] = 16
        # Large frame counter (index within the loop) on a black box.
        dh = max(16, h // 3) // 8 * 8
        text = str(index).rjust(self.digits, "0")
        cell = dh / 8.0
        box_w = int(len(text) * (cell * 4 + max(2, int(cell * 1.5)))) + int(cell * 2)
        top, left = (h - dh) // 2, max(0, (w - box_w) // 2)
        luma[top - int(cell):top + dh + int(cell), left:left + box_w] = 16
        _draw_digits(luma, text, top, left + int(cell), dh, 235)
        u = self._u.copy()
        v = np.roll(self._v, index * (h // 2) // self.count, axis=0)
        r0, r1 = max(0, top - int(cell)) // 2, (top + dh + int(cell)) // 2
        u[r0:r1, left // 2:(left + box_w) // 2] = 128  # neutral grey box: white digits
        v[r0:r1, left // 2:(left + box_w) // 2] = 128
        return np.concatenate([luma.ravel(), u.ravel(), v.ravel()]).reshape(h * 3 // 2, w)
