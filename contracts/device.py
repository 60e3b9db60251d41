"""Messages on the gateway's local broker, between devices and the edge agent."""

from datetime import datetime
from enum import Enum
from typing import Optional
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.ids import DeviceId


class DeviceKind(str, Enum):
    """Every kind of device the product knows, one catalogue for simulators, edge and cloud."""
    PANIC_BUTTON = "panic_button"
    DOOR = "door"
    PIR = "pir"
    SMOKE = "smoke"
    TEMPERATURE = "temperature"
    HUMIDITY = "humidity"
    CO2 = "co2"
    SIREN = "siren"
    OTHER = "other"


class Metric(str, Enum):
    """Readings a sensor reports; the value names the unit people read it in."""
    TEMPERATURE = "temperature"
    HUMIDITY = "humidity"
    CO2 = "co2"


METRIC_UNITS: dict[Metric, str] = {Metric.TEMPERATURE: "°C", Metric.HUMIDITY: "%", Metric.CO2: "ppm"}
# Devices that report readings (one metric each, named like the kind) and ones that report events.
ANALOGUE_KINDS = frozenset({DeviceKind.TEMPERATURE, DeviceKind.HUMIDITY, DeviceKind.CO2})
EVENT_KINDS = frozenset({DeviceKind.SMOKE, DeviceKind.DOOR, DeviceKind.PIR})

# A device message is small; anything larger is a fault or an attack, refused before parsing.
MAX_DEVICE_PAYLOAD = 4096


class DeviceEventKind(str, Enum):
    PRESS = "press"
    LONG_PRESS = "long_press"
    RELEASE = "release"
    TAMPER = "tamper"
    TAMPER_RESTORE = "tamper_restore"
    DOOR_OPEN = "door_open"
    DOOR_CLOSE = "door_close"
    MOTION = "motion"
    SMOKE = "smoke"
    SMOKE_CLEAR = "smoke_clear"


class DeviceEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: UUID
    device_id: DeviceId
    ts: AwareDatetime
    event: DeviceEventKind
    seq: int = Field(default=0, ge=0)


class DeviceTelemetry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: UUID
    device_id: DeviceId
    ts: AwareDatetime
    readings: dict[str, float] = Field(max_length=32)
    battery_pct: Optional[float] = Field(default=None, ge=0, le=100)


class DeviceCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: UUID
    ts: datetime
    command: str = Field(pattern=r"^(siren_on|siren_off|latch_reset)$")
