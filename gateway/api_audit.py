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

    @router.get("/api/v1/audit")
    async def records(limit: int = Query(100, ge=1, le=1000), before: int | None = Query(None, ge=1),
                      _: Principal = Depends(require("admin"))) -> dict[str, Any]:
        """Newest first; page back with `before=<seq of the oldest record you have>`."""
        found = await asyncio.to_thread(audit.read, gw.audit.path, limit, before)
        checked = await asyncio.to_thread(audit.verify, gw.audit.path)
        return {"records": found, "verified": checked.ok, "problems": checked.problems[:20], "head": gw.audit.head[0]}

    return router
