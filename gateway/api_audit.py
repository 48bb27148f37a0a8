"""`GET /api/v1/audit` (admin): the newest audit records, and whether the whole chain verifies."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query

from gateway import audit
from gateway.auth import Principal, require

if TYPE_CHECKING:
    from gateway.app import Gateway


def audit_routes(gw: Gateway) -> APIRouter:
    router = APIRouter()
    checked: dict[tuple[int, int], audit.VerifyResult] = {}  # the last verification, by the file's (size, mtime)

    def verify() -> audit.VerifyResult:
        """The whole chain is read again only when the file changed since the last look (paging the view
        must not reread a long log on every page)."""
        try:
            st = gw.audit.path.stat()
            key = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            key = (0, 0)
        if key not in checked:
            checked.clear()
            checked[key] = audit.verify(gw.audit.path)
        return checked[key]

    @router.get("/api/v1/audit")
    async def records(limit: int = Query(100, ge=1, le=1000), before: int | None = Query(None, ge=1),
                      _: Principal = Depends(require("admin"))) -> dict[str, Any]:
        """Newest first; page back with `before=<seq of the oldest record you have>`."""
        found = await asyncio.to_thread(audit.read, gw.audit.path, limit, before)
        result = await asyncio.to_thread(verify)
        return {"records": found, "verified": result.ok, "problems": result.problems[:20], "head": gw.audit.head[0]}

    return router
