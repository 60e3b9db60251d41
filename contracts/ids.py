"""Identifier formats. They also appear in MQTT topics, so they exclude '/', '+' and '#'."""

from typing import Annotated

from pydantic import StringConstraints

FACILITY_ID_RE = r"^[A-Za-z0-9_-]{1,32}$"
DEVICE_ID_RE = r"^[A-Za-z0-9_-]{1,64}$"

FacilityId = Annotated[str, StringConstraints(pattern=FACILITY_ID_RE)]
DeviceId = Annotated[str, StringConstraints(pattern=DEVICE_ID_RE)]
CameraId = DeviceId
# A metric name any device or bridge may send: lower-case and short (the telemetry store keys on it).
METRIC_NAME_RE = r"^[a-z][a-z0-9_]{0,31}$"
# Free text that reaches a column: no control characters (NUL above all: PostgreSQL text cannot hold it).
PLAIN_TEXT_RE = r"^[^\x00-\x1f\x7f]*$"
