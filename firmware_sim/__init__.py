"""Simulated devices on the gateway's local MQTT broker: one-button alarms and sensors with
injectable faults, so the system runs and is tested without hardware."""

from firmware_sim.button import Button, PressResult
from firmware_sim.device_io import (BrokerUnreachable, DeviceLink, DeviceSpec, SensorFleet, connect_button,
                                    start_devices)
from firmware_sim.sensors import METRICS, AnalogueSensor, EventSensor, EventSensorKind, Fault, FaultKind

__all__ = [
    "Button", "PressResult",
    "BrokerUnreachable", "DeviceLink", "DeviceSpec", "SensorFleet", "connect_button", "start_devices",
    "METRICS", "AnalogueSensor", "EventSensor", "EventSensorKind", "Fault", "FaultKind",
]
