"""Care and health through the API on SQLite and the real PostgreSQL: rosters and checks, the
checks summary, symptom clusters raised and cleared by the health runner (counts only), climate
breaches raising and clearing sensor_range, certificates, the ban list on hiring, the new
compliance rules, and who may read children's data."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.api.auth import TokenGrant, TokenTable
from cloud.compliance.rules import facility_compliance
from cloud.store.db import alarms, create_schema, make_engine, telemetry
from cloud.alarms.events_bus import EventBus
from cloud.care.health_runner import HealthRunner
from cloud.care.privacy import FieldCipher
from cloud.registry.records import FacilityRegistration, register_facility, uscc_check_char
from helpers import store_url

SH = ZoneInfo("Asia/Shanghai")
TOKENS = {"police": "t-police-0123456789", "health": "t-health-0123456789", "supervisor": "t-super-0123456789",
          "admin": "t-admin-01234567890", "facA": "t-facA-012345678901", "facB": "t-facB-012345678901"}
ROLES = ("police", "health", "supervisor", "admin", "facA", "facB")


def _reg(fid: str, n: int) -> FacilityRegistration:
    first17 = f"91370800{n:09d}"
    return FacilityRegistration.model_validate({
        "facility_id": fid, "name": f"园{fid}", "uscc": first17 + uscc_check_char(first17), "kind": "inclusive",
        "address": "a", "district": {"province": "p", "city": "c", "district": "d", "street": "s"},
        "classes": [{"class_id": "c1", "name": "乳儿班", "class_type": "infant", "places": 10, "enrolled": 4,
                     "carers": 2},
                    {"class_id": "c2", "name": "托小班", "class_type": "toddler", "places": 15, "enrolled": 0,
                     "carers": 1}],
        "devices": [{"device_id": "t1", "kind": "temperature", "name": "t", "zone": "活动室"}],
        "staff": [{"staff_id": "s1", "name": "李老师", "role": "carer"},
                  {"staff_id": "s2", "name": "王老师", "role": "carer"}]})


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory):
    with store_url(request, tmp_path_factory.mktemp("care"), "care") as url:
        yield url


@pytest.fixture(scope="module")
def http(db_url):
    engine = make_engine(db_url)
    create_schema(engine)
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        register_facility(conn, _reg("A", 1), now)
        register_facility(conn, _reg("B", 2), now)
    grants = [TokenGrant(TOKENS[r], r, r) for r in ("police", "health", "supervisor", "admin")]
    grants += [TokenGrant(TOKENS["facA"], "director-a", "facility", "A"),
               TokenGrant(TOKENS["facB"], "director-b", "facility", "B")]
    app = create_app(engine=engine, bus=EventBus(), tokens=TokenTable(grants))
    app.state.data_cipher = FieldCipher(b"k" * 32)
    with TestClient(app) as client:
        client.engine = engine
        yield client
    engine.dispose()


def call(http, who: str, method: str, path: str, **kw):
    return http.request(method, path, headers={"Authorization": f"Bearer {TOKENS[who]}"}, **kw)


ROSTER = {"children": [{"child_id": f"k{i}", "birth_month": "2025-09"} for i in range(4)], "carers_on_duty": ["s1"]}


def test_roster_and_checks_with_roles(http):
    assert call(http, "facA", "POST", "/api/care/classes/c1/roster", json=ROSTER).status_code == 200
    for role in ROLES:
        r = call(http, role, "GET", "/api/care/classes/c1/roster", params={"facility": "A"})
        assert r.status_code == (200 if role in ("health", "facA") else 403), (role, r.text)
    got = call(http, "health", "GET", "/api/care/classes/c1/roster", params={"facility": "A"}).json()
    assert [c["child_id"] for c in got["children"]] == ["k0", "k1", "k2", "k3"] and got["carers_on_duty"] == ["s1"]
    assert call(http, "health", "GET", "/api/care/classes/c1/roster").status_code == 422  # which facility?
    assert call(http, "admin", "POST", "/api/care/classes/c1/roster", json=ROSTER).status_code == 403
    assert call(http, "facA", "POST", "/api/care/classes/nope/roster", json=ROSTER).status_code == 404
    bad = call(http, "facA", "POST", "/api/care/classes/c1/roster", json={**ROSTER, "carers_on_duty": ["ghost"]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "carers_on_duty"]

    day = date(2026, 6, 15)
    nine = datetime(2026, 6, 15, 9, 0, tzinfo=SH)
    r = call(http, "facA", "POST", "/api/care/checks", json={
        "class_id": "c1", "child_id": "k0", "kind": "morning", "temperature_c": 36.6, "symptoms": [],
        "action": "none", "at": nine.isoformat()})
    assert r.status_code == 201 and r.json()["local_date"] == "2026-06-15", r.text
    not_listed = call(http, "facA", "POST", "/api/care/checks", json={"class_id": "c1", "child_id": "zz",
                                                                      "kind": "noon"})
    assert not_listed.status_code == 422 and not_listed.json()["detail"][0]["loc"] == ["body", "child_id"]
    wrong = call(http, "facA", "POST", "/api/care/checks", json={"class_id": "c1", "child_id": "k1", "kind": "noon",
                                                                 "symptoms": ["sneezing"]})
    assert wrong.status_code == 422 and "symptoms" in wrong.text
    assert call(http, "facB", "POST", "/api/care/checks", json={"class_id": "c1", "child_id": "k0",
                                                                "kind": "noon"}).status_code == 422  # not B's child
    for role in ROLES:
        r = call(http, role, "GET", "/api/care/checks", params={"facility": "A", "date": day.isoformat()})
        assert r.status_code == (200 if role in ("health", "facA") else 403), role
    summary = call(http, "health", "GET", "/api/care/checks/summary", params={"date": day.isoformat()}).json()["items"]
    by = {(i["facility"], i["class_id"]): i for i in summary}
    assert (by[("A", "c1")]["enrolled"], by[("A", "c1")]["morning_done"], by[("A", "c1")]["noon_done"],
            by[("A", "c1")]["morning_missing_after_10"]) == (4, 1, 0, False)
    assert by[("B", "c1")]["morning_missing_after_10"] is True      # 4 enrolled on file, no check
    assert by[("A", "c2")]["morning_missing_after_10"] is False     # nobody enrolled
    own = call(http, "facA", "GET", "/api/care/checks/summary", params={"date": day.isoformat()}).json()["items"]
    assert {i["facility"] for i in own} == {"A"}
    assert call(http, "police", "GET", "/api/care/checks/summary").status_code == 403


def test_cluster_raised_and_cleared_by_the_runner(http):
    base = datetime.now(timezone.utc) - timedelta(hours=3)
    for i, child in enumerate(("k1", "k2", "k3")):
        r = call(http, "facA", "POST", "/api/care/checks", json={
            "class_id": "c1", "child_id": child, "kind": "noon", "temperature_c": 36.8, "symptoms": ["hfmd_signs"],
            "at": (base + timedelta(minutes=i)).isoformat()})
        assert r.status_code == 201, r.text
    runner = HealthRunner(http.engine)
    out = runner.run_once()
    assert len(out.raised) == 1
    items = call(http, "health", "GET", "/api/care/clusters").json()["items"]
    [item] = [i for i in items if i["active"]]
    assert (item["facility"], item["class_id"], item["symptom"], item["count"]) == ("A", "c1", "hfmd_signs", 3)
    assert item["alarm_id"] == out.raised[0] and "k1" not in str(items)
    assert call(http, "facA", "GET", "/api/care/clusters").status_code == 403
    assert call(http, "police", "GET", "/api/care/clusters").status_code == 403
    later = runner.run_once(base + timedelta(hours=48, minutes=1))  # the first child falls out of the window
    assert later.cleared == out.raised
    with http.engine.connect() as conn:
        row = conn.execute(sa.select(alarms.c.state, alarms.c.kind, alarms.c.detail)
                           .where(alarms.c.alarm_id == out.raised[0])).one()
    assert (row.state, row.kind, row.detail["count"]) == ("cleared", "symptom_cluster", 3)


def test_climate_breach_raises_and_clears_sensor_range(http):
    start = datetime(2026, 7, 1, 1, 0, tzinfo=timezone.utc)
    with http.engine.begin() as conn:
        conn.execute(telemetry.insert(), [dict(facility="A", device_id="t1", metric="temperature",
                                               ts=start + timedelta(minutes=i), value=29.5) for i in range(15)])
    runner = HealthRunner(http.engine)
    assert runner.run_once(start + timedelta(minutes=14)).raised == []        # 14 minutes out of range
    with http.engine.begin() as conn:
        conn.execute(telemetry.insert().values(facility="A", device_id="t1", metric="temperature",
                                               ts=start + timedelta(minutes=15), value=29.0))
    [alarm_id] = runner.run_once(start + timedelta(minutes=15)).raised
    with http.engine.begin() as conn:
        conn.execute(telemetry.insert().values(facility="A", device_id="t1", metric="temperature",
                                               ts=start + timedelta(minutes=16), value=26.0))
    assert runner.run_once(start + timedelta(minutes=16)).cleared == [alarm_id]
    with http.engine.connect() as conn:
        row = conn.execute(sa.select(alarms.c.kind, alarms.c.source, alarms.c.state)
                           .where(alarms.c.alarm_id == alarm_id)).one()
    assert tuple(row) == ("sensor_range", "t1/temperature", "cleared")
    series = call(http, "health", "GET", "/api/environment/series", params={
        "facility": "A", "device_id": "t1", "metric": "temperature", "since": start.isoformat(),
        "until": (start + timedelta(minutes=20)).isoformat(), "step_s": 600}).json()
    assert [p["value"] for p in series["points"]] == [29.5, round((29.5 * 5 + 29.0 + 26.0) / 7, 3)]
    rooms = call(http, "health", "GET", "/api/environment/rooms",
                 params={"since": start.isoformat()}).json()["items"]
    [room] = [r for r in rooms if r["device_id"] == "t1"]
    assert (room["zone"], room["latest"], room["in_range"], room["limit_low"], room["limit_high"]) == \
        ("活动室", 26.0, True, 22.0, 28.0)
    assert call(http, "facB", "GET", "/api/environment/series", params={
        "facility": "A", "device_id": "t1", "metric": "temperature"}).status_code == 403
    assert call(http, "police", "GET", "/api/environment/rooms").status_code == 403


def test_certificates_ban_list_and_compliance(http):
    today = datetime.now(SH).date()
    r = call(http, "health", "POST", "/api/care/staff/s1/certificates", json={
        "facility": "A", "kind": "health_certificate", "issued_on": str(today - timedelta(days=335)),
        "expires_on": str(today + timedelta(days=30))})
    assert r.status_code == 201, r.text
    call(http, "admin", "POST", "/api/care/staff/s2/certificates", json={
        "facility": "A", "kind": "health_certificate", "issued_on": str(today - timedelta(days=400)),
        "expires_on": str(today - timedelta(days=1))})
    assert call(http, "facB", "POST", "/api/care/staff/s1/certificates", json={
        "facility": "A", "kind": "training", "issued_on": str(today)}).status_code == 403
    items = call(http, "supervisor", "GET", "/api/care/certificates", params={"within_days": 30}).json()["items"]
    assert {(i["staff_id"], i["status"]) for i in items if i["facility"] == "A"} == {("s1", "expiring"),
                                                                                     ("s2", "expired")}
    with http.engine.connect() as conn:
        report = facility_compliance(conn, "A", datetime.now(timezone.utc))
    staff_findings = {(f.evidence.get("staff_id"), f.level.value) for f in report.findings if f.rule == "staff_health"}
    assert staff_findings == {("s1", "warning"), ("s2", "breach")}
    assert {f.evidence["class_id"] for f in report.findings if f.rule == "roster_carer_ratio"} == {"c1"}  # 4 > 1x3

    ban = {"name": "张 三", "id_number": "11010519491231002X", "listed_on": "2024-01-01", "authority": "市卫健委"}
    assert call(http, "facA", "POST", "/api/care/ban-list", json=ban).status_code == 403
    assert call(http, "health", "POST", "/api/care/ban-list", json=ban).status_code == 201
    hire = {"staff_id": "s9", "name": "张三", "role": "carer"}
    refused = call(http, "admin", "POST", "/api/facilities/A/staff", json=hire)
    assert refused.status_code == 409 and "终身禁入" in refused.json()["detail"]
    same = call(http, "admin", "POST", "/api/facilities/A/staff", json={**hire, "id_number": "11010519491231002x"})
    assert same.status_code == 409
    namesake = call(http, "admin", "POST", "/api/facilities/A/staff", json={**hire, "id_number": "110105200001010011"})
    assert namesake.status_code == 201, namesake.text
    assert "id_number" not in namesake.json()
