"""The embedded MQTT broker (amqtt, in-process) used when a kit names no broker.

Listens on 127.0.0.1 only, anonymous, so `mosquitto_sub -t 'fieldgw/#' -v`
works with no set-up. amqtt costs 6-18x Mosquitto's CPU per message
(../shared/research/libraries-measured.md): fine for one kit, not for a
command centre; point `--mqtt` or the kit's `broker:` at Mosquitto there.
"""

from __future__ import annotations

import logging

from amqtt.broker import Broker

log = logging.getLogger(__name__)


class EmbeddedBroker:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._broker: Broker | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}", "max_connections": 64}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._broker = Broker(config)
        await self._broker.start()
        log.info("embedded MQTT broker (amqtt) on %s", self.url)

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
