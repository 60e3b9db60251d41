"""The JSON envelope every uplink and downlink message travels in (DESIGN.md, Envelope).

`ts` is the time of the fact at its origin, never the time of delivery.

Bounds: every number and time a message carries fits what the stores hold, so a message the
store cannot write is refused at the door, named, instead of failing inside a transaction:
- `seq` in [0, SEQ_MAX], a signed 63-bit integer (PostgreSQL bigint, SQLite INTEGER);
- every time of origin (`ts`, telemetry points' `ts`, `delivered_at`) within
  [received − MAX_AGE, received + MAX_AHEAD] of the receiver's clock (`check_origin_time`):
  older than a buffered gateway can hold, or later than clock skew allows, is refused;
- telemetry values finite and within ±VALUE_MAX; retention days within a century;
- free-text fields bounded in length, with no NUL (PostgreSQL text cannot hold one)."""

import uuid
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal, Optional
from uuid import UUID

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_serializer, model_validator

from contracts.alarms import AlarmBody
from contracts.errors import ContractError, describe_validation_error
from contracts.ids import METRIC_NAME_RE, DeviceId, FacilityId
from contracts.timefmt import iso_utc, utcnow
from contracts.topics import Stream

CONTRACT_VERSION = 1
# Snapshots (base64 JPEG) are the largest bodies; anything beyond this is refused unparsed.
MAX_ENVELOPE_BYTES = 512 * 1024
MAX_TELEMETRY_POINTS = 5000
SEQ_MAX = 2**63 - 1
MAX_AGE = timedelta(days=400)
MAX_AHEAD = timedelta(minutes=5)
VALUE_MAX = 1e15

# Which stream each message type travels on; a type outside this table is refused.
TYPE_STREAM: dict[str, Stream] = {
    "alarm.raised": Stream.ALARM,
    "alarm.cleared": Stream.ALARM,
    "alarm.delivered": Stream.ALARM,
    "event.device": Stream.EVENT,
    "event.arming": Stream.EVENT,
    "event.latch_reset": Stream.EVENT,
    "event.device_status": Stream.EVENT,
    "event.security": Stream.EVENT,
    "telemetry.batch": Stream.TELEMETRY,
    "camera.health": Stream.CAMERA,
    "camera.snapshot": Stream.CAMERA,
    "camera.clip": Stream.CAMERA,
    "retention.report": Stream.RETENTION,
    "heartbeat": Stream.HEARTBEAT,
    "status.gateway": Stream.STATUS,
}


class DownType(str, Enum):
    """Cloud-to-gateway envelope types."""
    ACK_ALARM = "ack.alarm"
    ARM_SET = "arm.set"
    CONFIG_UPDATE = "config.update"
    LIVE_VIEW = "live.view"


DOWN_TYPES = tuple(t.value for t in DownType)


class AlarmAckBody(BaseModel):
    """`ack.alarm`: the police acknowledged one of the facility's alarms."""
    model_config = ConfigDict(extra="forbid")

    alarm_id: UUID
    acked_by: str = Field(max_length=128)
    acked_at: AwareDatetime

    @field_serializer("acked_at")
    def _acked_at(self, ts: datetime) -> str:
        return iso_utc(ts)


class ZoneAction(str, Enum):
    TEST = "test"  # a drill
    RESET = "reset"
    ARM = "arm"
    DISARM = "disarm"
    SCHEDULE = "schedule"


class ZoneRefusal(str, Enum):
    """Why a gateway refused a zone command (`refused_key` of its `event.arming`, with the values
    named here in `refused_params`; `refused` keeps the English text): pages word it in their
    language, so a key once sent keeps its meaning."""
    UNKNOWN_ZONE = "arming.unknown_zone"  # zone
    NOT_LATCHED = "arming.not_latched"  # zone: a reset of a zone that is not latched
    CANNOT_DISARM = "arming.cannot_disarm"  # zone, zone_kind: a 24-hour zone (panic, fire)
    NO_ARMING = "arming.no_arming"  # zone, zone_kind: a zone that only reports (environment)
    UNKNOWN_ACTION = "arming.unknown_action"  # action
    UNKNOWN_DEVICE = "arming.unknown_device"  # device: an event from a device in no zone (logged only)


class ArmSetBody(BaseModel):
    """`arm.set`: arm, disarm, reset or drill one zone of the gateway."""
    model_config = ConfigDict(extra="forbid")

    action: ZoneAction
    zone: DeviceId
    by: str = Field(default="cloud", max_length=128)


class SecurityKind(str, Enum):
    """What a gateway refused because it could not be trusted."""
    DC09_REPLY_REFUSED = "dc09_reply_refused"  # a police receiver's reply that proves nothing (replayed, plain, mismatched)
    COMMAND_REFUSED = "command_refused"  # a down command unsigned, wrongly signed, stale, replayed or for another facility


class SecurityEventBody(BaseModel):
    """`event.security`: refusals of this kind from this source since the previous report.

    A gateway under attack reports at most one per kind and source per interval, with `count`."""
    model_config = ConfigDict(extra="forbid")

    kind: SecurityKind
    source: str = Field(max_length=128, description="police receiver host:port, or the down topic")
    reason: str = Field(max_length=512, description="the latest refusal's reason")
    count: int = Field(ge=1, le=2**31 - 1, description="refusals folded into this report")
    first_at: AwareDatetime

    @field_serializer("first_at")
    def _first_at(self, ts: datetime) -> str:
        return iso_utc(ts)


class LiveViewBody(BaseModel):
    """`live.view`: stream one camera to the cloud until `until` (renewed while someone watches)."""
    model_config = ConfigDict(extra="forbid")

    camera_id: DeviceId
    until: AwareDatetime
    fps: float = Field(default=2.0, gt=0, le=10)
    by: str = Field(default="cloud", max_length=128)

    @field_serializer("until")
    def _until(self, ts: datetime) -> str:
        return iso_utc(ts)


# A clip travels in chunks small enough for one envelope each (base64 grows them by a third).
CLIP_CHUNK_BYTES = 256 * 1024
MAX_CLIP_CHUNKS = 400


class MissingSpan(BaseModel):
    """Part of the clip's window with no footage (the camera was offline, or not recording)."""
    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime
    end: AwareDatetime

    @field_serializer("start", "end")
    def _ts(self, ts: datetime) -> str:
        return iso_utc(ts)


class ClipChunkBody(BaseModel):
    """`camera.clip`: one chunk of an alarm's video clip (MP4, faststart) of one camera."""
    model_config = ConfigDict(extra="forbid")

    clip_id: uuid.UUID
    alarm_id: uuid.UUID
    camera_id: DeviceId
    index: int = Field(ge=0, lt=MAX_CLIP_CHUNKS)
    count: int = Field(ge=1, le=MAX_CLIP_CHUNKS)
    window_start: AwareDatetime = Field(description="the clip was asked to cover from here")
    window_end: AwareDatetime
    start: Optional[AwareDatetime] = Field(default=None, description="first footage in the clip; none: no footage")
    end: Optional[AwareDatetime] = None
    missing: list[MissingSpan] = Field(default_factory=list, max_length=100)
    size: int = Field(ge=0, le=MAX_CLIP_CHUNKS * CLIP_CHUNK_BYTES, description="bytes of the whole clip")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the whole clip")
    transcoded: bool = Field(description="re-encoded to H.264 (the source codec does not play in a browser)")
    truncated: bool = Field(default=False, description="cut short by the per-alarm size cap")
    data_b64: str = Field(default="", max_length=CLIP_CHUNK_BYTES * 4 // 3 + 4)

    @field_serializer("window_start", "window_end", "start", "end")
    def _ts(self, ts: Optional[datetime]) -> Optional[str]:
        return iso_utc(ts) if ts is not None else None

    @model_validator(mode="after")
    def _consistent(self) -> "ClipChunkBody":
        if self.index >= self.count:
            raise ValueError(f"index {self.index} is not below count {self.count}")
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self


class TelemetryPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: DeviceId
    metric: str = Field(pattern=METRIC_NAME_RE)
    value: float = Field(ge=-VALUE_MAX, le=VALUE_MAX, allow_inf_nan=False)
    ts: AwareDatetime

    @field_serializer("ts")
    def _ts(self, ts: datetime) -> str:
        return iso_utc(ts)


class TelemetryBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zone: Optional[str] = None
    points: list[TelemetryPoint] = Field(min_length=1, max_length=MAX_TELEMETRY_POINTS)


class CameraHealthItem(BaseModel):
    """One camera's health numbers (Frigate-like); more fields may follow these."""
    model_config = ConfigDict(extra="allow")

    camera_id: DeviceId
    state: str = Field(description="connecting, streaming, stalled or stopped")
    fault: Optional[str] = Field(default=None, description="offline, frozen, covered, defocused, displaced")


class CameraHealthBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    cameras: list[CameraHealthItem]


class RetentionCameraItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    camera_id: DeviceId
    achieved_days: float = Field(ge=0, le=36_500)
    compliant: bool


class RetentionReportBody(BaseModel):
    """What the compliance rules read of a gateway's retention audit; the full audit rides along."""
    model_config = ConfigDict(extra="allow")

    required_days: float = Field(gt=0, le=36_500)
    cameras: list[RetentionCameraItem]


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = CONTRACT_VERSION
    id: uuid.UUID
    facility: FacilityId
    source: Literal["edge", "cloud", "device", "sim"]
    type: str = Field(pattern=r"^[a-z_]+(\.[a-z_]+)?$")
    ts: AwareDatetime
    seq: int = Field(ge=0, le=SEQ_MAX)
    body: dict[str, Any] = Field(default_factory=dict)
    sig: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9_-]{86}$",
                               description="down commands: the cloud's Ed25519 signature of signed_bytes(), base64url")

    @field_serializer("ts")
    def _ts(self, ts: datetime) -> str:
        return iso_utc(ts)

    @property
    def stream(self) -> Stream:
        return TYPE_STREAM[self.type]

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude=None if self.sig else {"sig"}).encode()

    def signed_bytes(self) -> bytes:
        """What a signature covers: every field but `sig`, as JSON with sorted keys, so the bytes a
        receiver rebuilds from the parsed envelope are the bytes the sender signed."""
        return orjson.dumps(self.model_dump(mode="json", exclude={"sig"}), option=orjson.OPT_SORT_KEYS)


_BODY_MODELS: dict[str, type[BaseModel]] = {
    "alarm.raised": AlarmBody,
    "alarm.cleared": AlarmBody,
    "alarm.delivered": AlarmBody,
    "telemetry.batch": TelemetryBatch,
    "camera.health": CameraHealthBody,
    "retention.report": RetentionReportBody,
    "event.security": SecurityEventBody,
    "camera.clip": ClipChunkBody,
}


def make_envelope(facility: str, type_: str, body: dict | BaseModel, *, seq: int = 0,
                  source: str = "edge", ts: datetime | None = None, id_: uuid.UUID | None = None) -> Envelope:
    if isinstance(body, BaseModel):
        body = body.model_dump(mode="json")
    return Envelope(id=id_ or uuid.uuid4(), facility=facility, source=source, type=type_,
                    ts=ts or utcnow(), seq=seq, body=body)


def check_origin_time(what: str, ts: datetime, received_at: datetime) -> None:
    """Raise ContractError unless `ts` (a time of origin) lies within the bounds above of `received_at`."""
    if ts < received_at - MAX_AGE:
        raise ContractError(f"{what} {iso_utc(ts)} is more than {MAX_AGE.days} days before its receipt")
    if ts > received_at + MAX_AHEAD:
        raise ContractError(f"{what} {iso_utc(ts)} is more than {int(MAX_AHEAD.total_seconds())} s after its "
                            "receipt (a clock ahead, or a forged time)")


def load_envelope_json(payload: bytes | str) -> dict:
    """The JSON object of an envelope, size-checked; raises ContractError naming what was wrong.
    orjson: fast, and strict JSON (no NaN, which PostgreSQL's json refuses)."""
    if len(payload) > MAX_ENVELOPE_BYTES:
        raise ContractError(f"payload of {len(payload)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise ContractError(f"malformed JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ContractError("envelope must be a JSON object")
    return raw


def check_envelope(raw: dict, *, expect_facility: str | None = None,
                   expect_stream: Stream | None = None) -> Envelope:
    """The envelope's own fields, its type, and its agreement with the topic (body not checked).

    The topic's facility and stream must agree with the envelope, so a gateway cannot
    write on behalf of another facility even where the broker's ACL is missing."""
    try:
        env = Envelope.model_validate(raw)
    except ValidationError as exc:
        raise ContractError(f"invalid envelope: {describe_validation_error(exc)}") from None
    if env.type not in TYPE_STREAM and env.type not in DOWN_TYPES:
        raise ContractError(f"unknown message type {env.type!r}")
    if expect_facility is not None and env.facility != expect_facility:
        raise ContractError(f"envelope facility {env.facility!r} does not match topic facility {expect_facility!r}")
    if expect_stream is not None and TYPE_STREAM.get(env.type) != expect_stream:
        raise ContractError(f"message type {env.type!r} does not belong on stream {expect_stream.value!r}")
    return env


def parse_envelope(payload: bytes | str, *, expect_facility: str | None = None,
                   expect_stream: Stream | None = None) -> Envelope:
    """Validate raw bytes into an Envelope, body included, or raise ContractError naming what was wrong."""
    env = check_envelope(load_envelope_json(payload), expect_facility=expect_facility, expect_stream=expect_stream)
    body_model = _BODY_MODELS.get(env.type)
    if body_model is not None:
        try:
            body_model.model_validate(env.body)
        except ValidationError as exc:
            raise ContractError(f"invalid {env.type} body: {describe_validation_error(exc)}") from None
    return env
