"""Alarm kinds, severities and states (DESIGN.md, Alarms)."""

from enum import Enum
from typing import Optional
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from contracts.ids import PLAIN_TEXT_RE, DeviceId


class AlarmKind(str, Enum):
    PANIC = "panic"
    INTRUSION = "intrusion"
    FIRE = "fire"
    TAMPER = "tamper"
    CAMERA_FAULT = "camera_fault"
    RETENTION_BREACH = "retention_breach"
    SENSOR_RANGE = "sensor_range"
    DEVICE_OFFLINE = "device_offline"
    GATEWAY_OFFLINE = "gateway_offline"
    POLICE_LINK_DOWN = "police_link_down"
    VIDEO_PLATFORM_DOWN = "video_platform_down"  # GB/T 28181: the gateway is not registered with the police video platform
    SYMPTOM_CLUSTER = "symptom_cluster"  # raised by the cloud's health rules, to the health role
    TEST = "test"


# Health supervision's alarms (climate, infectious disease): for the health role and the
# facility, not for the police board.
HEALTH_KINDS = frozenset({AlarmKind.SENSOR_RANGE, AlarmKind.SYMPTOM_CLUSTER})


class Severity(str, Enum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"


class AlarmState(str, Enum):
    ACTIVE = "active"
    CLEARED = "cleared"


DEFAULT_SEVERITY: dict[AlarmKind, Severity] = {
    AlarmKind.PANIC: Severity.CRITICAL,
    AlarmKind.FIRE: Severity.CRITICAL,
    AlarmKind.INTRUSION: Severity.MAJOR,
    AlarmKind.TAMPER: Severity.MAJOR,
    AlarmKind.CAMERA_FAULT: Severity.MAJOR,
    AlarmKind.RETENTION_BREACH: Severity.MAJOR,
    AlarmKind.POLICE_LINK_DOWN: Severity.CRITICAL,
    AlarmKind.VIDEO_PLATFORM_DOWN: Severity.MAJOR,
    AlarmKind.GATEWAY_OFFLINE: Severity.MAJOR,
    AlarmKind.DEVICE_OFFLINE: Severity.MINOR,
    AlarmKind.SENSOR_RANGE: Severity.WARNING,
    AlarmKind.SYMPTOM_CLUSTER: Severity.MAJOR,
    AlarmKind.TEST: Severity.WARNING,
}


class AlarmBody(BaseModel):
    """Body of `alarm.raised` / `alarm.cleared` / `alarm.delivered` envelopes.

    `alarm_id` is the identity both paths share: the DC-09 frame and the cloud copy of one
    alarm carry the same id, so the cloud can join them (dual path)."""

    model_config = ConfigDict(extra="forbid")

    alarm_id: UUID
    kind: AlarmKind
    severity: Severity
    source: str = Field(min_length=1, max_length=128, pattern=PLAIN_TEXT_RE,
                        description="device, camera or path the alarm is about")
    zone: Optional[str] = Field(default=None, max_length=64, pattern=PLAIN_TEXT_RE)
    device_id: Optional[DeviceId] = None
    state: AlarmState = AlarmState.ACTIVE
    detail: dict = Field(default_factory=dict)
    delivered_at: Optional[str] = Field(default=None, max_length=40,
                                        description="UTC time the police receiver ACKed (alarm.delivered)")
    receiver: Optional[str] = Field(default=None, max_length=128, pattern=PLAIN_TEXT_RE)
