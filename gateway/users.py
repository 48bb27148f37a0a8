"""Users, roles and bearer tokens (CONTRACT.md §2: viewer < operator < admin).

One SQLite file, `DATA_DIR/users.sqlite3`, shared by the running gateway and
the `fieldgw users` commands:

- `users`: name, role, argon2id password hash (argon2-cffi's defaults), created.
- `revoked`: token ids revoked before their expiry (logout, `users revoke`),
  pruned once the token would have expired anyway.
- `meta`: the token signing secret (32 random bytes, made on first use). The
  file is created 0600: whoever reads it can mint tokens.

A token is `fgw1.<payload>.<signature>`: base64url JSON `{"u": user, "r": role,
"j": token id, "e": expiry ms}` and its HMAC-SHA256 under the secret. A token
is accepted while its signature holds, it has not expired, its id is not
revoked and its user still exists; the role it grants is the lower of the
role it was minted with and the user's role now (a demoted user's old tokens
shrink with them; a removed user's tokens stop at once).

The gateway keeps users and revocations in memory and reloads them when the
file changed (SQLite's `data_version`, looked at no more than once a second),
so `fieldgw users remove` or `revoke` on a running kit bites within a second,
without a disk read per request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ROLES = ("viewer", "operator", "admin")
RANK = {role: i for i, role in enumerate(ROLES)}
USER_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
MIN_PASSWORD = 8
LOGIN_TTL_S = 12 * 3600  # one duty shift
MAX_TTL_S = 366 * 86400
_PREFIX = "fgw1"
_RELOAD_EVERY_S = 1.0
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password of anyone")  # unknown users cost the same time as known ones


class UserError(ValueError):
    """Bad input to the user store (a name, role or password), with a message for people."""


class TokenRejected(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class User:
    name: str
    role: str
    created_ts: int


@dataclass(frozen=True)
class TokenInfo:
    user: str
    role: str  # what it grants now
    token_id: str
    expires_ts: int


def lower_role(a: str, b: str) -> str:
    return a if RANK[a] <= RANK[b] else b


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_role(role: str) -> str:
    if role not in RANK:
        raise UserError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    return role


class UserStore:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "users.sqlite3"
        if not self.path.exists():
            self.path.touch(mode=0o600)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL, created INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS revoked (token_id TEXT PRIMARY KEY, expires INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
        """)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('secret', ?)", (secrets.token_bytes(32),))
        self._secret: bytes = self._db.execute("SELECT value FROM meta WHERE key='secret'").fetchone()[0]
        self._roles: dict[str, str] = {}
        self._revoked: set[str] = set()
        self._version = -1
        self._checked = 0.0
        self._reload()

    def close(self) -> None:
        self._db.close()

    # -- users -----------------------------------------------------------------------------------

    def add(self, name: str, role: str, password: str) -> User:
        if not USER_NAME.match(name):
            raise UserError(f"bad user name {name!r}: 1-63 of a-z 0-9 . _ - starting with a letter or digit")
        _check_role(role)
        if len(password) < MIN_PASSWORD:
            raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
        created = int(time.time() * 1000)
        try:
            self._db.execute("INSERT INTO users VALUES (?, ?, ?, ?)", (name, role, _hasher.hash(password), created))
        except sqlite3.IntegrityError:
            raise UserError(f"user {name!r} already exists") from None
        self._reload()
        return User(name, role, created)

    def set_password(self, name: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
        if self._db.execute("UPDATE users SET hash=? WHERE name=?", (_hasher.hash(password), name)).rowcount == 0:
            raise UserError(f"no user {name!r}")

    def remove(self, name: str) -> bool:
        removed = self._db.execute("DELETE FROM users WHERE name=?", (name,)).rowcount > 0
        self._reload()
        return removed

    def list(self) -> list[User]:
        return [User(*row) for row in self._db.execute("SELECT name, role, created FROM users ORDER BY name")]

    def check_password(self, name: str, password: str) -> User | None:
        """The user when the password is theirs (slow on purpose: argon2; run it off the event loop)."""
        row = self._db.execute("SELECT name, role, created, hash FROM users WHERE name=?", (name,)).fetchone()
        try:
            _hasher.verify(row[3] if row else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        return User(row[0], row[1], row[2]) if row else None

    # -- tokens ----------------------------------------------------------------------------------

    def issue(self, name: str, ttl_s: float = LOGIN_TTL_S, role: str | None = None) -> tuple[str, TokenInfo]:
        """A new token for `name`, granting `role` (default: the user's own role) at most."""
        row = self._db.execute("SELECT role FROM users WHERE name=?", (name,)).fetchone()
        if row is None:
            raise UserError(f"no user {name!r}")
        if not 0 < ttl_s <= MAX_TTL_S:
            raise UserError(f"a token lives between 1 s and {MAX_TTL_S // 86400} days")
        granted = lower_role(_check_role(role), row[0]) if role else row[0]
        info = TokenInfo(name, granted, secrets.token_hex(12), int((time.time() + ttl_s) * 1000))
        payload = _b64(json.dumps({"u": info.user, "r": info.role, "j": info.token_id, "e": info.expires_ts},
                                  separators=(",", ":")).encode())
        return f"{_PREFIX}.{payload}.{self._sign(payload)}", info

    def verify(self, token: str) -> TokenInfo:
        """What `token` grants now; TokenRejected says why not."""
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _PREFIX:
            raise TokenRejected("not a fieldgw token")
        if not hmac.compare_digest(parts[2], self._sign(parts[1])):
            raise TokenRejected("token signature does not match (forged, or minted by another kit)")
        try:
            claims = json.loads(_unb64(parts[1]))
            user, role, token_id, expires = claims["u"], claims["r"], claims["j"], int(claims["e"])
        except (ValueError, KeyError, TypeError):
            raise TokenRejected("token payload is malformed") from None
        if expires <= time.time() * 1000:
            raise TokenRejected("token expired")
        self._maybe_reload()
        if token_id in self._revoked:
            raise TokenRejected("token was revoked")
        current = self._roles.get(user)
        if current is None or role not in RANK:
            raise TokenRejected(f"user {user!r} no longer exists")
        return TokenInfo(user, lower_role(role, current), token_id, expires)

    def revoke(self, token_or_id: str, expires_ts: int | None = None) -> TokenInfo | None:
        """Revoke a token (or a token id, kept until `expires_ts`); the token's info, or None for a bare id."""
        info: TokenInfo | None = None
        if token_or_id.startswith(_PREFIX + "."):
            info = self.verify(token_or_id)
            token_id, expires = info.token_id, info.expires_ts
        else:
            token_id, expires = token_or_id, expires_ts or int((time.time() + MAX_TTL_S) * 1000)
        now = int(time.time() * 1000)
        self._db.execute("INSERT OR REPLACE INTO revoked VALUES (?, ?)", (token_id, expires))
        self._db.execute("DELETE FROM revoked WHERE expires < ?", (now,))
        self._reload()
        return info

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()[:24])

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < _RELOAD_EVERY_S:
            return
        self._checked = now
        if self._db.execute("PRAGMA data_version").fetchone()[0] != self._version:
            self._reload()

    def _reload(self) -> None:
        self._version = self._db.execute("PRAGMA data_version").fetchone()[0]
        self._roles = dict(self._db.execute("SELECT name, role FROM users"))
        self._revoked = {row[0] for row in self._db.execute("SELECT token_id FROM revoked")}


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def secure_file(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read (credentials)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)
