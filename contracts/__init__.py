"""The messages, topics and codes shared by firmware_sim, edge and cloud (contract version 1)."""

from contracts.alarms import DEFAULT_SEVERITY, AlarmBody, AlarmKind, AlarmState, Severity
from contracts.device import DeviceEvent, DeviceEventKind, DeviceTelemetry
from contracts.envelope import CONTRACT_VERSION, Envelope, make_envelope, parse_envelope
from contracts.ids import DEVICE_ID_RE, FACILITY_ID_RE

__all__ = [
    "AlarmBody", "AlarmKind", "AlarmState", "Severity", "DEFAULT_SEVERITY",
    "DeviceEvent", "DeviceEventKind", "DeviceTelemetry",
    "CONTRACT_VERSION", "Envelope", "make_envelope", "parse_envelope",
    "FACILITY_ID_RE", "DEVICE_ID_RE",
]
