"""HTTP digest authentication for REGISTER (RFC 2617, MD5, qop=auth or RFC 2069 style).

Nonces are stateless: `hex(time) + HMAC(secret, time)`, so any nonce we made can be
checked without keeping it, and an old one is answered with a `stale=true` challenge.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time

NONCE_LIFETIME_S = 300.0
_PARAM = re.compile(r'([A-Za-z-]+)\s*=\s*(?:"([^"]*)"|([^,\s]*))')


def auth_params(text: str) -> dict[str, str]:
    """`realm="x", nonce="y", qop=auth` → a dict (names lower-cased)."""
    return {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3) for m in _PARAM.finditer(text)}


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class Digest:
    def __init__(self, realm: str, secret: bytes | None = None) -> None:
        self.realm = realm
        self._secret = secret or secrets.token_bytes(16)

    def nonce(self, now: float | None = None) -> str:
        stamp = f"{int((now if now is not None else time.time()) * 1000):x}"
        mac = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        return stamp + mac

    def _nonce_age(self, nonce: str, now: float) -> float | None:
        """Seconds since we made this nonce; None if we never did."""
        stamp, mac = nonce[:-24], nonce[-24:]
        try:
            made = int(stamp, 16) / 1000
        except ValueError:
            return None
        good = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        return now - made if hmac.compare_digest(good, mac) else None

    def challenge(self, stale: bool = False) -> str:
        return (f'Digest realm="{self.realm}", nonce="{self.nonce()}", algorithm=MD5, qop="auth"'
                + (", stale=true" if stale else ""))

    def check(self, authorization: str, method: str, username: str, password: str,
              now: float | None = None) -> str:
        """"ok", "stale" (right password, old nonce), "wrong" (wrong password) or "bad" (not usable: challenge again)."""
        scheme, _, rest = authorization.strip().partition(" ")
        if scheme.lower() != "digest":
            return "bad"
        p = auth_params(rest)
        nonce, uri, response = p.get("nonce", ""), p.get("uri", ""), p.get("response", "").lower()
        if not nonce or not uri or not response or p.get("username") != username:
            return "bad"
        if p.get("algorithm", "MD5").upper() != "MD5" or p.get("realm", self.realm) != self.realm:
            return "bad"
        age = self._nonce_age(nonce, time.time() if now is None else now)
        if age is None:
            return "bad"  # not ours (an old gateway run): a fresh challenge
        ha1 = md5(f"{username}:{self.realm}:{password}")
        ha2 = md5(f"{method}:{uri}")
        qop = p.get("qop", "")
        if qop == "auth":
            expected = md5(f"{ha1}:{nonce}:{p.get('nc', '')}:{p.get('cnonce', '')}:auth:{ha2}")
        elif qop:
            return "bad"
        else:  # RFC 2069, as many devices answer
            expected = md5(f"{ha1}:{nonce}:{ha2}")
        if not hmac.compare_digest(expected, response):
            return "wrong"
        return "stale" if age > NONCE_LIFETIME_S or age < -60 else "ok"


def answer(challenge: str, method: str, uri: str, username: str, password: str, cnonce: str = "0a4f113b",
           nc: str = "00000001") -> str:
    """The Authorization a client would send (tests and the benchmark's checks)."""
    p = auth_params(challenge.partition(" ")[2])
    realm, nonce = p["realm"], p["nonce"]
    ha1, ha2 = md5(f"{username}:{realm}:{password}"), md5(f"{method}:{uri}")
    if "auth" in p.get("qop", "").split(","):
        resp = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        return (f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{resp}", '
                f'algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"')
    resp = md5(f"{ha1}:{nonce}:{ha2}")
    return f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{resp}", algorithm=MD5'
