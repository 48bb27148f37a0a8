"""One MQTT connection to one broker (aiomqtt), kept up with backoff and jitter.

It connects with the retained `gateway/status` offline message as its will,
subscribes to the inbound command topics and hands what arrives to a
callback, and publishes with a confirmation: `publish()` returns when the
broker's PUBACK arrives and raises PublishRejected when the PUBACK carries a
failure reason (MQTT 5, e.g. an ACL denial) or LinkDown when the connection
went away. It speaks MQTT 5 and falls back to 3.1.1 for brokers without it
(amqtt). What to publish and when is the uplink manager's business.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gateway import wire
from gateway.backoff import Backoff
from gateway.model import now_ms

log = logging.getLogger(__name__)
logging.getLogger("mqtt").setLevel(logging.ERROR)  # aiomqtt warns on >10 publishes in flight; the manager bounds it


class LinkDown(Exception):
    """The connection is not up (or went down while waiting for a PUBACK)."""


class PublishRejected(Exception):
    """The broker refused a publish (a PUBACK with a failure reason code)."""


@dataclass(frozen=True)
class BrokerTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool
    ca_file: str | None
    client_id: str

    @classmethod
    def from_url(cls, url: str, client_id: str, ca_file: str | None = None) -> BrokerTarget:
        parts = urlsplit(url)
        tls = parts.scheme == "mqtts"
        return cls(host=parts.hostname or "127.0.0.1", port=parts.port or (8883 if tls else 1883),
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None,
                   tls=tls, ca_file=ca_file, client_id=client_id)

    def describe(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


OnCommand = Callable[[str, bytes], None]  # topic, payload
Done = Callable[[BaseException | None], None]  # None: PUBACK; PublishRejected or LinkDown otherwise


class MqttLink:
    def __init__(self, name: str, target: BrokerTarget, topics: wire.Topics, version: str,
                 on_command: OnCommand, on_change: Callable[[], None], keepalive: int = 15,
                 protocol: str = "auto") -> None:
        self.name = name
        self.target = target
        self.topics = topics
        self.version = version
        self.on_command = on_command
        self.on_change = on_change
        self.keepalive = keepalive
        self.connected = asyncio.Event()
        self.connects = 0
        self.last_error = ""
        self.bytes_sent = 0
        self.rejected = 0
        # "auto": MQTT 5 first; until a connection succeeds, alternate with 3.1.1 (some brokers,
        # amqtt among them, hang on an MQTT 5 CONNECT instead of refusing it).
        self._auto = protocol == "auto"
        self._protocol = aiomqtt.ProtocolVersion.V311 if protocol == "3.1.1" else aiomqtt.ProtocolVersion.V5
        self._ever_connected = False
        self._client: aiomqtt.Client | None = None
        self._waiting: dict[int, Done] = {}

    def _make_client(self) -> aiomqtt.Client:
        t = self.target
        tls_context = None
        if t.tls:
            tls_context = ssl.create_default_context(cafile=t.ca_file) if t.ca_file else ssl.create_default_context()
        will = wire.gateway_status(self.topics, "offline", now_ms(), self.version)
        return aiomqtt.Client(
            t.host, t.port, username=t.username, password=t.password, identifier=t.client_id,
            will=aiomqtt.Will(will.topic, will.payload, 1, True), tls_context=tls_context, protocol=self._protocol,
            keepalive=self.keepalive, timeout=5 if not self._ever_connected else 10, max_inflight_messages=1000, max_queued_incoming_messages=1000)

    async def run(self) -> None:
        backoff = Backoff(initial=0.5, maximum=30.0)
        while True:
            try:
                await self._session(backoff)
            except aiomqtt.MqttError as exc:
                self._down(str(exc))
            except OSError as exc:
                self._down(f"{type(exc).__name__}: {exc}")
            if self._auto and not self._ever_connected:
                v5 = self._protocol == aiomqtt.ProtocolVersion.V5
                self._protocol = aiomqtt.ProtocolVersion.V311 if v5 else aiomqtt.ProtocolVersion.V5
            await asyncio.sleep(backoff.next_delay())

    def _down(self, reason: str) -> None:
        if reason != self.last_error:
            log.warning("uplink %s (%s): %s", self.name, self.target.describe(), reason)
        self.last_error = reason

    async def _session(self, backoff: Backoff) -> None:
        try:
            async with self._make_client() as client:
                self._client = client
                self._hook_paho(client)
                await client.subscribe(self.topics.commands_filter, qos=1)
                await client.subscribe(self.topics.dispatch, qos=1)
                self.connects += 1
                self._ever_connected = True
                self.last_error = ""
                backoff.connected()
                log.info("uplink %s connected to %s", self.name, self.target.describe())
                self.connected.set()
                self.on_change()
                async for message in client.messages:
                    payload = message.payload if isinstance(message.payload, bytes) else str(message.payload or "").encode()
                    self.on_command(str(message.topic), payload)
        finally:
            self._client = None
            waiting, self._waiting = self._waiting, {}
            lost = LinkDown("connection lost while waiting for PUBACK")
            for done in waiting.values():
                done(lost)
            if self.connected.is_set():
                self.connected.clear()
                self.on_change()

    def _hook_paho(self, client: aiomqtt.Client) -> None:
        """Hooks into aiomqtt's private paho client (the only way in):

        - PUBACK reason codes, which aiomqtt drops;
        - a cheap PUBACK path: a 2-byte MQTT 5 PUBACK (success, no properties: what brokers send for
          nearly every publish) is taken without building a ReasonCode and a Properties per packet;
        - writes flushed once per event-loop turn: aiomqtt registers a socket writer for every publish
          through `call_soon_threadsafe` (a self-pipe write, two epoll_ctl and an extra loop turn per
          message); here everything queued in a turn goes out in one `loop_write`, and aiomqtt's own
          writer is used only when the socket is full or a write fails (aiomqtt handles the error).
        """
        inner: paho.Client = client._client  # noqa: SLF001
        original = inner.on_publish

        def on_publish(c: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
            done = self._waiting.pop(mid, None)
            if done is not None:
                if getattr(reason_code, "is_failure", False):
                    self.rejected += 1
                    done(PublishRejected(f"broker refused the publish: {reason_code}"))
                else:
                    done(None)
            if original is not None:
                original(c, userdata, mid, reason_code, properties)

        inner.on_publish = on_publish

        handle_pubackcomp = inner._handle_pubackcomp  # noqa: SLF001
        success, no_properties = ReasonCode(PacketTypes.PUBACK), Properties(PacketTypes.PUBACK)

        def fast_puback(cmd: Any) -> Any:
            packet = inner._in_packet["packet"]  # noqa: SLF001
            if cmd != "PUBACK" or len(packet) != 2 or inner.protocol != paho.MQTTv5:
                return handle_pubackcomp(cmd)
            mid = (packet[0] << 8) | packet[1]
            with inner._out_message_mutex:  # noqa: SLF001
                if mid in inner._out_messages:  # noqa: SLF001
                    return inner._do_on_publish(mid, success, no_properties)  # noqa: SLF001
            return paho.MQTT_ERR_SUCCESS

        inner._handle_pubackcomp = fast_puback  # type: ignore[method-assign]  # noqa: SLF001

        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()
        register, unregister = inner.on_socket_register_write, inner.on_socket_unregister_write
        state = {"scheduled": False, "delegated": bool(inner._registered_write)}  # noqa: SLF001

        def flush() -> None:
            state["scheduled"] = False
            if inner.socket() is None:
                return
            try:
                inner.loop_write()
                if not inner.want_write():
                    return
            except Exception:  # noqa: BLE001 - aiomqtt's writer writes again and handles the error
                pass
            state["delegated"] = True
            sock = inner.socket()
            if sock is not None and register is not None:
                register(inner, None, sock)

        def on_register_write(c: Any, userdata: Any, sock: Any) -> None:
            if state["delegated"]:
                return
            if not state["scheduled"]:
                state["scheduled"] = True
                if threading.get_ident() == loop_thread:
                    loop.call_soon(flush)
                else:
                    loop.call_soon_threadsafe(flush)

        def on_unregister_write(c: Any, userdata: Any, sock: Any) -> None:
            if state["delegated"]:
                state["delegated"] = False
                if unregister is not None:
                    unregister(c, userdata, sock)

        inner.on_socket_register_write = on_register_write
        inner.on_socket_unregister_write = on_unregister_write

    def publish_nowait(self, topic: str, payload: bytes, qos: int, retain: bool, done: Done) -> None:
        """Send now; `done` is called once with the outcome (the hot path: no task, no timer per message).

        A PUBACK that never comes is covered by the MQTT keepalive: the connection is declared lost
        and every waiting message gets LinkDown.
        """
        client = self._client
        if client is None:
            raise LinkDown(f"uplink {self.name} is not connected")
        info = client._client.publish(topic, payload, qos, retain)  # noqa: SLF001
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise LinkDown(f"publish refused locally: {paho.error_string(info.rc)}")
        self.bytes_sent += len(payload) + len(topic) + 8
        if qos == 0:
            done(None)
        else:
            self._waiting[info.mid] = done

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Send and wait for the outcome (raises PublishRejected or LinkDown)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done(exc: BaseException | None) -> None:
            if not fut.done():
                fut.set_exception(exc) if exc else fut.set_result(None)

        self.publish_nowait(topic, payload, qos, retain, done)
        await fut

    def stats(self) -> dict[str, Any]:
        return {"name": self.name, "broker": self.target.describe(), "connected": self.connected.is_set(),
                "connects": self.connects, "bytes_sent": self.bytes_sent, "rejected": self.rejected,
                "last_error": self.last_error, "protocol": "5" if self._protocol == aiomqtt.ProtocolVersion.V5 else "3.1.1"}
