"""A device's Catalog: its parts gathered until SumNum items have come, and channels made of the video items."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from drivers.gb28181.manscdp import CatalogItem, CatalogPart
from drivers.gb28181.options import Camera

VIDEO_TYPES = ("131", "132")  # GB/T 28181-2016 Annex D: camera, network camera (IPC)
MAX_ITEMS = 1000


@dataclass
class Assembly:
    sum_num: int = -1
    items: dict[str, CatalogItem] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    parts: int = 0

    def add(self, part: CatalogPart) -> bool:
        """Take one Response's items; True once all SumNum have come."""
        self.parts += 1
        self.sum_num = part.sum_num
        for item in part.items:
            if len(self.items) < MAX_ITEMS:
                self.items[item.device_id] = item
        if len(self.items) >= min(self.sum_num, MAX_ITEMS):
            self.done.set()
        return self.done.is_set()


def video_items(cam: Camera, items: list[CatalogItem]) -> list[CatalogItem]:
    """The items that are video channels: type 131/132, or the device itself when it lists only itself."""
    video = [i for i in items if len(i.device_id) == 20 and i.device_id[10:13] in VIDEO_TYPES]
    if not video:
        video = [i for i in items if i.device_id == cam.device_id]
    return video


def channel_device_id(cam: Camera, gb_id: str, taken: set[str]) -> str:
    """The kit's name for a channel (`channels:`), else `{device}-ch{serial}`, else `{device}-{channel id}`."""
    if gb_id in cam.channels:
        return cam.channels[gb_id]
    serial = gb_id[13:].lstrip("0") or "0"
    for candidate in (f"{cam.id}-ch{serial}", f"{cam.id}-{gb_id}"):
        candidate = candidate[:63]
        if candidate not in taken:
            return candidate
    return f"{cam.id[:40]}-{gb_id}"[:63]
