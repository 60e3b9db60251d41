"""Alarm lifecycle: history of every step, the police workflow (dispatch, resolve with outcome,
drills never dispatched), one active cloud alarm per (source, kind), escalation of
unacknowledged panics, and response times per district."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.alarms.records import apply_alarm_envelope
from cloud.api.app import create_app
from cloud.api.auth import TokenGrant, TokenTable
from cloud.store.db import audit, create_schema, escalations, make_engine
from cloud.alarms.events_bus import EventBus
from cloud.alarms.lifecycle import (EscalationCandidate, EscalationPolicy, EscalationRunner, clear_cloud_alarm,
                             due_escalations, raise_cloud_alarm)
from cloud.registry.records import FacilityRegistration, register_facility, uscc_check_char
from contracts.alarms import AlarmBody, AlarmKind, Severity
from contracts.envelope import make_envelope
from helpers import store_url

POLICE = "police-token-0123456789"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def _uscc(n: int) -> str:
    first17 = f"91370800{n:09d}"
    return first17 + uscc_check_char(first17)


def _facility(conn, fid: str, n: int, district: str) -> None:
    register_facility(conn, FacilityRegistration.model_validate({
        "facility_id": fid, "name": fid, "uscc": _uscc(n), "kind": "public", "address": "x",
        "district": {"province": "山东省", "city": "济宁市", "district": district, "street": "s"}}), T0)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    # Both stores: an insert's row count is not what it is on SQLite everywhere (see store.db.inserted).
    with store_url(request, tmp_path, "life") as url:
        yield from _engine(url)


def _engine(url: str):
    eng = make_engine(url)
    create_schema(eng)
    with eng.begin() as conn:
        _facility(conn, "F1", 1, "任城区")
        _facility(conn, "F2", 2, "兖州区")
    yield eng
    eng.dispose()


@pytest.fixture
def police(engine):
    app = create_app(engine=engine, bus=EventBus(), tokens=TokenTable([TokenGrant(POLICE, "officer-li", "police")]))
    with TestClient(app, headers={"Authorization": f"Bearer {POLICE}"}) as client:
        yield client


def ingest(engine, facility: str, type_: str, kind: AlarmKind, aid: uuid.UUID, ts: datetime, **kw) -> None:
    body = AlarmBody(alarm_id=aid, kind=kind, severity=Severity.CRITICAL, source="btn-1", zone="z1", **kw)
    with engine.begin() as conn:
        apply_alarm_envelope(conn, make_envelope(facility, type_, body, ts=ts), body, kw.get("delivered_at") and
                             datetime.fromisoformat(kw["delivered_at"]), T0)


def test_police_workflow_and_history(engine, police):
    aid = uuid.uuid4()
    ingest(engine, "F1", "alarm.delivered", AlarmKind.PANIC, aid, T0 + timedelta(seconds=1),
           delivered_at=(T0 + timedelta(milliseconds=200)).isoformat(), receiver="arc-1")
    ingest(engine, "F1", "alarm.raised", AlarmKind.PANIC, aid, T0)
    ingest(engine, "F1", "alarm.raised", AlarmKind.PANIC, aid, T0)  # a replay adds no step

    r = police.post(f"/api/alarms/{aid}/dispatch")
    assert r.status_code == 409 and "acknowledge" in r.json()["detail"]
    assert police.post(f"/api/alarms/{aid}/ack").status_code == 200
    r = police.post(f"/api/alarms/{aid}/dispatch")
    assert r.status_code == 200 and r.json()["dispatched_by"] == "officer-li"
    assert police.post(f"/api/alarms/{aid}/dispatch").status_code == 409
    r = police.post(f"/api/alarms/{aid}/resolve", json={"outcome": "test"})
    assert r.status_code == 409 and "test alarms" in r.json()["detail"]
    r = police.post(f"/api/alarms/{aid}/resolve", json={"outcome": "maybe"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "outcome"
    r = police.post(f"/api/alarms/{aid}/resolve", json={"outcome": "real", "note": "officers on site"})
    assert r.status_code == 200 and (r.json()["outcome"], r.json()["resolved_by"]) == ("real", "officer-li")
    assert police.post(f"/api/alarms/{aid}/resolve", json={"outcome": "false"}).status_code == 409

    steps = [(e["step"], e["actor"]) for e in police.get(f"/api/alarms/{aid}/events").json()]
    assert steps == [("raised", "edge"), ("delivered", "edge"), ("acknowledged", "officer-li"),
                     ("dispatched", "officer-li"), ("resolved", "officer-li")]
    with engine.connect() as conn:
        actions = conn.execute(sa.select(audit.c.action).order_by(audit.c.id)).scalars().all()
    assert actions == ["alarm.ack", "alarm.dispatch", "alarm.resolve"]
    assert police.post(f"/api/alarms/{uuid.uuid4()}/dispatch").status_code == 404


def test_drill_is_never_dispatched(engine, police):
    aid = uuid.uuid4()
    ingest(engine, "F1", "alarm.raised", AlarmKind.TEST, aid, T0)
    police.post(f"/api/alarms/{aid}/ack")
    r = police.post(f"/api/alarms/{aid}/dispatch")
    assert r.status_code == 409 and "never dispatched" in r.json()["detail"]
    assert police.post(f"/api/alarms/{aid}/resolve", json={"outcome": "false"}).status_code == 409
    assert police.post(f"/api/alarms/{aid}/resolve", json={"outcome": "test"}).json()["outcome"] == "test"


def test_one_active_cloud_alarm_per_source_and_kind(engine):
    with engine.begin() as conn:
        first, new = raise_cloud_alarm(conn, facility="F1", kind=AlarmKind.GATEWAY_OFFLINE, source="gateway", ts=T0)
        again, new_again = raise_cloud_alarm(conn, facility="F1", kind=AlarmKind.GATEWAY_OFFLINE, source="gateway",
                                             ts=T0 + timedelta(seconds=30))
        other, _ = raise_cloud_alarm(conn, facility="F2", kind=AlarmKind.GATEWAY_OFFLINE, source="gateway", ts=T0)
        assert new and not new_again and again == first and other != first
        assert clear_cloud_alarm(conn, facility="F1", kind=AlarmKind.GATEWAY_OFFLINE, source="gateway",
                                 ts=T0 + timedelta(minutes=1)) == first
        later, new_later = raise_cloud_alarm(conn, facility="F1", kind=AlarmKind.GATEWAY_OFFLINE, source="gateway",
                                             ts=T0 + timedelta(minutes=2))
        assert new_later and later != first


def test_escalation_decision_edges():
    policy = EscalationPolicy(after_s=60, renotify_s=30, max_notifications=3)
    fresh = EscalationCandidate("a", "F1", T0, 0, None)
    assert due_escalations([fresh], T0 + timedelta(seconds=59.999), policy) == []
    [due] = due_escalations([fresh], T0 + timedelta(seconds=60), policy)
    assert (due.n, due.unacked_s) == (0, 60.0)
    once = EscalationCandidate("a", "F1", T0, 1, T0 + timedelta(seconds=60))
    assert due_escalations([once], T0 + timedelta(seconds=89.999), policy) == []
    assert due_escalations([once], T0 + timedelta(seconds=90), policy)[0].n == 1
    capped = EscalationCandidate("a", "F1", T0, 3, T0 + timedelta(seconds=120))
    assert due_escalations([capped], T0 + timedelta(hours=1), policy) == []


def test_escalation_runner_notifies_until_acknowledged(engine, police):
    now = datetime.now(timezone.utc)
    panic, acked, drill = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for aid, kind in ((panic, AlarmKind.PANIC), (acked, AlarmKind.PANIC), (drill, AlarmKind.TEST)):
        ingest(engine, "F1", "alarm.raised", kind, aid, now)
    police.post(f"/api/alarms/{acked}/ack")
    bus = EventBus()
    runner = EscalationRunner(engine, bus, EscalationPolicy(after_s=0.2, renotify_s=0.2, max_notifications=2),
                              interval_s=0.05)
    runner.start()
    try:
        done = threading.Event()
        for _ in range(200):
            if runner.escalated >= 2 or done.wait(0.05):
                break
    finally:
        runner.stop()
    assert runner.escalated == 2 and runner.errors == 0
    with engine.connect() as conn:
        rows = conn.execute(sa.select(escalations.c.alarm_id, escalations.c.n, escalations.c.notified_role)
                            .order_by(escalations.c.n)).all()
    assert rows == [(str(panic), 0, "supervisor"), (str(panic), 1, "supervisor")]
    steps = [e["step"] for e in police.get(f"/api/alarms/{panic}/events").json()]
    assert steps == ["raised", "escalated", "renotified"]
    assert runner.run_once(datetime.now(timezone.utc) + timedelta(hours=1)) == [], "capped at max_notifications"
    assert bus.published == 2


def test_response_times_per_district(engine, police):
    for fid, ack_s, dispatch_s in (("F1", 10, 40), ("F1", 20, None), ("F2", 5, None)):
        aid = uuid.uuid4()
        ingest(engine, fid, "alarm.raised", AlarmKind.PANIC, aid, T0)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alarms SET acked_at = :a, dispatched_at = :d WHERE alarm_id = :id"),
                         {"a": (T0 + timedelta(seconds=ack_s)).replace(tzinfo=None),
                          "d": (T0 + timedelta(seconds=dispatch_s)).replace(tzinfo=None) if dispatch_s else None,
                          "id": str(aid)})
    ingest(engine, "F2", "alarm.raised", AlarmKind.TEST, uuid.uuid4(), T0)  # drills do not count
    r = police.get("/api/alarms/response-times", params={"since": "2026-03-01T00:00:00Z",
                                                         "until": "2026-03-02T00:00:00Z"})
    assert r.status_code == 200, r.text
    by = {row["district"]: row for row in r.json()}
    assert (by["任城区"]["alarms"], by["任城区"]["ack_median_s"], by["任城区"]["ack_max_s"]) == (2, 15.0, 20.0)
    assert (by["任城区"]["dispatched"], by["任城区"]["dispatch_median_s"]) == (1, 40.0)
    assert (by["兖州区"]["alarms"], by["兖州区"]["ack_median_s"], by["兖州区"]["dispatch_median_s"]) == (1, 5.0, None)
    assert police.get("/api/alarms", params={"district": "兖州区", "kind": "panic"}).json()["items"][0]["facility"] == "F2"
