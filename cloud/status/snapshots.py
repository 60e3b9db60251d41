"""Camera snapshots as the gateways sent them (camera.snapshot envelopes)."""

from __future__ import annotations

from typing import Optional
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.engine import Connection

from cloud.store.db import envelopes

# Snapshots are found by scanning the facility's newest ones; this bounds the scan.
SNAPSHOT_SCAN = 500


def latest_snapshot(conn: Connection, facility_id: str, camera_id: str, alarm_id: Optional[UUID] = None):
    """The newest snapshot envelope row (id, ts, body) of the camera, of one alarm with `alarm_id`; None if none."""
    e = envelopes.c
    rows = conn.execute(select(e.id, e.ts, e.body).where(e.facility == facility_id, e.type == "camera.snapshot")
                        .order_by(e.ts.desc()).limit(SNAPSHOT_SCAN))
    return next((r for r in rows if r.body.get("camera_id") == camera_id
                 and (alarm_id is None or r.body.get("alarm_id") == str(alarm_id))), None)
