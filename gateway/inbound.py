"""Inbound MQTT messages: `devices/{id}/commands` → the command router, `dispatch` → the dispatcher.

Anything malformed is answered on the matching `acks` topic with status
`rejected` and a reason, and never reaches a device.
"""

from __future__ import annotations

import asyncio
import json
import logging

from gateway.bus import Bus
from gateway.commands import CommandRefused, CommandRouter
from gateway.dispatch import Dispatcher, DispatchRefused
from gateway.model import DispatchChanged, now_ms
from gateway.wire import Topics

log = logging.getLogger(__name__)

MAX_PENDING_DISPATCHES = 100


class InboundCommands:
    def __init__(self, topics: Topics, router: CommandRouter, dispatcher: Dispatcher, bus: Bus) -> None:
        self.topics = topics
        self.router = router
        self.dispatcher = dispatcher
        self.bus = bus
        self._tasks: set[asyncio.Task[None]] = set()

    def handle(self, topic: str, payload: bytes) -> None:
        if topic == self.topics.dispatch:
            if len(self._tasks) >= MAX_PENDING_DISPATCHES:  # a flood: refuse, never queue without bound
                self._reject(None, f"{MAX_PENDING_DISPATCHES} dispatches are still being taken in; try again")
                return
            task = asyncio.get_running_loop().create_task(self._dispatch(payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        device = self.topics.command_device(topic)
        if device is None:
            return
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            self.router.reject(device, None, None, None, "mqtt", "payload is not valid JSON")
            return
        if not isinstance(body, dict):
            self.router.reject(device, None, None, None, "mqtt", "payload must be a JSON object")
            return
        cmd_id = body.get("id")
        if not isinstance(cmd_id, str):
            self.router.reject(device, None, body.get("command"), body.get("args"), "mqtt", "payload needs a string `id`")
            return
        try:
            self.router.submit(device, body.get("command"), body.get("args", {}), issued_by="mqtt", cmd_id=cmd_id)
        except CommandRefused as exc:
            self.router.reject(device, cmd_id, body.get("command"), body.get("args"), "mqtt", exc.message)

    async def _dispatch(self, payload: bytes) -> None:
        body: object = None
        try:
            body = json.loads(payload)
            await self.dispatcher.submit(body, issued_by="mqtt")
        except (ValueError, UnicodeDecodeError):
            self._reject(None, "payload is not valid JSON")
        except DispatchRefused as exc:
            self._reject(body.get("id") if isinstance(body, dict) else None, exc.message)

    def _reject(self, client_id: object, reason: str) -> None:
        self.bus.publish(DispatchChanged("", now_ms(), {"id": client_id if isinstance(client_id, str) else None,
                                                         "status": "rejected", "detail": reason}))
