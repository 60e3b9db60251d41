"""Ingest validation: a message from the broker checked against its topic and the contracts,
turned into an envelope with its typed body, or refused with a reason that names what was wrong."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Optional

from pydantic import ValidationError

from cloud.store.telemetry import TelemetryRow
from contracts.alarms import AlarmBody
from contracts.envelope import (
    CLIP_CHUNK_BYTES,
    MAX_TELEMETRY_POINTS,
    VALUE_MAX,
    ClipChunkBody,
    Envelope,
    SecurityEventBody,
    TelemetryBatch,
    check_envelope,
    check_origin_time,
    load_envelope_json,
)
from contracts.errors import ContractError, describe_validation_error
from contracts.ids import DEVICE_ID_RE, METRIC_NAME_RE
from contracts.topics import Stream, parse_up_topic

log = logging.getLogger("careguard.cloud.ingest")

# ContractError reasons are prose; counters need a small fixed set of keys.
_REASON_KEYS = (
    ("before its receipt", "ts_too_old"),
    ("after its receipt", "ts_ahead"),
    ("belongs to another facility", "alarm_facility_conflict"),
    ("store refused", "store_refused"),
    ("payload of", "oversized"),
    ("malformed JSON", "malformed_json"),
    ("must be a JSON object", "not_an_object"),
    ("invalid envelope", "invalid_envelope"),
    ("unknown message type", "unknown_type"),
    ("does not match topic facility", "facility_mismatch"),
    ("does not belong on stream", "wrong_stream"),
    ("body", "invalid_body"),
    ("topic", "bad_topic"),
    ("unknown stream", "bad_topic"),
)

def reason_key(reason: str) -> str:
    for needle, key in _REASON_KEYS:
        if needle in reason:
            return key
    return "other"


@dataclass
class Accepted:
    """A validated envelope with its typed body, where it came from, and how to acknowledge it."""
    env: Envelope
    topic: str = ""
    payload: bytes = b""
    alarm: Optional[AlarmBody] = None
    delivered_at: Optional[datetime] = None
    points: Optional[list[TelemetryRow]] = None
    clip: Optional[ClipChunkBody] = None
    clip_data: bytes = b""
    ack: Optional[Callable[[], None]] = None


# The shape every edge gateway sends. A point that fits it is checked with plain code (a
# pydantic model per point costs more than the rest of ingest); anything else goes through
# the contract's TelemetryBatch model, which either coerces it or names what is wrong.
_DEVICE_RE = re.compile(DEVICE_ID_RE)
_METRIC_RE = re.compile(METRIC_NAME_RE)
_TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)")
_POINT_KEYS = {"device_id", "metric", "value", "ts"}
_BATCH_KEYS = {"points", "zone"}


def _plain_points(facility: str, body: dict, received_at: datetime) -> Optional[list[TelemetryRow]]:
    """The batch's points if every one has the usual shape and valid values, else None.
    Raises ContractError for a point time out of bounds."""
    if not body.keys() <= _BATCH_KEYS or not isinstance(body.get("zone", ""), (str, type(None))):
        return None
    points = body.get("points")
    if type(points) is not list or not 1 <= len(points) <= MAX_TELEMETRY_POINTS:
        return None
    rows = []
    times: dict[str, datetime] = {}  # points of one batch mostly share their time
    for p in points:
        if type(p) is not dict or p.keys() != _POINT_KEYS:
            return None
        device, metric, value, ts = p["device_id"], p["metric"], p["value"], p["ts"]
        if (type(device) is not str or type(metric) is not str or type(ts) is not str
                or type(value) not in (float, int) or not -VALUE_MAX <= value <= VALUE_MAX
                or not _DEVICE_RE.fullmatch(device)
                or not _METRIC_RE.fullmatch(metric) or not _TS_RE.fullmatch(ts)):
            return None
        when = times.get(ts)
        if when is None:
            try:
                when = times[ts] = datetime.fromisoformat(ts)
            except ValueError:
                return None
            check_origin_time("telemetry point ts", when, received_at)
        rows.append(TelemetryRow(facility, device, metric, when, float(value)))
    return rows


def telemetry_rows(facility: str, body: dict, received_at: datetime) -> list[TelemetryRow]:
    """The points of a telemetry.batch body; raises ContractError naming what was wrong."""
    rows = _plain_points(facility, body, received_at)
    if rows is not None:
        return rows
    try:
        batch = TelemetryBatch.model_validate(body)
    except ValidationError as exc:
        raise ContractError(f"invalid telemetry.batch body: {describe_validation_error(exc)}") from None
    for p in batch.points:
        check_origin_time("telemetry point ts", p.ts, received_at)
    return [TelemetryRow(facility, p.device_id, p.metric, p.ts, p.value) for p in batch.points]


def _alarm(env: Envelope, item: Accepted, received_at: datetime) -> None:
    try:
        item.alarm = AlarmBody.model_validate(env.body)
    except ValidationError as exc:
        raise ContractError(f"invalid {env.type} body: {describe_validation_error(exc)}") from None
    if env.type == "alarm.delivered" and item.alarm.delivered_at is not None:
        try:
            item.delivered_at = datetime.fromisoformat(item.alarm.delivered_at.replace("Z", "+00:00"))
        except ValueError:
            raise ContractError(f"invalid alarm.delivered body: delivered_at {item.alarm.delivered_at!r} "
                                "is not an ISO 8601 time") from None
        if item.delivered_at.tzinfo is None:
            raise ContractError("invalid alarm.delivered body: delivered_at has no time zone")
        check_origin_time("alarm.delivered delivered_at", item.delivered_at, received_at)


def validate_message(topic: str, payload: bytes, received_at: datetime) -> Accepted:
    """The envelope on `topic`, validated against the topic's facility and stream and its times
    against `received_at` (the contracts' bounds); raises ContractError naming what was wrong.

    The envelope is checked as contracts.envelope.parse_envelope checks it; each body is
    validated once, by the code that also turns it into rows."""
    facility, stream = parse_up_topic(topic)
    env = check_envelope(load_envelope_json(payload), expect_facility=facility, expect_stream=stream)
    check_origin_time("envelope ts", env.ts, received_at)
    item = Accepted(env, topic, payload)
    if stream is Stream.ALARM:
        _alarm(env, item, received_at)
    elif env.type == "telemetry.batch":
        item.points = telemetry_rows(facility, env.body, received_at)
    elif env.type == "camera.clip":
        _clip(item)
    elif env.type == "event.security":
        try:
            SecurityEventBody.model_validate(env.body)
        except ValidationError as exc:
            raise ContractError(f"invalid {env.type} body: {describe_validation_error(exc)}") from None
    return item


def _clip(item: Accepted) -> None:
    """A clip chunk: its bytes go to the clip store encrypted; the envelope row keeps the rest."""
    try:
        body = ClipChunkBody.model_validate(item.env.body)
        data = base64.b64decode(body.data_b64, validate=True)
    except ValidationError as exc:
        raise ContractError(f"invalid camera.clip body: {describe_validation_error(exc)}") from None
    except (binascii.Error, ValueError):
        raise ContractError("invalid camera.clip body: data_b64 is not base64") from None
    if len(data) > CLIP_CHUNK_BYTES or len(data) > body.size:
        raise ContractError(f"invalid camera.clip body: chunk of {len(data)} bytes is larger than allowed")
    item.clip, item.clip_data = body.model_copy(update={"data_b64": ""}), data
    item.env = item.env.model_copy(update={"body": {**item.env.body, "data_b64": ""}})

