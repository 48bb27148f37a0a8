"""Registration and keepalive for the simulated GB/T 28181 device (a mixin of `Device`).

The device's life is one task: open the SIP transport, REGISTER (digest MD5 after the 401), then
keep alive and refresh the registration until it is lost (keepalives unanswered, TCP closed, a
fault), and start over after a back-off.
"""
from __future__ import annotations

import asyncio
import logging
import time

from . import sip
from .sip import Message, SipError
from .transport import SipTransport

log = logging.getLogger("hil.gb28181")


class AuthFailed(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"credentials refused ({status})")
        self.status = status


class RegistrationMixin:
    """REGISTER / keepalive / refresh state of `Device` (which provides cfg, transport, counters,
    _request, _send, _manscdp_request, _build, _next_cseq, _next_sn, _drop_session, ...)."""

    # -- registration and keepalive ----------------------------------------------------------


    def lose_registration(self, why: str) -> None:
        """Start over: the life task re-registers (after closing the transport)."""
        log.info("%s: registration lost: %s", self.id, why)
        if self._lost is not None:
            self._lost.set()

    async def _run(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        backoff = self.cfg.register_retry
        while True:
            self._lost = asyncio.Event()
            try:
                await self._open()
                ok = await self._register_loop()
                if ok:
                    backoff = self.cfg.register_retry
                    await self._online()
            except (OSError, ConnectionError, TimeoutError) as exc:
                self.state = "unreachable"
                log.info("%s: platform unreachable: %s", self.id, exc or type(exc).__name__)
            except Exception:  # noqa: BLE001 - a bug must not end the device's life for good
                self.state = "failed"
                log.exception("%s: registration cycle failed", self.id)
            await self._drop_session()
            if self.state == "registered":
                self.state = "lost"
            wait = backoff if self.state in ("forbidden", "failed", "unreachable") else 1.0
            backoff = min(60.0, backoff * 2) if wait == backoff else backoff
            await asyncio.sleep(wait)

    async def _open(self) -> None:
        cfg = self.cfg
        bind = (cfg.bind[0], self.sip_port)
        self.transport = SipTransport(cfg.proto, cfg.platform, bind, self._on_request,
                                      lambda: self.lose_registration("TCP connection closed"),
                                      cfg.sip_timeout, cfg.local_ip)
        try:
            await self.transport.open()
        except OSError:
            if cfg.proto == "tcp" and self.sip_port:   # the old local port may linger in TIME_WAIT
                self.transport.bind = (cfg.bind[0], 0)
                await self.transport.open()
            else:
                self.transport = None
                raise
        self.sip_port = self.transport.local[1]
        self.local_ip = self.transport.local[0]
        self._reg_call_id = self._new_call_id()
        self._reg_from_tag = sip.random_token(4)
        self._nc = 0

    async def _register_loop(self) -> bool:
        """REGISTER until 200 OK; False (state forbidden/failed) to back off and retry."""
        self.state = "registering"
        try:
            resp = await self._register(self.cfg.expires)
        except AuthFailed as exc:
            self.counters["auth_failures"] += 1
            self.state = "forbidden"
            log.warning("%s: registration refused (%d): wrong password? backing off", self.id, exc.status)
            return False
        if resp is None or resp.status != 200:
            self.counters["register_errors"] += 1
            self.state = "failed" if resp is not None else "unreachable"
            log.warning("%s: registration failed: %s", self.id, resp.summary() if resp else "no answer")
            return False
        self._registered(resp)
        return True

    def _registered(self, resp: Message) -> None:
        self.counters["registrations"] += 1
        self.state = "registered"
        self.platform_date = resp.get("Date")
        expires = self.cfg.expires
        contact_exp = sip.param(resp.get("Contact"), "expires")
        for text in (resp.get("Expires"), contact_exp or ""):
            if text.strip().isdigit():
                expires = int(text.strip())
                break
        self.expires_at = time.monotonic() + expires
        log.info("%s: registered (expires %d s, platform date %r)", self.id, expires, self.platform_date)

    async def _register(self, expires: int) -> Message | None:
        """One REGISTER exchange, answering up to two challenges. AuthFailed on 403, or on a second
        401 that is not `stale` (our credentials were refused)."""
        uri = self.platform_uri
        auth: str | None = None
        for _ in range(3):
            m = self._request("REGISTER", uri, f"<{self.our_uri}>;tag={self._reg_from_tag}", f"<{self.our_uri}>",
                              self._reg_call_id, self._next_cseq())
            m.add("Contact", self.contact)
            m.add("Expires", str(expires))
            if auth:
                m.add("Authorization", auth)
            self.counters["register_attempts"] += 1
            resp = await self._send(m)
            if resp is None:
                return None
            self.last_register_status = resp.status
            if resp.status in (401, 407):
                value = resp.get("WWW-Authenticate") or resp.get("Proxy-Authenticate")
                try:
                    challenge = sip.parse_challenge(value)
                except SipError:
                    return resp
                if auth is not None and challenge.get("stale", "").lower() != "true":
                    raise AuthFailed(resp.status)
                self._nc += 1
                auth = sip.digest_authorization(challenge, "REGISTER", uri, self.id, self.password, self._nc)
                continue
            if resp.status == 403:
                raise AuthFailed(403)
            return resp
        return None

    async def _online(self) -> None:
        """While registered: keepalives, refreshes and (message mode) positions, until lost."""
        assert self._lost is not None
        tasks = [asyncio.create_task(self._keepalive_loop()), asyncio.create_task(self._refresh_loop())]
        if self.cfg.position_mode == "message" and self.cfg.position_interval > 0:
            tasks.append(asyncio.create_task(self._position_messages(self.cfg.position_interval)))
        try:
            await self._lost.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _keepalive_loop(self) -> None:
        misses = 0
        while True:
            await asyncio.sleep(self.cfg.keepalive)
            if self.keepalive_paused:
                continue
            body = self._build("Notify", "Keepalive", self._next_sn(), self.id, [("Status", "OK")])
            self.counters["keepalives_sent"] += 1
            resp = await self._send(self._manscdp_request(body))
            if resp is not None and 200 <= resp.status < 300:
                self.counters["keepalives_ok"] += 1
                misses = 0
            elif resp is not None and resp.status in (401, 403, 404, 481):
                self.lose_registration(f"keepalive answered {resp.status}")  # the platform forgot us
                return
            else:
                misses += 1
                self.counters["keepalive_misses"] += 1
                if misses >= self.cfg.keepalive_misses:
                    self.lose_registration(f"{misses} keepalives unanswered")
                    return

    async def _refresh_loop(self) -> None:
        while True:
            left = self.expires_at - time.monotonic()
            await asyncio.sleep(max(1.0, left * 0.8 if left < 60 else left - max(left * 0.1, 30.0)))
            try:
                resp = await self._register(self.cfg.expires)
            except AuthFailed:
                self.counters["auth_failures"] += 1
                self.lose_registration("refresh refused")
                return
            if resp is not None and resp.status == 200:
                self._registered(resp)
            else:
                self.lose_registration("refresh failed")
                return

    def force_register(self) -> None:
        self.lose_registration("re-register requested")
