"""A hard cap on request bodies (ASGI middleware), before any route reads them.

The API takes small JSON bodies and SDP offers; nothing it serves needs more
than `MAX_BODY_BYTES`. A declared Content-Length over the cap gets 413 at
once; a chunked body is counted as it streams and cut off with 413 the
moment it passes the cap, so a client cannot make the gateway buffer
megabytes (the routes read whole bodies).
"""

from __future__ import annotations

import json
from typing import Any

MAX_BODY_BYTES = 256 * 1024

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> tuple[Message, Message]:
    body = json.dumps({"error": {"code": "body_too_large", "message": f"request bodies are limited to {limit} bytes"}}).encode()
    return ({"type": "http.response.start", "status": 413,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                         (b"connection", b"close")]},
            {"type": "http.response.body", "body": body})


class BodyLimit:
    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            for message in _too_large(self.limit):
                await send(message)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                for message in _too_large(self.limit):
                    await send(message)
