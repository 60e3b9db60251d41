"""Places per 1,000 residents per district against the profile's yearly targets, 普惠 share,
occupancy, and the supervisor entering district populations."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.api.auth import TokenGrant, TokenTable
from cloud.store.db import create_schema, make_engine
from cloud.alarms.events_bus import EventBus
from cloud.compliance.profiles import Requirement
from cloud.registry.records import FacilityRegistration, register_facility, uscc_check_char
from cloud.registry.statistics import target_for

SUP = "t-super-0123456789"
HEALTH = "t-health-0123456789"
FAC = "t-facA-012345678901"


def _reg(fid: str, n: int, kind: str, places: int, enrolled: int, district: str = "任城区") -> FacilityRegistration:
    first17 = f"91370800{n:09d}"
    return FacilityRegistration.model_validate({
        "facility_id": fid, "name": fid, "uscc": first17 + uscc_check_char(first17), "kind": kind, "address": "a",
        "district": {"province": "山东省", "city": "济宁市", "district": district, "street": "s"},
        "classes": [{"class_id": "c1", "name": "n", "class_type": "older", "places": places, "enrolled": enrolled,
                     "carers": 3}]})


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('stats') / 'c.db'}")
    create_schema(engine)
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        register_facility(conn, _reg("A", 1, "inclusive", 20, 15), now)
        register_facility(conn, _reg("B", 2, "private", 20, 20), now)
        register_facility(conn, _reg("C", 3, "public", 10, 5, district="兖州区"), now)
    app = create_app(engine=engine, bus=EventBus(), tokens=TokenTable([
        TokenGrant(SUP, "sup", "supervisor"), TokenGrant(HEALTH, "h", "health"),
        TokenGrant(FAC, "fa", "facility", "A")]))
    with TestClient(app) as client:
        yield client
    engine.dispose()


def test_places_per_district(http):
    sup = {"Authorization": f"Bearer {SUP}"}
    r = http.put("/api/statistics/districts/山东省/济宁市/任城区", json={"population": 8000, "year": 2025}, headers=sup)
    assert r.status_code == 200 and r.json()["district"] == "山东省/济宁市/任城区", r.text
    assert http.put("/api/statistics/districts/山东省/任城区", json={"population": 1, "year": 2025},
                    headers=sup).status_code == 422
    assert http.put("/api/statistics/districts/a/b/c", json={"population": 0, "year": 2025},
                    headers=sup).status_code == 422
    assert http.put("/api/statistics/districts/a/b/c", json={"population": 5, "year": 2025},
                    headers={"Authorization": f"Bearer {HEALTH}"}).status_code == 403
    items = {i["district"]: i for i in http.get("/api/statistics/places", headers=sup).json()["items"]}
    rc = items["山东省/济宁市/任城区"]
    assert (rc["places"], rc["places_per_1000"], rc["target"], rc["puhui_places"], rc["puhui_share"],
            rc["enrolled"], rc["occupancy"]) == (40, 5.0, 4.5, 20, 0.5, 35, 0.875)
    yz = items["山东省/济宁市/兖州区"]
    assert (yz["population"], yz["places_per_1000"], yz["puhui_share"]) == (None, None, 1.0)  # public counts as 普惠
    assert http.get("/api/statistics/places", headers={"Authorization": f"Bearer {FAC}"}).status_code == 403


def test_city_yearly_targets():
    targets = {2023: Requirement(value=3.2, source="x"), 2024: Requirement(value=4.1, source="x"),
               2025: Requirement(value=5.1, source="x")}
    assert [target_for(targets, y).value for y in (2022, 2023, 2024, 2025, 2026)] == [3.2, 3.2, 4.1, 5.1, 5.1]
    assert target_for({}, 2025) is None
