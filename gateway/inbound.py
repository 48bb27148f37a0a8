"""Inbound MQTT messages: `devices/{id}/commands` → the command router, `dispatch` → the dispatcher.

Anything malformed is answered on the matching `acks` topic with status
`rejected` and a reason, and never reaches a device.

Who sent it: MQTT does not tell a subscriber which client published. When
the kit lists `mqtt_clients`, the broker's ACL (gateway/mqtt_acl.py) lets
only its operators publish here, and each command or dispatch must name its
sender in `"client"`: one not listed as an operator or admin is rejected.
The audit log records it as `mqtt:{client}`. Without `mqtt_clients`, any
client the broker lets in is taken, recorded as `mqtt`.
"""

from __future__ import annotations

import asyncio
import json
import logging

from gateway.audit_trail import MQTT, AuditTrail
from gateway.auth import Principal
from gateway.bus import Bus
from gateway.commands import CommandRefused, CommandRouter
from gateway.dispatch import Dispatcher, DispatchRefused
from gateway.model import DispatchChanged, now_ms
from gateway.wire import Topics

log = logging.getLogger(__name__)

MAX_PENDING_DISPATCHES = 100


class InboundCommands:
    def __init__(self, topics: Topics, router: CommandRouter, dispatcher: Dispatcher, bus: Bus, audit: AuditTrail,
                 clients: dict[str, str] | None = None) -> None:
        self.topics = topics
        self.audit = audit
        self.clients = clients or {}  # MQTT user → role, from the kit's mqtt_clients
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
        if self.audit.full:  # never run a command the audit log cannot take
            self.router.reject(device, cmd_id, body.get("command"), body.get("args"), "mqtt", "audit log busy; try again")
            return
        who = self._sender(body)
        try:
            if isinstance(who, str):
                raise CommandRefused(403, "unauthorised_client", who)
            record = self.router.submit(device, body.get("command"), body.get("args", {}), issued_by=who.name, cmd_id=cmd_id)
        except CommandRefused as exc:
            sender = who if isinstance(who, Principal) else MQTT
            self.router.reject(device, cmd_id, body.get("command"), body.get("args"), sender.name, exc.message)
            self.audit.command_queued(sender, device, body.get("command"), body.get("args"), cmd_id, exc.message)
            return
        self.audit.command_queued(who, device, record.command, record.args, record.id)

    def _sender(self, body: dict[str, object]) -> Principal | str:
        """Who the message says sent it, when the kit names its MQTT clients; a refusal otherwise."""
        if not self.clients:
            return MQTT
        client = body.get("client")
        role = self.clients.get(client) if isinstance(client, str) else None
        if role is None:
            return f"client {client!r} is not one of this kit's MQTT clients" if client else \
                "name the sending MQTT client in `client` (this kit lists its mqtt_clients)"
        if role == "viewer":
            return f"client {client!r} is a viewer: it may not command"
        return Principal(f"mqtt:{client}", role, "broker")

    async def _dispatch(self, payload: bytes) -> None:
        body: object = None
        try:
            body = json.loads(payload)
            if self.audit.full:
                raise DispatchRefused(503, "audit_busy", "audit log busy; try again")
            who = self._sender(body) if isinstance(body, dict) else MQTT
            if isinstance(who, str):
                raise DispatchRefused(403, "unauthorised_client", who)
            d = await self.dispatcher.submit(body, issued_by=who.name)
        except (ValueError, UnicodeDecodeError):
            self._reject(None, "payload is not valid JSON")
            return
        except DispatchRefused as exc:
            self._reject(body.get("id") if isinstance(body, dict) else None, exc.message)
            if exc.code != "audit_busy":
                self.audit.dispatch_queued(MQTT, body, None, exc.message)
            return
        self.audit.dispatch_queued(who, body, d.id)

    def _reject(self, client_id: object, reason: str) -> None:
        self.bus.publish(DispatchChanged("", now_ms(), {"id": client_id if isinstance(client_id, str) else None,
                                                         "status": "rejected", "detail": reason}))
