"""MAVLink 2 message signing (per the MAVLink signing spec), per vehicle key."""
from __future__ import annotations

import hashlib
import hmac
import re
import time

from pymavlink.dialects.v20 import ardupilotmega as mavlink2

EPOCH_2015 = 1420070400  # 2015-01-01T00:00:00Z
SIGNATURE_LEN = mavlink2.MAVLINK_SIGNATURE_BLOCK_LEN  # 13: link id, 6-byte timestamp, 6-byte signature
NEW_STREAM_WINDOW = 6_000_000  # 60 s in 10 us units (what pymavlink/ArduPilot allow)
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def now_timestamp() -> int:
    """Signing timestamp: 10 us units since 2015-01-01 UTC."""
    return int((time.time() - EPOCH_2015) * 100_000)


def parse_key(text: str) -> bytes:
    if not _HEX64.match(text):
        raise ValueError("signing key must be 64 hex characters (32 bytes)")
    return bytes.fromhex(text)


def enable(mav: mavlink2.MAVLink, key: bytes, link_id: int = 0) -> None:
    """Sign every frame this MAVLink object packs."""
    mav.signing.secret_key = key
    mav.signing.sign_outgoing = True
    mav.signing.link_id = link_id
    mav.signing.timestamp = now_timestamp()
    mav.signing.allow_unsigned_callback = lambda _mav, _msgid: False


def refresh_timestamp(mav: mavlink2.MAVLink) -> None:
    """Keep the outgoing timestamp on wall-clock time and strictly increasing."""
    mav.signing.timestamp = max(mav.signing.timestamp, now_timestamp())


def verify(mav: mavlink2.MAVLink, msg: mavlink2.MAVLink_message) -> bool:
    """True if ``msg`` carries a valid, fresh signature for ``mav``'s key.

    The signature is checked before any replay state is touched, so a forged
    frame cannot poison a stream's timestamp.
    """
    sig = mav.signing
    key = sig.secret_key
    if key is None:
        return True
    header = msg.get_header()
    if header is None or not header.incompat_flags & mavlink2.MAVLINK_IFLAG_SIGNED:
        return False
    buf = bytes(msg.get_msgbuf())
    if len(buf) < mavlink2.HEADER_LEN_V2 + 2 + SIGNATURE_LEN or buf[0] != mavlink2.PROTOCOL_MARKER_V2:
        return False
    expected = hashlib.sha256(key + buf[:-6]).digest()[:6]
    if not hmac.compare_digest(expected, buf[-6:]):
        return False
    link_id = buf[-SIGNATURE_LEN]
    stamp = int.from_bytes(buf[-12:-6], "little")
    stream = (link_id, header.srcSystem, header.srcComponent)
    last = sig.stream_timestamps.get(stream)
    if last is not None:
        if stamp <= last:
            return False  # replay or out of order
    elif stamp + NEW_STREAM_WINDOW < sig.timestamp:
        return False  # new stream too far in the past
    sig.stream_timestamps[stream] = stamp
    sig.timestamp = max(sig.timestamp, stamp)
    return True
