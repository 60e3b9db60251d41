"""Marking compliance snapshots out of date when a fact they depend on changes, in the
transaction that changes it (ingest, the registry, care records). The snapshots themselves are
cloud.compliance.snapshot's; this module only needs the table, so that the writers of facts can
import it without importing the rules.

Facts that arrive all the time are compared, not just marked: a camera.health report marks its
facility only when it tells a different story (which cameras, which online) than the snapshot
holds, a retention report only when another camera reaches or misses the required days, and a
heartbeat only when the snapshot counted none fresh or it reports another state (encryption of
the police path, registration with the police video platform). That a fresh heartbeat or camera report
grows old is a deadline in the snapshot row, which its refresher checks."""

from __future__ import annotations

import hashlib
from typing import Iterable, Mapping, Optional, Sequence

import orjson

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from cloud.store.db import compliance_snapshots
from contracts.alarms import AlarmKind
from contracts.envelope import Envelope
from contracts.video_platform import VideoPlatformStatus, read_video_platform

_S = compliance_snapshots.c
_BUMP = compliance_snapshots.update().values(marked=_S.marked + 1)
_IN_CHUNK = 500


def camera_items(body: Mapping) -> list[dict]:
    """The per-camera entries of a camera.health or retention.report body: `{cameras: [...]}` or
    a single camera."""
    items = body.get("cameras") if isinstance(body.get("cameras"), list) else [body]
    return [i for i in items if isinstance(i, dict) and isinstance(i.get("camera_id"), str)]


def camera_online(item: Mapping) -> bool:
    """A camera is online when its report says streaming without a fault."""
    return item.get("state") == "streaming" and not item.get("fault")


def camera_digest(online: Mapping[str, bool]) -> str:
    """The cameras reported and whether each is online, as a short fixed-size key."""
    text = "\n".join(f"{cam}={int(up)}" for cam, up in sorted(online.items()))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def body_digest(body: Mapping) -> str:
    return camera_digest({i["camera_id"]: camera_online(i) for i in camera_items(body)})


def heartbeat_state_digest(police_encrypted: Optional[bool], platform: Optional[VideoPlatformStatus]) -> str:
    """What the rules read of a heartbeat beyond its time: the police path's encryption and the
    video platform registration (not its live stream count, which no rule reads)."""
    state = [police_encrypted, None if platform is None else
             [platform.registered, platform.platform, platform.reason, sorted(platform.cameras)]]
    return hashlib.blake2b(orjson.dumps(state), digest_size=16).hexdigest()


def heartbeat_digest(body: Mapping) -> str:
    encrypted = body.get("police_encrypted")
    return heartbeat_state_digest(encrypted if isinstance(encrypted, bool) else None,
                                  read_video_platform(dict(body)))


def achieved_days(body: Mapping) -> dict[str, float]:
    """camera -> achieved days of a retention.report body, as the retention rule reads it."""
    return {i["camera_id"]: float(i["achieved_days"]) for i in camera_items(body)
            if isinstance(i.get("achieved_days"), (int, float)) and not isinstance(i.get("achieved_days"), bool)}


def retention_digest(achieved: Mapping[str, float], required: float) -> str:
    return camera_digest({cam: days >= required for cam, days in achieved.items()})


def mark_facilities(conn: Connection, facility_ids: Iterable[str]) -> None:
    """The facilities' snapshots are out of date (their registry or care records changed)."""
    ids = sorted(set(facility_ids))
    for i in range(0, len(ids), _IN_CHUNK):
        conn.execute(_BUMP.where(_S.facility.in_(ids[i:i + _IN_CHUNK])))


def _keep_newest(newest: dict[str, Envelope], env: Envelope) -> None:
    if env.facility not in newest or env.ts > newest[env.facility].ts:
        newest[env.facility] = env


def _retention_changed(conn: Connection, reports: dict[str, Envelope]) -> set[str]:
    """The facilities whose newest retention report judges another camera set, or another camera,
    against the requirement their snapshot applied, than the snapshot holds."""
    ids = sorted(reports)
    changed = set()
    for i in range(0, len(ids), _IN_CHUNK):
        for facility, required, digest in conn.execute(
                select(_S.facility, _S.retention_required_days, _S.retention_digest)
                .where(_S.facility.in_(ids[i:i + _IN_CHUNK]))):
            if retention_digest(achieved_days(reports[facility].body), required) != digest:
                changed.add(facility)
    return changed


_BY_CAMERAS = (update(compliance_snapshots).values(marked=_S.marked + 1)
               .where(_S.facility == bindparam("f"), _S.camera_digest != bindparam("d")))
# A heartbeat matters where the snapshot counted none fresh, or where it reports another state.
_BY_HEARTBEAT = (update(compliance_snapshots).values(marked=_S.marked + 1)
                 .where(_S.facility == bindparam("f"),
                        _S.heartbeat_until.is_(None) | (_S.heartbeat_digest != bindparam("d"))))


def mark_for_envelopes(conn: Connection, envelopes: Sequence[Envelope]) -> None:
    """Mark what newly stored uplink envelopes change: a drill alarm always; a camera or retention
    report that tells another story, a heartbeat where none was fresh. Facilities in key order, as
    the ingest writes its other rows, so that workers sharing facilities do not deadlock."""
    always: set[str] = set()
    heartbeats: dict[str, Envelope] = {}
    cameras: dict[str, Envelope] = {}
    retention: dict[str, Envelope] = {}
    for env in envelopes:
        t = env.type
        if t == "heartbeat":
            _keep_newest(heartbeats, env)
        elif t == "camera.health":
            _keep_newest(cameras, env)
        elif t == "retention.report":
            _keep_newest(retention, env)
        elif t.startswith("alarm.") and env.body.get("kind") == AlarmKind.TEST.value:
            always.add(env.facility)
    if retention:
        always |= _retention_changed(conn, retention)
    if always:
        mark_facilities(conn, always)
    if cameras:
        conn.execute(_BY_CAMERAS, [{"f": f, "d": body_digest(cameras[f].body)} for f in sorted(cameras)])
    beats = [{"f": f, "d": heartbeat_digest(heartbeats[f].body)} for f in sorted(set(heartbeats) - always)]
    if beats:
        conn.execute(_BY_HEARTBEAT, beats)
