"""The cloud's background work (compliance refresher, health runner) in a process of its own: a
sustained climate breach written to the store is raised by that process and reaches the API."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import sqlalchemy as sa

from cloud.config import TokenEntry
from cloud.registry.records import FacilityRegistration, register_facility, uscc_check_char
from cloud.store.db import alarms, compliance_snapshots, telemetry
from tests.test_cloud_ingest import start_cloud, wait_until

TOKEN = "t-admin-01234567890"


def test_background_process_raises_climate_alarms_and_keeps_snapshots(mosquitto, tmp_path):
    cloud = start_cloud(mosquitto.url, f"sqlite:///{tmp_path / 'c.db'}", background_work="process",
                        health_check_s=0.5, compliance_refresh_s=0.2,
                        tokens=[TokenEntry(token=TOKEN, user="a", role="admin")])
    try:
        assert cloud.health is None and cloud.compliance is None, "nothing of it runs in the API process"
        first17 = f"91370800{uuid.uuid4().int % 10**9:09d}"
        now = datetime.now(timezone.utc)
        with cloud.engine.begin() as conn:
            register_facility(conn, FacilityRegistration.model_validate({
                "facility_id": "BG1", "name": "园", "uscc": first17 + uscc_check_char(first17), "kind": "inclusive",
                "address": "a", "district": {"province": "p", "city": "c", "district": "d", "street": "s"},
                "devices": [{"device_id": "t1", "kind": "temperature", "name": "t"}]}), now)
            conn.execute(telemetry.insert(), [dict(facility="BG1", device_id="t1", metric="temperature",
                                                   ts=now - timedelta(minutes=20 - i), value=35.0) for i in range(21)])

        def count(*where) -> int:
            with cloud.engine.connect() as conn:
                return conn.execute(sa.select(sa.func.count()).select_from(where[0]).where(*where[1:])).scalar_one()

        wait_until(lambda: count(alarms, alarms.c.kind == "sensor_range") == 1, timeout=30,
                   what="the background process to raise the breach")
        wait_until(lambda: count(compliance_snapshots) == 1, timeout=30, what="its snapshot")
        listed = httpx.get(f"{cloud.url}/api/alarms", params={"kind": "sensor_range"},
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
        assert [a["facility"] for a in listed["items"]] == ["BG1"], listed
    finally:
        cloud.stop()
