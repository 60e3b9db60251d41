"""The role matrix: every role reaches what it needs and nothing else; a facility token sees its
own facility only; snapshot reads are audited."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.api.auth import TokenGrant, TokenTable
from cloud.store.db import alarms, audit, create_schema, envelopes, escalations, make_engine
from cloud.alarms.events_bus import EventBus
from cloud.registry.records import FacilityRegistration, register_facility, uscc_check_char

NOW = datetime.now(timezone.utc)
TOKENS = {"police": "t-police-0123456789", "health": "t-health-0123456789", "supervisor": "t-super-0123456789",
          "admin": "t-admin-01234567890", "facA": "t-facA-012345678901", "facB": "t-facB-012345678901"}
ALARM_A = str(uuid.uuid4())
ALARM_B = str(uuid.uuid4())
JPEG = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"


def _reg(fid: str, n: int) -> FacilityRegistration:
    first17 = f"91370800{n:09d}"
    return FacilityRegistration.model_validate({
        "facility_id": fid, "name": fid, "uscc": first17 + uscc_check_char(first17), "kind": "private", "address": "a",
        "district": {"province": "p", "city": "c", "district": "d", "street": "s"},
        "areas": [{"area_id": "room", "name": "r", "children_area": True}],
        "cameras": [{"camera_id": "cam1", "name": "c", "areas": ["room"]}],
        "devices": [{"device_id": "btn-1", "kind": "panic_button", "name": "b"}],
        "staff": [{"staff_id": "s1", "name": "n", "role": "carer"}], "gateway": {"gateway_id": f"gw-{fid}"}})


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('roles') / 'c.db'}")
    create_schema(engine)
    with engine.begin() as conn:
        register_facility(conn, _reg("A", 1), NOW)
        register_facility(conn, _reg("B", 2), NOW)
        for alarm_id, fid in ((ALARM_A, "A"), (ALARM_B, "B")):
            conn.execute(alarms.insert().values(alarm_id=alarm_id, facility=fid, kind="panic", severity="critical",
                                                source="btn-1", state="active", detail={}, sort_ts=NOW, raised_at=NOW,
                                                updated_at=NOW))
            conn.execute(escalations.insert().values(alarm_id=alarm_id, facility=fid, n=0, at=NOW,
                                                     notified_role="supervisor", unacked_s=61.0))
        for fid in ("A", "B"):
            conn.execute(envelopes.insert().values(
                id=str(uuid.uuid4()), facility=fid, type="camera.snapshot", source="edge", seq=0, ts=NOW,
                received_at=NOW, body={"camera_id": "cam1", "jpeg_b64": base64.b64encode(JPEG).decode()}))
    grants = [TokenGrant(TOKENS[r], r, r) for r in ("police", "health", "supervisor", "admin")]
    grants += [TokenGrant(TOKENS["facA"], "director-a", "facility", "A"),
               TokenGrant(TOKENS["facB"], "director-b", "facility", "B")]
    app = create_app(engine=engine, bus=EventBus(), tokens=TokenTable(grants))
    with TestClient(app) as client:
        client.engine = engine
        yield client
    engine.dispose()


def call(http, who: str, method: str, path: str, **kw):
    return http.request(method, path, headers={"Authorization": f"Bearer {TOKENS[who]}"}, **kw)


ROLES = ("police", "health", "supervisor", "admin", "facA")


def owners(body) -> set[str]:
    """The facilities a response is about: its items' or its own."""
    items = body["items"] if isinstance(body, dict) and "items" in body else body if isinstance(body, list) else [body]
    return {i.get("facility", i.get("facility_id")) for i in items if isinstance(i, dict)}


def only(*fids):
    """The response holds records of `fids`, each of them, and nothing of any other facility."""
    return lambda role, r: owners(r.json()) == set(fids)


def alarm_ids(role, r) -> bool:
    ids = {a["alarm_id"] for a in r.json()["items"]}
    return ids == ({ALARM_A} if role == "facA" else {ALARM_A, ALARM_B})


MATRIX = [  # (method, path, roles allowed, what an allowed role's response holds)
    ("GET", "/api/facilities/A", {"police", "health", "supervisor", "admin", "facA"}, only("A")),
    ("GET", "/api/facilities/B", {"police", "health", "supervisor", "admin"}, only("B")),
    ("GET", f"/api/alarms/{ALARM_A}", {"police", "supervisor", "admin", "facA"},
     lambda role, r: r.json()["alarm_id"] == ALARM_A),
    ("GET", "/api/alarms", {"police", "supervisor", "admin", "facA"}, alarm_ids),
    ("GET", "/api/alarms?facility=B", {"police", "supervisor", "admin"}, only("B")),
    ("GET", "/api/staff?facility=A", {"health", "supervisor", "admin", "facA"}, only("A")),
    ("GET", "/api/staff?facility=B", {"health", "supervisor", "admin"}, only("B")),
    ("GET", "/api/gateways", {"supervisor", "admin", "facA"},
     lambda role, r: owners(r.json()) == ({"A"} if role == "facA" else {"A", "B"})),
    ("GET", "/api/cameras?facility=B", {"police", "supervisor", "admin"}, only("B")),
    ("GET", "/api/devices?facility=A", {"police", "health", "supervisor", "admin", "facA"}, only("A")),
    ("GET", "/api/compliance/A", {"supervisor", "admin", "facA"}, only("A")),
    ("GET", "/api/compliance/B", {"supervisor", "admin"}, only("B")),
    ("GET", "/api/audit", {"supervisor", "admin"}, lambda role, r: isinstance(r.json()["items"], list)),
    ("GET", "/api/facilities/A/cameras/cam1/snapshot", {"police", "admin", "facA"}, lambda role, r: r.content == JPEG),
    # The police read a snapshot only while the facility has an active alarm (both have one here).
    ("GET", "/api/facilities/B/cameras/cam1/snapshot", {"police", "admin"}, lambda role, r: r.content == JPEG),
    ("GET", "/api/alarms/response-times", {"police", "supervisor", "admin"},
     lambda role, r: sum(x["alarms"] for x in r.json()) == 2),
    ("GET", "/api/dashboard/places?facility=A", {"police", "health", "supervisor", "admin", "facA"},
     lambda role, r: set(r.json()) == {"A"} and r.json()["A"]["cameras"] == {"cam1": "c"}),
    ("GET", "/api/dashboard/places?facility=B", {"police", "health", "supervisor", "admin"},
     lambda role, r: set(r.json()) == {"B"}),
    ("POST", f"/api/alarms/{ALARM_A}/dispatch", set(), None),  # everyone allowed gets 409 (not acked), not 403
    ("POST", "/api/facilities/A/devices", {"admin"}, only("A")),
    ("POST", "/api/facilities/A/gateways", {"admin"}, only("A")),
]


@pytest.mark.parametrize("method, path, allowed, holds", MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_role_matrix(http, method, path, allowed, holds):
    body = {"device_id": f"d-{uuid.uuid4().hex[:8]}", "kind": "smoke", "name": "x"} if path.endswith("/devices") else \
        {"gateway_id": f"g-{uuid.uuid4().hex[:8]}"} if path.endswith("/gateways") else None
    for role in ROLES:
        r = call(http, role, method, path, json=body)
        if method == "POST" and path.endswith("/dispatch"):
            assert r.status_code == (409 if role in ("police", "admin") else 403), (role, r.text)
        elif role in allowed:
            assert r.status_code in (200, 201), (role, r.status_code, r.text)
            assert holds(role, r), (role, r.text[:500])
        else:
            assert r.status_code == 403, (role, r.status_code, r.text)


@pytest.mark.parametrize("path", ["/api/facilities", "/api/alarms", "/api/staff", "/api/cameras", "/api/devices",
                                  "/api/gateways", "/api/areas", "/api/compliance", "/api/alarms/escalations"])
def test_facility_lists_hold_only_its_own(http, path):
    """Each facility token's list holds its own records (there are some) and none of the other's."""
    for who, fid in (("facA", "A"), ("facB", "B")):
        r = call(http, who, "GET", path)
        assert r.status_code == 200, r.text
        assert owners(r.json()) == {fid}, (who, r.json())
    # An admin's list has both: the filtering above is the token's doing, not a lack of data.
    assert owners(call(http, "admin", "GET", path).json()) == {"A", "B"}


def test_tokens_and_snapshot_audit(http):
    assert http.get("/api/facilities").status_code == 401
    with pytest.raises(ValueError, match="facility_id"):
        TokenTable([TokenGrant("x" * 20, "u", "facility")])
    r = call(http, "police", "GET", "/api/facilities/A/cameras/cam1/snapshot")
    assert r.status_code == 200 and r.content == JPEG and r.headers["content-type"] == "image/jpeg"
    assert call(http, "police", "GET", "/api/facilities/A/cameras/nocam/snapshot").status_code == 404
    with http.engine.connect() as conn:
        rows = conn.execute(sa.select(audit.c.actor, audit.c.action, audit.c.target)
                            .where(audit.c.actor == "police").order_by(audit.c.id)).all()
    assert rows[-2:] == [("police", "snapshot.read", "A/cam1"), ("police", "snapshot.read", "A/nocam")]
    entries = call(http, "supervisor", "GET", "/api/audit", params={"action": "snapshot.read", "limit": 1}).json()
    assert len(entries["items"]) == 1 and entries["next_cursor"]
