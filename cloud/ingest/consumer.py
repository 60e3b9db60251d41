"""Cloud ingest: uplink envelopes from the MQTT broker into the relational and telemetry stores.

Two parts. `IngestConsumer` owns the MQTT session: it validates each message against its
topic and hands it on, rejecting bad input with a counted reason. `IngestWriter` is a single
thread that drains a queue and writes everything waiting in one transaction, so a burst costs
one commit while a lone alarm is written at once (it never waits for a batch to fill).

Nothing is lost across a cloud restart: the session is persistent (3.1.1 clean_session=False,
or v5 session expiry), subscriptions are QoS 1, and a message is acknowledged to the broker
only after its transaction committed (cloud.ingest.session, acks released per commit). A crash
in between means the broker sends it again, and the envelope id makes the second write a counted duplicate.
A message that can never be stored (refused by the contracts, or by the store for a reason a retry
cannot change) is kept as a dead letter and acknowledged like a stored one (cloud.ingest.dead_letters):
poison never holds the broker's in-flight window. A flooding facility is throttled per facility
(cloud.ingest.throttle); its excess is counted, not stored, and acknowledged in turn. Several
workers (processes, see cloud.ingest.workers) may share one subscription: the envelope
primary key, inserted with ON CONFLICT DO NOTHING, decides which of them stores an envelope."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Callable

from sqlalchemy.engine import Engine

from cloud.alarms.records import AlarmRecord
from cloud.care.privacy import FieldCipher
from cloud.ingest.amqp_session import INGEST_QUEUE, AmqpSession
from cloud.ingest.counters import IngestCounters
from cloud.ingest.dead_letters import DeadLetter
from cloud.ingest.session import MqttSession
from cloud.ingest.throttle import FacilityBuckets, Throttled
from cloud.ingest.validate import reason_key, validate_message
from cloud.ingest.writer import IngestWriter
from cloud.status.snapshots import SNAPSHOT_TYPE, seal_snapshot_body
from cloud.store.telemetry import TelemetryStore
from contracts.envelope import MAX_ENVELOPE_BYTES
from contracts.errors import ContractError
from contracts.reject_log import RejectLog
from contracts.timefmt import utcnow
from contracts.topics import SHARED_INGEST, UP_WILDCARD

log = logging.getLogger("careguard.cloud.ingest")


class IngestConsumer:
    """The MQTT side of ingest. `shared=True`: MQTT v5 shared subscription (Mosquitto, EMQX);
    otherwise MQTT 3.1.1 (the embedded amqtt broker). Acks wait in the session until
    `flush_acks()`, which the writer calls after each commit."""

    def __init__(self, broker_url: str, writer: IngestWriter, counters: IngestCounters, *,
                 client_id: str, shared: bool = False, session_expiry_s: int = 7 * 24 * 3600,
                 buckets: FacilityBuckets | None = None, snapshot_cipher: FieldCipher | None = None,
                 amqp_url: str | None = None):
        self.broker_url = broker_url
        self.snapshot_cipher = snapshot_cipher  # seals snapshots before they are queued
        self.writer = writer
        self.counters = counters
        self.buckets = buckets
        self.shared = shared
        self._accepting = True
        # A hostile gateway's poison is counted and dead-lettered in full; the log says it happens.
        self._reject_log = RejectLog(log, "rejected message on %s: %s")
        if amqp_url:
            # A broker cluster: competing consumers of its replicated ingest queue.
            self.topic = INGEST_QUEUE
            self._session = AmqpSession(amqp_url, client_id, self._on_message)
        else:
            self.topic = SHARED_INGEST if shared else UP_WILDCARD
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
        if self.buckets is not None:
            # cg/v1/fac/{facility}/up/{stream}: split, not matched, as this runs before any check.
            parts = topic.split("/", 6)
            if len(parts) == 6 and not self.buckets.allow(parts[3], parts[5]):
                self.counters.throttled(parts[3])
                self.writer.submit(Throttled(ack))
                return
        try:
            item = validate_message(topic, payload, utcnow())
        except ContractError as exc:
            self._dead_letter(topic, payload, exc.reason, ack)
            return
        except Exception as exc:  # a consumer must outlive any single message
            log.exception("rejected message on %s: unexpected error", topic[:256])
            self._dead_letter(topic, payload, f"internal error: {exc}", ack)
            return
        if item.env.type == SNAPSHOT_TYPE and self.snapshot_cipher is not None:
            item.env.body = seal_snapshot_body(self.snapshot_cipher, str(item.env.id), item.env.body)
        item.ack = ack
        self.writer.submit(item)

    def _dead_letter(self, topic: str, payload: bytes, reason: str, ack: Callable[[], None]) -> None:
        key = reason_key(reason)
        self._reject_log(key, topic[:256], reason[:512])
        self.counters.reject(key)
        self.writer.submit(DeadLetter(topic, payload, reason, key, ack))


class Ingest:
    """Writer and consumer together, started and stopped in the right order. `cipher` (the data
    key's) seals snapshots and alarm clips at rest."""

    def __init__(self, engine: Engine, broker_url: str, *, client_id: str, shared: bool = False,
                 session_expiry_s: int = 7 * 24 * 3600, batch_max: int = 500,
                 on_alarms: Callable[[list[AlarmRecord]], None] | None = None,
                 telemetry_store: TelemetryStore | None = None, buckets: FacilityBuckets | None = None,
                 cipher: FieldCipher | None = None, amqp_url: str | None = None, retention: timedelta | None = None):
        self.counters = IngestCounters()
        self.writer = IngestWriter(engine, self.counters, batch_max=batch_max, on_alarms=on_alarms,
                                   telemetry_store=telemetry_store, on_store_failure=self._redeliver,
                                   on_acked=self._flush_acks, cipher=cipher, retention=retention)
        self.consumer = IngestConsumer(broker_url, self.writer, self.counters, client_id=client_id, shared=shared,
                                       session_expiry_s=session_expiry_s, buckets=buckets,
                                       snapshot_cipher=cipher, amqp_url=amqp_url)

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
