"""Registry (登记备案) through the API on SQLite and the real PostgreSQL: registration in one
transaction, round trips, pagination and filters, conflicts, and gateway credentials that a real
Mosquitto accepts with exactly the ACL DESIGN.md gives a gateway."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from wire.mqtt_client import make_client
from testing.services import Mosquitto
from cloud.api.app import create_app
from cloud.api.auth import TokenGrant, TokenTable
from cloud.store.db import create_schema, facilities, gateway_credentials, make_engine
from cloud.alarms.events_bus import EventBus
from cloud.registry.records import hash_password, uscc_check_char, uscc_problem, verify_password
from helpers import store_url

ADMIN = "admin-token-0123456789"
SUPERVISOR = "supervisor-token-0123456"


def uscc(n: int, division: str = "370800") -> str:
    first17 = f"91{division}{n:09d}"
    return first17 + uscc_check_char(first17)


def facility_body(fid: str, n: int, *, city: str = "济宁市", district: str = "任城区", **extra) -> dict:
    return {"facility_id": fid, "name": f"托育园{n}", "uscc": uscc(n), "kind": "inclusive",
            "district": {"province": "山东省", "city": city, "district": district, "street": "古槐街道"},
            "address": f"古槐路{n}号", "location": {"lat": 35.41, "lon": 116.59},
            "contact": {"name": "王园长", "phone": "0537-1234567"},
            "filing_status": "filed", "filing_number": f"BA-{n}",
            "licences": [{"kind": "fire", "number": "XF-1", "expires_on": "2030-01-01"}],
            "classes": [{"class_id": "c1", "name": "小一班", "class_type": "toddler", "places": 15, "enrolled": 12,
                         "carers": 3},
                        {"class_id": "c2", "name": "小二班", "class_type": "toddler", "places": 15, "enrolled": 10,
                         "carers": 2},
                        {"class_id": "c3", "name": "乳儿班", "class_type": "infant", "places": 10, "enrolled": 9,
                         "carers": 3}], **extra}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory):
    with store_url(request, tmp_path_factory.mktemp("reg"), "reg") as url:
        yield url


@pytest.fixture(scope="module")
def api(db_url):
    engine = make_engine(db_url)
    create_schema(engine)
    create_schema(engine)  # a second start finds the schema at head and changes nothing
    app = create_app(engine=engine, bus=EventBus(), tokens=TokenTable([
        TokenGrant(ADMIN, "ops", "admin"), TokenGrant(SUPERVISOR, "sup", "supervisor")]))
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        client.engine = engine
        yield client
    engine.dispose()


def test_uscc_checksum():
    code = uscc(1)
    assert uscc_problem(code) is None
    wrong = code[:17] + next(c for c in "0123456789" if c != code[17])
    assert "check character" in uscc_problem(wrong)
    assert "characters" in uscc_problem(code[:17] + "I")
    assert "18 characters" in uscc_problem(code[:10])


def test_register_round_trip_with_gateway_and_devices(api):
    body = facility_body("JN-R1", 1, areas=[{"area_id": "room1", "name": "活动室", "children_area": True},
                                            {"area_id": "gate", "name": "大门", "children_area": False}],
                         cameras=[{"camera_id": "cam1", "name": "活动室1", "areas": ["room1"]}],
                         devices=[{"device_id": "btn-1", "kind": "panic_button", "name": "一键报警", "zone": "z1"}],
                         staff=[{"staff_id": "s1", "name": "李老师", "role": "carer",
                                 "certificates": [{"kind": "health", "number": "JK-1", "expires_on": "2027-01-01"}]}],
                         gateway={"gateway_id": "gw-r1"})
    r = api.post("/api/facilities", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    fac, gw = out["facility"], out["gateway"]
    assert fac["capacity"] == {"infant": 10, "toddler": 30, "older": 0, "mixed": 0}
    assert fac["enrolment"] == {"infant": 9, "toddler": 22, "older": 0, "mixed": 0}
    assert gw["mqtt_username"] == "JN-R1.gw-r1"
    assert gw["acl"] == ("user JN-R1.gw-r1\ntopic write cg/v1/fac/JN-R1/up/#\ntopic write cg/v1/fac/JN-R1/live/#\n"
                         "topic read cg/v1/fac/JN-R1/down/#\n")
    with api.engine.connect() as conn:
        stored = conn.execute(sa.select(gateway_credentials.c.password_hash)).scalar_one()
    assert gw["password"] not in stored and verify_password(gw["password"], stored)
    assert gw["password_file_line"] == f"JN-R1.gw-r1:{stored}"

    again = api.get("/api/facilities/JN-R1").json()
    for key in ("name", "uscc", "kind", "district", "address", "location", "contact", "filing_status",
                "filing_number", "licences", "classes"):
        assert again[key] == body[key], key
    listed = api.get("/api/gateways", params={"facility": "JN-R1"}).json()["items"]
    assert [g["gateway_id"] for g in listed] == ["gw-r1"] and "password" not in listed[0]
    assert api.get("/api/cameras", params={"facility": "JN-R1"}).json()["items"][0]["areas"] == ["room1"]
    assert api.get("/api/devices", params={"facility": "JN-R1", "kind": "panic_button"}).json()["items"][0][
        "zone"] == "z1"
    assert api.get("/api/staff", params={"facility": "JN-R1"}).json()["items"][0]["certificates"][0]["number"] == "JK-1"

    rotated = api.post("/api/gateways/gw-r1/rotate").json()
    assert rotated["password"] != gw["password"]
    with api.engine.connect() as conn:
        assert verify_password(rotated["password"], conn.execute(sa.select(gateway_credentials.c.password_hash)).scalar_one())

    changed = dict(body, name="新名字", filing_status="pending", filing_number=None, classes=[])
    for key in ("facility_id", "areas", "cameras", "devices", "staff", "gateway"):
        changed.pop(key)
    r = api.put("/api/facilities/JN-R1", json=changed)
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["classes"], r.json()["capacity"]["toddler"]) == ("新名字", [], 0)


def test_nothing_half_written_and_conflicts(api):
    broken = facility_body("JN-R2", 2, areas=[{"area_id": "room1", "name": "活动室", "children_area": True}],
                           cameras=[{"camera_id": "cam1", "name": "x", "areas": ["nowhere"]}])
    r = api.post("/api/facilities", json=broken)
    assert r.status_code == 409 and "nowhere" in r.json()["detail"]
    assert api.get("/api/facilities/JN-R2").status_code == 404
    with api.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(facilities)
                            .where(facilities.c.facility_id == "JN-R2")).scalar() == 0

    assert api.post("/api/facilities", json=facility_body("JN-R3", 3)).status_code == 201
    dup = api.post("/api/facilities", json=facility_body("JN-R3", 4))
    assert dup.status_code == 409 and "JN-R3" in dup.json()["detail"]
    same_code = api.post("/api/facilities", json=facility_body("JN-R4", 3))
    assert same_code.status_code == 409 and "uscc" in same_code.json()["detail"]
    dev = {"device_id": "d1", "kind": "smoke", "name": "烟感"}
    assert api.post("/api/facilities/JN-R3/devices", json=dev).status_code == 201
    assert api.post("/api/facilities/JN-R3/devices", json=dev).status_code == 409
    assert api.post("/api/facilities/NOPE/devices", json=dev).status_code == 404


@pytest.mark.parametrize("mutate, field", [
    (lambda b: b.update(uscc=b["uscc"][:17] + ("0" if b["uscc"][17] != "0" else "1")), "uscc"),
    (lambda b: b["location"].update(lat=91), "lat"),
    (lambda b: b.update(kind="secret"), "kind"),
    (lambda b: b.update(facility_id="bad/id"), "facility_id"),
    (lambda b: b["classes"][0].update(class_type="乳儿"), "class_type"),
    (lambda b: b.update(filing_number=None), "body"),  # filed without a number
])
def test_bad_input_names_the_field(api, mutate, field):
    body = facility_body("JN-BAD", 99)
    mutate(body)
    r = api.post("/api/facilities", json=body)
    assert r.status_code == 422
    assert any(field in [str(p) for p in err["loc"]] for err in r.json()["detail"]), r.json()


def test_list_pagination_and_filters(api):
    for i, (fid, district) in enumerate((("JN-P1", "兖州区"), ("JN-P2", "兖州区"), ("JN-P3", "兖州区"),
                                         ("JN-P4", "曲阜市"))):
        assert api.post("/api/facilities", json=facility_body(fid, 50 + i, district=district)).status_code == 201
    seen, cursor = [], None
    for _ in range(5):
        page = api.get("/api/facilities", params={"district": "兖州区", "limit": 2,
                                                  **({"cursor": cursor} if cursor else {})}).json()
        seen += [f["facility_id"] for f in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["JN-P1", "JN-P2", "JN-P3"]
    assert api.get("/api/facilities", params={"cursor": "garbage"}).json()["detail"][0]["loc"] == ["query", "cursor"]


def _connect(url: str, user: str, password: str, client_id: str) -> tuple[mqtt.Client, int]:
    client, addr = make_client(url, client_id)
    client.username_pw_set(user, password)
    result: list = []
    connected = threading.Event()

    def on_connect(_c, _u, _f, rc, _p):
        result.append(rc)
        connected.set()

    client.on_connect = on_connect
    client.connect(addr.host, addr.port)
    client.loop_start()
    connected.wait(5)
    return client, (result[0].value if result else -1)


class RegistryBroker(Mosquitto):
    """Mosquitto reading the password and ACL files exactly as the registry writes them."""

    def __init__(self, password_lines: list[str], acl_text: str, **kw):
        # The base class hashes plain passwords itself; a placeholder user gets its files written.
        super().__init__(acl={"placeholder": ("unused", [])}, persistence=False, **kw)
        self._pw, self._acl_text = password_lines, acl_text

    def _write_config(self):
        conf = super()._write_config()
        (self.dir / "passwd").write_text("".join(line + "\n" for line in self._pw))
        (self.dir / "acl").write_text(self._acl_text)
        return conf


def test_gateway_credentials_work_on_mosquitto(api, tmp_path):
    if api.get("/api/facilities/JN-G1").status_code == 404:
        assert api.post("/api/facilities", json=facility_body("JN-G1", 70)).status_code == 201
    gw = api.post("/api/facilities/JN-G1/gateways", json={"gateway_id": "gw-g1"}).json()
    reader_pw = "cloud-reader-password"
    acl = gw["acl"] + "\nuser cloud\ntopic read cg/v1/fac/+/up/#\n"
    broker = RegistryBroker([gw["password_file_line"], f"cloud:{hash_password(reader_pw)}"], acl,
                            workdir=str(tmp_path / "mosq"))
    (tmp_path / "mosq").mkdir()
    broker.start()
    clients = []
    try:
        _, refused = _connect(broker.url, gw["mqtt_username"], "wrong-password", "gw-bad")
        assert refused != 0, "a wrong password must be refused"
        got: list[str] = []
        arrived = threading.Event()
        cloud, rc = _connect(broker.url, "cloud", reader_pw, "cloud-reader")
        clients.append(cloud)
        assert rc == 0
        subscribed = threading.Event()
        cloud.on_subscribe = lambda *a: subscribed.set()
        cloud.on_message = lambda c, u, m: (got.append(m.topic), arrived.set() if m.topic.endswith("heartbeat") else None)
        cloud.subscribe("cg/v1/fac/+/up/#", qos=1)
        assert subscribed.wait(5)
        gateway, rc = _connect(broker.url, gw["mqtt_username"], gw["password"], "gw-g1")
        clients.append(gateway)
        assert rc == 0
        gateway.publish("cg/v1/fac/OTHER/up/alarm", b"{}", qos=1).wait_for_publish(5)
        gateway.publish("cg/v1/fac/JN-G1/up/heartbeat", b"{}", qos=1).wait_for_publish(5)
        assert arrived.wait(5), "the gateway's own uplink must pass the ACL"
        assert got == ["cg/v1/fac/JN-G1/up/heartbeat"], "writing another facility's topic must be denied"
    finally:
        for c in clients:
            c.disconnect()
            c.loop_stop()
        broker.close()
