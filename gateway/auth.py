"""Who may call what (CONTRACT.md §2 roles: viewer < operator < admin).

Every API route depends on `require(role)`; this is the single place where
authentication plugs in. Until users and tokens exist (the console and
auth issue), every caller is treated as an anonymous admin on the kit's own
HTTP port, and the identity recorded with commands says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

ROLES = ("viewer", "operator", "admin")


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    address: str


def require(role: str) -> Callable[[Request], Principal]:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")

    def dependency(request: Request) -> Principal:
        address = request.client.host if request.client else ""
        return Principal(name="anonymous", role="admin", address=address)

    return dependency
