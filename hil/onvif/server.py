"""The camera's web server: HTTP → SOAP envelope → Camera operation → response or fault; reboots."""
from __future__ import annotations

import asyncio
import logging

from .camera import SERVICE_PATHS, Camera
from .httpd import HttpServer, Request, Response
from .soap import CONTENT_TYPE, MAX_BODY, SoapFault, envelope, fault_envelope, read_envelope

log = logging.getLogger(__name__)


class OnvifServer:
    def __init__(self, camera: Camera, host: str, port: int) -> None:
        self.camera = camera
        self.host, self.port = host, port
        self.http = HttpServer(self.handle, MAX_BODY, server_name="hil-onvif/1.0")
        self.soap_faults = 0
        camera.on_reboot = self.reboot
        self._reboot_task: asyncio.Task[None] | None = None

    async def start(self) -> tuple[str, int]:
        host, port = await self.http.start(self.host, self.port)
        self.port = port
        self.camera.cfg.port = port
        return host, port

    async def close(self) -> None:
        if self._reboot_task is not None:
            self._reboot_task.cancel()
        await self.http.close()
        await asyncio.gather(*(p.video.stop() for p in self.camera.profiles.values()), return_exceptions=True)

    def _fault(self, f: SoapFault) -> Response:
        self.soap_faults += 1
        self.camera.faults[f.name] = self.camera.faults.get(f.name, 0) + 1
        return Response(f.http_status, fault_envelope(f), {"Content-Type": CONTENT_TYPE})

    async def handle(self, req: Request) -> Response:
        if req.path not in SERVICE_PATHS:
            return Response(404, b"not found\n", {"Content-Type": "text/plain"})
        if req.method != "POST":
            return Response(405, b"SOAP services take POST\n", {"Content-Type": "text/plain", "Allow": "POST"})
        try:
            msg = read_envelope(req.body)
            body = await self.camera.call(req.path, msg.namespace, msg.operation, msg.header, msg.body)
        except SoapFault as f:
            log.info("%s %s: fault %s: %s", req.peer, req.path, f.name, f.reason)
            return self._fault(f)
        return Response(200, envelope(body), {"Content-Type": CONTENT_TYPE})

    def reboot(self, seconds: float) -> None:
        if self._reboot_task is None or self._reboot_task.done():
            self._reboot_task = asyncio.create_task(self._reboot(seconds))

    async def _reboot(self, seconds: float) -> None:
        cam = self.camera
        cam.rebooting = True
        log.warning("rebooting: HTTP and RTSP down for %.1f s", seconds)
        await self.http.close()
        await asyncio.gather(*(p.video.stop() for p in cam.profiles.values()), return_exceptions=True)
        await asyncio.sleep(seconds)
        # the encoder is up before the web server answers again: a stream URI read after the reboot plays
        for p in cam.profiles.values():
            if p.video.owned and p.video.settings is not None:
                await p.video.start(p.video.settings)
        for attempt in range(50):
            try:
                await self.http.start(self.host, self.port)
                break
            except OSError as exc:  # the port may linger a moment
                log.info("rebind failed (%s); retrying", exc)
                await asyncio.sleep(0.1)
        cam.rebooting = False
        log.warning("back after the reboot")
