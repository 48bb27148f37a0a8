"""WS-Security UsernameToken checking, as ONVIF Core §5.9 (WS-UsernameToken) asks of a device.

A request carries ``wsse:Security/wsse:UsernameToken`` with ``Username``, ``Password`` of Type
``...#PasswordDigest`` (Base64(SHA-1(nonce + created + password)), nonce Base64-decoded first) or
``...#PasswordText`` (the password itself), ``Nonce`` and ``wsu:Created``. The camera refuses:

* no token, an unknown user or a wrong password;
* a digest without Nonce or Created;
* a ``Created`` more than ``max_skew_s`` from the camera's own clock (either way): the reason a client
  asks GetSystemDateAndTime first and corrects its clock;
* a nonce already used within the freshness window (replay).

Each refusal is a SOAP fault env:Sender / ter:NotAuthorized. Which HTTP status carries it differs between
real cameras: SOAP 1.2's HTTP binding maps env:Sender to 400, which Axis-, Vivotek- and many Chinese
gSOAP-based cameras send; others (some Hikvision firmware) send 401. This simulator sends 400 by default;
``--auth-fail-status 401`` makes it a 401 camera, so a driver can be checked against both.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict
from dataclasses import dataclass, field

from .soap import WSSE, WSU, SoapFault, q

DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
MAX_NONCES = 10_000


def digest(nonce: bytes, created: str, password: str) -> str:
    return base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()


def parse_created(text: str) -> dt.datetime:
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    value = dt.datetime.fromisoformat(t)
    if value.tzinfo is None:  # no zone given: read as UTC, as cameras do
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


@dataclass
class Auth:
    users: dict[str, str]
    max_skew_s: float = 5.0
    fail_status: int = 400
    failures: int = 0
    last_failure: str = ""
    _nonces: OrderedDict[bytes, float] = field(default_factory=OrderedDict)

    def refuse(self, why: str) -> SoapFault:
        self.failures += 1
        self.last_failure = why
        # the reason is what a camera says; the detail why stays in the device's status
        return SoapFault("Sender", ("ter:NotAuthorized",),
                         "Sender not Authorized", http_status=self.fail_status)

    def check(self, header: ET.Element | None, camera_now: dt.datetime) -> str:
        """The user name, or raises SoapFault ter:NotAuthorized."""
        token = None
        if header is not None:
            sec = header.find(q(WSSE, "Security"))
            if sec is not None:
                token = sec.find(q(WSSE, "UsernameToken"))
        if token is None:
            raise self.refuse("no UsernameToken")
        user = (token.findtext(q(WSSE, "Username")) or "").strip()
        pw_el = token.find(q(WSSE, "Password"))
        nonce_text = token.findtext(q(WSSE, "Nonce"))
        created = token.findtext(q(WSU, "Created"))
        if user not in self.users or pw_el is None:
            raise self.refuse(f"unknown user {user!r}" if pw_el is not None else "no Password")
        password = self.users[user]
        kind = pw_el.get("Type", TEXT)
        given = (pw_el.text or "").strip()
        if created is not None:
            try:
                when = parse_created(created)
            except ValueError:
                raise self.refuse(f"Created {created!r} is not a dateTime") from None
            skew = abs((when - camera_now).total_seconds())
            if skew > self.max_skew_s:
                raise self.refuse(f"Created is {skew:.1f} s from the camera's clock (max {self.max_skew_s:g})")
        if kind == DIGEST:
            if nonce_text is None or created is None:
                raise self.refuse("a PasswordDigest needs Nonce and Created")
            try:
                nonce = base64.b64decode(nonce_text.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise self.refuse("Nonce is not Base64") from None
            if not hmac.compare_digest(digest(nonce, created.strip(), password), given):
                raise self.refuse(f"wrong password digest for {user!r}")
            self._fresh_nonce(nonce)
        elif kind == TEXT:
            if not hmac.compare_digest(password.encode(), given.encode()):
                raise self.refuse(f"wrong password for {user!r}")
        else:
            raise self.refuse(f"unknown password Type {kind!r}")
        return user

    def _fresh_nonce(self, nonce: bytes) -> None:
        now = time.monotonic()
        window = 2 * self.max_skew_s + 1
        while self._nonces and (next(iter(self._nonces.values())) < now - window or len(self._nonces) > MAX_NONCES):
            self._nonces.popitem(last=False)
        if nonce in self._nonces:
            raise self.refuse("nonce replayed")
        self._nonces[nonce] = now
