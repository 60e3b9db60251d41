"""The device gateway: the gateway's local broker, where buttons and sensors publish.

Devices speak CareGuard's contract on `cg/dev/{device_id}/...`, or their own (Zigbee2MQTT,
Tasmota, Home Assistant MQTT devices) on topics the config maps (device_mapping.py).
`parse_device_message` and `device_mapping` are the pure parts (topic + payload -> validated
messages, or a ContractError naming what was wrong); `DeviceGateway` owns the MQTT client,
the mapped devices' last binary states and availability, and hands each valid message to the
agent's loop."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections import Counter
from typing import Callable, Iterable

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from wire.mqtt_client import make_client
from contracts import topics
from contracts.device import MAX_DEVICE_PAYLOAD, DeviceCommand, DeviceEvent, DeviceTelemetry
from contracts.errors import ContractError, describe_validation_error
from contracts.reject_log import RejectLog
from contracts.timefmt import utcnow
from edge.device_mapping import (Availability, AvailabilityTopic, DeviceMessage, DeviceStatus, MappingRejected, Role,
                                 TopicMapping, map_state, parse_availability)

log = logging.getLogger("careguard.edge.devices")

REJECT_LOG_INTERVAL_S = 60.0


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
                 on_message: Callable[[DeviceMessage, Callable[[], None]], None], client_id: str, *,
                 mapped: Iterable[TopicMapping] = (), availability: Iterable[AvailabilityTopic] = ()):
        self.known = frozenset(known_devices)
        self.loop = loop
        self.on_message = on_message
        self.rejected: Counter[str] = Counter()
        self._reject_log = RejectLog(log, "rejected device message on %s: %s (%d so far)", REJECT_LOG_INTERVAL_S)
        self.accepted = 0
        self.stray = 0
        self.connected = asyncio.Event()
        self.subscribed = asyncio.Event()  # the broker's SUBACK: from here on no device message is missed
        # Touched only on paho's thread, which handles one message at a time.
        self.mapped = {m.topic: m for m in mapped}
        self.availability_topics = {a.topic: a for a in availability}
        self._binary_state: dict[str, dict[Role, bool]] = {}
        self._availability = Availability(self.availability_topics.values())
        self.subscriptions = [*topics.DEV_SUBSCRIPTIONS, *self.mapped, *self.availability_topics]
        self.client, self.addr = make_client(broker_url, client_id, clean=False)
        self.client.manual_ack_set(True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.loop.call_soon_threadsafe(self.subscribed.set)
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
        client.subscribe([(t, 1) for t in self.subscriptions])
        self.loop.call_soon_threadsafe(self.connected.set)

    def _on_mqtt_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        # Runs on paho's thread: validate here (cheap, pure), act on the loop.
        ack = self._acker(msg.mid, msg.qos)
        try:
            parsed = self._parse(msg)
        except ContractError as exc:
            ack()  # refused for good: a redelivery would be refused again
            self.loop.call_soon_threadsafe(self._reject, msg.topic, exc)
            return
        if parsed is None:
            ack()
            return
        self.loop.call_soon_threadsafe(self._accept, parsed, ack)

    def _parse(self, msg: mqtt.MQTTMessage) -> list[DeviceMessage] | None:
        """The messages `msg` carries; None for a stray one. Raises ContractError."""
        mapping = self.mapped.get(msg.topic)
        if mapping is not None:
            return self._parse_mapped(mapping, msg)
        avail = self.availability_topics.get(msg.topic)
        if avail is not None:
            return self._availability.on_message(avail, parse_availability(avail, msg.payload))
        if any(mqtt.topic_matches_sub(f, msg.topic) for f in topics.DEV_SUBSCRIPTIONS):
            return [parse_device_message(msg.topic, msg.payload, self.known)]
        self.stray += 1  # a broker fault (see edge/uplink/link.py), not a device's
        return None

    def _parse_mapped(self, mapping: TopicMapping, msg: mqtt.MQTTMessage) -> list[DeviceMessage]:
        # A retained message comes from the broker's store at subscribe time, maybe days old:
        # it sets the baseline, never raises (one old click must not press again at every start).
        last = self._binary_state.setdefault(mapping.device_id, {})
        result = map_state(mapping, msg.payload, retained=bool(msg.retain), last=last, now=utcnow())
        last.update(result.states)
        for refused in result.refused:
            self.loop.call_soon_threadsafe(self._reject, msg.topic, refused)
        return result.messages

    def _acker(self, mid: int, qos: int) -> Callable[[], None]:
        def ack() -> None:
            if qos > 0:
                self.client.ack(mid, qos)
        return ack

    def _reject(self, topic: str, exc: ContractError) -> None:
        label = exc.label if isinstance(exc, MappingRejected) else rejection_reason(exc.reason)
        self.rejected[label] += 1
        # One line per kind of refusal a minute: a flood of bad input must not flood the log
        # (the counters, in every heartbeat, keep the full count).
        self._reject_log(label, topic, exc.reason, self.rejected[label])

    def _accept(self, parsed: list[DeviceMessage], ack: Callable[[], None]) -> None:
        """Hand each message on; the broker's copy is acknowledged once every one is safe."""
        if not parsed:
            ack()
            return
        self.accepted += 1
        pending = len(parsed)

        def one_safe() -> None:
            nonlocal pending
            pending -= 1
            if pending == 0:
                ack()
        for message in parsed:
            self.on_message(message, one_safe)
