"""The ingest writer: a single thread that drains a queue and writes everything waiting in one
transaction, so a burst costs one commit while a lone alarm is written at once (it never waits
for a batch to fill). Messages are acknowledged to the broker only after their commit."""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import timedelta
from typing import Callable, Union

from sqlalchemy.engine import Engine
from sqlalchemy.exc import InterfaceError, OperationalError

from cloud.alarms.records import AlarmConflict, AlarmRecord, apply_alarm_envelope, get_alarms
from cloud.care.privacy import FieldCipher
from cloud.compliance.marks import mark_for_envelopes
from cloud.ingest.counters import IngestCounters
from cloud.ingest.dead_letters import DeadLetter, insert_dead_letters
from cloud.ingest.sql import delete_envelopes, insert_envelopes, touch_gateways
from cloud.ingest.throttle import Throttled
from cloud.ingest.validate import Accepted, reason_key
from cloud.store.pruning import is_expired
from cloud.store.telemetry import RelationalTelemetryStore, TelemetryRow, TelemetryStore
from cloud.video.clips import store_chunk
from contracts.timefmt import utcnow

log = logging.getLogger("careguard.cloud.ingest")

# Transient failures of a store: the batch is worth delivering again, unlike a poison message.
_TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)
Item = Union[Accepted, DeadLetter, Throttled]

class IngestWriter:
    """The single writer thread. `on_alarms` gets the alarm rows a batch changed (for SSE);
    `on_store_failure` is called when a store failed for a reason worth retrying, so the
    consumer can have the broker deliver the unacknowledged messages again. `on_acked` is
    called after each batch's acks, so that they reach the broker together. `cipher` seals alarm
    clips; without it they are counted, not stored. `retention`: envelopes of the pruned kinds
    older than it are acknowledged and counted as expired, not stored (cloud.store.pruning)."""

    def __init__(self, engine: Engine, counters: IngestCounters, *, batch_max: int = 500,
                 on_alarms: Callable[[list[AlarmRecord]], None] | None = None,
                 telemetry_store: TelemetryStore | None = None,
                 on_store_failure: Callable[[], None] | None = None,
                 on_acked: Callable[[], None] | None = None, cipher: FieldCipher | None = None,
                 retention: timedelta | None = None):
        self.engine = engine
        self.retention = retention
        self.cipher = cipher
        self.counters = counters
        self.batch_max = batch_max
        self.on_alarms = on_alarms
        self.telemetry_store = telemetry_store or RelationalTelemetryStore()
        self.on_store_failure = on_store_failure
        self.on_acked = on_acked
        # A deque and an event rather than queue.Queue: one append per message, no lock round trip.
        self._q: deque[Item] = deque()
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

    def submit(self, item: Item) -> None:
        self._q.append(item)
        if not self._wake.is_set():
            self._wake.set()

    def start(self) -> None:
        self._stopping.clear()
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

    def _write(self, batch: list[Item]) -> None:
        changed: set[str] = set()
        try:
            changed = self._commit(batch)
        except _TRANSIENT_DB_ERRORS + (TelemetryWriteError,) as exc:
            # Row by row would fail the same way, once per envelope: give the whole batch back.
            log.error("ingest batch of %d not stored (%s); the broker will deliver it again", len(batch), exc)
            self.counters.add("store_errors", len(batch))
            self._store_failed()
        except Exception as exc:
            # Something in the batch cannot be stored: find it, keep the rest.
            log.warning("ingest batch of %d refused by the store (%s); isolating the refused envelopes",
                        len(batch), _short(exc))
            changed = self._isolate(batch)
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

    def _isolate(self, batch: list[Item]) -> set[str]:
        """Commit `batch` in halves, down to single envelopes: a refused one costs about
        log2(batch) extra commits, not one per envelope. An envelope the store refuses on its own,
        for a reason a retry cannot change, is dead-lettered; a transient failure leaves the rest
        unacknowledged for the broker to deliver again."""
        changed: set[str] = set()
        pending = [batch]
        while pending:
            part = pending.pop()
            try:
                changed |= self._commit(part)
                continue
            except _TRANSIENT_DB_ERRORS + (TelemetryWriteError,) as exc:
                log.error("ingest: %d envelopes not stored (%s); the broker will deliver them again",
                          sum(len(p) for p in pending) + len(part), exc)
                self.counters.add("store_errors", sum(len(p) for p in pending) + len(part))
                self._store_failed()
                return changed
            except Exception as exc:
                if len(part) > 1:
                    half = len(part) // 2
                    pending += [part[half:], part[:half]]
                    continue
                refused = part[0]
                if isinstance(refused, DeadLetter):
                    # Not even the dead letter could be written: leave it for the broker to deliver again.
                    log.error("could not keep a dead letter from %s: %s", refused.topic[:256], _short(exc))
                    self.counters.add("store_errors")
                    self._store_failed()
                    return changed
                reason = f"store refused envelope {refused.env.id}: {_short(exc)}"
                log.warning("ingest: %s", reason)
                self.counters.reject(reason_key(reason))
                pending.append([DeadLetter(refused.topic, refused.payload, reason, reason_key(reason), refused.ack)])
        return changed

    def _commit(self, batch: list[Item]) -> set[str]:
        """One transaction for the batch; acknowledges to the broker after commit.
        Returns the alarm_ids whose rows changed."""
        now = utcnow()
        unique: dict[str, Accepted] = {}
        letters: list[DeadLetter] = []
        throttled = 0
        expired = 0
        for item in batch:
            if isinstance(item, DeadLetter):
                letters.append(item)
            elif isinstance(item, Throttled):
                throttled += 1  # nothing to store: acknowledged in turn, below
            elif is_expired(item.env.type, item.env.ts, now, self.retention):
                expired += 1  # acknowledged in turn, below, and counted
            else:
                unique.setdefault(str(item.env.id), item)
        if throttled == len(batch):
            for item in batch:
                item.ack()
            return set()
        changed: set[str] = set()
        stored_points = 0
        refused: list[DeadLetter] = []
        with self.engine.begin() as conn:
            new_ids = insert_envelopes(conn, [(k, i.env) for k, i in unique.items()], now)
            fresh = [unique[k] for k in unique if k in new_ids]
            points: list[TelemetryRow] = []
            for item in fresh:
                if item.alarm is not None:
                    try:
                        changed.add(apply_alarm_envelope(conn, item.env, item.alarm, item.delivered_at, now))
                    except AlarmConflict as exc:
                        # Refused before it wrote anything: keep the rest of the batch, without halving it.
                        reason = f"store refused envelope {item.env.id}: {exc}"
                        refused.append(DeadLetter(item.topic, item.payload, reason, reason_key(reason),
                                                  envelope_id=str(item.env.id)))
                elif item.points:
                    points.extend(item.points)
                elif item.clip is not None:
                    self._store_clip(conn, item, now)
            if refused:
                gone = {r.envelope_id for r in refused}
                delete_envelopes(conn, gone)
                fresh = [i for i in fresh if str(i.env.id) not in gone]
            insert_dead_letters(conn, letters + refused, now)
            touch_gateways(conn, fresh, now)
            mark_for_envelopes(conn, [item.env for item in fresh])
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
        for d in refused:
            log.warning("ingest: %s", d.reason)
            self.counters.reject(d.reason_key)
        for d in letters + refused:
            self.counters.dead_lettered(d.facility)
        envelopes_n = len(batch) - len(letters) - len(refused) - throttled - expired
        self.counters.add("batches")
        self.counters.add("stored", len(fresh))
        self.counters.add("duplicates", envelopes_n - len(fresh))
        self.counters.add("alarm_updates", sum(1 for i in fresh if i.alarm is not None))
        self.counters.add("telemetry_points", stored_points)
        if expired:
            self.counters.add("expired", expired)
        return changed


def _short(exc: Exception) -> str:
    """An exception in one line, bounded: database errors quote whole statements."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


class TelemetryWriteError(Exception):
    """The external telemetry store refused or did not answer; the batch was rolled back."""

