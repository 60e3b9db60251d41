"""The edge agent's configuration: a TOML file validated at start-up.

A bad file stops the agent with a message naming the key and what was expected."""

from __future__ import annotations

import tomllib
from datetime import time as dtime
from enum import Enum
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts.errors import describe_validation_error
from contracts.ids import DEVICE_ID_RE, DeviceId, FacilityId
from wire.dc09 import AesKeyHex


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReceiverConfig(_Strict):
    host: str = Field(min_length=1, description="police alarm centre receiver (ARC) host")
    port: int = Field(ge=1, le=65535)

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


class PoliceConfig(_Strict):
    account: str = Field(pattern=r"^[0-9A-Fa-f]{3,16}$", description="DC-09 account number (hex, 3-16 digits)")
    protocol: Literal["SIA-DCS", "ADM-CID"] = "SIA-DCS"
    key: Optional[AesKeyHex] = Field(default=None, description="AES key in hex (16, 24 or 32 bytes); encryption off when unset")
    receiver_number: Optional[str] = Field(default=None, pattern=r"^[0-9A-Fa-f]{1,6}$", description="DC-09 'R' field")
    line_prefix: str = Field(default="0", pattern=r"^[0-9A-Fa-f]{1,6}$", description="DC-09 'L' field")
    receivers: list[ReceiverConfig] = Field(min_length=1, description="primary first, then backups")
    ack_timeout_s: float = Field(default=2.0, gt=0, le=60, description="wait for ACK/NAK before a retry")
    connect_timeout_s: float = Field(default=2.0, gt=0, le=60)
    supervision_interval_s: float = Field(default=10.0, gt=0, le=3600,
                                          description="NULL message period per path; a failed path is known within one period plus a timeout")
    retry_backoff_max_s: float = Field(default=2.0, gt=0, le=60, description="cap of the backoff between rounds over all receivers")

    @property
    def key_bytes(self) -> Optional[bytes]:
        return bytes.fromhex(self.key) if self.key else None


class ZoneKind(str, Enum):
    PANIC = "panic"          # 24-hour: never disarmed, latches until reset
    INTRUSION = "intrusion"  # armed by schedule or command
    FIRE = "fire"            # 24-hour
    ENVIRONMENT = "environment"  # sensors that report readings only


class ArmWindow(_Strict):
    """An intrusion zone is armed from `arm` to `disarm` (local time); it may cross midnight."""
    arm: dtime
    disarm: dtime


class ZoneConfig(_Strict):
    id: str = Field(pattern=DEVICE_ID_RE)
    number: int = Field(ge=1, le=999, description="zone number the police receiver sees (DC-09 zone)")
    name: str = ""
    kind: ZoneKind
    devices: list[DeviceId] = Field(default_factory=list)
    cameras: list[DeviceId] = Field(default_factory=list)
    schedule: list[ArmWindow] = Field(default_factory=list, description="intrusion zones: when armed")


class CameraConfig(_Strict):
    id: DeviceId
    source: str = Field(min_length=1, description="stream URL (rtsp://, http:// MJPEG) or a video file")
    children_area: bool = Field(default=True, description="covers a room children use (compliance counts these)")
    record: bool = Field(default=True, description="the recorder keeps this camera's footage")
    analysis_fps: float = Field(default=1.0, gt=0, le=10, description="health checks per second (on a small frame)")


class VideoConfig(_Strict):
    recordings_root: Path = Field(default=Path("var/recordings"),
                                  description="segments {root}/{camera}/{YYYY-MM-DD}/{HH-MM-SS}.{ext}, UTC")
    required_days: int = Field(default=90, ge=1, le=3650,
                               description="footage to keep: national 90 days; a city profile may say 30")
    segment_s: int = Field(default=60, ge=2, le=3600)
    offline_after_s: float = Field(default=20.0, gt=0, description="no frame for this long: camera offline")
    health_report_s: float = Field(default=10.0, gt=0, description="period of camera.health reports to the cloud")
    retention_check_s: float = Field(default=300.0, gt=0, description="period of the retention audit")
    index_path: Path = Field(default=Path("var/edge/segments.sqlite3"), description="the segment index (SQLite)")
    min_free_bytes: int = Field(default=2 * 1024**3, ge=0,
                                description="cleanup frees space down to this, deleting only footage past required_days")
    verify_bytes: int = Field(default=256 * 1024**2, ge=0, description="bytes re-hashed per check to catch altered footage")


class UplinkConfig(_Strict):
    broker: str = Field(description="the cloud's broker: mqtts://host:8883?cafile=CA&certfile=CERT&keyfile=KEY (TLS, "
                                    "the CA pinned, the gateway's certificate from its registration), or "
                                    "mqtt://[user:pass@]host:port on a trusted network")
    heartbeat_s: float = Field(default=10.0, gt=0, le=300)


class OutboxConfig(_Strict):
    path: Path = Field(default=Path("var/edge/outbox.sqlite3"), description="journal and outbox, one SQLite file")
    max_messages: int = Field(default=200_000, ge=100,
                              description="when full, the oldest telemetry goes first; alarms and events are never dropped")


class EdgeConfig(_Strict):
    facility_id: FacilityId
    jurisdiction: str = Field(default="CN", description="compliance profile, e.g. CN or CN-31")
    local_broker: str = Field(description="mqtt://host:port of the gateway's local broker (devices)")
    uplink: UplinkConfig
    police: PoliceConfig
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    zones: list[ZoneConfig] = Field(min_length=1)
    cameras: list[CameraConfig] = Field(default_factory=list)
    video: VideoConfig = Field(default_factory=VideoConfig)
    timezone: str = Field(default="Asia/Shanghai", description="for arming schedules")
    debounce_ms: int = Field(default=50, ge=0, le=5000, description="presses closer than this are contact bounce")

    @model_validator(mode="after")
    def _unique(self) -> "EdgeConfig":
        seen_dev: dict[str, str] = {}
        numbers: set[int] = set()
        ids: set[str] = set()
        for z in self.zones:
            if z.id in ids:
                raise ValueError(f"zones: zone id {z.id!r} appears twice")
            if z.number in numbers:
                raise ValueError(f"zones: zone number {z.number} appears twice")
            ids.add(z.id)
            numbers.add(z.number)
            for d in z.devices:
                if d in seen_dev:
                    raise ValueError(f"zones: device {d!r} is in both {seen_dev[d]!r} and {z.id!r}")
                seen_dev[d] = z.id
        cameras = {c.id for c in self.cameras}
        if len(cameras) != len(self.cameras):
            raise ValueError("cameras: a camera id appears twice")
        for z in self.zones:
            for c in z.cameras:
                if c not in cameras:
                    raise ValueError(f"zones: zone {z.id!r} names camera {c!r}, which is not in cameras")
        return self


class ConfigError(Exception):
    pass


def parse_config(data: dict, origin: str = "config") -> EdgeConfig:
    try:
        return EdgeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {describe_validation_error(exc)}") from None


def load_config(path: str | Path) -> EdgeConfig:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    return parse_config(data, str(p))
