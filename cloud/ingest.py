"""Cloud ingest: uplink envelopes from the MQTT broker into the relational store.

Two parts. `IngestConsumer` owns the MQTT session: it validates each message against its
topic and hands it on, rejecting bad input with a counted reason. `IngestWriter` is a single
thread that drains a queue and writes everything waiting in one transaction, so a burst costs
one commit while a lone alarm is written at once (it never waits for a batch to fill).

Nothing is lost across a cloud restart: the session is persistent (3.1.1 clean_session=False,
or v5 session expiry), subscriptions are QoS 1, and a message is acknowledged to the broker
only after its transaction committed (paho manual ack). A crash in between means the broker
sends it again, and the envelope id makes the second write a counted duplicate."""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import case, update
from sqlalchemy.engine import Connection, Engine

from careguard.mqtt import make_client
from cloud.alarms import AlarmConflict, AlarmRecord, apply_alarm_envelope, get_alarms
from cloud.db import envelopes, gateways, telemetry, upsert_insert
from contracts.alarms import AlarmBody
from contracts.envelope import Envelope, TelemetryBatch, parse_envelope
from contracts.errors import ContractError
from contracts.timefmt import utcnow
from contracts.topics import SHARED_INGEST, UP_WILDCARD, parse_up_topic

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
    telemetry: Optional[TelemetryBatch] = None
    ack: Optional[Callable[[], None]] = None


def validate_message(topic: str, payload: bytes) -> Accepted:
    """The envelope on `topic`, validated against the topic's facility and stream; raises
    ContractError naming what was wrong."""
    facility, stream = parse_up_topic(topic)
    env = parse_envelope(payload, expect_facility=facility, expect_stream=stream)
    item = Accepted(env)
    if env.type.startswith("alarm."):
        item.alarm = AlarmBody.model_validate(env.body)
        if env.type == "alarm.delivered" and item.alarm.delivered_at is not None:
            try:
                item.delivered_at = datetime.fromisoformat(item.alarm.delivered_at.replace("Z", "+00:00"))
            except ValueError:
                raise ContractError(f"invalid alarm.delivered body: delivered_at {item.alarm.delivered_at!r} "
                                    "is not an ISO 8601 time") from None
            if item.delivered_at.tzinfo is None:
                raise ContractError("invalid alarm.delivered body: delivered_at has no time zone")
    elif env.type == "telemetry.batch":
        item.telemetry = TelemetryBatch.model_validate(env.body)
    return item


class IngestCounters:
    """Health as numbers: what came in, what was stored, what was refused and why."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._c: Counter[str] = Counter()
        self._reasons: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._c[name] += n

    def reject(self, reason: str) -> None:
        with self._lock:
            self._c["rejected"] += 1
            self._reasons[reason_key(reason)] += 1

    def snapshot(self) -> dict:
        with self._lock:
            out = {k: self._c[k] for k in ("received", "stored", "duplicates", "rejected", "store_errors",
                                            "batches", "alarm_updates", "telemetry_points")}
            out["rejected_by_reason"] = dict(self._reasons)
            return out


class IngestWriter:
    """The single writer thread. `on_alarms` gets the alarm rows a batch changed (for SSE)."""

    def __init__(self, engine: Engine, counters: IngestCounters, *, batch_max: int = 500,
                 on_alarms: Callable[[list[AlarmRecord]], None] | None = None):
        self.engine = engine
        self.counters = counters
        self.batch_max = batch_max
        self.on_alarms = on_alarms
        self._q: queue.Queue[Accepted] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, item: Accepted) -> None:
        self._q.put(item)

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
            try:
                first = self._q.get(timeout=0.2)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            batch = [first]
            while len(batch) < self.batch_max:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[Accepted]) -> None:
        try:
            changed = self._commit(batch)
        except AlarmConflict:
            changed = self._write_one_by_one(batch)
        except Exception:
            log.exception("ingest batch of %d failed; writing one by one", len(batch))
            changed = self._write_one_by_one(batch)
        if changed and self.on_alarms is not None:
            try:
                with self.engine.connect() as conn:
                    rows = get_alarms(conn, sorted(changed))
                self.on_alarms(rows)
            except Exception:
                log.exception("alarm fan-out failed")

    def _write_one_by_one(self, batch: list[Accepted]) -> set[str]:
        changed: set[str] = set()
        for item in batch:
            try:
                changed |= self._commit([item])
            except AlarmConflict as exc:
                log.warning("rejected envelope %s: %s", item.env.id, exc)
                self.counters.reject(str(exc))
                if item.ack:
                    item.ack()
            except Exception:
                # Left unacknowledged: the broker sends it again on the next session.
                log.exception("could not store envelope %s", item.env.id)
                self.counters.add("store_errors")
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
            ins = upsert_insert(conn.dialect.name, envelopes).on_conflict_do_nothing(index_elements=["id"])
            rows = [dict(id=k, facility=i.env.facility, type=i.env.type, source=i.env.source, seq=i.env.seq,
                         ts=i.env.ts, received_at=now, body=i.env.body) for k, i in unique.items()]
            new_ids = set(conn.execute(ins.returning(envelopes.c.id), rows).scalars().all())
            fresh = [unique[k] for k in unique if k in new_ids]
            points = 0
            for item in fresh:
                if item.alarm is not None:
                    changed.add(apply_alarm_envelope(conn, item.env, item.alarm, item.delivered_at, now))
                elif item.telemetry is not None:
                    points += _insert_points(conn, item)
            _touch_gateways(conn, fresh, now)
        for item in batch:
            if item.ack:
                item.ack()
        self.counters.add("batches")
        self.counters.add("stored", len(fresh))
        self.counters.add("duplicates", len(batch) - len(fresh))
        self.counters.add("alarm_updates", sum(1 for i in fresh if i.alarm is not None))
        self.counters.add("telemetry_points", points)
        return changed


def _insert_points(conn: Connection, item: Accepted) -> int:
    ins = upsert_insert(conn.dialect.name, telemetry).on_conflict_do_nothing(
        index_elements=["facility", "device_id", "metric", "ts"])
    rows = [dict(facility=item.env.facility, device_id=p.device_id, metric=p.metric, ts=p.ts, value=p.value)
            for p in item.telemetry.points]
    return len(conn.execute(ins.returning(telemetry.c.id), rows).all())


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
    for facility, env in newest.items():
        ins = upsert_insert(conn.dialect.name, gateways).values(
            facility=facility, last_seen_at=env.ts, last_received_at=now, last_type=env.type)
        newer = gateways.c.last_seen_at < ins.excluded.last_seen_at
        conn.execute(ins.on_conflict_do_update(index_elements=["facility"], set_={
            "last_seen_at": case((newer, ins.excluded.last_seen_at), else_=gateways.c.last_seen_at),
            "last_type": case((newer, ins.excluded.last_type), else_=gateways.c.last_type),
            "last_received_at": ins.excluded.last_received_at,
        }))
    for facility, env in status.items():
        conn.execute(update(gateways).where(gateways.c.facility == facility).values(status=env.body))


class IngestConsumer:
    """The MQTT side of ingest. `shared=True`: MQTT v5 shared subscription (Mosquitto, EMQX);
    otherwise MQTT 3.1.1 (the embedded amqtt broker)."""

    def __init__(self, broker_url: str, writer: IngestWriter, counters: IngestCounters, *,
                 client_id: str, shared: bool = False, session_expiry_s: int = 7 * 24 * 3600):
        self.broker_url = broker_url
        self.writer = writer
        self.counters = counters
        self.shared = shared
        self.topic = SHARED_INGEST if shared else UP_WILDCARD
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._accepting = True
        # Bumped on every connection: a packet id from an earlier connection must not be acked on a new one.
        self._generation = 0
        self._client, self._addr = make_client(broker_url, client_id, v5=shared, clean=False)
        self._client.manual_ack_set(True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._session_expiry_s = session_expiry_s

    def start(self) -> None:
        if self.shared:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self._session_expiry_s
            self._client.connect_async(self._addr.host, self._addr.port, keepalive=30, clean_start=False,
                                       properties=props)
        else:
            self._client.connect_async(self._addr.host, self._addr.port, keepalive=30)
        self._client.loop_start()

    def stop_accepting(self) -> None:
        """Messages from now on are left unacknowledged, for the broker to keep for the next session."""
        self._accepting = False

    def stop(self) -> None:
        self._accepting = False
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()

    def _on_connect(self, client, _userdata, _flags, reason_code, _props) -> None:
        if reason_code.is_failure:
            log.warning("ingest: broker refused connection: %s", reason_code)
            return
        self._generation += 1
        client.subscribe(self.topic, qos=1)
        self.connected.set()
        log.info("ingest connected to %s, subscribing %s", self.broker_url, self.topic)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _props) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if self._accepting:
            log.warning("ingest disconnected from %s (%s); reconnecting", self.broker_url, reason_code)

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _props) -> None:
        if all(not rc.is_failure for rc in reason_codes):
            self.subscribed.set()
        else:
            log.error("ingest: subscription to %s refused: %s", self.topic, reason_codes)

    def _ack_later(self, mid: int, qos: int) -> Callable[[], None]:
        generation = self._generation

        def ack() -> None:
            if generation == self._generation:
                self._client.ack(mid, qos)

        return ack

    def _on_message(self, _client, _userdata, msg: mqtt.MQTTMessage) -> None:
        if not self._accepting:
            return
        self.counters.add("received")
        ack = self._ack_later(msg.mid, msg.qos)
        try:
            item = validate_message(msg.topic, msg.payload)
        except ContractError as exc:
            log.warning("rejected message on %s: %s", msg.topic, exc.reason)
            self.counters.reject(exc.reason)
            ack()
            return
        except Exception as exc:  # a consumer must outlive any single message
            log.exception("rejected message on %s: unexpected error", msg.topic)
            self.counters.reject(f"internal error: {exc}")
            ack()
            return
        item.ack = ack
        self.writer.submit(item)


class Ingest:
    """Writer and consumer together, started and stopped in the right order."""

    def __init__(self, engine: Engine, broker_url: str, *, client_id: str, shared: bool = False,
                 session_expiry_s: int = 7 * 24 * 3600, batch_max: int = 500,
                 on_alarms: Callable[[list[AlarmRecord]], None] | None = None):
        self.counters = IngestCounters()
        self.writer = IngestWriter(engine, self.counters, batch_max=batch_max, on_alarms=on_alarms)
        self.consumer = IngestConsumer(broker_url, self.writer, self.counters, client_id=client_id, shared=shared,
                                       session_expiry_s=session_expiry_s)

    def start(self) -> "Ingest":
        self.writer.start()
        self.consumer.start()
        return self

    def stop(self) -> None:
        # Finish writing (and acknowledging) what arrived while still connected, then leave.
        self.consumer.stop_accepting()
        self.writer.stop()
        self.consumer.stop()
