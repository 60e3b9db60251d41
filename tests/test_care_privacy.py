"""Children's data at rest: encrypted fields hold no plaintext in the raw row, a ciphertext moved
to another row does not decrypt, names and identity numbers are refused with 422 naming the
field, the key comes from the environment or a generated key file, and every read is audited."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloud.api.app import create_app
from cloud.api.auth import TokenGrant, TokenTable
from cloud.care.records import care_checks, care_children
from cloud.store.db import audit, create_schema, make_engine
from cloud.alarms.events_bus import EventBus
from cloud.care.privacy import KEY_ENV, FieldCipher, PrivacyError, load_data_key
from cloud.registry.records import FacilityRegistration, register_facility, uscc_check_char

FAC = "t-facA-012345678901"
HEALTH = "t-health-0123456789"


@pytest.fixture()
def http(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'cloud.db'}")
    create_schema(engine)
    first17 = "91370800000000001"
    with engine.begin() as conn:
        register_facility(conn, FacilityRegistration.model_validate({
            "facility_id": "A", "name": "a", "uscc": first17 + uscc_check_char(first17), "kind": "public",
            "address": "a", "district": {"province": "p", "city": "c", "district": "d", "street": "s"},
            "classes": [{"class_id": "c1", "name": "n", "class_type": "older", "places": 20, "enrolled": 1,
                         "carers": 1}]}), datetime.now(timezone.utc))
    app = create_app(engine=engine, bus=EventBus(), tokens=TokenTable([
        TokenGrant(FAC, "director-a", "facility", "A"), TokenGrant(HEALTH, "inspector", "health")]))
    app.state.data_key_file = tmp_path / "keys" / "data.key"
    with TestClient(app) as client:
        client.engine = engine
        client.tmp = tmp_path
        yield client
    engine.dispose()


def test_encrypted_at_rest_and_key_file_generated(http):
    h = {"Authorization": f"Bearer {FAC}"}
    r = http.post("/api/care/classes/c1/roster", headers=h,
                  json={"children": [{"child_id": "pseudo-7731", "birth_month": "2024-02"}]})
    assert r.status_code == 200, r.text
    r = http.post("/api/care/checks", headers=h, json={"class_id": "c1", "child_id": "pseudo-7731", "kind": "morning",
                                                       "temperature_c": 36.5, "action": "observed-quietly"})
    assert r.status_code == 201, r.text
    # The key file is made 0600, outside the data folder: a copy of var/ holds no key.
    key_file = http.tmp / "keys" / "data.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not list((http.tmp / "var").glob("*.key"))
    with http.engine.connect() as conn:
        raw = [str(tuple(row)) for row in conn.execute(sa.select(care_children))]
        raw += [str(tuple(row)) for row in conn.execute(sa.select(care_checks))]
    dump = " ".join(raw)
    for plaintext in ("pseudo-7731", "2024-02", "observed-quietly"):
        assert plaintext not in dump
    got = http.get("/api/care/checks", params={"facility": "A", "date": r.json()["local_date"]},
                   headers={"Authorization": f"Bearer {HEALTH}"}).json()["items"]
    assert [(c["child_id"], c["action"]) for c in got] == [("pseudo-7731", "observed-quietly")]
    with http.engine.connect() as conn:
        actions = conn.execute(sa.select(audit.c.actor, audit.c.action).order_by(audit.c.id)).all()
    assert ("inspector", "care.checks.read") in [tuple(a) for a in actions]


@pytest.mark.parametrize("child, field", [
    ({"child_id": "k1", "birth_month": "2024-02", "name": "小明"}, "'name'"),
    ({"child_id": "k1", "birth_month": "2024-02", "id_number": "11010520230101001X"}, "'id_number'"),
    ({"child_id": "11010520230101001X", "birth_month": "2024-02"}, "child_id"),
    ({"child_id": "k1", "birth_month": "2024-02-03"}, "birth_month"),
])
def test_identifying_fields_refused(http, child, field):
    r = http.post("/api/care/classes/c1/roster", headers={"Authorization": f"Bearer {FAC}"},
                  json={"children": [child]})
    assert r.status_code == 422 and field in r.text, r.text


def test_cipher_binds_rows_and_keys(tmp_path, monkeypatch):
    cipher = FieldCipher(b"\x01" * 32)
    token = cipher.encrypt("k1", "A/ref1/child_id")
    assert cipher.decrypt(token, "A/ref1/child_id") == "k1"
    with pytest.raises(PrivacyError):
        cipher.decrypt(token, "A/ref2/child_id")
    with pytest.raises(PrivacyError):
        FieldCipher(b"\x02" * 32).decrypt(token, "A/ref1/child_id")
    assert cipher.reference("child", "A", "k1") == cipher.reference("child", "A", "k1") != \
        cipher.reference("child", "B", "k1")
    monkeypatch.setenv(KEY_ENV, "00" * 32)
    assert load_data_key(None) == bytes(32)
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(ValueError, match=KEY_ENV):
        load_data_key(None)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(RuntimeError, match=KEY_ENV):
        load_data_key(None)
    assert load_data_key(tmp_path / "k") == load_data_key(tmp_path / "k")  # generated once, then read
