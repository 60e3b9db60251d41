"""The supervision loop end to end through the API, on SQLite and the real PostgreSQL: uploads
refused with reasons and stored encrypted; inspection, findings, rectification, reopening and
overdue escalation (notice, credit, compliance finding); hazards and incidents notifying health
and police of the jurisdiction only; filing, return, resubmission, acceptance with a 回执 number,
change and closure with history and the public record; the registration import; fee caps at their
edges; subsidies; the annual report as JSON and XLSX; the public API without a token and without
any private value; and the role matrix."""

from __future__ import annotations

import base64
import io
import json
import os
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.alarms.events_bus import EventBus
from cloud.api.app import create_app
from cloud.api.auth import TokenTable
from cloud.care.privacy import FieldCipher
from cloud.compliance.rules import facility_compliance
from cloud.registry.records import register_facility
from cloud.store.db import create_schema, facilities, make_engine
from cloud.supervision.inspections import RectificationWatch
from cloud.supervision.tables import uploads
from helpers import store_url
from supervision_data import BROKEN, JINING, JPEG, PDF, PNG, PRIVATE, RENCHENG, YANZHOU, bearer, facility, grants, uscc

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime.now(timezone.utc)
TODAY = NOW.astimezone(SH).date()
DOCS = ("business_licence", "premises", "fire_acceptance", "health_evaluation", "food_licence", "staff_qualifications")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory):
    with store_url(request, tmp_path_factory.mktemp("sv"), "sv") as url:
        yield url


@pytest.fixture(scope="module")
def api(db_url):
    engine = make_engine(db_url)
    create_schema(engine)
    with engine.begin() as conn:
        register_facility(conn, facility("A", 1), NOW)                                   # 任城区, unfiled
        register_facility(conn, facility("B", 2, district=YANZHOU), NOW)                # 兖州区, filed below
        register_facility(conn, facility("Z", 3, province="湖南省", city="株洲市", district="天元区"), NOW)
        register_facility(conn, facility("P", 4, kind="private", filed=True), NOW)       # 任城区, not 普惠
    app = create_app(engine=engine, bus=EventBus(), tokens=TokenTable(grants()))
    app.state.data_cipher = FieldCipher(os.urandom(32))
    with TestClient(app) as client:
        client.engine = engine
        client.post("/api/care/classes/c1/roster", headers=bearer("facA"),
                    json={"children": [{"child_id": PRIVATE["child_id"], "birth_month": "2025-03"}]}).raise_for_status()
        file_through_workflow(client, "facB", "B", name="托育园2", address="古槐路2号")
        yield client
    engine.dispose()


def call(api, who: str, method: str, path: str, **kw):
    return api.request(method, path, headers={**bearer(who), **kw.pop("headers", {})}, **kw)


def upload(api, who: str, facility_id: str, purpose: str, data: bytes = JPEG, media: str = "image/jpeg") -> str:
    r = call(api, who, "POST", "/api/uploads", params={"facility_id": facility_id, "purpose": purpose},
             content=data, headers={"Content-Type": media})
    assert r.status_code == 201, r.text
    return r.json()["upload_id"]


def file_through_workflow(api, who: str, facility_id: str, **details) -> dict:
    docs = {kind: upload(api, who, facility_id, "document", PDF, "application/pdf") for kind in DOCS}
    filing = call(api, who, "POST", "/api/filings", json={"kind": "initial", "details": _details(**details),
                                                          "documents": docs})
    assert filing.status_code == 201, filing.text
    accepted = call(api, "health", "POST", f"/api/filings/{filing.json()['filing_id']}/accept")
    assert accepted.status_code == 200, accepted.text
    return accepted.json()


# --- uploads --------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_uploads_are_refused_with_a_reason(api, case):
    data, media, status, reason = BROKEN[case]
    before = call(api, "admin", "GET", "/api/uploads/refusals").json()["by_status"].get(str(status), 0)
    r = call(api, "facA", "POST", "/api/uploads", params={"facility_id": "A", "purpose": "document"}, content=data,
             headers={"Content-Type": media})
    assert r.status_code == status, r.text
    assert reason in r.json()["detail"]
    assert call(api, "admin", "GET", "/api/uploads/refusals").json()["by_status"][str(status)] == before + 1


def test_upload_limits_roles_and_encryption(api):
    big = JPEG + b"\0" * (5 * 1024 * 1024)
    r = call(api, "facA", "POST", "/api/uploads", params={"facility_id": "A", "purpose": "evidence"}, content=big)
    assert r.status_code == 413 and "larger than" in r.json()["detail"]
    chunks = iter([JPEG] + [b"\0" * 65536] * 81)   # chunked: no Content-Length to refuse it by
    r = call(api, "facA", "POST", "/api/uploads", params={"facility_id": "A", "purpose": "evidence"}, content=chunks)
    assert r.status_code == 413 and "larger than" in r.json()["detail"]
    r = call(api, "supervisor", "POST", "/api/uploads", params={"facility_id": "A", "purpose": "photo"}, content=PDF)
    assert r.status_code == 415 and "photo must be" in r.json()["detail"]
    assert call(api, "facA", "POST", "/api/uploads", params={"facility_id": "A", "purpose": "photo"},
                content=JPEG).status_code == 403
    assert call(api, "facA", "POST", "/api/uploads", params={"facility_id": "B", "purpose": "evidence"},
                content=JPEG).status_code == 403
    assert call(api, "sup_zz", "POST", "/api/uploads", params={"facility_id": "A", "purpose": "photo"},
                content=JPEG).status_code == 403
    upload_id = upload(api, "facA", "A", "evidence", PNG, "application/octet-stream")
    with api.engine.connect() as conn:
        stored = conn.execute(sa.select(uploads.c.data_enc).where(uploads.c.upload_id == upload_id)).scalar_one()
    assert PNG[16:40] not in bytes(stored) and len(stored) == len(PNG) + 28
    r = call(api, "facA", "GET", f"/api/uploads/{upload_id}")
    assert r.status_code == 200 and r.content == PNG and r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert call(api, "facB", "GET", f"/api/uploads/{upload_id}").status_code == 403
    assert call(api, "sup_zz", "GET", f"/api/uploads/{upload_id}").status_code == 403
    assert call(api, "sup_rc", "GET", f"/api/uploads/{upload_id}").content == PNG


# --- inspections and rectification -----------------------------------------------------------
def test_inspection_rectification_and_overdue_escalation(api):
    checklist = call(api, "sup_rc", "GET", "/api/inspections/checklist/A").json()
    items = {i["item_id"]: i for i in checklist["items"]}
    assert checklist["profile"] == JINING and "jining.fee_cap" in items
    assert all(i["source"] for i in checklist["items"]) and "2500元/人/月" in items["jining.fee_cap"]["source"]
    assert "jining.fee_cap" not in {i["item_id"] for i in call(api, "supervisor", "GET",
                                                                 "/api/inspections/checklist/Z").json()["items"]}
    body = {"facility_id": "A", "kind": "joint", "inspected_on": TODAY.isoformat(), "departments": ["卫生健康", "消防"],
            "results": [{"item_id": "fire.passages", "result": "fail"}, {"item_id": "food.hygiene", "result": "pass"}]}
    assert call(api, "sup_zz", "POST", "/api/inspections", json=body).status_code == 403
    bad = call(api, "sup_rc", "POST", "/api/inspections", json={**body, "results": [{"item_id": "no.such", "result": "pass"}]})
    assert bad.status_code == 422 and "not on the 济宁市 checklist" in bad.text
    inspection = call(api, "sup_rc", "POST", "/api/inspections", json=body).json()
    iid = inspection["inspection_id"]
    photo = upload(api, "sup_rc", "A", "photo")
    finding = call(api, "sup_rc", "POST", f"/api/inspections/{iid}/findings", json={
        "item_id": "fire.passages", "severity": "major", "description": PRIVATE["finding"], "photos": [photo],
        "deadline": (TODAY + timedelta(days=7)).isoformat()}).json()
    fid = finding["finding_id"]
    assert finding["status"] == "open" and finding["area"] == "消防" and not finding["overdue"]
    late = call(api, "sup_rc", "POST", f"/api/inspections/{iid}/findings", json={
        "item_id": "fire.acceptance", "severity": "critical", "description": "消防验收缺失",
        "deadline": TODAY.isoformat()}).json()

    # the role matrix of a facility: its own inspections and findings only
    assert call(api, "facB", "GET", f"/api/inspections/{iid}").status_code == 403
    assert iid not in {i["inspection_id"] for i in call(api, "facB", "GET", "/api/inspections").json()["items"]}
    assert {f["facility"] for f in call(api, "facB", "GET", "/api/findings").json()["items"]} <= {"B"}
    assert call(api, "facB", "GET", "/api/findings", params={"facility_id": "A"}).status_code == 403
    assert call(api, "facA", "GET", f"/api/inspections/{iid}").json()["findings"][0]["finding_id"] == fid
    assert iid not in {i["inspection_id"] for i in call(api, "sup_zz", "GET", "/api/inspections").json()["items"]}
    second = call(api, "sup_rc", "POST", "/api/inspections", json={**body, "kind": "follow_up", "results": []}).json()
    page = call(api, "sup_rc", "GET", "/api/inspections", params={"limit": 1}).json()
    rest = call(api, "sup_rc", "GET", "/api/inspections", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert [page["items"][0]["inspection_id"], rest["items"][0]["inspection_id"]] == sorted(
        [iid, second["inspection_id"]], reverse=True)
    forged = base64.urlsafe_b64encode(json.dumps(["not-a-day", "x"]).encode()).decode()
    assert call(api, "sup_rc", "GET", "/api/inspections", params={"cursor": forged}).status_code == 422

    evidence = upload(api, "facA", "A", "evidence", PDF, "application/pdf")
    assert call(api, "facB", "POST", f"/api/findings/{fid}/rectification",
                json={"description": "x", "evidence": [evidence]}).status_code == 403
    assert call(api, "facA", "POST", f"/api/findings/{fid}/rectification",
                json={"description": "已更换", "evidence": [photo, "0" * 36]}).status_code == 422
    assert call(api, "sup_rc", "POST", f"/api/findings/{fid}/accept", json={}).status_code == 409
    r = call(api, "facA", "POST", f"/api/findings/{fid}/rectification", json={"description": "已更换", "evidence": [evidence]})
    assert r.json()["status"] == "submitted"
    new_deadline = (TODAY + timedelta(days=3)).isoformat()
    r = call(api, "sup_rc", "POST", f"/api/findings/{fid}/reopen", json={"reason": "照片不清", "deadline": new_deadline})
    assert r.json()["status"] == "open" and r.json()["deadline"] == new_deadline
    call(api, "facA", "POST", f"/api/findings/{fid}/rectification", json={"description": "补拍", "evidence": [evidence]})
    assert call(api, "sup_rc", "POST", f"/api/findings/{fid}/accept", json={"note": "合格"}).json()["status"] == "rectified"
    assert call(api, "sup_rc", "POST", f"/api/findings/{fid}/accept", json={}).status_code == 409
    history = call(api, "facA", "GET", f"/api/findings/{fid}").json()["events"]
    assert [e["step"] for e in history] == ["raised", "rectification_submitted", "reopened", "rectification_submitted",
                                            "accepted"]

    # the late finding: due today, so not overdue until the local day is over
    watch = RectificationWatch(api.engine, api.app.state.notice_bus)
    end_of_day = datetime.combine(TODAY, datetime.max.time(), SH)
    assert watch.run_once(end_of_day) == []
    published = api.app.state.notice_bus.published
    notices = watch.run_once(end_of_day + timedelta(seconds=1))
    assert [(n.kind.value, n.role, n.facility) for n in notices] == [("rectification_overdue", "supervisor", "A")]
    assert api.app.state.notice_bus.published == published + 1
    assert watch.run_once(end_of_day + timedelta(days=2)) == []  # once per deadline
    assert any(n["ref"].startswith(late["finding_id"]) for n in call(api, "sup_rc", "GET", "/api/notices").json()["items"])
    assert not any(n["kind"] == "rectification_overdue" for n in call(api, "health", "GET", "/api/notices").json()["items"])
    assert not call(api, "sup_zz", "GET", "/api/notices").json()["items"]
    credit = call(api, "sup_rc", "GET", "/api/credit/A").json()
    entry = next(e for e in credit["entries"] if e["rule"] == "rectification_overdue")
    assert entry["points"] == -10 and "诚信评价" in entry["source"] and credit["score"] <= 90
    with api.engine.connect() as conn:
        report = facility_compliance(conn, "A", end_of_day + timedelta(seconds=1))
    overdue = [f for f in report.findings if f.rule == "rectification_overdue"]
    assert [f.evidence["finding_id"] for f in overdue] == [late["finding_id"]] and overdue[0].evidence["escalated"]
    assert call(api, "sup_rc", "GET", f"/api/findings/{late['finding_id']}").json()["finding"]["escalated"]


# --- hazards and incidents ---------------------------------------------------------------------
def test_hazards_and_incidents_notify_health_and_police_of_the_jurisdiction(api):
    when = (NOW - timedelta(hours=2)).isoformat()
    refused = [
        {"kind": "incident", "category": "injury", "occurred_at": when, "description": "幼儿 370802202001011234 擦伤",
         "children_affected": 1, "actions_taken": "送医"},
        {"kind": "hazard", "category": "facility", "occurred_at": when, "description": "护栏松动", "children_affected": 2,
         "actions_taken": "围挡"},
        {"kind": "incident", "category": "injury", "occurred_at": when, "description": "擦伤", "children_affected": 1,
         "actions_taken": "送医", "child_name": "小明"},
        {"kind": "incident", "category": "injury", "occurred_at": (NOW + timedelta(days=1)).isoformat(),
         "description": "擦伤", "children_affected": 1, "actions_taken": "送医"},
    ]
    for body in refused:
        assert call(api, "facA", "POST", "/api/incidents", json=body).status_code == 422, body
    hazard = call(api, "facA", "POST", "/api/incidents", json={
        "kind": "hazard", "category": "facility", "occurred_at": when, "description": "护栏松动", "actions_taken": "围挡"})
    incident = call(api, "facA", "POST", "/api/incidents", json={
        "kind": "incident", "category": "injury", "occurred_at": when, "description": PRIVATE["incident"],
        "children_affected": 2, "actions_taken": "已送医并通知家长"})
    assert hazard.status_code == incident.status_code == 201
    ids = {hazard.json()["report_id"], incident.json()["report_id"]}
    for who in ("health", "police"):
        seen = {n["ref"]: n for n in call(api, who, "GET", "/api/notices").json()["items"] if n["ref"] in ids}
        assert set(seen) == ids, who
        assert seen[incident.json()["report_id"]]["summary"]["children_affected"] == 2
    for who in ("police_zz", "health_zz", "sup_rc"):
        assert not {n["ref"] for n in call(api, who, "GET", "/api/notices").json()["items"]} & ids, who
    assert call(api, "facA", "GET", "/api/notices").status_code == 403
    assert {r["report_id"] for r in call(api, "police_zz", "GET", "/api/incidents").json()["items"]} & ids == set()
    assert ids <= {r["report_id"] for r in call(api, "police", "GET", "/api/incidents").json()["items"]}
    assert not {r["facility"] for r in call(api, "facB", "GET", "/api/incidents").json()["items"]} - {"B"}
    rules = [e["rule"] for e in call(api, "supervisor", "GET", "/api/credit/A").json()["entries"]]
    assert rules.count("incident") == 1


# --- filings -----------------------------------------------------------------------------------
def _details(name: str = "托育园1", address: str = "古槐路1号", **extra) -> dict:
    return {"name": name, "address": address, "service_types": ["full_day", "hourly"],
            "places": {"infant": 10, "toddler": 15}, "provides_meals": True,
            "licences": [{"kind": "food", "number": "JY-1", "valid_until": (TODAY + timedelta(days=400)).isoformat()},
                         {"kind": "fire", "number": "XF-1", "valid_until": (TODAY + timedelta(days=400)).isoformat()}],
            **extra}


def test_filing_review_change_closure_and_public_record(api):
    docs = {kind: upload(api, "facA", "A", "document", PDF, "application/pdf") for kind in DOCS}
    partial = {k: v for k, v in docs.items() if k not in ("fire_acceptance", "food_licence")}
    r = call(api, "facA", "POST", "/api/filings", json={"kind": "initial", "details": _details(), "documents": partial})
    assert r.status_code == 422 and "消防验收" in r.text and "食品经营许可证" in r.text
    r = call(api, "facA", "POST", "/api/filings", json={"kind": "change", "details": _details(), "reason": "x",
                                                        "documents": docs})
    assert r.status_code == 409
    filing = call(api, "facA", "POST", "/api/filings", json={"kind": "initial", "details": _details(), "documents": docs})
    assert filing.status_code == 201, filing.text
    fid = filing.json()["filing_id"]
    with api.engine.connect() as conn:
        assert conn.execute(sa.select(facilities.c.filing_status).where(facilities.c.facility_id == "A")).scalar() == "pending"
    assert call(api, "facA", "POST", "/api/filings", json={"kind": "initial", "details": _details(),
                                                           "documents": docs}).status_code == 409
    assert call(api, "health_zz", "POST", f"/api/filings/{fid}/return", json={"reasons": ["x"]}).status_code == 403
    assert call(api, "facA", "POST", f"/api/filings/{fid}/accept").status_code == 403
    returned = call(api, "health", "POST", f"/api/filings/{fid}/return", json={"reasons": ["场地证明不清晰"]}).json()
    assert returned["status"] == "returned" and returned["reasons"] == ["场地证明不清晰"]
    assert call(api, "health", "POST", f"/api/filings/{fid}/accept").status_code == 409
    assert "filing_returned" in {e["rule"] for e in call(api, "health", "GET", "/api/credit/A").json()["entries"]}
    r = call(api, "facA", "PUT", f"/api/filings/{fid}", json={"kind": "initial", "details": _details(), "documents": docs})
    assert r.json()["status"] == "submitted"
    accepted = call(api, "health", "POST", f"/api/filings/{fid}/accept").json()
    receipt = accepted["receipt_number"]
    prefix = f"TB-370800-{TODAY.year}-"
    assert receipt.startswith(prefix) and int(receipt[len(prefix):]) >= 2  # B's was the first
    assert [e["step"] for e in accepted["history"]] == ["submitted", "returned", "resubmitted", "accepted"]
    registry = call(api, "admin", "GET", "/api/facilities/A").json()
    assert registry["filing_status"] == "filed" and registry["filing_number"] == receipt
    assert {lic["kind"] for lic in registry["licences"]} == {"food", "fire"}
    public = {f["facility_id"]: f for f in api.get("/api/public/facilities").json()["items"]}
    assert public["A"]["status"] == "filed" and public["A"]["receipt_number"] == receipt
    assert public["A"]["service_types"] == ["full_day", "hourly"] and public["A"]["places"] == {"infant": 10, "toddler": 15}

    change = call(api, "facA", "POST", "/api/filings", json={"kind": "change", "reason": "更名",
                                                             "details": _details(name="托育园1（新址）")}).json()
    changed = call(api, "health", "POST", f"/api/filings/{change['filing_id']}/accept").json()
    assert changed["receipt_number"] == f"{prefix}{int(receipt[len(prefix):]) + 1:04d}"
    assert call(api, "admin", "GET", "/api/facilities/A").json()["name"] == "托育园1（新址）"
    closure = call(api, "facA", "POST", "/api/filings", json={"kind": "closure", "reason": "停止办学"}).json()
    call(api, "health", "POST", f"/api/filings/{closure['filing_id']}/accept").raise_for_status()
    assert call(api, "admin", "GET", "/api/facilities/A").json()["filing_status"] == "revoked"
    row = next(f for f in api.get("/api/public/facilities", params={"status": "closed"}).json()["items"]
               if f["facility_id"] == "A")
    assert row["name"] == "托育园1（新址）" and row["closed_on"] == TODAY.isoformat() and row["changed_on"]
    events = [(e["event"], e["receipt_number"]) for e in api.get("/api/public/events").json()["items"]
              if e["facility_id"] == "A"]
    assert [e for e, _ in events] == ["filed", "changed", "closed"] and events[0][1] == receipt
    assert [f["kind"] for f in call(api, "facA", "GET", "/api/filings").json()["items"]] == ["initial", "change", "closure"]
    assert {f["facility"] for f in call(api, "facB", "GET", "/api/filings").json()["items"]} == {"B"}
    assert call(api, "facB", "GET", f"/api/filings/{fid}").status_code == 403
    # a filed facility files anew after its closure
    again = call(api, "facA", "POST", "/api/filings", json={"kind": "initial", "details": _details(), "documents": docs})
    assert again.status_code == 201, again.text


def test_registration_import(api):
    def reg(n, **kw):
        return {"uscc": uscc(900 + n), "name": f"新登记托育{n}", "legal_form": "for_profit", "authority": "任城区市场监管局",
                "registered_on": "2026-03-01", "province": "山东省", "city": JINING, "district": RENCHENG,
                "address": f"新路{n}号", "service_types": ["full_day"], **kw}
    good = reg(3)["uscc"]
    batch = [reg(1), reg(2), {**reg(3), "uscc": good[:17] + ("0" if good[17] != "0" else "1")}]
    assert call(api, "facA", "POST", "/api/filings/import", json={"registrations": batch}).status_code == 403
    result = call(api, "registrar", "POST", "/api/filings/import", json={"registrations": batch}).json()
    assert (result["created"], result["updated"], result["unchanged"]) == (2, 0, 0)
    assert [x["index"] for x in result["refused"]] == [2] and "credit code" in result["refused"][0]["reason"]
    result = call(api, "registrar", "POST", "/api/filings/import",
                  json={"registrations": [reg(1), reg(2, address="新路二号")]}).json()
    assert (result["created"], result["updated"], result["unchanged"]) == (0, 1, 1)
    unfiled = call(api, "health", "GET", "/api/filings/registrations", params={"unfiled_only": True}).json()["items"]
    assert {r["name"] for r in unfiled} >= {"新登记托育1", "新登记托育2"} and unfiled[0]["facility_id"] is None
    assert not call(api, "health_zz", "GET", "/api/filings/registrations").json()["items"]


# --- fees and subsidies --------------------------------------------------------------------------
def _fees(infant: int, toddler: int) -> dict:
    start = TODAY.isoformat()
    return {"fees": [{"class_type": "infant", "service_type": "full_day", "amount_yuan": infant, "effective_from": start},
                     {"class_type": "toddler", "service_type": "full_day", "amount_yuan": toddler, "effective_from": start},
                     {"class_type": "toddler", "service_type": "hourly", "amount_yuan": 5000, "effective_from": start}]}


def test_fee_caps_at_their_edges(api):
    at_cap = call(api, "facB", "PUT", "/api/fees/B", json=_fees(2500, 1900)).json()
    assert at_cap["caps_apply"] and at_cap["breaches"] == 0
    assert [f["cap_yuan"] for f in at_cap["fees"]] == [2500, 1900, None]
    with api.engine.connect() as conn:
        assert not [f for f in facility_compliance(conn, "B", NOW).findings if f.rule == "fee_cap"]
    over = call(api, "facB", "PUT", "/api/fees/B", json=_fees(2501, 1901)).json()
    assert over["breaches"] == 2 and [f["within_cap"] for f in over["fees"]] == [False, False, None]
    with api.engine.connect() as conn:
        found = [f for f in facility_compliance(conn, "B", NOW).findings if f.rule == "fee_cap"]
    assert sorted(f.evidence["amount_yuan"] for f in found) == [1901, 2501] and "2500元/人/月" in found[0].source
    assert call(api, "facA", "PUT", "/api/fees/B", json=_fees(1, 1)).status_code == 403
    assert call(api, "admin", "PUT", "/api/fees/P", json=_fees(9000, 9000)).json()["breaches"] == 0  # not 普惠
    assert not call(api, "admin", "PUT", "/api/fees/Z", json=_fees(9000, 9000)).json()["caps_apply"]  # no caps there
    public = {f["facility_id"]: f for f in api.get("/api/public/facilities").json()["items"]}
    assert {(f["class_type"], f["amount_yuan"]) for f in public["B"]["fees"]} >= {("infant", 2501)}


def test_subsidies_per_facility_district_and_year(api):
    year = TODAY.year + 1  # B stays filed through the whole of next year
    assert call(api, "facB", "POST", "/api/subsidies/acceptances", json={
        "facility_id": "B", "accepted_on": f"{year}-06-30", "new_places": 10}).status_code == 403
    call(api, "supervisor", "POST", "/api/subsidies/acceptances", json={
        "facility_id": "B", "accepted_on": f"{year}-06-30", "new_places": 10}).raise_for_status()
    report = call(api, "supervisor", "GET", "/api/subsidies", params={"year": year}).json()
    lines = {x["facility"]: x for x in report["lines"]}
    assert lines["B"]["construction_yuan"] == 20_000
    assert {o["class_type"]: o["amount_yuan"] for o in lines["B"]["operation"]} == {"infant": 24_000, "toddler": 24_000}
    assert lines["P"]["operation_yuan"] == 0 and lines["Z"]["total_yuan"] == 0  # not 普惠; no rates in 株洲
    assert lines["B"]["total_yuan"] == 68_000 and any("3000元/人/年" in s for s in lines["B"]["sources"])
    district = next(d for d in report["districts"] if d["district"].endswith(YANZHOU))
    assert district["total_yuan"] == 68_000
    assert call(api, "supervisor", "GET", "/api/subsidies", params={"year": year - 2}).json()["lines"][1]["total_yuan"] == 0
    scoped = call(api, "sup_rc", "GET", "/api/subsidies", params={"year": year}).json()
    assert {x["facility"] for x in scoped["lines"]} == {"A", "P"}
    csv_text = call(api, "supervisor", "GET", "/api/subsidies/export.csv", params={"year": year}).text
    assert "68000" in csv_text and "乳儿班8人×3000元" in csv_text


# --- annual report -------------------------------------------------------------------------------
def test_annual_report_xlsx_matches_the_api(api):
    with api.engine.begin() as conn:
        register_facility(conn, facility("X", 5, name="=HYPERLINK(\"http://x\",\"点我\")"), NOW)
    params = {"district": f"山东省/{JINING}/{RENCHENG}", "year": TODAY.year}
    assert call(api, "sup_zz", "GET", "/api/reports/annual", params=params).status_code == 403
    report = call(api, "sup_rc", "GET", "/api/reports/annual", params=params).json()
    figures = report["figures"]
    assert figures["inspections"] >= 1 and figures["findings"] >= 2 and figures["findings_rectified"] >= 1
    assert figures["rectifications_overdue"] >= 1 and figures["incidents"] >= 1 and figures["hazards"] >= 1
    assert figures["children_affected"] >= 2
    assert figures["rectification_rate"] == round(figures["findings_rectified"] / figures["findings"], 4)
    r = call(api, "sup_rc", "GET", "/api/reports/annual.xlsx", params=params)
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    summary = {row[1]: row[2] for row in wb["汇总"].iter_rows(min_row=2, values_only=True)}
    assert summary == {k: v for k, v in figures.items()}
    sheet = list(wb["机构明细"].iter_rows(values_only=True))
    assert len(sheet) - 1 == len(report["facilities"])
    by_id = {row[0]: row for row in sheet[1:]}
    for fac in report["facilities"]:
        row = by_id[fac["facility"]]
        assert (row[1], row[5], row[8], row[11], row[13]) == (fac["name"], fac["places"], fac["findings"],
                                                              fac["credit_score"], fac["subsidy_yuan"])
    cell = next(c for c in wb["机构明细"]["B"] if c.value and str(c.value).startswith("=HYPERLINK"))
    assert cell.data_type == "s"  # a name stays text, never a formula


# --- the public side ------------------------------------------------------------------------------
def test_public_needs_no_token_and_shows_nothing_private(api):
    with api.engine.connect() as conn:
        upload_ids = conn.execute(sa.select(uploads.c.upload_id)).scalars().all()
        uscc_values = conn.execute(sa.select(facilities.c.uscc)).scalars().all()
    private = list(PRIVATE.values()) + upload_ids + uscc_values + ["sup_rc-user", "facA-user", "health-user"]
    texts = []
    for path in ("/api/public/facilities", "/api/public/facilities.csv", "/api/public/events", "/api/public/events.csv",
                 "/public"):
        r = api.get(path)
        assert r.status_code == 200, path
        texts.append(r.text)
    texts.append(json.dumps(api.get("/api/public/facilities", params={"city": JINING, "limit": 1}).json(),
                            ensure_ascii=False))
    body = "\n".join(texts)
    assert "TB-370800-" in body and "托育园1（新址）" in body  # the public record is there
    leaked = [value for value in private if value in body]
    assert leaked == []
    assert "'=HYPERLINK" in api.get("/api/public/facilities.csv").text or "HYPERLINK" not in body
    assert api.post("/api/public/facilities").status_code == 405


# --- role matrix ----------------------------------------------------------------------------------
MATRIX = [
    ("GET", "/api/inspections", {"admin", "supervisor", "sup_rc", "sup_zz", "health", "health_zz", "facA", "facB"}),
    ("GET", "/api/inspections/checklist/A", {"admin", "supervisor", "sup_rc", "health", "facA"}),
    ("GET", "/api/findings", {"admin", "supervisor", "sup_rc", "sup_zz", "health", "health_zz", "facA", "facB"}),
    ("GET", "/api/notices", {"admin", "supervisor", "sup_rc", "sup_zz", "health", "health_zz", "police", "police_zz"}),
    ("GET", "/api/incidents", {"admin", "supervisor", "sup_rc", "sup_zz", "health", "health_zz", "police", "police_zz",
                               "facA", "facB"}),
    ("GET", "/api/filings", {"admin", "supervisor", "sup_rc", "sup_zz", "health", "health_zz", "facA", "facB"}),
    ("GET", "/api/filings/registrations", {"admin", "supervisor", "sup_rc", "sup_zz", "health", "health_zz"}),
    ("GET", "/api/fees/A", {"admin", "supervisor", "sup_rc", "health", "facA"}),
    ("GET", "/api/credit", {"admin", "supervisor", "sup_rc", "sup_zz", "health", "health_zz"}),
    ("GET", "/api/credit/A", {"admin", "supervisor", "sup_rc", "health"}),
    ("GET", "/api/subsidies?year=2026", {"admin", "supervisor", "sup_rc", "sup_zz", "health", "health_zz"}),
    ("GET", f"/api/reports/annual?district=山东省/{JINING}/{RENCHENG}&year=2026", {"admin", "supervisor", "sup_rc", "health"}),
]
ROLES = ("admin", "supervisor", "sup_rc", "sup_zz", "health", "health_zz", "police", "police_zz", "registrar", "facA",
         "facB")


@pytest.mark.parametrize("method, path, allowed", MATRIX, ids=[f"{m} {p}" for m, p, _ in MATRIX])
def test_role_matrix(api, method, path, allowed):
    for who in ROLES:
        r = call(api, who, method, path)
        assert r.status_code == (200 if who in allowed else 403), (who, r.status_code, r.text)
    assert api.request(method, path).status_code == 401
