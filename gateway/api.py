"""The HTTP API (FastAPI), CONTRACT.md §2: health, devices, commands, events, metrics.

Every route depends on `auth.require(role)`; errors are always
`{"error": {"code", "message"}}`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import wire
from gateway.api_dispatch import dispatch_routes
from gateway.api_media import media_routes
from gateway.api_audit import audit_routes
from gateway.api_auth import auth_routes
from gateway.auth import AuthFailed, Principal, authenticate, client_address, require
from gateway.commands import CommandRefused
from gateway.http_limits import BodyLimit
from gateway.metrics import render_metrics
from gateway.model import Ack, DeviceStateChanged, DispatchChanged, Event, Position

if TYPE_CHECKING:
    from gateway.app import Gateway

WEB_DIR = Path(__file__).resolve().parent / "web"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def create_app(gw: Gateway) -> FastAPI:
    app = FastAPI(title="fieldgw", version=gw.version, docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
    app.state.users = gw.users
    app.add_middleware(BodyLimit)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message)

    @app.exception_handler(AuthFailed)
    async def _auth_failed(_: Request, exc: AuthFailed) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="fieldgw"'
        return _error(exc.status, exc.code, exc.message, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, "bad_request", f"{where}: {first['msg']}" if where else first["msg"])

    @app.get("/api/v1/health")
    async def health() -> dict[str, Any]:
        return gw.health()

    @app.get("/api/v1/devices")
    async def devices(_: Principal = Depends(require("viewer"))) -> list[dict[str, Any]]:
        return [d.to_dict() for d in gw.registry.all()]

    @app.get("/api/v1/devices/{device_id}")
    async def device(device_id: str, _: Principal = Depends(require("viewer"))) -> dict[str, Any]:
        dev = gw.registry.get(device_id)
        if dev is None:
            raise ApiError(404, "no_device", f"no device {device_id!r}")
        return dev.to_dict()

    @app.post("/api/v1/devices/{device_id}/commands", status_code=202)
    async def command(device_id: str, request: Request, who: Principal = Depends(require("operator"))) -> dict[str, Any]:
        body = await _json_object(request)
        if "command" not in body:
            raise ApiError(400, "bad_request", "body needs `command` (and `args` where the command takes them)")
        try:
            record = gw.router.submit(device_id, body["command"], body.get("args", {}), issued_by=who.name)
        except CommandRefused as exc:
            await gw.audit_trail.command(who, device_id, body["command"], body.get("args", {}), None, exc.message)
            raise ApiError(exc.http_status, exc.code, exc.message) from None
        answer = {"id": record.id, "status": record.status}  # as accepted: it may be `sent` by the time the audit is on disk
        await gw.audit_trail.command(who, device_id, record.command, record.args, record.id)
        return answer

    @app.get("/api/v1/commands/{cmd_id}")
    async def command_record(cmd_id: str, _: Principal = Depends(require("viewer"))) -> dict[str, Any]:
        record = gw.router.get(cmd_id)
        if record is None:
            raise ApiError(404, "no_command", f"no command {cmd_id!r}")
        return record.to_dict()

    @app.get("/api/v1/events")
    async def events(request: Request, _: Principal = Depends(require("viewer", query_token=True))) -> StreamingResponse:
        return StreamingResponse(_sse(gw, request), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    app.include_router(auth_routes(gw))
    app.include_router(audit_routes(gw))
    app.include_router(media_routes(gw))
    app.include_router(dispatch_routes(gw))

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        if not _loopback(request):  # open on loopback (a local Prometheus), viewer elsewhere
            authenticate(request)
        body, content_type = render_metrics(gw)
        return Response(body, media_type=content_type)

    # The web pages (console, player): static files, served last so API routes win.
    app.mount("/", StaticFiles(directory=str(WEB_DIR), html=True), name="web")
    return app


def _loopback(request: Request) -> bool:
    host = client_address(request)
    return host.startswith("127.") or host == "::1"


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return body


async def _sse(gw: Gateway, request: Request) -> AsyncIterator[bytes]:
    """One bounded bus subscription per client; a slow client loses its oldest messages, nothing else."""
    sub = gw.bus.subscribe(f"sse:{id(request)}", (Position, Event, Ack, DeviceStateChanged, DispatchChanged), maxsize=1000)
    try:
        for dev in gw.registry.all():
            yield _sse_frame("state", dev.to_dict())
        for ev in list(gw.recent_events):  # the newest events first seen by this client, marked as history
            yield _sse_frame("event", {"device": ev.device, **json.loads(wire.event(gw.topics, ev).payload), "history": True})
        while True:
            try:
                msg = await asyncio.wait_for(sub.get(), timeout=15.0)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if isinstance(msg, Position):
                yield _sse_frame("position", {"device": msg.device, **msg.payload()})
            elif isinstance(msg, Event):
                yield _sse_frame("event", {"device": msg.device, **json.loads(wire.event(gw.topics, msg).payload)})
            elif isinstance(msg, Ack):
                yield _sse_frame("ack", {"device": msg.device, "id": msg.command_id, "status": msg.status, "detail": msg.detail, "ts": msg.ts})
            elif isinstance(msg, DispatchChanged):
                yield _sse_frame("dispatch", msg.dispatch)
            elif isinstance(msg, DeviceStateChanged):
                dev = gw.registry.get(msg.device)
                if dev is not None:
                    yield _sse_frame("state", dev.to_dict())
    finally:
        sub.close()


def _sse_frame(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()
