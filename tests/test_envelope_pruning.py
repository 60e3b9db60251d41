"""Envelope pruning (cloud.store.pruning) on SQLite and a real PostgreSQL: old rows of the
high-rate kinds go, in bounded batches, each facility's newest of a kind stays, alarms, events and
reports are never touched, and a pruned envelope delivered again is not stored again."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from cloud.ingest.counters import IngestCounters
from cloud.ingest.sql import insert_envelopes
from cloud.ingest.validate import validate_message
from cloud.ingest.writer import IngestWriter
from cloud.store.db import envelopes, telemetry
from cloud.store.pruning import CLOCK_SLACK, EnvelopePruner, PruneStats, prune_envelopes
from contracts.alarms import AlarmBody, AlarmKind, AlarmState, Severity
from contracts.envelope import make_envelope
from contracts.topics import up
from tests.helpers import store_engine, sync_until, now_ms

WEEK = timedelta(days=7)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    with store_engine(request, tmp_path, "prune") as engine:
        yield engine




def message(fac: str, type_: str, ts: datetime) -> tuple[str, bytes]:
    if type_ == "telemetry.batch":
        body = {"points": [{"device_id": "th-1", "metric": "temp_c", "value": 22.0, "ts": ts.isoformat()}]}
        stream = "telemetry"
    elif type_ == "camera.health":
        body, stream = {"cameras": [{"camera_id": "cam1", "state": "streaming"}]}, "camera"
    elif type_ == "heartbeat":
        body, stream = {"uptime_s": 1.0}, "heartbeat"
    elif type_ == "alarm.raised":
        body = AlarmBody(alarm_id=uuid.uuid4(), kind=AlarmKind.PANIC, severity=Severity.CRITICAL, source="btn-1",
                         device_id="btn-1", state=AlarmState.ACTIVE).model_dump(mode="json")
        stream = "alarm"
    elif type_ == "event.arming":
        body, stream = {"zone": "z1", "armed": True}, "event"
    else:
        body, stream = {"required_days": 30, "cameras": []}, "retention"
    return up(fac, stream), make_envelope(fac, type_, body, ts=ts).to_bytes()


def arrive(engine, when: datetime, *messages: tuple[str, bytes]) -> list[str]:
    """Stored as ingest stores them, received at `when`; returns their ids."""
    items = [validate_message(topic, payload, when) for topic, payload in messages]
    with engine.begin() as conn:
        insert_envelopes(conn, [(str(i.env.id), i.env) for i in items], when)
    return [str(i.env.id) for i in items]


def stored_ids(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(envelopes.c.id)).scalars())


def test_old_rows_of_pruned_kinds_go_in_batches_the_rest_stays(engine):
    now = now_ms()
    old = now - WEEK - CLOCK_SLACK - timedelta(days=3)
    kept, gone = set(), set()
    for day in range(3):  # three old days of each high-rate kind, for two facilities
        at = old + timedelta(hours=day)
        for fac in ("F1", "F2"):
            gone |= set(arrive(engine, at, *(message(fac, t, at) for t in ("heartbeat", "camera.health",
                                                                              "telemetry.batch"))))
    # Never pruned, however old: alarms, events, retention reports.
    kept |= set(arrive(engine, old, message("F1", "alarm.raised", old), message("F1", "event.arming", old),
                       message("F1", "retention.report", old)))
    # F1 is heard today; F2 fell silent long ago: its newest of each kind stays, old as it is.
    kept |= set(arrive(engine, now, *(message("F1", t, now) for t in ("heartbeat", "camera.health",
                                                                      "telemetry.batch"))))
    newest_f2 = old + timedelta(hours=2)
    with engine.connect() as conn:
        f2_newest = set(conn.execute(sa.select(envelopes.c.id).where(
            envelopes.c.facility == "F2", envelopes.c.received_at == newest_f2)).scalars())
    assert len(f2_newest) == 3
    kept |= f2_newest
    gone -= f2_newest
    # A gateway clock ahead (ingest allows 5 minutes): received before the cutoff, dated after it;
    # its time says ingest would still take it again, so its row must stay.
    cutoff = now - WEEK - CLOCK_SLACK
    kept |= set(arrive(engine, cutoff - timedelta(minutes=1), message("F1", "heartbeat", cutoff + timedelta(minutes=1))))

    assert prune_envelopes(engine, now, WEEK, stopping=lambda: True) == PruneStats(0, 0, True)
    stats = prune_envelopes(engine, now, WEEK, batch=2, max_batches=3)
    # heartbeats: F1 3 old, F2 2 old (its third is its newest): batches of 2, 2, 1, then the bound
    assert (stats.deleted, stats.batches, stats.more) == (5, 3, True), "stopped at its bound, in batches of 2"
    stats = prune_envelopes(engine, now, WEEK, batch=2)
    assert stats.deleted == len(gone) - 5 and not stats.more
    assert stored_ids(engine) == kept
    assert prune_envelopes(engine, now, WEEK).deleted == 0


def test_a_pruned_envelope_delivered_again_is_not_stored_again(engine):
    now = now_ms()
    old = now - WEEK - CLOCK_SLACK - timedelta(days=1)
    topic, payload = message("F1", "camera.health", old)
    arrive(engine, old, (topic, payload))
    arrive(engine, now, message("F1", "camera.health", now))  # the facility's newest
    assert prune_envelopes(engine, now, WEEK).deleted == 1

    def deliver(retention):
        counters = IngestCounters()
        writer = IngestWriter(engine, counters, retention=retention)
        writer.start()
        acked = []
        item = validate_message(topic, payload, datetime.now(timezone.utc))
        item.ack = lambda: acked.append(True)
        writer.submit(item)
        assert sync_until(lambda: acked), "the redelivery was never acknowledged"
        writer.stop()
        return counters.snapshot()

    counts = deliver(WEEK)
    assert (counts["expired"], counts["stored"], counts["duplicates"]) == (1, 0, 0)
    assert len(stored_ids(engine)) == 1, "the pruned envelope came back as new"
    # Without the retention check it would be stored again, and pass for the newest report.
    counts = deliver(None)
    assert counts["stored"] == 1 and len(stored_ids(engine)) == 2


def test_an_old_telemetry_batch_still_brings_its_readings(engine):
    """Telemetry is pruned but not refused: an outbox may hold readings past the retention, and
    their points are idempotent where they are kept, so a redelivery after pruning adds none."""
    now = now_ms()
    old = now - WEEK - CLOCK_SLACK - timedelta(days=1)
    batch = message("F1", "telemetry.batch", old)

    def deliver() -> dict:
        counters = IngestCounters()
        writer = IngestWriter(engine, counters, retention=WEEK)
        writer.start()
        writer.submit(validate_message(*batch, datetime.now(timezone.utc)))
        assert sync_until(lambda: counters.snapshot()["stored"] + counters.snapshot()["expired"] == 1)
        writer.stop()
        return counters.snapshot()

    def points() -> int:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(telemetry)).scalar_one()

    assert (deliver()["expired"], points()) == (0, 1), "readings from before the retention are kept"
    arrive(engine, now, message("F1", "telemetry.batch", now))  # the facility's newest batch
    with engine.begin() as conn:  # as if it had been received then
        conn.execute(envelopes.update().where(envelopes.c.ts == old).values(received_at=old))
    assert prune_envelopes(engine, now, WEEK).deleted == 1
    assert (deliver()["stored"], points()) == (1, 1), "delivered again after pruning: no point twice"


def test_within_the_window_an_envelope_id_still_deduplicates(engine):
    now = now_ms()
    recent = now - timedelta(days=6)
    topic, payload = message("F1", "heartbeat", recent)
    arrive(engine, recent, (topic, payload))
    counters = IngestCounters()
    writer = IngestWriter(engine, counters, retention=WEEK)
    writer.start()
    writer.submit(validate_message(topic, payload, datetime.now(timezone.utc)))
    writer.submit(validate_message(*message("F1", "alarm.raised", now - timedelta(days=30)),
                                   datetime.now(timezone.utc)))
    assert sync_until(lambda: counters.snapshot()["duplicates"] + counters.snapshot()["stored"] == 2)
    writer.stop()
    counts = counters.snapshot()
    assert (counts["duplicates"], counts["stored"], counts["expired"]) == (1, 1, 0), \
        "a redelivery within the window is a duplicate; an old alarm is stored whatever its age"
    assert EnvelopePruner(engine, WEEK, clock=lambda: now).run_once().deleted == 0
