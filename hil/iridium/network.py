"""The far side of the radio: the Iridium gateway's mailbox for this IMEI, what reached it, and
the sky (signal, injected failures). The modem (modem.py) runs a session against it."""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .sbd import INJECTABLE, MAILBOX_MAX, MO_SUCCESS, MT_ERROR, MT_MAX, MT_NONE, MT_RECEIVED, NO_SERVICE

LOG_MAX = 1000  # session records kept for `stats`
RECEIVED_MAX = 10000  # MO messages kept for `received`


@dataclass
class SessionResult:
    mo_status: int
    mt_status: int = MT_NONE
    mtmsn: int = 0
    mt: bytes = b""
    mt_queued: int = 0

    @property
    def success(self) -> bool:
        return self.mo_status in MO_SUCCESS


@dataclass
class Attempt:
    n: int
    kind: str  # "SBDIX" or "SBDIXA"
    ts: float  # wall clock when the host started the session
    mono: float
    mo_length: int
    mo_status: int | None = None  # None while running, or if the modem lost power mid-session
    duration_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "kind": self.kind, "ts": round(self.ts, 3), "mo_length": self.mo_length,
                "mo_status": self.mo_status, "duration_s": self.duration_s}


@dataclass
class Network:
    csq: int = 5
    mailbox: deque[tuple[int, bytes]] = field(default_factory=deque)  # (MTMSN, data)
    received: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECEIVED_MAX))
    failures: deque[int] = field(default_factory=deque)
    log: deque[Attempt] = field(default_factory=lambda: deque(maxlen=LOG_MAX))
    sessions: int = 0
    mo_received: int = 0
    mo_failed: int = 0
    mailbox_checks: int = 0
    mt_queued_total: int = 0
    mt_delivered: int = 0
    next_mtmsn: int = 1

    def queue_mt(self, data: bytes) -> int:
        """Put an MT message in the mailbox; its MTMSN. ValueError if too long or the queue is full."""
        if not 1 <= len(data) <= MT_MAX:
            raise ValueError(f"MT message must be 1..{MT_MAX} bytes, got {len(data)}")
        if len(self.mailbox) >= MAILBOX_MAX:
            raise ValueError(f"MT queue full ({MAILBOX_MAX} messages)")
        mtmsn = self.next_mtmsn
        self.next_mtmsn = (self.next_mtmsn + 1) & 0xFFFF
        self.mailbox.append((mtmsn, data))
        self.mt_queued_total += 1
        return mtmsn

    def inject(self, code: int, count: int) -> None:
        if code not in INJECTABLE:
            raise ValueError(f"MO status {code} is not one a session answers; try one of {sorted(INJECTABLE)}")
        if not 1 <= count <= 10000:
            raise ValueError("COUNT must be 1..10000")
        self.failures.extend([code] * count)

    def begin(self, kind: str, mo_length: int) -> Attempt:
        self.sessions += 1
        attempt = Attempt(self.sessions, kind, time.time(), time.monotonic(), mo_length)
        self.log.append(attempt)
        return attempt

    def complete(self, attempt: Attempt, mo: bytes, momsn: int) -> SessionResult:
        """The outcome of a session that ran its course: MO delivered (if any), next MT handed over."""
        status = self.failures.popleft() if self.failures else (NO_SERVICE if self.csq == 0 else 0)
        attempt.mo_status = status
        attempt.duration_s = round(time.monotonic() - attempt.mono, 3)
        if status not in MO_SUCCESS:
            self.mo_failed += 1
            return SessionResult(status, MT_ERROR)
        if mo:
            self.mo_received += 1
            self.received.append({"ts": round(time.time(), 3), "momsn": momsn, "hex": mo.hex(), "length": len(mo)})
        else:
            self.mailbox_checks += 1
        if not self.mailbox:
            return SessionResult(status)
        mtmsn, data = self.mailbox.popleft()
        self.mt_delivered += 1
        return SessionResult(status, MT_RECEIVED, mtmsn, data, len(self.mailbox))

    def stats(self) -> dict[str, Any]:
        return {"sessions": self.sessions, "session_log": [a.as_dict() for a in self.log],
                "mailbox": len(self.mailbox), "mo_received": self.mo_received, "mo_failed": self.mo_failed,
                "mailbox_checks": self.mailbox_checks, "mt_queued_total": self.mt_queued_total,
                "mt_delivered": self.mt_delivered, "pending_failures": list(self.failures), "csq": self.csq}
