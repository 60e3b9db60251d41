"""Pruning of the high-rate envelope kinds: a province's gateways send a heartbeat and a camera
health report every 10 s and telemetry batches up to every second, 86 million envelope rows a day at
10,000 gateways for camera health alone, about 1 KB each (a row with its indexes, measured).
Pages and compliance read only the newest of each kind
per facility (and camera health of the last `children_areas_covered`, 10 minutes), and climate
history lives in the telemetry store; so rows of these kinds older than `envelope_retention_days`
are deleted, except each facility's newest of each kind. Alarms, events, retention reports,
snapshots (pruned by their own rule), audit and every derived table are never touched here.

Deleting happens in batches of `batch` rows, each its own short transaction, found through the
(type, received_at) index, so ingest never waits long behind it and a pass is bounded.

Idempotency on envelope id holds only for stored ids. A redelivered heartbeat or camera health
report whose row was pruned would be stored again as new and, being received last, would pass for
the facility's newest state (state goes by receive time). Ingest therefore refuses, as expired
(acknowledged and counted, not stored), an envelope of those kinds whose origin time is older than
the retention (`is_expired`); the pruner deletes only rows whose origin time is older still, by
`CLOCK_SLACK`, so whatever it deleted, ingest on any host with a clock within that slack refuses
when it comes again. A telemetry batch is not refused: nothing reads its envelope as state, and its
points are idempotent where they are kept (the relational table's unique key; VictoriaMetrics
deduplicates with -dedup.minScrapeInterval), so a batch an outbox held past the retention still
brings its readings, and its row goes at the next pass."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Optional

from sqlalchemy import and_, delete, exists, select
from sqlalchemy.engine import Engine

from cloud.periodic import PeriodicTask
from cloud.store.db import envelopes
from contracts.timefmt import utcnow

log = logging.getLogger("careguard.cloud.pruning")

PRUNED_TYPES = ("heartbeat", "camera.health", "telemetry.batch")
# Of those, the kinds whose newest envelope is read as the facility's state.
EXPIRING_TYPES = ("heartbeat", "camera.health")
# How far apart the pruner's and an ingest worker's clocks may be without a pruned envelope being
# stored again on redelivery.
CLOCK_SLACK = timedelta(hours=1)


def is_expired(type_: str, ts: datetime, now: datetime, retention: Optional[timedelta]) -> bool:
    """Whether ingest refuses this envelope: a state report from before the retention window."""
    return retention is not None and type_ in EXPIRING_TYPES and ts < now - retention


@dataclass
class PruneStats:
    deleted: int = 0
    batches: int = 0
    more: bool = False  # stopped at its bound with rows still to delete


def prune_envelopes(engine: Engine, now: datetime, retention: timedelta, *, batch: int = 5000,
                    max_batches: int = 100, budget_s: float = 30.0,
                    stopping: Callable[[], bool] = lambda: False) -> PruneStats:
    """Delete envelopes of PRUNED_TYPES received and originated before `now - retention -
    CLOCK_SLACK`, each but the newest of its facility and kind, `batch` rows a transaction, at most
    `max_batches` or about `budget_s`, or until `stopping()`."""
    cutoff = now - retention - CLOCK_SLACK
    e = envelopes.c
    newer = envelopes.alias("newer")
    stats = PruneStats()
    started = time.monotonic()
    for type_ in PRUNED_TYPES:
        while True:
            if stats.batches >= max_batches or time.monotonic() - started > budget_s or stopping():
                stats.more = True
                return stats
            # Oldest first through ix_envelopes_type_received; a row stays while it is its facility's
            # newest of the kind (rows sharing the newest receive time all stay: one batch's).
            doomed = (select(e.id).where(
                e.type == type_, e.received_at < cutoff, e.ts < cutoff,
                exists().where(and_(newer.c.facility == e.facility, newer.c.type == type_,
                                    newer.c.received_at > e.received_at)))
                .order_by(e.received_at).limit(batch))
            with engine.begin() as conn:
                n = conn.execute(delete(envelopes).where(e.id.in_(doomed.scalar_subquery()))).rowcount
            stats.batches += 1
            stats.deleted += n
            if n < batch:
                break
    return stats


class EnvelopePruner:
    """`prune_envelopes` every `interval_s` (first one interval after start); a pass that stopped
    at its bound is followed at the next interval. `clock` is for tests."""

    def __init__(self, engine: Engine, retention: timedelta, *, interval_s: float = 300.0, batch: int = 5000,
                 clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.retention = retention
        self.batch = batch
        self.clock = clock
        self.deleted = 0
        self._task = PeriodicTask("cloud-envelope-pruner", interval_s, self.run_once, logger=log,
                                  what="envelope pruning")

    def run_once(self) -> PruneStats:
        stats = prune_envelopes(self.engine, self.clock(), self.retention, batch=self.batch,
                                stopping=lambda: self._task.stopping)
        self.deleted += stats.deleted
        if stats.deleted:
            log.info("pruned %d envelopes of %s in %d batches%s", stats.deleted, ", ".join(PRUNED_TYPES),
                     stats.batches, " (more to do)" if stats.more else "")
        return stats

    def start(self) -> "EnvelopePruner":
        self._task.start()
        return self

    def stop(self) -> None:
        self._task.stop()
