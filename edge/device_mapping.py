"""Devices that do not speak CareGuard's device contract (Zigbee2MQTT's buttons, contacts, smoke
and climate sensors; Tasmota and Home Assistant MQTT devices), mapped to CareGuard device
events, readings and status by a table.

Pure: `map_state` turns one payload into device messages, given the binary states last seen
from that device, and names every field it refuses; `parse_availability` reads an
online/offline payload; `Availability` combines a device's own availability with its
bridge's. The device gateway (devices.py) owns the subscriptions and the state.

One click is one press: an event is raised only by a live message (never by a retained one
the broker hands over at subscribe time, which may be days old); binary fields raise on a
change, not on every message that repeats them (Zigbee2MQTT publishes a device's whole cached
state with each report); Zigbee2MQTT's empty follow-up `action` raises nothing; and the
attribute topics (`<device>/action`) are never read, so the state message is the one source.
A field of the wrong type is refused on its own: a malformed battery level must not cost the
press that came with it."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Callable, Iterable, Mapping, Optional, Union

import orjson
from pydantic import BaseModel, ConfigDict, Field

from contracts.device import DeviceEvent, DeviceEventKind, DeviceTelemetry
from contracts.errors import ContractError

# A Zigbee2MQTT state message with device information is well under this; more is a fault or an attack.
MAX_MAPPED_PAYLOAD = 16 * 1024
WHOLE_PAYLOAD = "$"
ANY_OTHER_VALUE = "*"


def check_topic(topic: str) -> str:
    """A topic a mapping may read: no wildcards, not `$SYS`, not CareGuard's own device topics, and
    nothing that would not survive a line of Mosquitto's ACL file (control characters, white space
    at either end). ValueError naming the problem if not."""
    if not 1 <= len(topic) <= 256:
        raise ValueError("must be 1 to 256 characters")
    if any(c in "+#" or ord(c) < 0x20 or ord(c) == 0x7f for c in topic):
        raise ValueError(f"{topic!r} has an MQTT wildcard or a control character")
    if topic != topic.strip():
        raise ValueError(f"{topic!r} starts or ends with white space")
    if topic.startswith("$"):
        raise ValueError(f"{topic!r}: topics starting with $ belong to the broker")
    if topic.startswith("cg/"):
        raise ValueError(f"{topic!r}: cg/ topics are CareGuard's own device contract")
    return topic


def check_name_segment(name: str) -> str:
    """A topic part a mapping builds on (Zigbee2MQTT's base topic, a friendly_name): a topic
    without empty levels at either end or inside."""
    check_topic(name)
    if name.startswith("/") or name.endswith("/") or "//" in name:
        raise ValueError(f"{name!r} has an empty topic level")
    return name


@dataclass(frozen=True)
class DeviceStatus:
    device_id: str
    online: bool


DeviceMessage = Union[DeviceEvent, DeviceTelemetry, DeviceStatus]


class Role(str, Enum):
    """What a field of a device's payload means to CareGuard."""
    PRESS = "press"          # a button gesture (string, through `values`)
    CONTACT = "contact"      # true = closed, as Zigbee2MQTT reports it
    SMOKE = "smoke"
    TAMPER = "tamper"
    MOTION = "motion"
    TEMPERATURE = "temperature"
    HUMIDITY = "humidity"
    CO2 = "co2"
    BATTERY = "battery"      # percent, 0..100


BINARY_ROLES = frozenset({Role.CONTACT, Role.SMOKE, Role.TAMPER, Role.MOTION})
READING_ROLES = frozenset({Role.TEMPERATURE, Role.HUMIDITY, Role.CO2})
# The event a binary field raises when it changes to a value; a value not listed raises nothing.
BINARY_EVENTS: dict[Role, dict[bool, DeviceEventKind]] = {
    Role.CONTACT: {False: DeviceEventKind.DOOR_OPEN, True: DeviceEventKind.DOOR_CLOSE},
    Role.SMOKE: {True: DeviceEventKind.SMOKE, False: DeviceEventKind.SMOKE_CLEAR},
    Role.TAMPER: {True: DeviceEventKind.TAMPER, False: DeviceEventKind.TAMPER_RESTORE},
    Role.MOTION: {True: DeviceEventKind.MOTION},
}
# The value that is news even when nothing was known before (the gateway just started): an
# open door, smoke, a torn-off case. A first "closed" or "no smoke" only sets the baseline.
ALARMING_VALUE: dict[Role, bool] = {Role.CONTACT: False, Role.SMOKE: True, Role.TAMPER: True, Role.MOTION: True}


class PressAction(str, Enum):
    PRESS = "press"
    LONG_PRESS = "long_press"
    RELEASE = "release"
    IGNORE = "ignore"


PRESS_EVENTS = {PressAction.PRESS: DeviceEventKind.PRESS, PressAction.LONG_PRESS: DeviceEventKind.LONG_PRESS,
                PressAction.RELEASE: DeviceEventKind.RELEASE}

# Zigbee2MQTT's `action` values for buttons (WXKG11LM: single, double, triple, quadruple, hold,
# release; TuYa TS0215A_sos: emergency; ...). For a panic button any gesture is a call for help,
# so a value not listed is a press; "" is the follow-up Zigbee2MQTT sends for Home Assistant's
# legacy action sensor and raises nothing.
BUTTON_ACTIONS: dict[str, PressAction] = {
    "": PressAction.IGNORE, "release": PressAction.RELEASE, "hold": PressAction.LONG_PRESS,
    "long": PressAction.LONG_PRESS, "long_press": PressAction.LONG_PRESS, ANY_OTHER_VALUE: PressAction.PRESS,
}


class FieldRule(BaseModel):
    """Where a role's value is in the payload, and how its values read."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, max_length=256, pattern=r"^(\$|[^.]+(\.[^.]+)*)$",
                      description='dotted path of object keys ("SCD30.CarbonDioxide"); "$" = the whole payload')
    values: Optional[dict[str, Union[bool, PressAction]]] = Field(
        default=None, max_length=64,
        description='press: payload value -> press/long_press/release/ignore ("*" = any other); '
                    'binary roles: payload string -> true/false (e.g. { ON = true, OFF = false })')


# Built-in mappings for Zigbee2MQTT's common exposes, as its device pages name the properties.
# Per profile, so a smoke detector's test button cannot raise fire and a contact sensor's chip
# temperature is not taken for the room's.
Z2M_PROFILES: dict[str, dict[Role, FieldRule]] = {
    "button": {Role.PRESS: FieldRule(path="action", values=BUTTON_ACTIONS), Role.BATTERY: FieldRule(path="battery")},
    "contact": {Role.CONTACT: FieldRule(path="contact"), Role.TAMPER: FieldRule(path="tamper"),
                Role.BATTERY: FieldRule(path="battery")},
    "smoke": {Role.SMOKE: FieldRule(path="smoke"), Role.TAMPER: FieldRule(path="tamper"),
              Role.BATTERY: FieldRule(path="battery")},
    "motion": {Role.MOTION: FieldRule(path="occupancy"), Role.TAMPER: FieldRule(path="tamper"),
               Role.BATTERY: FieldRule(path="battery")},
    "climate": {Role.TEMPERATURE: FieldRule(path="temperature"), Role.HUMIDITY: FieldRule(path="humidity"),
                Role.CO2: FieldRule(path="co2"), Role.BATTERY: FieldRule(path="battery")},
}


@dataclass(frozen=True)
class CompiledField:
    role: Role
    path: str
    keys: tuple[str, ...]  # () = the whole payload
    values: Mapping[str, Union[bool, PressAction]]


def compile_field(role: Role, rule: FieldRule) -> CompiledField:
    """Check that the rule fits its role; ValueError naming the role if not."""
    values = dict(rule.values or {})
    if role is Role.PRESS:
        # Zigbee2MQTT's empty follow-up is never a press, whatever the table says otherwise.
        values = {"": PressAction.IGNORE, **(values or BUTTON_ACTIONS)}
        if not all(isinstance(v, PressAction) for v in values.values()):
            raise ValueError(f"{role.value}: values must map to {', '.join(a.value for a in PressAction)}")
    elif role in BINARY_ROLES:
        if not all(isinstance(v, bool) for v in values.values()):
            raise ValueError(f"{role.value}: values must map to true or false")
    elif values:
        raise ValueError(f"{role.value}: a reading takes no values mapping")
    keys = () if rule.path == WHOLE_PAYLOAD else tuple(rule.path.split("."))
    return CompiledField(role, rule.path, keys, values)


@dataclass(frozen=True)
class TopicMapping:
    """One topic a mapped device publishes its state on."""
    topic: str
    device_id: str
    fields: tuple[CompiledField, ...]


@dataclass(frozen=True)
class AvailabilityTopic:
    """A topic that says whether devices are online: a device's own, or a bridge's (then
    `bridge` is true and it speaks for every device behind it)."""
    topic: str
    device_ids: tuple[str, ...]
    online: str = "online"
    offline: str = "offline"
    bridge: bool = False
    json_state: bool = False  # Zigbee2MQTT: {"state": "online"} as well as the legacy plain form


class MappingRejected(ContractError):
    """A payload, or one field of it, refused. `label` is bounded (device ids and paths come from
    the config, never from the payload) so it can be a counter's key."""

    def __init__(self, reason: str, label: str):
        super().__init__(reason)
        self.label = label


@dataclass
class MappingResult:
    messages: list[DeviceMessage] = field(default_factory=list)
    refused: list[MappingRejected] = field(default_factory=list)
    states: dict[Role, bool] = field(default_factory=dict)  # binary values seen, for the next call


_ABSENT = object()


def _type_name(value: object) -> str:
    return {bool: "boolean", str: "string", dict: "object", list: "array", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def decode_payload(payload: bytes, *, plain_text: bool, device_id: str) -> object:
    """JSON, or with `plain_text` (a mapping reads the whole payload) the UTF-8 text when it is
    not JSON (Home Assistant style `ON`)."""
    if len(payload) > MAX_MAPPED_PAYLOAD:
        raise MappingRejected(f"{device_id}: payload of {len(payload)} bytes exceeds {MAX_MAPPED_PAYLOAD}",
                              f"{device_id}: payload too large")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        if plain_text:
            try:
                return payload.decode("utf-8").strip()
            except UnicodeDecodeError:
                pass
        raise MappingRejected(f"{device_id}: payload is not JSON: {exc}", f"{device_id}: not JSON") from None


def _lookup(doc: object, f: CompiledField, device_id: str) -> object:
    value = doc
    for depth, key in enumerate(f.keys):
        if not isinstance(value, dict):
            where = ".".join(f.keys[:depth]) or "payload"
            raise MappingRejected(f"{device_id}: field {f.path}: {where} is {_type_name(value)}, not an object",
                                  f"{device_id}: field {f.path} wrong type")
        value = value.get(key, _ABSENT)
        if value is _ABSENT:
            return _ABSENT
    return _ABSENT if value is None else value  # Zigbee2MQTT publishes null for a value not yet known


def _refuse(device_id: str, f: CompiledField, expected: str, value: object) -> MappingRejected:
    return MappingRejected(f"{device_id}: field {f.path} must be {expected}, got {_type_name(value)}",
                           f"{device_id}: field {f.path} wrong type")


def _binary(f: CompiledField, value: object, device_id: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in f.values:
        return bool(f.values[value])
    expected = "true/false" + (f" or one of {sorted(f.values)}" if f.values else "")
    raise _refuse(device_id, f, expected, value)


def _press(f: CompiledField, value: object, device_id: str) -> PressAction:
    if not isinstance(value, str):
        raise _refuse(device_id, f, "a string", value)
    action = f.values.get(value, f.values.get(ANY_OTHER_VALUE))
    if action is None:
        raise MappingRejected(f"{device_id}: field {f.path}: value {value[:32]!r} is not in the mapping",
                              f"{device_id}: field {f.path} unknown value")
    return PressAction(action)


def _number(f: CompiledField, value: object, device_id: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _refuse(device_id, f, "a finite number", value)
    if f.role is Role.BATTERY and not 0 <= value <= 100:
        raise MappingRejected(f"{device_id}: field {f.path} must be 0..100 (percent), got {value}",
                              f"{device_id}: field {f.path} out of range")
    return float(value)


def map_state(mapping: TopicMapping, payload: bytes, *, retained: bool, last: Mapping[Role, bool],
              now: datetime, new_id: Callable[[], uuid.UUID] = uuid.uuid4) -> MappingResult:
    """The device messages one state payload means. Raises MappingRejected when the payload as a
    whole is unreadable; a field of the wrong type is refused alone, in `refused`.

    `retained`: the broker handed over an old message at subscribe time. It only sets the
    baseline of the binary fields: no event, and no readings (their time is unknown)."""
    device = mapping.device_id
    plain = any(not f.keys for f in mapping.fields)
    doc = decode_payload(payload, plain_text=plain, device_id=device)
    if not plain and not isinstance(doc, dict):
        raise MappingRejected(f"{device}: payload must be a JSON object, got {_type_name(doc)}",
                              f"{device}: not a JSON object")
    result = MappingResult()
    events: list[DeviceEventKind] = []
    readings: dict[str, float] = {}
    battery: Optional[float] = None
    for f in mapping.fields:
        try:
            value = _lookup(doc, f, device)
            if value is _ABSENT:
                continue
            if f.role is Role.PRESS:
                action = _press(f, value, device)
                if not retained and action in PRESS_EVENTS:
                    events.append(PRESS_EVENTS[action])
            elif f.role in BINARY_ROLES:
                state = _binary(f, value, device)
                result.states[f.role] = state
                before = last.get(f.role)
                changed = state != before if before is not None else state == ALARMING_VALUE[f.role]
                if not retained and changed and state in BINARY_EVENTS[f.role]:
                    events.append(BINARY_EVENTS[f.role][state])
            elif f.role is Role.BATTERY:
                battery = _number(f, value, device)
            else:
                readings[f.role.value] = _number(f, value, device)
        except MappingRejected as exc:
            result.refused.append(exc)
    result.messages += [DeviceEvent(id=new_id(), device_id=device, ts=now, event=kind) for kind in events]
    if not retained and (readings or battery is not None):
        result.messages.append(DeviceTelemetry(id=new_id(), device_id=device, ts=now, readings=readings,
                                               battery_pct=battery))
    return result


def parse_availability(topic: AvailabilityTopic, payload: bytes) -> bool:
    """Online or offline: the configured plain words, and for Zigbee2MQTT also its JSON form."""
    label = topic.device_ids[0] if not topic.bridge else f"bridge {topic.topic}"
    if len(payload) > 256:
        raise MappingRejected(f"{label}: availability payload of {len(payload)} bytes", f"{label}: availability too large")
    text = payload.decode("utf-8", "replace").strip()
    if topic.json_state and text.startswith("{"):
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            doc = None
        text = doc.get("state") if isinstance(doc, dict) else None
        if not isinstance(text, str):
            raise MappingRejected(f"{label}: availability must be {{\"state\": \"{topic.online}\"|\"{topic.offline}\"}}",
                                  f"{label}: availability malformed")
    if text == topic.online:
        return True
    if text == topic.offline:
        return False
    raise MappingRejected(f"{label}: availability must be {topic.online!r} or {topic.offline!r}, got {text[:32]!r}",
                          f"{label}: availability malformed")


class Availability:
    """A device behind a bridge is online when both it and its bridge are (either unknown counts
    as online: Zigbee2MQTT's availability feature is optional)."""

    def __init__(self, topics: Iterable[AvailabilityTopic]):
        self._bridge_of = {d: t.topic for t in topics if t.bridge for d in t.device_ids}
        self._device: dict[str, bool] = {}
        self._bridge: dict[str, bool] = {}

    def on_message(self, topic: AvailabilityTopic, online: bool) -> list[DeviceStatus]:
        """The status of every device the message speaks for."""
        known = self._bridge if topic.bridge else self._device
        if topic.bridge:
            known[topic.topic] = online
        else:
            known.update(dict.fromkeys(topic.device_ids, online))
        return [DeviceStatus(d, self.online(d)) for d in topic.device_ids]

    def online(self, device_id: str) -> bool:
        bridge = self._bridge_of.get(device_id)
        return self._device.get(device_id, True) and (bridge is None or self._bridge.get(bridge, True))
