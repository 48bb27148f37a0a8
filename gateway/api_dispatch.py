"""Dispatch routes (CONTRACT.md §2): one-key dispatch and its records."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from gateway.auth import Principal, require
from gateway.dispatch import DispatchRefused

if TYPE_CHECKING:
    from gateway.app import Gateway


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def dispatch_routes(gw: Gateway) -> APIRouter:
    router = APIRouter()

    @router.post("/api/v1/dispatch", status_code=202, response_model=None)
    async def dispatch(request: Request, who: Principal = Depends(require("operator"))) -> dict[str, Any] | JSONResponse:
        try:
            body = json.loads(await request.body() or b"null")
        except (ValueError, UnicodeDecodeError):
            return _error(400, "bad_json", "the body is not valid JSON")
        try:
            d = await gw.dispatcher.submit(body, issued_by=who.name)
        except DispatchRefused as exc:
            await gw.audit_trail.dispatch(who, body, None, exc.message)
            return _error(exc.http_status, exc.code, exc.message)
        await gw.audit_trail.dispatch(who, body, d.id)
        return {"id": d.id, "deliveries": [{"device": dl.device, "channel": dl.channel, "status": dl.status,
                                            "detail": dl.public()["detail"]} for dl in d.deliveries]}

    @router.get("/api/v1/dispatch")
    async def recent(_: Principal = Depends(require("viewer"))) -> list[dict[str, Any]]:
        return [d.public() for d in gw.dispatcher.recent()]

    @router.get("/api/v1/dispatch/{dispatch_id}", response_model=None)
    async def one(dispatch_id: str, _: Principal = Depends(require("viewer"))) -> dict[str, Any] | JSONResponse:
        d = await gw.dispatcher.get(dispatch_id)
        if d is None:
            return _error(404, "no_dispatch", f"no dispatch {dispatch_id!r}")
        return d.public()

    return router
