"""The ingest writer: a single thread that drains a queue and writes everything waiting in one
transaction, so a burst costs one commit while a lone alarm is written at once (it never waits
for a batch to fill). Messages are acknowledged to the broker only after their commit."""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable

from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from cloud.alarms.records import AlarmConflict, AlarmRecord, apply_alarm_envelope, get_alarms
from cloud.care.privacy import FieldCipher, engine_cipher
from cloud.ingest.counters import IngestCounters
from cloud.ingest.sql import insert_envelopes, touch_gateways
from cloud.ingest.validate import Accepted
from cloud.store.telemetry import RelationalTelemetryStore, TelemetryRow, TelemetryStore
from cloud.video.clips import store_chunk
from contracts.timefmt import utcnow

log = logging.getLogger("careguard.cloud.ingest")

# Transient failures of a store: the batch is worth delivering again, unlike a poison message.
_TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)

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
        try:
            self.cipher: FieldCipher | None = engine_cipher(engine)
        except (RuntimeError, ValueError) as exc:
            self.cipher = None
            log.warning("no data key, alarm clips will not be stored: %s", exc)
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

    def _store_clip(self, conn, item: Accepted, now) -> None:
        if self.cipher is None:
            self.counters.add("clip_chunks_unstored")
            return
        try:
            with conn.begin_nested():
                store_chunk(conn, self.cipher, item.env.facility, item.clip, item.clip_data, now)
            self.counters.add("clip_chunks")
        except ValueError as exc:
            # A chunk that does not fit its clip is refused alone; the rest of the batch stands.
            self.counters.add("clip_chunks_refused")
            log.warning("clip chunk of %s refused: %s", item.env.facility, exc)

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
                elif item.clip is not None:
                    self._store_clip(conn, item, now)
            touch_gateways(conn, fresh, now)
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

