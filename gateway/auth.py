"""Who may call what (CONTRACT.md §2: viewer < operator < admin).

Every API route depends on `require(role)`: the caller's bearer token
(`Authorization: Bearer TOKEN`) is checked against the kit's user store
(gateway/users.py). No token or a bad one → 401 `unauthorized`; a role too
low → 403 `forbidden`. A token in the query string (`?access_token=`) is
accepted only by the few routes a browser cannot send a header to
(`require(..., query_token=True)`: the SSE event stream, a snapshot `<img>`,
a recording download link); everywhere else it is refused, so tokens do not
end up in proxy logs and browser history by accident.

Login (`POST /api/v1/auth/login`) is throttled per address: after
`LOGIN_FAILURES` failures within `LOGIN_WINDOW_S` the address gets 429 with
Retry-After until the window has passed.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from gateway.users import RANK, ROLES, TokenRejected, UserStore

LOGIN_FAILURES = 5
LOGIN_WINDOW_S = 60.0
_MAX_TRACKED_ADDRESSES = 10_000


class AuthFailed(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    address: str
    token_id: str = ""
    expires_ts: int = 0


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def _token(request: Request, query_token: bool) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if header:
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthFailed(401, "unauthorized", "Authorization must be `Bearer TOKEN`")
        return value.strip()
    if "access_token" in request.query_params:
        if not query_token:
            raise AuthFailed(401, "unauthorized", "this route takes its token in the Authorization header, not the query string")
        return request.query_params["access_token"]
    raise AuthFailed(401, "unauthorized", "log in first: no bearer token")


def authenticate(request: Request, query_token: bool = False) -> Principal:
    store: UserStore = request.app.state.users
    try:
        info = store.verify(_token(request, query_token))
    except TokenRejected as exc:
        raise AuthFailed(401, "unauthorized", exc.message) from None
    return Principal(info.user, info.role, client_address(request), info.token_id, info.expires_ts)


def require(role: str, query_token: bool = False) -> Callable[[Request], Principal]:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def dependency(request: Request) -> Principal:
        who = authenticate(request, query_token)
        if RANK[who.role] < RANK[role]:
            raise AuthFailed(403, "forbidden", f"{who.name} is {who.role}; this needs {role}")
        return who

    dependency.required_role = role  # type: ignore[attr-defined]  # read by the route × role test
    return dependency


class LoginThrottle:
    """Failed logins per address in a sliding window; bounded in addresses (oldest forgotten first)."""

    def __init__(self, failures: int = LOGIN_FAILURES, window_s: float = LOGIN_WINDOW_S) -> None:
        self.failures, self.window_s = failures, window_s
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def check(self, address: str) -> None:
        recent = self._recent(address)
        if len(recent) >= self.failures:
            wait = int(recent[0] + self.window_s - time.monotonic()) + 1
            raise AuthFailed(429, "too_many_logins", f"{len(recent)} failed logins from {address}; try again in {wait} s",
                             {"Retry-After": str(wait)})

    def failed(self, address: str) -> None:
        self._recent(address).append(time.monotonic())
        self._seen.move_to_end(address)
        while len(self._seen) > _MAX_TRACKED_ADDRESSES:
            self._seen.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._seen.pop(address, None)

    def _recent(self, address: str) -> deque[float]:
        recent = self._seen.setdefault(address, deque(maxlen=self.failures))
        while recent and recent[0] < time.monotonic() - self.window_s:
            recent.popleft()
        return recent
