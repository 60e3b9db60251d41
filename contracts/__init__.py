"""The messages, topics and codes shared by firmware_sim, edge and cloud (contract version 1)."""

from contracts.alarms import AlarmBody, AlarmKind, AlarmState, Severity, DEFAULT_SEVERITY
from contracts.device import DeviceEvent, DeviceEventKind, DeviceTelemetry
from contracts.envelope import CONTRACT_VERSION, Envelope, make_envelope, parse_envelope
from contracts.ids import FACILITY_ID_RE, DEVICE_ID_RE

__all__ = [
    "AlarmBody", "AlarmKind", "AlarmState", "Severity", "DEFAULT_SEVERITY",
    "DeviceEvent", "DeviceEventKind", "DeviceTelemetry",
    "CONTRACT_VERSION", "Envelope", "make_envelope", "parse_envelope",
    "FACILITY_ID_RE", "DEVICE_ID_RE",
]
