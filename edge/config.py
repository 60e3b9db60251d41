"""The edge agent's configuration: a TOML file validated at start-up.

A bad file stops the agent with a message naming the key and what was expected."""

from __future__ import annotations

import tomllib
from datetime import time as dtime
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contracts.errors import describe_validation_error
from contracts.ids import DEVICE_ID_RE, DeviceId, FacilityId
from wire.dc09 import AesKeyHex
from edge.device_mapping import (Z2M_PROFILES, AvailabilityTopic, CompiledField, FieldRule, Role, TopicMapping,
                                 check_name_segment, check_topic, compile_field)
from wire.envelope_signing import load_public_key


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReceiverConfig(_Strict):
    host: str = Field(min_length=1, description="police alarm centre receiver (ARC) host")
    port: int = Field(ge=1, le=65535)
    label: str = Field(default="", max_length=64,
                       description="the alarm centre's name as dispatchers and operators know it; default host:port")

    @property
    def name(self) -> str:
        """How the path is named in reports, heartbeats and deliveries."""
        return self.label or f"{self.host}:{self.port}"


class PoliceConfig(_Strict):
    account: str = Field(pattern=r"^[0-9A-Fa-f]{3,16}$", description="DC-09 account number (hex, 3-16 digits)")
    protocol: Literal["SIA-DCS", "ADM-CID"] = "SIA-DCS"
    key: Optional[AesKeyHex] = Field(default=None, description="AES key in hex (16, 24 or 32 bytes); encryption off when unset")
    receiver_number: Optional[str] = Field(default=None, pattern=r"^[0-9A-Fa-f]{1,6}$", description="DC-09 'R' field")
    line_prefix: str = Field(default="0", pattern=r"^[0-9A-Fa-f]{1,6}$", description="DC-09 'L' field")
    receivers: list[ReceiverConfig] = Field(min_length=1, description="primary first, then backups")

    @model_validator(mode="after")
    def _distinct_names(self) -> "PoliceConfig":
        names = [r.name for r in self.receivers]
        if len(set(names)) != len(names):
            raise ValueError("receivers: two receivers have the same name (label, or host:port)")
        return self
    ack_timeout_s: float = Field(default=2.0, gt=0, le=60, description="wait for ACK/NAK before a retry")
    connect_timeout_s: float = Field(default=2.0, gt=0, le=60)
    supervision_interval_s: float = Field(default=10.0, gt=0, le=3600,
                                          description="NULL message period per path; a failed path is known within one period plus a timeout")
    retry_backoff_max_s: float = Field(default=2.0, gt=0, le=60, description="cap of the backoff between rounds over all receivers")
    ack_clock_tolerance_s: float = Field(
        default=2.0, ge=0, le=30,
        description="an encrypted ACK may be this much (plus the 1 s resolution) older than the frame it answers, "
                    "on the receiver's clock as corrected by NAKs; older is a replayed ACK and refused")
    max_clock_offset_s: float = Field(
        default=3600.0, gt=0, le=86400,
        description="largest receiver clock offset a NAK may set; NAKs are never encrypted, so this bounds how far a "
                    "forged NAK can move the sender's clock")

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


GbId = Annotated[str, Field(pattern=r"^[0-9]{20}$", description="GB/T 28181 code: 20 digits")]


class CameraConfig(_Strict):
    id: DeviceId
    source: str = Field(min_length=1, description="stream analysed: URL (rtsp://, http:// MJPEG) or a video file; "
                                                  "for an RTSP camera, its sub-stream")
    record_source: Optional[str] = Field(default=None, min_length=1,
                                         description="stream recorded by copy (an RTSP camera's main stream); "
                                                     "default: source")
    transport: Literal["tcp", "udp"] = Field(default="tcp", description="RTSP transport for both streams")
    keyframes_only: bool = Field(default=False, description="analyse H.264/H.265 key frames only (far less CPU; "
                                                            "checks and snapshots at the key frame rate)")
    children_area: bool = Field(default=True, description="covers a room children use (compliance counts these)")
    record: bool = Field(default=True, description="the recorder keeps this camera's footage")
    analysis_fps: float = Field(default=1.0, gt=0, le=10, description="health checks per second (on a small frame)")
    gb_id: Optional[GbId] = Field(default=None, description="GB/T 28181 channel code on the police video platform; "
                                                            "cameras without one are not networked with the police")
    gb_name: Optional[str] = Field(default=None, max_length=64, description="name in the platform's catalogue (id if unset)")


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
    clip_before_s: float = Field(default=30.0, ge=0, le=600, description="alarm clips start this long before the alarm")
    clip_after_s: float = Field(default=30.0, ge=1, le=600, description="and end this long after it")
    clip_max_bytes: int = Field(default=20 * 1024**2, ge=64 * 1024, le=512 * 1024**2,
                                description="cap on one camera's clip of one alarm (made smaller, then truncated)")
    live_max_fps: float = Field(default=5.0, gt=0, le=10, description="live view frames per second, at most")
    live_max_kbps: float = Field(default=4000.0, gt=0, description="live view bandwidth of all cameras together")


def _valid_public_key(v: Optional[str]) -> Optional[str]:
    if v is not None:
        load_public_key(v)
    return v


# A gateway's telemetry pace to the cloud: half the cloud's default per-facility rate, and a
# sixth of its burst, so live batches (one a second) and a backlog together stay within both.
DEFAULT_TELEMETRY_PER_S = 5.0
DEFAULT_TELEMETRY_BURST = 600


class UplinkConfig(_Strict):
    broker: str = Field(description="the cloud's broker: mqtts://host:8883?cafile=CA&certfile=CERT&keyfile=KEY (TLS, "
                                    "the CA pinned, the gateway's certificate from its registration), or "
                                    "mqtt://[user:pass@]host:port on a trusted network; a cluster's nodes as "
                                    "host1:port,host2:port,... (the next one is tried whenever a connection fails)")
    heartbeat_s: float = Field(default=10.0, gt=0, le=300)
    cloud_public_key: Annotated[Optional[str], AfterValidator(_valid_public_key)] = Field(
        default=None, description="the cloud's command signing key (64 hex digits, `careguard cloud --public-key`); "
                                  "every down command must carry its signature. Unset: every down command is refused")
    command_window_s: float = Field(default=120.0, gt=0, le=3600,
                                    description="a down command signed further than this from the gateway's clock is refused")
    telemetry_per_s: float = Field(default=DEFAULT_TELEMETRY_PER_S, gt=0, le=1000,
                                   description="telemetry envelopes a second the outbox sends at most (alarms, events and "
                                               "status never wait): under the cloud's per-facility rate "
                                               "(facility_rate_per_s, 10), so the backlog after an outage is paced "
                                               "through instead of throttled away there")
    telemetry_burst: int = Field(default=DEFAULT_TELEMETRY_BURST, ge=1, le=100_000,
                                 description="telemetry envelopes sent at once before that pace applies (within the "
                                             "cloud's facility_burst, 3,600)")


class OutboxConfig(_Strict):
    path: Path = Field(default=Path("var/edge/outbox.sqlite3"), description="journal and outbox, one SQLite file")
    media: Optional[Path] = Field(default=None, description="alarm clip chunks on their way to the cloud, a file "
                                                            "of their own (default: beside `path`, -media)")
    max_messages: int = Field(default=200_000, ge=100,
                              description="when full, the oldest telemetry goes first; alarms and events are never dropped")

    @property
    def media_path(self) -> Path:
        return self.media or self.path.with_name(self.path.stem + "-media" + self.path.suffix)


class GbConfig(_Strict):
    """The gateway as a GB/T 28181 device on the police video platform (公安视频图像信息联网)."""
    platform_id: GbId = Field(description="the platform's SIP server code (type 200)")
    platform_domain: str = Field(pattern=r"^[0-9]{10}$", description="the platform's domain: 10 digits, its code's first 10")
    platform_host: str = Field(min_length=1)
    platform_port: int = Field(default=5060, ge=1, le=65535)
    device_id: GbId = Field(description="this gateway's code on the platform")
    password: str = Field(min_length=1, max_length=128, description="SIP digest password the platform gave this device")
    transport: Literal["udp", "tcp"] = "udp"
    local_ip: Optional[str] = Field(default=None, description="address the platform reaches the gateway at; the route's own if unset")
    local_port: int = Field(default=5060, ge=0, le=65535, description="SIP port (0: any free one)")
    keepalive_s: float = Field(default=60.0, gt=0, le=3600, description="Keepalive MESSAGE period (GB/T 28181 9.6.1: 60)")
    keepalive_misses: int = Field(default=3, ge=1, le=10, description="unanswered keepalives in a row before the platform counts as lost")
    register_expires_s: int = Field(default=3600, ge=60, le=86400, description="REGISTER Expires; renewed at 3/4 of it")
    register_retry_max_s: float = Field(default=60.0, gt=0, le=3600, description="cap of the backoff between failed registrations")
    response_timeout_s: float = Field(default=8.0, gt=0, le=64, description="wait for the platform's answer to one request")
    max_streams: int = Field(default=4, ge=1, le=64, description="live streams to the platform at once")
    stream_fps: int = Field(default=25, ge=1, le=60)
    name: str = Field(default="CareGuard gateway", max_length=64, description="DeviceName in DeviceInfo")

    @model_validator(mode="after")
    def _codes(self) -> "GbConfig":
        if self.platform_id == self.device_id:
            raise ValueError("device_id: the same as platform_id")
        return self


def _compile_fields(rules: dict[Role, FieldRule]) -> tuple[CompiledField, ...]:
    return tuple(compile_field(role, rule) for role, rule in rules.items())


class Zigbee2MqttDevice(_Strict):
    """A device behind Zigbee2MQTT, read from `<base_topic>/<friendly_name>` and its `/availability`."""
    friendly_name: str = Field(max_length=200, description="the device's friendly_name in Zigbee2MQTT (may contain '/')")
    device_id: DeviceId = Field(description="CareGuard's id for the device (alarms, telemetry)")
    zone: Optional[str] = Field(default=None, description="the zone it belongs to (or list device_id in the zone's devices)")
    profile: str = Field(description=f"built-in mapping of its exposes: {', '.join(Z2M_PROFILES)}")
    fields: dict[Role, FieldRule] = Field(default_factory=dict,
                                          description="per role, a field that overrides or adds to the profile's")

    @field_validator("friendly_name")
    @classmethod
    def _topic_part(cls, v: str) -> str:
        check_name_segment(v)
        last = v.rsplit("/", 1)[-1]
        if v == "bridge" or v.startswith("bridge/") or last in ("availability", "set", "get") or (
                "/" in v and last.isdigit()):
            raise ValueError(f"{v!r} collides with Zigbee2MQTT's own topics (or its endpoint names)")
        return v

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, v: str) -> str:
        if v not in Z2M_PROFILES:
            raise ValueError(f"unknown profile {v!r}: expected one of {', '.join(Z2M_PROFILES)}")
        return v

    @model_validator(mode="after")
    def _fields_fit(self) -> "Zigbee2MqttDevice":
        self.compiled_fields()
        return self

    def compiled_fields(self) -> tuple[CompiledField, ...]:
        return _compile_fields({**Z2M_PROFILES[self.profile], **self.fields})


class Zigbee2MqttConfig(_Strict):
    base_topic: str = Field(default="zigbee2mqtt", max_length=64, description="Zigbee2MQTT's mqtt.base_topic")
    devices: list[Zigbee2MqttDevice] = Field(default_factory=list)

    _base_topic = field_validator("base_topic")(check_name_segment)

    def state_topic(self, d: Zigbee2MqttDevice) -> str:
        return f"{self.base_topic}/{d.friendly_name}"

    @property
    def bridge_state_topic(self) -> str:
        return f"{self.base_topic}/bridge/state"


class MqttDevice(_Strict):
    """A device of another bridge (Tasmota, Home Assistant MQTT devices) that publishes JSON, or a
    plain value, on a topic. A device with several topics has one entry per topic."""
    device_id: DeviceId = Field(description="CareGuard's id for the device")
    zone: Optional[str] = Field(default=None, description="the zone it belongs to (or list device_id in the zone's devices)")
    topic: str = Field(description="where it publishes its state, e.g. tele/<name>/SENSOR")
    fields: dict[Role, FieldRule] = Field(min_length=1, description="per role, where its value is and how it reads")
    availability_topic: Optional[str] = Field(default=None,
                                              description="online/offline topic, e.g. Tasmota's tele/<name>/LWT")
    payload_online: str = Field(default="online", min_length=1, max_length=64, description="Tasmota: Online")
    payload_offline: str = Field(default="offline", min_length=1, max_length=64, description="Tasmota: Offline")

    _topics = field_validator("topic", "availability_topic")(lambda v: v if v is None else check_topic(v))

    @model_validator(mode="after")
    def _fields_fit(self) -> "MqttDevice":
        self.compiled_fields()
        return self

    def compiled_fields(self) -> tuple[CompiledField, ...]:
        return _compile_fields(self.fields)


class DeviceAuthConfig(_Strict):
    """Devices log in to the local broker with their own credentials and may publish only their
    own topics; `careguard edge provision` writes the broker's files and the credentials here."""
    dir: Path = Field(default=Path("var/edge/broker"),
                      description="password file (Mosquitto), ACL and the credentials (secrets.json, mode 0600)")
    edge_username: str = Field(default="careguard-edge", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                               description="the agent's own login; it reads every device topic")
    bridge_username: str = Field(default="zigbee2mqtt", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                                 description="Zigbee2MQTT's login, limited to its base topic")


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
    gb28181: Optional[GbConfig] = Field(default=None, description="GB/T 28181 video networking with the police; off when unset")
    timezone: str = Field(default="Asia/Shanghai", description="for arming schedules")
    debounce_ms: int = Field(default=50, ge=0, le=5000, description="presses closer than this are contact bounce")
    zigbee2mqtt: Zigbee2MqttConfig = Field(default_factory=Zigbee2MqttConfig,
                                           description="off-the-shelf Zigbee devices through Zigbee2MQTT")
    mqtt_devices: list[MqttDevice] = Field(default_factory=list,
                                           description="devices of other bridges, mapped from their JSON")
    device_auth: Optional[DeviceAuthConfig] = Field(default=None,
                                                    description="per-device credentials and ACL on the local broker")

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
        self._place_mapped_devices(seen_dev)
        cameras = {c.id for c in self.cameras}
        if len(cameras) != len(self.cameras):
            raise ValueError("cameras: a camera id appears twice")
        for z in self.zones:
            for c in z.cameras:
                if c not in cameras:
                    raise ValueError(f"zones: zone {z.id!r} names camera {c!r}, which is not in cameras")
        gb_ids = [c.gb_id for c in self.cameras if c.gb_id]
        if len(set(gb_ids)) != len(gb_ids):
            raise ValueError("cameras: a gb_id appears twice")
        if self.gb28181 is not None and self.gb28181.device_id in gb_ids:
            raise ValueError("cameras: a gb_id is the gateway's own gb28181.device_id")
        return self

    def _place_mapped_devices(self, zone_of: dict[str, str]) -> None:
        """A mapped device names its zone or is listed in one; either way it ends up in exactly one."""
        zones = {z.id: z for z in self.zones}
        z2m_ids = [d.device_id for d in self.zigbee2mqtt.devices]
        if len(set(z2m_ids)) != len(z2m_ids):
            raise ValueError("zigbee2mqtt.devices: a device_id appears twice")
        names = [d.friendly_name for d in self.zigbee2mqtt.devices]
        if len(set(names)) != len(names):
            raise ValueError("zigbee2mqtt.devices: a friendly_name appears twice")
        topics = [m.topic for m in self.mqtt_devices]
        if len(set(topics)) != len(topics):
            raise ValueError("mqtt_devices: a topic appears twice (one entry per topic; several fields per entry)")
        for section, entries in (("zigbee2mqtt.devices", self.zigbee2mqtt.devices), ("mqtt_devices", self.mqtt_devices)):
            for e in entries:
                if section == "mqtt_devices" and e.device_id in z2m_ids:
                    raise ValueError(f"mqtt_devices: device {e.device_id!r} is also in zigbee2mqtt.devices")
                if section == "mqtt_devices" and (e.topic + "/").startswith(self.zigbee2mqtt.base_topic + "/"):
                    raise ValueError(f"mqtt_devices: topic {e.topic!r} is under zigbee2mqtt's base topic")
                if e.zone is not None:
                    if e.zone not in zones:
                        raise ValueError(f"{section}: device {e.device_id!r} names zone {e.zone!r}, which is not in zones")
                    placed = zone_of.setdefault(e.device_id, e.zone)
                    if placed != e.zone:
                        raise ValueError(f"{section}: device {e.device_id!r} is in both {placed!r} and {e.zone!r}")
                    if e.device_id not in zones[e.zone].devices:
                        zones[e.zone].devices.append(e.device_id)
                elif e.device_id not in zone_of:
                    raise ValueError(f"{section}: device {e.device_id!r} is in no zone: give it zone = \"...\" "
                                     "or list it in a zone's devices")
        avail: dict[str, str] = {}
        for m in self.mqtt_devices:
            if m.availability_topic and avail.setdefault(m.availability_topic, m.device_id) != m.device_id:
                raise ValueError(f"mqtt_devices: availability_topic {m.availability_topic!r} belongs to two devices")
        auth = self.device_auth or DeviceAuthConfig()  # `careguard edge provision` uses the defaults too
        for user in (auth.edge_username, auth.bridge_username):
            if user in zone_of:
                raise ValueError(f"device_auth: username {user!r} is also a device id")

    def mapped_devices(self) -> set[str]:
        """Devices read through a mapping table, not CareGuard's own device topics."""
        return {d.device_id for d in self.zigbee2mqtt.devices} | {m.device_id for m in self.mqtt_devices}

    def native_devices(self) -> set[str]:
        """Devices that speak CareGuard's contract on cg/dev/{device_id}/..."""
        return {d for z in self.zones for d in z.devices} - self.mapped_devices()

    def state_topics(self) -> list[TopicMapping]:
        z2m = self.zigbee2mqtt
        return ([TopicMapping(z2m.state_topic(d), d.device_id, d.compiled_fields()) for d in z2m.devices]
                + [TopicMapping(m.topic, m.device_id, m.compiled_fields()) for m in self.mqtt_devices])

    def availability_topics(self) -> list[AvailabilityTopic]:
        z2m = self.zigbee2mqtt
        out = [AvailabilityTopic(z2m.state_topic(d) + "/availability", (d.device_id,), json_state=True)
               for d in z2m.devices]
        if z2m.devices:
            out.append(AvailabilityTopic(z2m.bridge_state_topic, tuple(d.device_id for d in z2m.devices),
                                         bridge=True, json_state=True))
        seen = set()
        for m in self.mqtt_devices:
            if m.availability_topic and m.availability_topic not in seen:
                seen.add(m.availability_topic)
                out.append(AvailabilityTopic(m.availability_topic, (m.device_id,), m.payload_online, m.payload_offline))
        return out


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
