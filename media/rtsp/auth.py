"""RTSP authentication: Basic and Digest (RFC 2617 / RFC 7616 subset cameras use).

Credentials come from the URL (`rtsp://user:pass@host/...`) and are never sent
before the server asks: the first request goes without, a 401 names the scheme
(Digest preferred when both are offered), and every later request carries a
fresh Authorization for its own method and URI. Digest with `qop=auth` counts
`nc` up and uses a random cnonce; without qop it is the RFC 2069 form most
cameras use. MD5 and SHA-256 (and their -sess variants).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """`Digest realm="x", nonce="y"` → ("digest", {"realm": "x", "nonce": "y"})."""
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if not m or m.end() == pos:
            break
        v = m.group(2)
        if v.startswith('"'):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        params[m.group(1).lower()] = v
        pos = m.end()
    return scheme.lower(), params


def _hash(algorithm: str, text: str) -> str:
    name = "sha256" if algorithm.upper().startswith("SHA-256") else "md5"
    return hashlib.new(name, text.encode("utf-8")).hexdigest()


class Auth:
    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        self.scheme: str | None = None
        self.params: dict[str, str] = {}
        self._nc = 0

    def challenge(self, values: list[str]) -> bool:
        """Take the server's WWW-Authenticate headers; False if none is usable (or it already failed)."""
        parsed = [parse_challenge(v) for v in values]
        digest = [p for s, p in parsed if s == "digest" and "nonce" in p and
                  p.get("algorithm", "MD5").upper() in ("MD5", "MD5-SESS", "SHA-256", "SHA-256-SESS")]
        # RFC 7616: the server lists its challenges in its order of preference; take the first usable.
        if digest:
            new = digest[0]
            stale = new.get("stale", "").lower() == "true"
            if self.scheme == "digest" and not stale and new.get("nonce") == self.params.get("nonce"):
                return False  # same nonce refused: the credentials are wrong
            self.scheme, self.params, self._nc = "digest", new, 0
            return True
        if any(s == "basic" for s, _ in parsed):
            if self.scheme == "basic":
                return False
            self.scheme, self.params = "basic", {}
            return True
        return False

    def header(self, method: str, uri: str) -> str | None:
        if self.scheme == "basic":
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return f"Basic {token}"
        if self.scheme != "digest":
            return None
        p = self.params
        realm, nonce = p.get("realm", ""), p["nonce"]
        algorithm = p.get("algorithm", "MD5")
        ha1 = _hash(algorithm, f"{self.username}:{realm}:{self.password}")
        qops = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
        cnonce = os.urandom(8).hex()
        if algorithm.upper().endswith("-SESS"):
            ha1 = _hash(algorithm, f"{ha1}:{nonce}:{cnonce}")
        ha2 = _hash(algorithm, f"{method}:{uri}")
        fields = [f'username="{self.username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
        if "auth" in qops:
            self._nc += 1
            nc = f"{self._nc:08x}"
            response = _hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            fields += [f'response="{response}"', "qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = _hash(algorithm, f"{ha1}:{nonce}:{ha2}")
            fields.append(f'response="{response}"')
        if "algorithm" in p:
            fields.append(f"algorithm={algorithm}")
        if "opaque" in p:
            fields.append(f'opaque="{p["opaque"]}"')
        return "Digest " + ", ".join(fields)
