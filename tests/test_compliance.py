"""Compliance rules at their edges (exactly at a cap passes, one over fails), the city profile
that lowers retention to 30 days, and facts read from the store's envelopes and alarms."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta, timezone

import pytest

from cloud.compliance.rules import (CameraStatus, FacilityFacts, Level, Status, evaluate, facility_compliance)
from cloud.store.db import alarms, create_schema, envelopes, make_engine
from cloud.compliance.profiles import NATIONAL, profile_for
from contracts.video_platform import VideoPlatformStatus
from cloud.registry.records import ClassIn, ClassType, Facility, FacilityRegistration, register_facility, uscc_check_char

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
# A heartbeat's gb28181 section: registered with the police video platform, cam1 one of its channels.
NETWORKED = {"registered": True, "platform": "10.0.0.1:5060", "platform_id": "34020000002000000001",
             "device_id": "34020000001180000001", "transport": "udp", "since": "2026-06-15T00:00:00Z",
             "reason": "registered", "cameras": ["cam1"], "streams": 0}


def _uscc(n: int) -> str:
    first17 = f"91370800{n:09d}"
    return first17 + uscc_check_char(first17)


def registration(fid: str = "F1", city: str = "株洲市", classes: list[dict] = ()) -> dict:
    return {"facility_id": fid, "name": "园", "uscc": _uscc(7), "kind": "inclusive", "address": "路1号",
            "district": {"province": "省", "city": city, "district": "区", "street": "街"},
            "filing_status": "filed", "filing_number": "BA-1",
            "licences": [{"kind": k, "number": "L", "expires_on": "2030-01-01"}
                         for k in ("health_evaluation", "fire", "food")],
            "classes": list(classes)}


def facts(classes: list[ClassIn] = (), **kw) -> FacilityFacts:
    reg = FacilityRegistration.model_validate(registration())
    facility = Facility(**reg.model_dump(exclude={"areas", "cameras", "devices", "staff", "gateway"}) | {
        "classes": list(classes)}, capacity={}, enrolment={}, created_at=NOW, updated_at=NOW)
    base = dict(facility=facility, panic_buttons=["btn-1"], children_areas={"room1": ["cam1"]}, camera_ids=["cam1"],
                retention_report_ts=NOW, retention_days={"cam1": 95.0},
                camera_health={"cam1": CameraStatus(ts=NOW, online=True, state="streaming", fault=None)},
                last_heartbeat=NOW - timedelta(seconds=10), last_drill_delivered=NOW - timedelta(days=3),
                video_platform=VideoPlatformStatus.model_validate(NETWORKED))
    return FacilityFacts(**(base | kw))


def rules_failed(f: FacilityFacts, profile=NATIONAL, now=NOW) -> set[str]:
    report = evaluate(f, profile, now)
    return {x.rule for x in report.findings if x.level is Level.BREACH}


def test_all_good_is_compliant():
    report = evaluate(facts(), NATIONAL, NOW)
    assert (report.status, report.score, report.findings) == (Status.COMPLIANT, 100.0, [])


@pytest.mark.parametrize("class_type, cap, ratio", [(ClassType.INFANT, 10, 3), (ClassType.TODDLER, 15, 5),
                                                    (ClassType.OLDER, 20, 7), (ClassType.MIXED, 18, 5)])
def test_class_size_and_carer_ratio_edges(class_type, cap, ratio):
    def one(enrolled: int, carers: int) -> ClassIn:
        return ClassIn(class_id="c", name="c", class_type=class_type, places=100, enrolled=enrolled, carers=carers)

    carers = -(-cap // ratio) + 1  # enough carers that only the size matters
    assert rules_failed(facts([one(cap, carers)])) == set()
    report = evaluate(facts([one(cap + 1, carers)]), NATIONAL, NOW)
    [finding] = report.findings
    assert finding.rule == "class_size" and finding.evidence["cap"] == cap and "托育机构设置标准" in finding.source
    assert report.status is Status.NON_COMPLIANT and report.score < 100
    # Ratio: exactly carers * ratio children passes, one more fails.
    assert rules_failed(facts([one(2 * ratio, 2)])) == set()
    assert rules_failed(facts([one(2 * ratio + 1, 2)])) == {"carer_ratio"}


def test_enrolment_within_filed_places():
    def one(places: int) -> ClassIn:
        return ClassIn(class_id="c", name="c", class_type=ClassType.OLDER, places=places, enrolled=12, carers=2)
    assert rules_failed(facts([one(12)])) == set()
    assert rules_failed(facts([one(11)])) == {"enrolment_within_capacity"}


def test_retention_national_and_city_profile():
    assert rules_failed(facts(retention_days={"cam1": 90.0})) == set()
    [finding] = evaluate(facts(retention_days={"cam1": 89.99}), NATIONAL, NOW).findings
    assert finding.rule == "retention" and finding.source == "托育机构管理规范（试行）: 监控录像资料保存期不少于90日"
    assert finding.evidence["camera_id"] == "cam1" and finding.evidence["achieved_days"] == 89.99
    jining = profile_for("济宁")
    assert jining == profile_for("济宁市")
    assert jining.retention_days.value == 30 and jining.class_size == NATIONAL.class_size
    assert rules_failed(facts(retention_days={"cam1": 30.0}), jining) == set()
    [finding] = evaluate(facts(retention_days={"cam1": 29.99}), jining, NOW).findings
    assert "30日以上" in finding.source and evaluate(facts(), jining, NOW).profile == "济宁市"
    assert profile_for("株洲市") is NATIONAL
    assert rules_failed(facts(retention_report_ts=None, retention_days={})) == {"retention"}
    assert rules_failed(facts(retention_days={})) == {"retention"}, "a camera missing from the report"


def test_retention_building_up_warns_and_a_gap_breaches():
    jining = profile_for("济宁市")
    building = evaluate(facts(retention_days={"cam1": 12.0}, retention_gaps={"cam1": 0}), jining, NOW)
    [finding] = building.findings
    assert (finding.key, finding.level, building.status) == ("retention.building_up", Level.WARNING, Status.WARNING)
    assert finding.params == {"camera": "cam1", "days": 12.0, "required": 30.0}
    broken = evaluate(facts(retention_days={"cam1": 12.0}, retention_gaps={"cam1": 1}), jining, NOW)
    assert [(x.key, x.level) for x in broken.findings] == [("retention.short", Level.BREACH)]
    # A report that does not list gaps proves nothing about them: short is a breach.
    assert rules_failed(facts(retention_days={"cam1": 12.0}), jining) == {"retention"}


def test_findings_carry_a_key_their_pages_can_render():
    """Every finding names its rule in its key, with the parameters its message uses; the pages
    have a text for every key the rules can produce, in both languages."""
    import re
    from pathlib import Path
    source = Path(__file__).resolve().parents[1] / "cloud" / "compliance" / "rules.py"
    keys = set(re.findall(r'_(?:breach|warning)\(\s*(?:f)?"([a-z_0-9]+\.[a-z_{}.]+)"', source.read_text()))
    keys = {k for k in keys if "{" not in k} | {"children_areas_covered.no_camera", "children_areas_covered.none_online",
                                                "drill_ledger.facility_month", "drill_ledger.button_month"}
    assert len(keys) >= 25, sorted(keys)
    common = (Path(__file__).resolve().parents[1] / "dashboards" / "static" / "common.js").read_text()
    for key in keys:
        assert common.count(f'"{key}":') == 2, f"{key}: a text in both languages"
    report = evaluate(facts(retention_report_ts=None, retention_days={}, last_drill_delivered=None, panic_buttons=[]),
                      NATIONAL, NOW)
    assert report.findings and all(f.key.split(".")[0] == f.rule and f.key in keys for f in report.findings)


def test_monthly_drill_edge():
    assert rules_failed(facts(last_drill_delivered=NOW - timedelta(days=31))) == set()
    assert rules_failed(facts(last_drill_delivered=NOW - timedelta(days=31, seconds=1))) == {"monthly_drill"}
    assert rules_failed(facts(last_drill_delivered=None)) == {"monthly_drill"}


def test_arming_and_children_areas():
    assert rules_failed(facts(last_heartbeat=NOW - timedelta(seconds=300))) == set()
    assert rules_failed(facts(last_heartbeat=NOW - timedelta(seconds=301))) == {"arming_24h"}
    assert rules_failed(facts(panic_buttons=[])) == {"arming_24h"}
    offline = {"cam1": CameraStatus(ts=NOW, online=False, state="stalled", fault=None)}
    report = evaluate(facts(camera_health=offline), NATIONAL, NOW)
    [finding] = report.findings
    assert finding.rule == "children_areas_covered" and finding.evidence == {"area_id": "room1",
                                                                             "cameras": {"cam1": "stalled"}}
    assert rules_failed(facts(camera_health={})) == {"children_areas_covered"}
    assert rules_failed(facts(children_areas={"room1": []})) == {"children_areas_covered"}
    # A second camera online in the same area is enough.
    two = {"cam1": offline["cam1"], "cam2": CameraStatus(ts=NOW, online=True, state="streaming", fault=None)}
    assert rules_failed(facts(children_areas={"room1": ["cam1", "cam2"]}, camera_health=two)) == set()


def test_licence_expiry_warning_and_breach():
    f = facts()
    soon = f.facility.model_copy(update={"licences": [
        lic.model_copy(update={"expires_on": NOW.date() + timedelta(days=30)}) if lic.kind.value == "fire" else lic
        for lic in f.facility.licences]})
    report = evaluate(facts(facility=soon), NATIONAL, NOW)
    assert report.status is Status.WARNING and [x.level for x in report.findings] == [Level.WARNING]
    expired = soon.model_copy(update={"licences": [
        lic.model_copy(update={"expires_on": date(2026, 6, 14)}) if lic.kind.value == "fire" else lic
        for lic in soon.licences]})
    assert rules_failed(facts(facility=expired)) == {"licences"}


def test_facts_from_the_store_with_city_profile(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    create_schema(engine)
    now = datetime.now(timezone.utc)
    reg = registration("JN1", city="济宁市", classes=[{"class_id": "c1", "name": "a", "class_type": "older",
                                                         "places": 20, "enrolled": 20, "carers": 3}])
    reg |= {"areas": [{"area_id": "room1", "name": "活动室", "children_area": True}],
            "cameras": [{"camera_id": "cam1", "name": "c", "areas": ["room1"]}],
            "devices": [{"device_id": "btn-1", "kind": "panic_button", "name": "b"}]}

    def env(type_: str, body: dict, ts: datetime) -> dict:
        return dict(id=str(uuid.uuid4()), facility="JN1", type=type_, source="edge", seq=0, ts=ts, received_at=ts,
                    body=body)

    with engine.begin() as conn:
        register_facility(conn, FacilityRegistration.model_validate(reg), now)
        conn.execute(envelopes.insert(), [
            env("retention.report", {"cameras": [{"camera_id": "cam1", "achieved_days": 20.0}]}, now - timedelta(days=1)),
            env("retention.report", {"cameras": [{"camera_id": "cam1", "achieved_days": 31.0}]}, now),
            env("camera.health", {"cameras": [{"camera_id": "cam1", "state": "streaming", "fault": None}]},
                now - timedelta(seconds=5)),
            env("heartbeat", {"police_encrypted": True, "gb28181": NETWORKED}, now - timedelta(seconds=5))])
        conn.execute(alarms.insert().values(
            alarm_id=str(uuid.uuid4()), facility="JN1", kind="test", severity="warning", source="z1", state="cleared",
            detail={}, sort_ts=now - timedelta(days=2), raised_at=now - timedelta(days=2),
            delivered_at=now - timedelta(days=2), updated_at=now))
        report = facility_compliance(conn, "JN1", now)
        assert (report.profile, report.status, report.findings) == ("济宁市", Status.COMPLIANT, []), report.findings
        conn.execute(envelopes.insert(), [env("camera.health", {"camera_id": "cam1", "state": "streaming",
                                                                "fault": "covered"}, now)])
        report = facility_compliance(conn, "JN1", now)
        assert [x.rule for x in report.findings] == ["children_areas_covered"]
        assert report.findings[0].evidence["cameras"] == {"cam1": "covered"}
        conn.execute(envelopes.insert(), [env("heartbeat", {"police_encrypted": False, "gb28181": NETWORKED}, now)])
        report = facility_compliance(conn, "JN1", now)
        assert [x.rule for x in report.findings] == ["police_path_encrypted", "children_areas_covered"]
    engine.dispose()


def test_video_networked_with_the_police():
    assert rules_failed(facts(video_platform=None)) == {"video_networked"}
    lost = VideoPlatformStatus.model_validate({**NETWORKED, "registered": False, "reason": "3 keepalives unanswered"})
    report = evaluate(facts(video_platform=lost), NATIONAL, NOW)
    [finding] = report.findings
    assert finding.rule == "video_networked" and finding.message.endswith("10.0.0.1:5060: 3 keepalives unanswered")
    no_channel = VideoPlatformStatus.model_validate({**NETWORKED, "cameras": ["cam9"]})
    report = evaluate(facts(video_platform=no_channel), NATIONAL, NOW)
    [finding] = report.findings
    assert finding.evidence["areas"] == ["room1"] and "room1" in finding.message
    # One networked camera per children's area is enough, as for coverage.
    assert rules_failed(facts(children_areas={"room1": ["cam1", "cam2"]})) == set()


def test_unencrypted_police_path_is_a_finding():
    assert rules_failed(facts(police_encrypted=True)) == set() == rules_failed(facts(police_encrypted=None))
    report = evaluate(facts(police_encrypted=False), NATIONAL, NOW)
    assert [(x.rule, x.level) for x in report.findings] == [("police_path_encrypted", Level.BREACH)]
    assert report.findings[0].message.startswith("police path not encrypted")
    assert report.status is Status.NON_COMPLIANT
