"""The device gateway: the gateway's local broker, where buttons and sensors publish.

`parse_device_message` is the pure part (topic + payload -> a validated message, or a
ContractError naming what was wrong); `DeviceGateway` owns the MQTT client and hands
each valid message to the agent's loop."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Union

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from wire.mqtt_client import make_client
from contracts import topics
from contracts.device import MAX_DEVICE_PAYLOAD, DeviceCommand, DeviceEvent, DeviceTelemetry
from contracts.errors import ContractError, describe_validation_error
from contracts.timefmt import utcnow

log = logging.getLogger("careguard.edge.devices")


@dataclass(frozen=True)
class DeviceStatus:
    device_id: str
    online: bool


DeviceMessage = Union[DeviceEvent, DeviceTelemetry, DeviceStatus]


def parse_device_message(topic: str, payload: bytes, known_devices: frozenset[str] | set[str]) -> DeviceMessage:
    device_id, kind = topics.parse_dev_topic(topic)
    if device_id not in known_devices:
        raise ContractError(f"unknown device {device_id!r}")
    if len(payload) > MAX_DEVICE_PAYLOAD:
        raise ContractError(f"payload of {len(payload)} bytes exceeds {MAX_DEVICE_PAYLOAD}")
    if kind == "status":
        text = payload.decode("utf-8", "replace").strip()
        if text not in ("online", "offline"):
            raise ContractError(f"status must be 'online' or 'offline', got {text[:32]!r}")
        return DeviceStatus(device_id, text == "online")
    model = DeviceEvent if kind == "event" else DeviceTelemetry
    try:
        msg = model.model_validate_json(payload)
    except ValidationError as exc:
        raise ContractError(f"invalid {kind}: {describe_validation_error(exc)}") from None
    if msg.device_id != device_id:
        raise ContractError(f"payload device_id {msg.device_id!r} does not match topic device {device_id!r}")
    return msg


def rejection_reason(reason: str) -> str:
    """A bounded label for counters: values (ids, sizes) are masked, so a flood of odd input
    cannot grow the counters without end. The full reason goes to the log."""
    return re.sub(r"'[^']*'|\d+", "_", reason.split(":", 1)[0])[:64]


class DeviceGateway:
    """Device messages are acknowledged to the broker by the agent once they are safe
    (`ack` handed with each message; an alarm's press only after its journal commit), so a
    crash before then makes the broker deliver them again: the session is persistent."""

    def __init__(self, broker_url: str, known_devices: set[str], loop: asyncio.AbstractEventLoop,
                 on_message: Callable[[DeviceMessage, Callable[[], None]], None], client_id: str):
        self.known = frozenset(known_devices)
        self.loop = loop
        self.on_message = on_message
        self.rejected: Counter[str] = Counter()
        self.accepted = 0
        self.stray = 0
        self.connected = asyncio.Event()
        self.client, self.addr = make_client(broker_url, client_id, clean=False)
        self.client.manual_ack_set(True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_mqtt_message

    def start(self) -> None:
        self.client.connect_async(self.addr.host, self.addr.port, keepalive=15)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def send_command(self, device_id: str, command: str) -> None:
        cmd = DeviceCommand(id=uuid.uuid4(), ts=utcnow(), command=command)
        self.client.publish(topics.dev_cmd(device_id), cmd.model_dump_json(), qos=1)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("local broker refused connection: %s", reason_code)
            return
        client.subscribe([(t, 1) for t in topics.DEV_SUBSCRIPTIONS])
        self.loop.call_soon_threadsafe(self.connected.set)

    def _on_mqtt_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        # Runs on paho's thread: validate here (cheap, pure), act on the loop.
        ack = self._acker(msg.mid, msg.qos)
        if not any(mqtt.topic_matches_sub(f, msg.topic) for f in topics.DEV_SUBSCRIPTIONS):
            self.stray += 1  # a broker fault (see edge/uplink.py), not a device's
            ack()
            return
        try:
            parsed = parse_device_message(msg.topic, msg.payload, self.known)
        except ContractError as exc:
            ack()  # refused for good: a redelivery would be refused again
            self.loop.call_soon_threadsafe(self._reject, msg.topic, exc.reason)
            return
        self.loop.call_soon_threadsafe(self._accept, parsed, ack)

    def _acker(self, mid: int, qos: int) -> Callable[[], None]:
        def ack() -> None:
            if qos > 0:
                self.client.ack(mid, qos)
        return ack

    def _reject(self, topic: str, reason: str) -> None:
        self.rejected[rejection_reason(reason)] += 1
        log.warning("rejected device message on %s: %s", topic, reason)

    def _accept(self, parsed: DeviceMessage, ack: Callable[[], None]) -> None:
        self.accepted += 1
        self.on_message(parsed, ack)
