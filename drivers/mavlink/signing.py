"""MAVLink 2 message signing (SHA-256, 48-bit signature), per vehicle key.

Incoming: a frame from a vehicle with a key must carry a valid signature
and a timestamp newer than the last one seen on its stream (link id,
system, component); the signature is checked *before* the timestamp is
recorded, so a forged frame cannot push a stream's clock forward.
Outgoing: a pymavlink encoder per vehicle signs what the gateway sends.
"""

from __future__ import annotations

import hashlib
import struct
import time

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

EPOCH_2015 = 1420070400  # signing timestamps count 10 µs units from 2015-01-01 UTC
SIGNATURE_LEN = 13  # link id (1) + timestamp (6) + signature (6)
_TS = struct.Struct("<IH")


def now_timestamp() -> int:
    return int((time.time() - EPOCH_2015) * 100_000)


def parse_key(text: str) -> bytes:
    """A 32-byte key from 64 hex characters."""
    key = bytes.fromhex(text)
    if len(key) != 32:
        raise ValueError("a MAVLink signing key is 32 bytes (64 hex characters)")
    return key


class SignatureChecker:
    def __init__(self, key: bytes) -> None:
        self.key = key
        self._streams: dict[tuple[int, int, int], int] = {}

    def accept(self, frame: bytes | bytearray, src_system: int, src_component: int) -> bool:
        if len(frame) < SIGNATURE_LEN + 12 or frame[0] != mavlink2.PROTOCOL_MARKER_V2 or not frame[2] & mavlink2.MAVLINK_IFLAG_SIGNED:
            return False
        digest = hashlib.sha256(self.key + bytes(frame[:-6])).digest()[:6]
        if digest != bytes(frame[-6:]):
            return False
        link_id = frame[-13]
        low, high = _TS.unpack(bytes(frame[-12:-6]))
        stamp = low + (high << 32)
        stream = (link_id, src_system, src_component)
        last = self._streams.get(stream)
        if last is not None and stamp <= last:
            return False  # replayed or out of order
        if last is None and stamp + 60 * 100_000 < now_timestamp():
            return False  # a new stream more than a minute old: a replay
        self._streams[stream] = stamp
        return True


def make_encoder(src_system: int, src_component: int, key: bytes | None, link_id: int = 0) -> mavlink2.MAVLink:
    enc = mavlink2.MAVLink(None, srcSystem=src_system, srcComponent=src_component)
    if key is not None:
        enc.signing.secret_key = key
        enc.signing.sign_outgoing = True
        enc.signing.link_id = link_id
        enc.signing.timestamp = now_timestamp()
    return enc
