"""MQTT topics of DESIGN.md, built and parsed in one place."""

import re
from enum import Enum

from contracts.errors import ContractError
from contracts.ids import DEVICE_ID_RE, FACILITY_ID_RE


class Stream(str, Enum):
    ALARM = "alarm"
    EVENT = "event"
    TELEMETRY = "telemetry"
    CAMERA = "camera"
    RETENTION = "retention"
    HEARTBEAT = "heartbeat"
    STATUS = "status"


class DownKind(str, Enum):
    ACK = "ack"
    CONFIG = "config"
    ARM = "arm"
    LIVE = "live"


# Local broker (devices <-> edge)
def dev_event(device_id: str) -> str:
    return f"cg/dev/{device_id}/event"


def dev_telemetry(device_id: str) -> str:
    return f"cg/dev/{device_id}/telemetry"


def dev_status(device_id: str) -> str:
    return f"cg/dev/{device_id}/status"


def dev_cmd(device_id: str) -> str:
    return f"cg/dev/{device_id}/cmd"


DEV_SUBSCRIPTIONS = ("cg/dev/+/event", "cg/dev/+/telemetry", "cg/dev/+/status")
_DEV_RE = re.compile(r"^cg/dev/(" + DEVICE_ID_RE.strip("^$") + r")/(event|telemetry|status)$")


def parse_dev_topic(topic: str) -> tuple[str, str]:
    m = _DEV_RE.match(topic)
    if not m:
        raise ContractError(f"topic {topic!r} is not cg/dev/<device_id>/(event|telemetry|status)")
    return m.group(1), m.group(2)


# Uplink broker (edge <-> cloud)
def up(facility_id: str, stream: Stream | str) -> str:
    return f"cg/v1/fac/{facility_id}/up/{Stream(stream).value}"


def down(facility_id: str, kind: DownKind | str) -> str:
    return f"cg/v1/fac/{facility_id}/down/{DownKind(kind).value}"


def up_all(facility_id: str) -> str:
    """Every uplink stream of one facility (an ACL or subscription filter)."""
    return f"cg/v1/fac/{facility_id}/up/#"


def down_all(facility_id: str) -> str:
    """Every downlink kind of one facility (what its gateway subscribes to)."""
    return f"cg/v1/fac/{facility_id}/down/#"


def live(facility_id: str, camera_id: str) -> str:
    """Live frames of one camera: QoS 0 and outside up/#, so they never enter the durable path."""
    return f"cg/v1/fac/{facility_id}/live/{camera_id}"


def live_all(facility_id: str) -> str:
    return f"cg/v1/fac/{facility_id}/live/#"


LIVE_WILDCARD = "cg/v1/fac/+/live/+"
UP_WILDCARD = up_all("+")
SHARED_INGEST = "$share/ingest/" + UP_WILDCARD
_FACILITY = "(" + FACILITY_ID_RE.strip("^$") + ")"
_UP_RE = re.compile(r"^cg/v1/fac/" + _FACILITY + r"/up/([a-z]+)$")
_DOWN_RE = re.compile(r"^cg/v1/fac/" + _FACILITY + r"/down/([a-z]+)$")
_LIVE_RE = re.compile(r"^cg/v1/fac/" + _FACILITY + r"/live/(" + DEVICE_ID_RE.strip("^$") + r")$")


def parse_live_topic(topic: str) -> tuple[str, str]:
    m = _LIVE_RE.match(topic)
    if not m:
        raise ContractError(f"topic {topic!r} is not cg/v1/fac/<facility>/live/<camera>")
    return m.group(1), m.group(2)


def parse_up_topic(topic: str) -> tuple[str, Stream]:
    m = _UP_RE.match(topic)
    if not m:
        raise ContractError(f"topic {topic!r} is not cg/v1/fac/<facility>/up/<stream>")
    try:
        return m.group(1), Stream(m.group(2))
    except ValueError:
        raise ContractError(f"unknown stream {m.group(2)!r} in topic {topic!r}") from None


def parse_down_topic(topic: str) -> tuple[str, DownKind]:
    m = _DOWN_RE.match(topic)
    if not m:
        raise ContractError(f"topic {topic!r} is not cg/v1/fac/<facility>/down/<kind>")
    try:
        return m.group(1), DownKind(m.group(2))
    except ValueError:
        raise ContractError(f"unknown down kind {m.group(2)!r} in topic {topic!r}") from None
