"""Which local addresses the gateway offers as WebRTC host candidates.

aioice gathers every interface address except loopback. A kit may pin the
list (`media.ice_addresses`): the addresses command-centre browsers can
reach, and nothing else (no Docker bridges, no private LAN leaking out);
tests pin 127.0.0.1 so nothing leaves loopback. Without a list, aioice's own
choice plus 127.0.0.1 (a browser on the gateway itself then works too).
"""

from __future__ import annotations

import aioice.ice

_original = aioice.ice.get_host_addresses
_pinned: list[str] | None = None


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if _pinned is not None:
        return list(_pinned)
    found = _original(use_ipv4, use_ipv6)
    return (["127.0.0.1"] if use_ipv4 else []) + found


def pin_addresses(addresses: list[str] | None) -> None:
    global _pinned
    _pinned = list(addresses) if addresses is not None else None
    aioice.ice.get_host_addresses = _host_addresses
