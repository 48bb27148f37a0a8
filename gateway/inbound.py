"""Inbound MQTT messages (`devices/{id}/commands`) → the command router.

Anything malformed is answered on the device's `acks` topic with status
`rejected` and a reason, and never reaches a device.
"""

from __future__ import annotations

import json
import logging

from gateway.commands import CommandRefused, CommandRouter
from gateway.wire import Topics

log = logging.getLogger(__name__)


class InboundCommands:
    def __init__(self, topics: Topics, router: CommandRouter) -> None:
        self.topics = topics
        self.router = router

    def handle(self, topic: str, payload: bytes) -> None:
        device = self.topics.command_device(topic)
        if device is None:
            return  # dispatch and other inbound topics land with their own handlers
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
