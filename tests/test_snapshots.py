"""Camera snapshots of children (issue 10, point 8): sealed at rest with the data key, read back
only by those allowed, and deleted after the jurisdiction's footage period with an audit entry."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from cloud.alarms.records import list_audit_page
from cloud.care.privacy import FieldCipher, PrivacyError
from cloud.config import CloudConfig, TokenEntry
from cloud.main import CloudService
from cloud.status.snapshots import seal_snapshot_body, sweep_snapshots
from cloud.store.db import envelopes
from contracts.alarms import AlarmKind
from contracts.envelope import make_envelope
from contracts.timefmt import utcnow
from contracts.topics import Stream, up
from helpers import sync_until
from tests.test_cloud_ingest import Publisher, alarm_body

POLICE = "snap-police-0123456789"
JPEG = b"\xff\xd8\xff\xe0" + b"child-in-room-2" * 20 + b"\xff\xd9"


def test_snapshots_are_sealed_at_rest_read_back_and_swept(mosquitto, tmp_path):
    config = CloudConfig(broker_url=mosquitto.url, db_url=f"sqlite:///{tmp_path / 'var' / 'cloud.db'}", port=0,
                         client_id=f"ingest-{uuid.uuid4().hex[:8]}", data_key_file=str(tmp_path / "keys" / "data.key"),
                         tokens=[TokenEntry(token=POLICE, user="officer", role="police")])
    cloud = CloudService(config).start()
    pub = Publisher(mosquitto.url)
    try:
        assert cloud.wait_ingest_ready()
        alarm = alarm_body(uuid.uuid4(), kind=AlarmKind.PANIC)
        pub.send(up("F1", Stream.ALARM), make_envelope("F1", "alarm.raised", alarm).to_bytes())
        snap = make_envelope("F1", "camera.snapshot", {"camera_id": "cam-1", "alarm_id": str(alarm.alarm_id),
                                                       "zone": "room-2", "jpeg_b64": base64.b64encode(JPEG).decode()})
        pub.send(up("F1", Stream.CAMERA), snap.to_bytes())
        assert sync_until(lambda: cloud.counters["stored"] == 2), cloud.counters

        with cloud.engine.connect() as conn:
            body = conn.execute(sa.select(envelopes.c.body).where(envelopes.c.id == str(snap.id))).scalar_one()
            dump = " ".join(str(tuple(r)) for r in conn.execute(sa.select(envelopes)))
        assert "jpeg_b64" not in body and body["camera_id"] == "cam-1" and body["jpeg_sealed"].startswith("v1.")
        assert base64.b64encode(JPEG).decode()[:40] not in dump, "the picture is stored in the clear"
        # The key and the database are created 0600, the key outside the data folder.
        assert (tmp_path / "keys" / "data.key").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "var" / "cloud.db").stat().st_mode & 0o777 == 0o600
        assert not list((tmp_path / "var").glob("*.key"))

        r = httpx.get(f"{cloud.url}/api/facilities/F1/cameras/cam-1/snapshot",
                      params={"alarm_id": str(alarm.alarm_id)}, headers={"Authorization": f"Bearer {POLICE}"})
        assert r.status_code == 200 and r.content == JPEG

        # Past the footage period (90 days nationally) a snapshot is deleted, and the deletion audited.
        with cloud.engine.begin() as conn:
            conn.execute(sa.update(envelopes).where(envelopes.c.id == str(snap.id))
                         .values(received_at=utcnow() - timedelta(days=91)))
        with cloud.engine.begin() as conn:
            assert sweep_snapshots(conn, utcnow()) == {"F1": 1}
            entries = list_audit_page(conn, limit=5, cursor=None, action="snapshot.deleted").items
        assert [(e.target, e.detail["deleted"], e.detail["kept_days"]) for e in entries] == [("F1", 1, 90)]
        r = httpx.get(f"{cloud.url}/api/facilities/F1/cameras/cam-1/snapshot",
                      headers={"Authorization": f"Bearer {POLICE}"})
        assert r.status_code == 404
    finally:
        pub.close()
        cloud.stop()


def test_a_sealed_snapshot_moved_to_another_row_does_not_open():
    cipher = FieldCipher(b"s" * 32)
    sealed = seal_snapshot_body(cipher, "envelope-a", {"camera_id": "c", "jpeg_b64": "AAAA"})
    assert cipher.decrypt(sealed["jpeg_sealed"], "snapshot/envelope-a") == "AAAA"
    with pytest.raises(PrivacyError):
        cipher.decrypt(sealed["jpeg_sealed"], "snapshot/envelope-b")
