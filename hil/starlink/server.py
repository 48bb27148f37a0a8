"""The dish's gRPC endpoint: ``SpaceX.API.Device.Device/Handle`` plus server reflection.

``down(seconds)`` stops the server outright (open calls fail, new connections are
refused, as while a dish reboots) and starts a new one on the same port after
the pause; a second ``down`` while down replaces the remaining time (``down 0``
brings it back at once). Uptime restarts from 0, as after a reboot.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc
from grpc_reflection.v1alpha import reflection

from .dish import Dish
from .proto import METHOD, SERVICE, Api

log = logging.getLogger(__name__)
RESTART_RETRY_S = 0.5


class DishServer:
    def __init__(self, api: Api, dish: Dish, host: str, port: int) -> None:
        self.api, self.dish = api, dish
        self.host, self.port = host, port
        self._server: grpc.aio.Server | None = None
        self._restart: asyncio.Task[None] | None = None
        self.served = 0
        self.unimplemented = 0
        self.downs = 0
        self.down_until: float | None = None

    @property
    def up(self) -> bool:
        return self._server is not None

    async def start(self) -> tuple[str, int]:
        """Bind and serve; the port chosen for port 0 is kept for restarts."""
        server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(
            self._handle, request_deserializer=self.api.Request.FromString,
            response_serializer=self.api.Response.SerializeToString)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {METHOD: handler}),))
        reflection.enable_server_reflection((SERVICE, reflection.SERVICE_NAME), server, pool=self.api.pool)
        try:
            bound = server.add_insecure_port(f"{self.host}:{self.port}")
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {self.host}:{self.port}: {exc}") from None
        if not bound:
            raise OSError(f"cannot listen on {self.host}:{self.port}")
        await server.start()
        self._server, self.port = server, bound
        return self.host, bound

    async def stop(self) -> None:
        if self._restart is not None:
            self._restart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restart
            self._restart = None
        await self._halt()

    async def _halt(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace=None)

    async def down(self, seconds: float) -> None:
        """Stop answering now; back after ``seconds``."""
        if self._restart is not None:
            self._restart.cancel()
        if self.up:
            self.downs += 1
            await self._halt()
        loop = asyncio.get_running_loop()
        self.down_until = loop.time() + seconds
        self._restart = loop.create_task(self._come_back(seconds), name="starlink-restart")

    async def _come_back(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        while True:
            try:
                await self.start()
                break
            except OSError as exc:  # someone took the port meanwhile: keep trying, as a dish would
                log.warning("restart failed, retrying: %s", exc)
                await asyncio.sleep(RESTART_RETRY_S)
        self.dish.reboot()
        self.down_until = None
        self._restart = None
        log.info("dish answering again on %s:%d", self.host, self.port)

    async def _handle(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        kind = request.WhichOneof("request")
        if kind != "get_status":
            self.unimplemented += 1
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"request {kind or 'empty'} not implemented")
        self.served += 1
        return self.api.Response(id=request.id, dish_get_status=self.dish.status())

    def stats(self) -> dict[str, Any]:
        remaining = None
        if self.down_until is not None:
            remaining = round(max(0.0, self.down_until - asyncio.get_running_loop().time()), 3)
        return {"up": self.up, "grpc": [self.host, self.port], "served": self.served,
                "unimplemented": self.unimplemented, "downs": self.downs, "down_remaining_s": remaining}
