"""Bearer tokens for tests: a user per role in the gateway's own user store (no default users exist)."""

from __future__ import annotations

from pathlib import Path

from gateway.users import UserStore


def bearer(where: Path | UserStore, role: str = "admin") -> dict[str, str]:
    """`Authorization` headers for a `test-{role}` user in this data directory (or store), made if missing."""
    store = where if isinstance(where, UserStore) else UserStore(where)
    try:
        name = f"test-{role}"
        if name not in {u.name for u in store.list()}:
            store.add(name, role, "test-password-" + role)
        return {"Authorization": "Bearer " + store.issue(name, 3600)[0]}
    finally:
        if store is not where:
            store.close()
