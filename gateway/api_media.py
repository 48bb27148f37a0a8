"""Video routes (CONTRACT.md §2 and §4): streams, WHEP sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from gateway.auth import Principal, require
from media.whep import WhepError

if TYPE_CHECKING:
    from gateway.app import Gateway


def _error(exc: WhepError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=exc.status, headers=headers)


def media_routes(gw: Gateway) -> APIRouter:
    router = APIRouter()

    @router.get("/api/v1/streams")
    async def streams(_: Principal = Depends(require("viewer"))) -> list[dict[str, Any]]:
        return [{k: s[k] for k in ("id", "device", "state", "codec", "width", "height", "fps", "bitrate_kbps", "viewers")}
                | {"reconnects": s["reconnects"]} for s in gw.media.stats()]

    @router.get("/api/v1/streams/{stream_id}/snapshot.jpg")
    async def snapshot(stream_id: str, _: Principal = Depends(require("viewer", query_token=True))) -> Response:
        try:
            data = await gw.media.snapshot(stream_id)
        except WhepError as exc:
            return _error(exc)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=1"})

    @router.get("/api/v1/streams/{stream_id}/recordings")
    async def recordings(stream_id: str, _: Principal = Depends(require("viewer"))) -> Any:
        try:
            return gw.media.recordings_of(stream_id)
        except WhepError as exc:
            return _error(exc)

    @router.get("/api/v1/streams/{stream_id}/recordings/{name}")
    async def recording(stream_id: str, name: str, _: Principal = Depends(require("viewer", query_token=True))) -> Response:
        try:
            path = gw.media.recording_path(stream_id, name)
        except WhepError as exc:
            return _error(exc)
        return FileResponse(path, media_type="video/mp4", filename=name)

    @router.options("/api/v1/streams/{stream_id}/whep")
    async def whep_options(stream_id: str) -> Response:
        return Response(status_code=204, headers={"Accept-Post": "application/sdp", "Allow": "OPTIONS, POST"})

    @router.post("/api/v1/streams/{stream_id}/whep")
    async def whep(stream_id: str, request: Request, _: Principal = Depends(require("viewer"))) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            source = gw.media.get(stream_id)
            if ctype != "application/sdp":
                raise WhepError(415, "bad_content_type", "WHEP offers are Content-Type: application/sdp")
            body = await request.body()
            try:
                offer = body.decode("utf-8")
            except UnicodeDecodeError:
                raise WhepError(400, "bad_sdp", "the SDP offer is not UTF-8 text") from None
            session, answer = await gw.media.whep.create(source, offer)
        except WhepError as exc:
            return _error(exc)
        return Response(answer, status_code=201, media_type="application/sdp",
                        headers={"Location": f"/api/v1/streams/{stream_id}/whep/{session}"})

    @router.delete("/api/v1/streams/{stream_id}/whep/{session}")
    async def whep_delete(stream_id: str, session: str, _: Principal = Depends(require("viewer"))) -> Response:
        if not await gw.media.whep.delete(session):
            return _error(WhepError(404, "no_session", f"no WHEP session {session!r}"))
        return Response(status_code=200)

    return router
