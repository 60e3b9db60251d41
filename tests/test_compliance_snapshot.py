"""Compliance snapshots on SQLite and the real PostgreSQL: evaluated for new facilities, marked by
ingest (only when a report tells a new story), by the registry and by care records, brought up
to date by deadlines that newer reports settle without evaluating again, read by the supervision
overview and the compliance pages, and never served stale."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from cloud.background import BackgroundProcess
from cloud.compliance.rules import Status, facility_compliance
from cloud.config import CloudConfig
from cloud.compliance.snapshot import (
    ComplianceRefresher,
    read_snapshot,
    refresh,
    snapshot_page,
    store_snapshots,
)
from cloud.compliance.snapshot import evaluate_snapshot
from cloud.compliance.marks import mark_for_envelopes
from cloud.ingest.counters import IngestCounters
from cloud.ingest.sql import insert_envelopes
from cloud.ingest.validate import validate_message
from cloud.ingest.writer import IngestWriter
from cloud.registry.records import DeviceIn, FacilityRegistration, add_device, register_facility, uscc_check_char
from cloud.status.reports import supervision_overview
from cloud.store.db import alarms, compliance_snapshots
from contracts.alarms import AlarmBody, AlarmKind, AlarmState, Severity
from contracts.envelope import make_envelope
from contracts.topics import up
from helpers import store_engine, sync_until, now_ms

S = compliance_snapshots.c


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    with store_engine(request, tmp_path, "snap") as engine:
        yield engine




def registration(fid: str, n: int, district: str = "任城区", button: bool = True) -> FacilityRegistration:
    first17 = f"91370800{n:09d}"
    return FacilityRegistration.model_validate({
        "facility_id": fid, "name": f"园{fid}", "uscc": first17 + uscc_check_char(first17), "kind": "inclusive",
        "address": "a", "district": {"province": "山东省", "city": "济宁市", "district": district, "street": "s"},
        "filing_status": "filed", "filing_number": "BA-1",
        "licences": [{"kind": k, "number": "L", "expires_on": "2099-01-01"} for k in ("health_evaluation", "fire",
                                                                                     "food")],
        "areas": [{"area_id": "room1", "name": "活动室", "children_area": True}],
        "cameras": [{"camera_id": "cam1", "name": "c1", "areas": ["room1"]}, {"camera_id": "cam2", "name": "c2"}],
        "devices": [{"device_id": "btn-1", "kind": "panic_button", "name": "b"}] if button else []})


def health(fac: str, ts: datetime, fault: str | None = None) -> tuple[str, bytes]:
    body = {"cameras": [{"camera_id": "cam1", "state": "streaming", "fault": fault, "camera_fps": 5.0},
                        {"camera_id": "cam2", "state": "streaming", "fault": None}]}
    return up(fac, "camera"), make_envelope(fac, "camera.health", body, ts=ts).to_bytes()


def beat(fac: str, ts: datetime, registered: bool = True) -> tuple[str, bytes]:
    body = {"uptime_s": 1.0, "police_encrypted": True, "gb28181": {
        "registered": registered, "platform": "10.0.0.1:5060", "platform_id": "37080000002000000001",
        "device_id": "37080000001180000001", "transport": "udp", "since": ts.isoformat(),
        "reason": "registered" if registered else "no answer", "cameras": ["cam1", "cam2"], "streams": 0}}
    return up(fac, "heartbeat"), make_envelope(fac, "heartbeat", body, ts=ts).to_bytes()


def retention(fac: str, ts: datetime, days: float) -> tuple[str, bytes]:
    body = {"required_days": 30, "cameras": [{"camera_id": c, "achieved_days": days, "compliant": days >= 30}
                                             for c in ("cam1", "cam2")]}
    return up(fac, "retention"), make_envelope(fac, "retention.report", body, ts=ts).to_bytes()


def drill(fac: str, ts: datetime) -> tuple[str, bytes]:
    body = AlarmBody(alarm_id=uuid.uuid4(), kind=AlarmKind.TEST, severity=Severity.WARNING, source="btn-1",
                     device_id="btn-1", state=AlarmState.CLEARED, delivered_at=ts.isoformat())
    return up(fac, "alarm"), make_envelope(fac, "alarm.delivered", body, ts=ts).to_bytes()


def ingest(engine, *messages: tuple[str, bytes]) -> None:
    """Through the real ingest writer (validation, one transaction, marks), without a broker."""
    counters = IngestCounters()
    writer = IngestWriter(engine, counters)
    writer.start()
    for topic, payload in messages:
        writer.submit(validate_message(topic, payload, datetime.now(timezone.utc)))
    def handled() -> int:
        c = counters.snapshot()
        return c["stored"] + c["duplicates"]

    assert sync_until(lambda: handled() == len(messages)), counters.snapshot()
    writer.stop()


def arrive(engine, when: datetime, *messages: tuple[str, bytes]) -> None:
    """The writer's own steps for `messages` received at `when`: state goes by receive time, so a
    test that moves the clock on must move the receipt with it."""
    items = [validate_message(topic, payload, when) for topic, payload in messages]
    with engine.begin() as conn:
        insert_envelopes(conn, [(str(i.env.id), i.env) for i in items], when)
        mark_for_envelopes(conn, [i.env for i in items])


def marked(engine, fac: str) -> tuple[int, int]:
    with engine.connect() as conn:
        return tuple(conn.execute(sa.select(S.marked, S.computed_mark).where(S.facility == fac)).one())


def stored_status(engine, fac: str) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.select(S.status).where(S.facility == fac)).scalar_one()


def good_facility(engine, fac: str, n: int, now: datetime) -> None:
    with engine.begin() as conn:
        register_facility(conn, registration(fac, n), now)
    ingest(engine, health(fac, now - timedelta(seconds=5)), beat(fac, now - timedelta(seconds=5)),
           retention(fac, now - timedelta(seconds=60), 40.0), drill(fac, now - timedelta(days=2)))


def test_snapshots_follow_the_facts_and_feed_the_overview(engine):
    now = now_ms()
    good_facility(engine, "G1", 1, now)
    with engine.begin() as conn:
        register_facility(conn, registration("B1", 2, district="兖州区", button=False), now)
    stats = refresh(engine, now)
    assert stats.evaluated == 2
    with engine.connect() as conn:
        for fac in ("G1", "B1"):
            direct = facility_compliance(conn, fac, now)
            assert read_snapshot(conn, fac, now).model_dump(mode="json") == direct.model_dump(mode="json")
        overview = supervision_overview(conn, now, "济宁市")
    assert stored_status(engine, "G1") == "compliant" and stored_status(engine, "B1") == "non_compliant"
    by = {d.district: d for d in overview.districts}
    assert (by["任城区"].compliant, by["兖州区"].non_compliant, by["兖州区"].pending) == (1, 1, 0)
    assert (overview.cameras_online.total, overview.cameras_online.good) == (4, 2)  # B1's cameras never reported
    assert (overview.retention_compliant.total, overview.retention_compliant.good) == (2, 2)
    assert refresh(engine, now).evaluated == 0, "nothing changed: nothing to evaluate"

    # The same camera story again marks nothing; a covered camera does.
    later = now + timedelta(seconds=10)
    before = marked(engine, "G1")
    ingest(engine, health("G1", later), beat("G1", later))
    assert marked(engine, "G1") == before
    ingest(engine, health("G1", later + timedelta(seconds=1), fault="covered"))
    assert marked(engine, "G1")[0] == before[0] + 1
    with engine.connect() as conn:  # read before the refresher ran: evaluated for the page, not stale
        assert read_snapshot(conn, "G1", later + timedelta(seconds=2)).status is Status.NON_COMPLIANT
    assert refresh(engine, later + timedelta(seconds=2)).evaluated == 1
    assert stored_status(engine, "G1") == "non_compliant"
    with engine.connect() as conn:
        page = snapshot_page(conn, later, limit=1, cursor=None, status=Status.NON_COMPLIANT)
        assert [r.facility for r in page.items] == ["B1"] and page.next_cursor
        page = snapshot_page(conn, later, limit=1, cursor=page.next_cursor, status=Status.NON_COMPLIANT)
        assert [r.facility for r in page.items] == ["G1"]

    # A retention report marks when a camera reaches or misses the required days; so does the registry.
    before = marked(engine, "G1")
    ingest(engine, retention("G1", later, 41.0))
    assert marked(engine, "G1") == before, "another day of footage changes nothing"
    before = marked(engine, "B1")
    ingest(engine, retention("B1", later, 10.0))
    with engine.begin() as conn:
        add_device(conn, "B1", DeviceIn(device_id="btn-9", kind="panic_button", name="b"))
    assert marked(engine, "B1")[0] == before[0] + 2
    refresh(engine, later)
    with engine.connect() as conn:
        report = read_snapshot(conn, "B1", later)
    breaches = {f.rule: f.message for f in report.findings}
    assert "no one-button alarm" not in breaches.get("arming_24h", "") and "retention" in breaches


def test_deadlines_settled_by_newer_reports_without_evaluating(engine):
    now = now_ms()
    good_facility(engine, "D1", 3, now)
    refresh(engine, now)
    with engine.connect() as conn:
        row = conn.execute(sa.select(S.heartbeat_until, S.cameras_until, S.computed_at).where(S.facility == "D1")).one()
    assert row.heartbeat_until == now - timedelta(seconds=5) + timedelta(seconds=300)
    # The gateway keeps reporting (without a change of story): the deadlines move on.
    fresh = now + timedelta(seconds=600)
    arrive(engine, fresh, health("D1", fresh), beat("D1", fresh))
    stats = refresh(engine, fresh + timedelta(seconds=1))
    assert (stats.evaluated, stats.extended) == (0, 1)
    with engine.connect() as conn:
        moved = conn.execute(sa.select(S.heartbeat_until, S.cameras_until, S.computed_at)
                             .where(S.facility == "D1")).one()
    assert moved.heartbeat_until == fresh + timedelta(seconds=300) and moved.cameras_until == fresh + timedelta(
        seconds=600) and moved.computed_at == row.computed_at
    # Then silence: past the heartbeat's age limit the facility is evaluated again and breaches.
    silent = fresh + timedelta(seconds=301)
    assert refresh(engine, silent).evaluated == 1
    assert stored_status(engine, "D1") == "non_compliant"
    with engine.connect() as conn:
        assert [f.rule for f in read_snapshot(conn, "D1", silent).findings] == ["arming_24h"]
    # A heartbeat now marks the snapshot (it counted none fresh) and clears the breach.
    back = silent + timedelta(seconds=1)
    arrive(engine, back, beat("D1", back))
    assert refresh(engine, back).evaluated == 1 and stored_status(engine, "D1") == "compliant"
    # A fresh heartbeat telling another state (the video platform dropped it) marks it too.
    later = back + timedelta(seconds=1)
    before = marked(engine, "D1")[0]
    arrive(engine, later, beat("D1", later, registered=False))
    assert marked(engine, "D1")[0] == before + 1 and refresh(engine, later).evaluated == 1
    with engine.connect() as conn:
        assert [f.rule for f in read_snapshot(conn, "D1", later).findings] == ["video_networked"]


def test_a_mark_during_evaluation_keeps_the_snapshot_out_of_date(engine):
    now = now_ms()
    good_facility(engine, "M1", 4, now)
    refresh(engine, now)
    mark = marked(engine, "M1")[0]
    with engine.connect() as conn:
        snap = evaluate_snapshot(conn, "M1", now)
    ingest(engine, retention("M1", now, 10.0))  # lands while the evaluation above was "running"
    with engine.begin() as conn:
        store_snapshots(conn, [("M1", mark, snap)])
    assert marked(engine, "M1") == (mark + 1, mark)
    assert refresh(engine, now).evaluated == 1 and marked(engine, "M1") == (mark + 1, mark + 1)


def test_the_refresher_thread_and_its_full_pass(engine):
    now = now_ms()
    good_facility(engine, "R1", 5, now)
    refresher = ComplianceRefresher(engine, interval_s=0.05, full_every_s=3600)
    refresher.start()
    try:
        assert sync_until(lambda: refresher.totals.evaluated >= 1), "the refresher never evaluated R1"
    finally:
        refresher.stop()
    with engine.begin() as conn:  # a drill written behind the marks' back (not through ingest)
        conn.execute(sa.delete(alarms).where(alarms.c.facility == "R1"))
    assert stored_status(engine, "R1") == "compliant"
    refresher = ComplianceRefresher(engine, full_every_s=3600)
    refresher.run_once()  # a new refresher starts with a full pass
    assert stored_status(engine, "R1") == "non_compliant" and refresher.totals.evaluated == 1
    assert refresher.run_once().evaluated == 0


def test_the_refresher_in_a_process_of_its_own(engine):
    now = now_ms()
    good_facility(engine, "P1", 6, now)
    proc = BackgroundProcess(CloudConfig(db_url=engine.url.render_as_string(hide_password=False),
                                         background_work="process", compliance_refresh_s=0.1))
    proc.start()
    try:
        assert sync_until(lambda: marked_or_none(engine, "P1") is not None, timeout=30), "no snapshot from the process"
    finally:
        proc.stop()
    assert stored_status(engine, "P1") == "compliant"


def marked_or_none(engine, fac: str):
    with engine.connect() as conn:
        return conn.execute(sa.select(S.marked).where(S.facility == fac)).scalar()


def test_many_facilities_evaluated_in_bounded_passes(engine):
    now = now_ms()
    with engine.begin() as conn:
        for i in range(25):
            register_facility(conn, registration(f"N{i:02d}", 100 + i), now)
    passes = [(stats.evaluated, stats.more) for stats in (refresh(engine, now, limit=10) for _ in range(4))]
    assert passes == [(10, True), (10, True), (5, False), (0, False)]
    stats = ComplianceRefresher(engine, limit=10, clock=lambda: now).run_once()  # starts with a full pass
    assert (stats.evaluated, stats.more) == (25, False), "one run catches up with the whole backlog, 10 a pass"
    stopped = ComplianceRefresher(engine, limit=10, clock=lambda: now)
    stopped.stop()  # asked to stop: the catch-up ends after the pass under way, so the cloud stops promptly
    assert (stopped.run_once().evaluated, stopped.totals.evaluated) == (10, 10)
    with engine.connect() as conn:
        overview = supervision_overview(conn, now, None)
    assert sum(d.non_compliant for d in overview.districts) == 25
