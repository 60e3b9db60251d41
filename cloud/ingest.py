"""Cloud ingest: uplink envelopes from the MQTT broker into the relational and telemetry stores.

Two parts. `IngestConsumer` owns the MQTT session: it validates each message against its
topic and hands it on, rejecting bad input with a counted reason. `IngestWriter` is a single
thread that drains a queue and writes everything waiting in one transaction, so a burst costs
one commit while a lone alarm is written at once (it never waits for a batch to fill).

Nothing is lost across a cloud restart: the session is persistent (3.1.1 clean_session=False,
or v5 session expiry), subscriptions are QoS 1, and a message is acknowledged to the broker
only after its transaction committed (cloud.mqtt_session, acks released per commit). A crash in between means the broker
sends it again, and the envelope id makes the second write a counted duplicate. Several
workers (processes, see cloud.ingest_workers) may share one subscription: the envelope
primary key, inserted with ON CONFLICT DO NOTHING, decides which of them stores an envelope."""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Optional

import orjson
from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from cloud import bulk
from cloud.alarms import AlarmConflict, AlarmRecord, apply_alarm_envelope, get_alarms
from cloud.db import envelopes, gateways
from cloud.mqtt_session import MqttSession
from cloud.telemetry_store import RelationalTelemetryStore, TelemetryRow, TelemetryStore, sqlite_ts
from contracts.alarms import AlarmBody
from contracts.envelope import (MAX_ENVELOPE_BYTES, MAX_TELEMETRY_POINTS, Envelope, TelemetryBatch, check_envelope,
                                load_envelope_json)
from contracts.errors import ContractError, describe_validation_error
from contracts.timefmt import utcnow
from contracts.topics import SHARED_INGEST, UP_WILDCARD, Stream, parse_up_topic

log = logging.getLogger("careguard.cloud.ingest")

# ContractError reasons are prose; counters need a small fixed set of keys.
_REASON_KEYS = (
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
    ("belongs to another facility", "alarm_facility_conflict"),
)

# Transient failures of a store: the batch is worth delivering again, unlike a poison message.
_TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


def reason_key(reason: str) -> str:
    for needle, key in _REASON_KEYS:
        if needle in reason:
            return key
    return "other"


@dataclass
class Accepted:
    """A validated envelope with its typed body, and how to acknowledge it to the broker."""
    env: Envelope
    alarm: Optional[AlarmBody] = None
    delivered_at: Optional[datetime] = None
    points: Optional[list[TelemetryRow]] = None
    ack: Optional[Callable[[], None]] = None


# The shape every edge gateway sends. A point that fits it is checked with plain code (a
# pydantic model per point costs more than the rest of ingest); anything else goes through
# the contract's TelemetryBatch model, which either coerces it or names what is wrong.
_DEVICE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_METRIC_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)")
_POINT_KEYS = {"device_id", "metric", "value", "ts"}
_BATCH_KEYS = {"points", "zone"}


def _plain_points(facility: str, body: dict) -> Optional[list[TelemetryRow]]:
    """The batch's points if every one has the usual shape and valid values, else None."""
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
                or type(value) not in (float, int) or not _DEVICE_RE.fullmatch(device)
                or not _METRIC_RE.fullmatch(metric) or not _TS_RE.fullmatch(ts)):
            return None
        when = times.get(ts)
        if when is None:
            try:
                when = times[ts] = datetime.fromisoformat(ts)
            except ValueError:
                return None
        rows.append(TelemetryRow(facility, device, metric, when, float(value)))
    return rows


def telemetry_rows(facility: str, body: dict) -> list[TelemetryRow]:
    """The points of a telemetry.batch body; raises ContractError naming what was wrong."""
    rows = _plain_points(facility, body)
    if rows is not None:
        return rows
    try:
        batch = TelemetryBatch.model_validate(body)
    except ValidationError as exc:
        raise ContractError(f"invalid telemetry.batch body: {describe_validation_error(exc)}") from None
    return [TelemetryRow(facility, p.device_id, p.metric, p.ts, p.value) for p in batch.points]


def _alarm(env: Envelope, item: Accepted) -> None:
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


def validate_message(topic: str, payload: bytes) -> Accepted:
    """The envelope on `topic`, validated against the topic's facility and stream; raises
    ContractError naming what was wrong.

    The envelope is checked as contracts.envelope.parse_envelope checks it; each body is
    validated once, by the code that also turns it into rows."""
    facility, stream = parse_up_topic(topic)
    env = check_envelope(load_envelope_json(payload), expect_facility=facility, expect_stream=stream)
    item = Accepted(env)
    if stream is Stream.ALARM:
        _alarm(env, item)
    elif env.type == "telemetry.batch":
        item.points = telemetry_rows(facility, env.body)
    return item


class IngestCounters:
    """Health as numbers: what came in, what was stored, what was refused and why."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._c: Counter[str] = Counter()
        self._reasons: Counter[str] = Counter()
        # Counted by the MQTT thread alone, once per message: a plain int needs no lock for that.
        self.received = 0

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._c[name] += n

    def reject(self, reason: str) -> None:
        with self._lock:
            self._c["rejected"] += 1
            self._reasons[reason_key(reason)] += 1

    def snapshot(self) -> dict:
        with self._lock:
            out = {"received": self.received} | {k: self._c[k] for k in (
                "stored", "duplicates", "rejected", "store_errors", "batches", "alarm_updates", "telemetry_points")}
            out["rejected_by_reason"] = dict(self._reasons)
            return out


class IngestWriter:
    """The single writer thread. `on_alarms` gets the alarm rows a batch changed (for SSE);
    `on_store_failure` is called when a store failed for a reason worth retrying, so the
    consumer can have the broker deliver the unacknowledged messages again. `on_acked` is
    called after each batch's acks, so that they reach the broker together."""

    def __init__(self, engine: Engine, counters: IngestCounters, *, batch_max: int = 500,
                 on_alarms: Callable[[list[AlarmRecord]], None] | None = None,
                 telemetry_store: TelemetryStore | None = None,
                 on_store_failure: Callable[[], None] | None = None,
                 on_acked: Callable[[], None] | None = None):
        self.engine = engine
        self.counters = counters
        self.batch_max = batch_max
        self.on_alarms = on_alarms
        self.telemetry_store = telemetry_store or RelationalTelemetryStore()
        self.on_store_failure = on_store_failure
        self.on_acked = on_acked
        # A deque and an event rather than queue.Queue: one append per message, no lock round trip.
        self._q: deque[Accepted] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, item: Accepted) -> None:
        self._q.append(item)
        if not self._wake.is_set():
            self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cloud-ingest-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then end."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            # Cleared before draining: whatever is appended after the drain sets it again.
            if not self._wake.wait(0.2) and self._stopping.is_set() and not self._q:
                return
            self._wake.clear()
            while self._q:
                batch = [self._q.popleft() for _ in range(min(len(self._q), self.batch_max))]
                self._write(batch)

    def _write(self, batch: list[Accepted]) -> None:
        changed: set[str] = set()
        try:
            changed = self._commit(batch)
        except AlarmConflict:
            changed = self._write_one_by_one(batch)
        except _TRANSIENT_DB_ERRORS + (TelemetryWriteError,) as exc:
            # One by one would fail the same way, once per envelope: give the whole batch back.
            log.error("ingest batch of %d not stored (%s); the broker will deliver it again", len(batch), exc)
            self.counters.add("store_errors", len(batch))
            self._store_failed()
        except Exception:
            log.exception("ingest batch of %d failed; writing one by one", len(batch))
            changed = self._write_one_by_one(batch)
        if self.on_acked is not None:
            self.on_acked()
        if changed and self.on_alarms is not None:
            try:
                with self.engine.connect() as conn:
                    rows = get_alarms(conn, sorted(changed))
                self.on_alarms(rows)
            except Exception:
                log.exception("alarm fan-out failed")

    def _store_failed(self) -> None:
        if self.on_store_failure is not None and not self._stopping.is_set():
            self.on_store_failure()

    def _write_one_by_one(self, batch: list[Accepted]) -> set[str]:
        changed: set[str] = set()
        transient = False
        for item in batch:
            try:
                changed |= self._commit([item])
            except AlarmConflict as exc:
                log.warning("rejected envelope %s: %s", item.env.id, exc)
                self.counters.reject(str(exc))
                if item.ack:
                    item.ack()
            except Exception as exc:
                # Left unacknowledged: the broker sends it again on the next session.
                log.exception("could not store envelope %s", item.env.id)
                self.counters.add("store_errors")
                transient |= isinstance(exc, _TRANSIENT_DB_ERRORS + (TelemetryWriteError,))
        if transient:
            self._store_failed()
        return changed

    def _commit(self, batch: list[Accepted]) -> set[str]:
        """One transaction for the batch; acknowledges to the broker after commit.
        Returns the alarm_ids whose rows changed."""
        now = utcnow()
        unique: dict[str, Accepted] = {}
        for item in batch:
            unique.setdefault(str(item.env.id), item)
        changed: set[str] = set()
        with self.engine.begin() as conn:
            new_ids = insert_envelopes(conn, [(k, i.env) for k, i in unique.items()], now)
            fresh = [unique[k] for k in unique if k in new_ids]
            points: list[TelemetryRow] = []
            for item in fresh:
                if item.alarm is not None:
                    changed.add(apply_alarm_envelope(conn, item.env, item.alarm, item.delivered_at, now))
                elif item.points:
                    points.extend(item.points)
            _touch_gateways(conn, fresh, now)
            # Last: an external store written just before the commit leaves the smallest window
            # in which it holds points whose envelope row could still roll back.
            try:
                stored_points = self.telemetry_store.write(conn, points)
            except Exception as exc:
                if self.telemetry_store.name == "relational":
                    raise
                raise TelemetryWriteError(f"{self.telemetry_store.name} telemetry write failed: {exc}") from exc
        for item in batch:
            if item.ack:
                item.ack()
        self.counters.add("batches")
        self.counters.add("stored", len(fresh))
        self.counters.add("duplicates", len(batch) - len(fresh))
        self.counters.add("alarm_updates", sum(1 for i in fresh if i.alarm is not None))
        self.counters.add("telemetry_points", stored_points)
        return changed


class TelemetryWriteError(Exception):
    """The external telemetry store refused or did not answer; the batch was rolled back."""


# Envelope and gateway rows are written with driver-level SQL: on PostgreSQL staged by COPY
# (cloud.bulk), on SQLite one prepared statement per row. SQLAlchemy's multi-row VALUES, rebuilt
# and re-parsed for every batch, cost more than the database's own work. The values are
# converted exactly as cloud.db's UTCDateTime and JSON types store them.
_ENVELOPE_COLUMNS = "id, facility, type, source, seq, ts, received_at, body"
_PG_STAGED_ENVELOPES = ("ingest_envelopes", "id text, facility text, type text, source text, seq bigint, "
                        "ts timestamptz, body text")
# ORDER BY: two workers inserting overlapping batches wait for each other instead of deadlocking.
_PG_INSERT_ENVELOPES = (
    f"INSERT INTO {envelopes.name} ({_ENVELOPE_COLUMNS}) "
    f"SELECT id, facility, type, source, seq, ts, %s, body::json FROM {_PG_STAGED_ENVELOPES[0]} "
    "ORDER BY id ON CONFLICT (id) DO NOTHING RETURNING id")
_SQLITE_INSERT_ENVELOPE = (
    f"INSERT INTO {envelopes.name} ({_ENVELOPE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO NOTHING")
# The SET expressions read the row as it was: a late buffered envelope does not move last_seen_at back.
_GATEWAY_ON_CONFLICT = (
    "ON CONFLICT (facility) DO UPDATE SET "
    f"last_seen_at = CASE WHEN {gateways.name}.last_seen_at < excluded.last_seen_at "
    f"THEN excluded.last_seen_at ELSE {gateways.name}.last_seen_at END, "
    f"last_type = CASE WHEN {gateways.name}.last_seen_at < excluded.last_seen_at "
    f"THEN excluded.last_type ELSE {gateways.name}.last_type END, "
    "last_received_at = excluded.last_received_at")
_GATEWAY_COLUMNS = "facility, last_seen_at, last_received_at, last_type"
_PG_STAGED_GATEWAYS = ("ingest_gateways", "facility text, last_seen_at timestamptz, last_type text")
# In key order, like the envelopes: workers share facilities under a shared subscription.
_PG_TOUCH_GATEWAYS = (
    f"INSERT INTO {gateways.name} ({_GATEWAY_COLUMNS}) SELECT facility, last_seen_at, %s, last_type "
    f"FROM {_PG_STAGED_GATEWAYS[0]} ORDER BY facility " + _GATEWAY_ON_CONFLICT)
_SQLITE_TOUCH_GATEWAYS = f"INSERT INTO {gateways.name} ({_GATEWAY_COLUMNS}) VALUES (?, ?, ?, ?) " + _GATEWAY_ON_CONFLICT


def _body_json(body: dict) -> str:
    return orjson.dumps(body).decode()


def insert_envelopes(conn: Connection, rows: list[tuple[str, Envelope]], now: datetime) -> set[str]:
    """Insert the (id, envelope) `rows` whose id is not stored yet; returns the ids that were new.
    Each id at most once per call."""
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        bulk.stage(conn, *_PG_STAGED_ENVELOPES, ((k, e.facility, e.type, e.source, e.seq, e.ts, _body_json(e.body))
                                                 for k, e in rows))
        return set(conn.exec_driver_sql(_PG_INSERT_ENVELOPES, (now,)).scalars().all())
    # SQLite: one writer at a time holds the database, so each row's own count says whether it was new.
    received = sqlite_ts(now)
    cur = conn.connection.cursor()
    try:
        new: set[str] = set()
        for eid, e in rows:
            cur.execute(_SQLITE_INSERT_ENVELOPE, (eid, e.facility, e.type, e.source, e.seq, sqlite_ts(e.ts), received,
                                                  _body_json(e.body)))
            if cur.rowcount == 1:
                new.add(eid)
        return new
    finally:
        cur.close()


def _touch_gateways(conn: Connection, fresh: list[Accepted], now: datetime) -> None:
    """Last seen per facility, by origin time: a late buffered envelope does not move it back."""
    newest: dict[str, Envelope] = {}
    status: dict[str, Envelope] = {}
    for item in fresh:
        env = item.env
        if env.facility not in newest or env.ts > newest[env.facility].ts:
            newest[env.facility] = env
        if env.type == "status.gateway" and (env.facility not in status or env.ts > status[env.facility].ts):
            status[env.facility] = env
    if not newest:
        return
    if conn.dialect.name == "postgresql":
        bulk.stage(conn, *_PG_STAGED_GATEWAYS, ((f, e.ts, e.type) for f, e in newest.items()))
        conn.exec_driver_sql(_PG_TOUCH_GATEWAYS, (now,))
    else:
        received = sqlite_ts(now)
        conn.exec_driver_sql(_SQLITE_TOUCH_GATEWAYS,
                             [(f, sqlite_ts(e.ts), received, e.type) for f, e in newest.items()])
    for facility, env in status.items():
        conn.execute(update(gateways).where(gateways.c.facility == facility).values(status=env.body))


class IngestConsumer:
    """The MQTT side of ingest. `shared=True`: MQTT v5 shared subscription (Mosquitto, EMQX);
    otherwise MQTT 3.1.1 (the embedded amqtt broker). Acks wait in the session until
    `flush_acks()`, which the writer calls after each commit."""

    def __init__(self, broker_url: str, writer: IngestWriter, counters: IngestCounters, *,
                 client_id: str, shared: bool = False, session_expiry_s: int = 7 * 24 * 3600):
        self.broker_url = broker_url
        self.writer = writer
        self.counters = counters
        self.shared = shared
        self.topic = SHARED_INGEST if shared else UP_WILDCARD
        self._accepting = True
        # Twice the largest envelope: one a little over the limit still arrives, to be refused
        # with a counted reason; a v5 broker drops anything beyond, instead of sending it.
        self._session = MqttSession(broker_url, client_id, self.topic, self._on_message, v5=shared,
                                    session_expiry_s=session_expiry_s, max_packet_bytes=2 * MAX_ENVELOPE_BYTES)
        self.connected = self._session.connected
        self.subscribed = self._session.subscribed

    def start(self) -> None:
        self._session.start()

    def stop_accepting(self) -> None:
        """Messages from now on are left unacknowledged, for the broker to keep for the next session."""
        self._accepting = False

    def stop(self) -> None:
        self._accepting = False
        self._session.stop()

    def flush_acks(self) -> None:
        self._session.flush_acks()

    def redeliver(self, pause_s: float = 1.0) -> None:
        """Start a new connection on the same session after a pause: the broker then sends every
        message this client left unacknowledged again (a store failed while writing them)."""
        if self._accepting:
            self._session.reconnect(pause_s)

    def _ack_later(self, mid: int) -> Callable[[], None]:
        session, generation = self._session, self._session.generation

        def ack() -> None:
            session.ack(mid, generation)

        return ack

    def _on_message(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        if not self._accepting:
            return
        self.counters.received += 1
        ack = self._ack_later(mid)
        try:
            item = validate_message(topic, payload)
        except ContractError as exc:
            log.warning("rejected message on %s: %s", topic, exc.reason)
            self.counters.reject(exc.reason)
            ack()
            return
        except Exception as exc:  # a consumer must outlive any single message
            log.exception("rejected message on %s: unexpected error", topic)
            self.counters.reject(f"internal error: {exc}")
            ack()
            return
        item.ack = ack
        self.writer.submit(item)


class Ingest:
    """Writer and consumer together, started and stopped in the right order."""

    def __init__(self, engine: Engine, broker_url: str, *, client_id: str, shared: bool = False,
                 session_expiry_s: int = 7 * 24 * 3600, batch_max: int = 500,
                 on_alarms: Callable[[list[AlarmRecord]], None] | None = None,
                 telemetry_store: TelemetryStore | None = None):
        self.counters = IngestCounters()
        self.writer = IngestWriter(engine, self.counters, batch_max=batch_max, on_alarms=on_alarms,
                                   telemetry_store=telemetry_store, on_store_failure=self._redeliver,
                                   on_acked=self._flush_acks)
        self.consumer = IngestConsumer(broker_url, self.writer, self.counters, client_id=client_id, shared=shared,
                                       session_expiry_s=session_expiry_s)

    def _redeliver(self) -> None:
        self.consumer.redeliver()

    def _flush_acks(self) -> None:
        self.consumer.flush_acks()

    def start(self) -> "Ingest":
        self.writer.start()
        self.consumer.start()
        return self

    def stop(self) -> None:
        # Finish writing (and acknowledging) what arrived while still connected, then leave.
        self.consumer.stop_accepting()
        self.writer.stop()
        self.consumer.stop()
        self.writer.telemetry_store.close()
