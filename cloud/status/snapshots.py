"""Camera snapshots as the gateways sent them (camera.snapshot envelopes): sealed at rest, read
back for the pages, and deleted when their time is up.

Ingest seals the JPEG before the envelope is stored (`seal_snapshot_body`): the body keeps the
camera and alarm ids, the JPEG goes into `jpeg_sealed`, AES-GCM under the children's-data key
(cloud.care.privacy) with the envelope id as associated data, so a sealed picture moved to
another row does not open. Snapshots are kept for `snapshot_retention_days` or, by default, the
footage period of the facility's jurisdiction (its compliance profile), then deleted by
`SnapshotSweeper`, which writes what it deleted to the audit log."""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional
from uuid import UUID

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Connection, Engine

from cloud.alarms.records import record_audit
from cloud.care.privacy import FieldCipher, PrivacyError
from cloud.compliance.profiles import profile_for
from cloud.periodic import PeriodicTask
from cloud.store.db import alarms, envelopes, facilities
from contracts.alarms import AlarmState
from contracts.timefmt import utcnow

log = logging.getLogger("careguard.cloud.snapshots")

SNAPSHOT_TYPE = "camera.snapshot"
# Snapshots are found by scanning the facility's newest ones; this bounds the scan.
SNAPSHOT_SCAN = 500
SEALED_FIELD = "jpeg_sealed"
PLAIN_FIELD = "jpeg_b64"


def _context(envelope_id: str) -> str:
    return f"snapshot/{envelope_id}"


def seal_snapshot_body(cipher: FieldCipher, envelope_id: str, body: dict) -> dict:
    """The body to store: the JPEG sealed, everything else as sent."""
    if not isinstance(body.get(PLAIN_FIELD), str):
        return body
    sealed = {k: v for k, v in body.items() if k != PLAIN_FIELD}
    sealed[SEALED_FIELD] = cipher.encrypt(body[PLAIN_FIELD], _context(envelope_id))
    return sealed


@dataclass
class Snapshot:
    envelope_id: str
    ts: datetime
    jpeg: bytes


class SnapshotUnreadable(Exception):
    """A stored snapshot that does not open (wrong key, moved value) or holds no base64 JPEG."""


def latest_snapshot(conn: Connection, cipher: FieldCipher, facility_id: str, camera_id: str,
                    alarm_id: Optional[UUID] = None) -> Optional[Snapshot]:
    """The newest snapshot of the camera (of one alarm with `alarm_id`), opened; None if none."""
    e = envelopes.c
    rows = conn.execute(select(e.id, e.ts, e.body).where(e.facility == facility_id, e.type == SNAPSHOT_TYPE)
                        .order_by(e.ts.desc()).limit(SNAPSHOT_SCAN))
    found = next((r for r in rows if r.body.get("camera_id") == camera_id
                  and (alarm_id is None or r.body.get("alarm_id") == str(alarm_id))), None)
    if found is None:
        return None
    try:
        if isinstance(found.body.get(SEALED_FIELD), str):
            b64 = cipher.decrypt(found.body[SEALED_FIELD], _context(found.id))
        else:  # stored before snapshots were sealed
            b64 = found.body.get(PLAIN_FIELD) or ""
        jpeg = base64.b64decode(b64, validate=True)
    except (PrivacyError, binascii.Error, ValueError) as exc:
        raise SnapshotUnreadable(f"snapshot {found.id}: {exc}") from None
    return Snapshot(found.id, found.ts, jpeg)


def has_active_alarm(conn: Connection, facility_id: str) -> bool:
    """Whether the facility has an alarm active now (the police's reason to look at its cameras)."""
    a = alarms.c
    return conn.execute(select(func.count()).select_from(alarms)
                        .where(a.facility == facility_id, a.state == AlarmState.ACTIVE.value)).scalar_one() > 0


def sweep_snapshots(conn: Connection, now: datetime, keep_days: Optional[float] = None) -> dict[str, int]:
    """Delete the snapshots past their time, per facility: `keep_days`, or the footage period of
    the facility's jurisdiction. Returns facility -> snapshots deleted; each deletion is audited."""
    e, f = envelopes.c, facilities.c
    cities = dict(conn.execute(select(f.facility_id, f.city)).all())
    holders = conn.execute(select(e.facility).where(e.type == SNAPSHOT_TYPE).distinct()).scalars().all()
    deleted: dict[str, int] = {}
    for facility in holders:
        days = keep_days if keep_days is not None else profile_for(cities.get(facility)).retention_days.value
        cutoff = now - timedelta(days=days)
        n = conn.execute(delete(envelopes).where(e.facility == facility, e.type == SNAPSHOT_TYPE,
                                                 e.received_at < cutoff)).rowcount
        if n:
            deleted[facility] = n
            record_audit(conn, at=now, actor="cloud", role="system", action="snapshot.deleted", target=facility,
                         detail={"deleted": n, "kept_days": days, "received_before": cutoff.isoformat()})
    return deleted


class SnapshotSweeper:
    """Runs `sweep_snapshots` every `interval_s`."""

    def __init__(self, engine: Engine, *, keep_days: Optional[float] = None, interval_s: float = 3600.0):
        self.engine = engine
        self.keep_days = keep_days
        self._task = PeriodicTask("cloud-snapshot-sweeper", interval_s, self.sweep, logger=log,
                                  what="deleting expired snapshots")

    def sweep(self) -> dict[str, int]:
        with self.engine.begin() as conn:
            deleted = sweep_snapshots(conn, utcnow(), self.keep_days)
        if deleted:
            log.info("deleted expired snapshots: %s", deleted)
        return deleted

    def start(self) -> "SnapshotSweeper":
        self._task.start()
        return self

    def stop(self) -> None:
        self._task.stop()
