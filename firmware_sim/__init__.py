"""Simulated devices on the gateway's local MQTT broker: one-button alarms and sensors with
injectable faults, and a Zigbee2MQTT bridge with off-the-shelf devices, so the system runs and
is tested without hardware."""

from firmware_sim.button import Button, PressResult
from firmware_sim.device_io import (BrokerUnreachable, DeviceLink, DeviceSpec, MqttLink, SensorFleet, connect_button,
                                    start_devices)
from firmware_sim.sensors import METRICS, AnalogueSensor, EventSensor, EventSensorKind, Fault, FaultKind
from firmware_sim.zigbee2mqtt import Z2MDeviceSpec, Z2MKind, Zigbee2MqttBridge, publish_click

__all__ = [
    "Button", "PressResult",
    "BrokerUnreachable", "DeviceLink", "DeviceSpec", "MqttLink", "SensorFleet", "connect_button", "start_devices",
    "METRICS", "AnalogueSensor", "EventSensor", "EventSensorKind", "Fault", "FaultKind",
    "Z2MDeviceSpec", "Z2MKind", "Zigbee2MqttBridge", "publish_click",
]
