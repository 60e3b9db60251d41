"""Compliance snapshots: each facility's compliance report stored in `compliance_snapshots`, so
that the supervision overview and the compliance pages of a province read a table instead of
evaluating 10,000 facilities on request.

A snapshot is out of date when
- a fact it depends on changed: the writers of facts mark it (cloud.compliance.marks);
- time alone may have changed the answer: a care day or a morning deadline came, a drill fell
  due (`recheck_at`), the heartbeat it counted grew too old (`heartbeat_until`), or the report of
  an online camera did (`cameras_until`);
- or on the full pass, every `full_every_s`, which catches anything else.

The two deadlines that come round every few minutes are settled cheaply when they can be: a newer
heartbeat moves `heartbeat_until` on, and a newest camera report telling the same story moves
`cameras_until` on, without evaluating the facility again. Evidence times in the stored report
are as of its `checked_at`."""

from __future__ import annotations

import logging
import time as monotime
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Callable, Optional, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine

from cloud.compliance.marks import body_digest, camera_digest, heartbeat_state_digest, retention_digest
from cloud.compliance.profiles import Profile, profile_for
from cloud.compliance.rules import ComplianceReport, FacilityFacts, Status, evaluate, gather_facts
from cloud.periodic import PeriodicTask
from cloud.registry.jurisdiction import EVERYWHERE, Jurisdiction, path_clause
from cloud.registry.records import NotFound
from cloud.store.db import compliance_snapshots, envelopes, facilities, upsert_insert
from cloud.store.paging import Page, keyset, trim
from contracts.timefmt import utcnow

log = logging.getLogger("careguard.cloud.compliance")

S = compliance_snapshots.c
_SECOND = timedelta(seconds=1)


@dataclass
class Snapshot:
    """One evaluated facility: the report and what decides when it is out of date."""
    report: ComplianceReport
    values: dict


def _recheck_at(facts: FacilityFacts, profile: Profile, now: datetime) -> datetime:
    """The first moment after `now` at which the passing of time may change a rule other than the
    heartbeat and camera freshness: midnight (UTC and local: licences, certificates, the drill
    ledger's months), the morning check deadline, and the monthly drill falling due."""
    tz = ZoneInfo(profile.care.timezone)
    local = now.astimezone(tz)
    tomorrow = local.date() + timedelta(days=1)
    candidates = [datetime.combine(now.astimezone(timezone.utc).date() + timedelta(days=1), time(0), timezone.utc),
                  datetime.combine(tomorrow, time(0), tz)]
    deadline = datetime.combine(local.date(), profile.care.morning_deadline_time, tz)
    next_deadline = deadline if deadline > now else datetime.combine(tomorrow, profile.care.morning_deadline_time, tz)
    candidates.append(next_deadline + _SECOND)
    if facts.last_drill_delivered is not None:
        due = facts.last_drill_delivered + timedelta(days=profile.drill_interval_days.value)
        if due >= now:
            candidates.append(due + _SECOND)
    return min(candidates)


def evaluate_snapshots(conn: Connection, facility_ids: Sequence[str], now: datetime) -> dict[str, Snapshot]:
    """Evaluate facilities now, their facts read in one batch; unknown ids are left out."""
    out = {}
    for facility_id, (profile, facts) in gather_facts(conn, facility_ids, now).items():
        report = evaluate(facts, profile, now)
        max_age = timedelta(seconds=profile.arming_24h.value)
        beat = facts.last_heartbeat
        window = timedelta(seconds=profile.children_areas_covered.value)
        online = [c.ts for c in facts.camera_health.values() if c.online]
        required = profile.retention_days.value
        out[facility_id] = Snapshot(report, dict(
            status=report.status.value, score=report.score, report=report.model_dump(mode="json"), computed_at=now,
            recheck_at=_recheck_at(facts, profile, now), heartbeat_at=beat,
            heartbeat_until=beat + max_age if beat is not None and now - beat <= max_age else None,
            heartbeat_digest=heartbeat_state_digest(facts.police_encrypted, facts.video_platform),
            camera_digest=camera_digest({cam: c.online for cam, c in facts.camera_health.items()}),
            cameras_until=min(online) + window if online else None,
            cameras=len(set(facts.camera_ids) | set(facts.camera_health)), cameras_online=len(online),
            retention_required_days=required, retention_digest=retention_digest(facts.retention_days, required),
            retention_cameras=len(facts.retention_days),
            retention_compliant=sum(days >= required for days in facts.retention_days.values())))
    return out


def evaluate_snapshot(conn: Connection, facility_id: str, now: datetime) -> Snapshot:
    """Evaluate one facility now; raises NotFound for an unknown facility."""
    snap = evaluate_snapshots(conn, [facility_id], now).get(facility_id)
    if snap is None:
        raise NotFound(f"facility {facility_id!r} is not registered")
    return snap


def store_snapshots(conn: Connection, computed: list[tuple[str, int, Snapshot]]) -> None:
    """Write (facility, the `marked` value read before evaluating, snapshot) rows, in key order, as
    one statement executed for all of them (a province's first pass writes 10,000)."""
    if not computed:
        return
    stmt = upsert_insert(conn, compliance_snapshots)
    rows = [dict(facility=facility, marked=mark, computed_mark=mark, **snap.values)
            for facility, mark, snap in sorted(computed, key=lambda c: c[0])]
    # `marked` is left as it is: a mark made while evaluating keeps the snapshot out of date.
    conn.execute(stmt.on_conflict_do_update(index_elements=["facility"], set_={
        c: stmt.excluded[c] for c in rows[0] if c not in ("facility", "marked")}), rows)


# --- the refresher ------------------------------------------------------------------------------
@dataclass
class RefreshStats:
    evaluated: int = 0
    extended: int = 0   # deadlines moved on without evaluating again
    failed: int = 0
    more: bool = False  # the pass stopped at its limit or budget with snapshots still out of date


def _due(conn: Connection, now: datetime, limit: int) -> list[tuple[str, int]]:
    """Facilities to evaluate: without a snapshot first, then marked or past `recheck_at`."""
    f = facilities.c
    missing = conn.execute(select(f.facility_id).select_from(facilities.outerjoin(
        compliance_snapshots, S.facility == f.facility_id)).where(S.facility.is_(None))
        .order_by(f.facility_id).limit(limit)).scalars().all()
    out = [(fid, 0) for fid in missing]
    if len(out) < limit:
        out += [(r.facility, r.marked) for r in conn.execute(
            select(S.facility, S.marked).where((S.marked != S.computed_mark) | (S.recheck_at <= now))
            .order_by(S.recheck_at).limit(limit - len(out)))]
    return out


def _newest(conn: Connection, facility: str, type_: str):
    """The envelope of `type_` received last, as the rules read it (cloud.compliance.rules._latest)."""
    e = envelopes.c
    return conn.execute(select(e.ts, e.body).where(e.facility == facility, e.type == type_)
                        .order_by(e.received_at.desc(), e.ts.desc()).limit(1)).first()


def _settle_deadlines(conn: Connection, now: datetime, limit: int) -> tuple[list[tuple[str, int]], list[dict]]:
    """For the snapshots whose heartbeat or camera deadline passed: the deadlines that newer
    reports move on (as row updates), and the facilities that must be evaluated again."""
    f = facilities.c
    rows = conn.execute(select(S.facility, S.marked, S.heartbeat_at, S.heartbeat_until, S.camera_digest,
                               S.cameras_until, f.city)
                        .join(facilities, f.facility_id == S.facility)
                        .where(S.marked == S.computed_mark,
                               (S.heartbeat_until <= now) | (S.cameras_until <= now))
                        .order_by(S.facility).limit(limit)).all()
    again: list[tuple[str, int]] = []
    moves: list[dict] = []
    for r in rows:
        profile = profile_for(r.city)
        move = {"facility": r.facility, "mark": r.marked}
        if r.heartbeat_until is not None and r.heartbeat_until <= now:
            beat = _newest(conn, r.facility, "heartbeat")
            until = beat.ts + timedelta(seconds=profile.arming_24h.value) if beat is not None else None
            if until is None or until <= now:
                again.append((r.facility, r.marked))
                continue
            move.update(heartbeat_at=beat.ts, heartbeat_until=until)
        if r.cameras_until is not None and r.cameras_until <= now:
            health = _newest(conn, r.facility, "camera.health")
            until = health.ts + timedelta(seconds=profile.children_areas_covered.value) if health is not None else None
            # The newest report must name every camera the snapshot holds, each as it was.
            if until is None or until <= now or not isinstance(health.body, dict) \
                    or body_digest(health.body) != r.camera_digest:
                again.append((r.facility, r.marked))
                continue
            move.update(cameras_until=until)
        moves.append(move)
    return again, moves


def _move_deadlines(conn: Connection, moves: list[dict]) -> None:
    for m in moves:
        values = {k: v for k, v in m.items() if k not in ("facility", "mark")}
        # Only if nothing marked the snapshot meanwhile: then it is evaluated again instead.
        conn.execute(update(compliance_snapshots).where(S.facility == m["facility"], S.marked == m["mark"])
                     .values(**values))


def refresh(engine: Engine, now: datetime, *, limit: int = 500, budget_s: float = 1.0,
            batch: int = 100) -> RefreshStats:
    """One pass: evaluate the snapshots that are out of date, at most `limit` of them, `batch` at
    a time, for about `budget_s`, and move on the deadlines that newer reports settle."""
    stats = RefreshStats()
    with engine.connect() as conn:
        due = _due(conn, now, limit)
        again, moves = _settle_deadlines(conn, now, limit)
    if moves:
        with engine.begin() as conn:
            _move_deadlines(conn, moves)
        stats.extended = len(moves)
    todo = list(dict(due + again).items())
    stats.more = len(todo) >= limit
    todo = todo[:limit]
    started = monotime.monotonic()
    computed: list[tuple[str, int, Snapshot]] = []
    with engine.connect() as conn:
        for i in range(0, len(todo), batch):
            part = todo[i:i + batch]
            try:
                snaps = evaluate_snapshots(conn, [f for f, _ in part], now)
            except Exception:
                stats.failed += len(part)
                log.exception("compliance of %d facilities could not be evaluated", len(part))
                conn.rollback()
                continue
            # A facility deleted meanwhile is simply absent: its snapshot went with it.
            computed += [(f, mark, snaps[f]) for f, mark in part if f in snaps]
            conn.rollback()  # each batch's reads on a fresh view of the database
            if monotime.monotonic() - started > budget_s:
                stats.more = stats.more or i + batch < len(todo)
                break
    if computed:
        with engine.begin() as conn:
            store_snapshots(conn, computed)
    stats.evaluated = len(computed)
    return stats


def mark_all(conn: Connection) -> int:
    """The full pass: every snapshot out of date."""
    return conn.execute(update(compliance_snapshots).values(marked=S.marked + 1)).rowcount


class ComplianceRefresher:
    """Keeps the snapshots current: every `interval_s` a `refresh`, and every `full_every_s` a
    full pass (first at start). A refresh that leaves snapshots out of date is followed at once by
    another, up to `catch_up_passes`: a province's first pass (10,000 facilities) is done in one
    go rather than 500 every interval. Each pass reads afresh and commits, so nothing waits on
    it; between two the database connection is returned. `clock` is for tests."""

    def __init__(self, engine: Engine, *, interval_s: float = 2.0, full_every_s: float = 3600.0, limit: int = 500,
                 budget_s: float = 1.0, catch_up_passes: int = 40, clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.full_every_s = full_every_s
        self.limit = limit
        self.budget_s = budget_s
        self.catch_up_passes = catch_up_passes
        self.clock = clock
        self.totals = RefreshStats()
        self._last_full: Optional[float] = None
        self._task = PeriodicTask("cloud-compliance", interval_s, self.run_once, logger=log,
                                  what="compliance snapshot refresh")

    def run_once(self) -> RefreshStats:
        if self._last_full is None or monotime.monotonic() - self._last_full >= self.full_every_s:
            with self.engine.begin() as conn:
                mark_all(conn)
            self._last_full = monotime.monotonic()
        stats = RefreshStats()
        for _ in range(self.catch_up_passes):
            one = refresh(self.engine, self.clock(), limit=self.limit, budget_s=self.budget_s)
            for total in (stats, self.totals):
                total.evaluated += one.evaluated
                total.extended += one.extended
                total.failed += one.failed
            stats.more = one.more
            # A pass that evaluated nothing (every evaluation failed) would fail the same way again.
            if not one.more or one.evaluated + one.extended == 0 or self._task.stopping:
                break
        return stats

    def start(self) -> "ComplianceRefresher":
        self._task.start()
        return self

    def stop(self) -> None:
        self._task.stop()


# --- reading ------------------------------------------------------------------------------------
_READ = (S.report, S.marked, S.computed_mark, S.recheck_at, S.heartbeat_until, S.cameras_until)


def _current(row, now: datetime) -> bool:
    return row.report is not None and row.marked == row.computed_mark and row.recheck_at > now \
        and all(until is None or until > now for until in (row.heartbeat_until, row.cameras_until))


def _report(conn: Connection, facility_id: str, row, now: datetime) -> ComplianceReport:
    """The stored report while it is current; else (a fact changed a moment ago, or the
    facility was registered a moment ago) one evaluated now: a page never shows a stale report."""
    if row is not None and _current(row, now):
        return ComplianceReport.model_validate(row.report)
    return evaluate_snapshot(conn, facility_id, now).report


def read_snapshot(conn: Connection, facility_id: str, now: datetime) -> ComplianceReport:
    row = conn.execute(select(*_READ).where(S.facility == facility_id)).first()
    return _report(conn, facility_id, row, now)


def snapshot_page(conn: Connection, now: datetime, *, limit: int, cursor: Optional[str], own: Optional[str] = None,
                  city: Optional[str] = None, district: Optional[str] = None, status: Optional[Status] = None,
                  within: Jurisdiction = EVERYWHERE) -> Page[ComplianceReport]:
    """Reports for a page of facilities (by facility_id) under `within`. `status` is the stored
    one, filtered in the query, so pages are full; a report out of date is evaluated again."""
    f = facilities.c
    q = (select(f.facility_id, *_READ)
         .select_from(facilities.outerjoin(compliance_snapshots, S.facility == f.facility_id))
         .where(*path_clause((f.province, f.city, f.district), within)))
    if own is not None:
        q = q.where(f.facility_id == own)
    if city is not None:
        q = q.where(f.city == city)
    if district is not None:
        q = q.where(f.district == district)
    if status is not None:
        q = q.where(S.status == status.value)
    rows, nxt = trim(conn.execute(keyset(q, [f.facility_id], limit, cursor)).all(), ["facility_id"], limit)
    return Page[ComplianceReport](items=[_report(conn, r.facility_id, r, now) for r in rows], next_cursor=nxt)


@dataclass
class DistrictRollup:
    province: str
    city: str
    district: str
    facilities: int = 0
    compliant: int = 0
    warning: int = 0
    non_compliant: int = 0
    pending: int = 0
    cameras: int = 0
    cameras_online: int = 0
    retention_cameras: int = 0
    retention_compliant: int = 0
    oldest: Optional[datetime] = None


def district_rollups(conn: Connection, city: Optional[str],
                     within: Jurisdiction = EVERYWHERE) -> list[DistrictRollup]:
    """Snapshot counts per district under `within`: by status (pending: not evaluated yet),
    cameras, retention."""
    f = facilities.c
    q = (select(f.province, f.city, f.district, S.status, func.count().label("n"),
                func.coalesce(func.sum(S.cameras), 0).label("cameras"),
                func.coalesce(func.sum(S.cameras_online), 0).label("online"),
                func.coalesce(func.sum(S.retention_cameras), 0).label("ret"),
                func.coalesce(func.sum(S.retention_compliant), 0).label("ret_ok"),
                func.min(S.computed_at).label("oldest"))
         .select_from(facilities.outerjoin(compliance_snapshots, S.facility == f.facility_id))
         .where(*path_clause((f.province, f.city, f.district), within))
         .group_by(f.province, f.city, f.district, S.status))
    if city is not None:
        q = q.where(f.city == city)
    out: dict[tuple[str, str, str], DistrictRollup] = {}
    for r in conn.execute(q):
        d = out.setdefault((r.province, r.city, r.district), DistrictRollup(r.province, r.city, r.district))
        d.facilities += r.n
        key = r.status if r.status in ("compliant", "warning", "non_compliant") else "pending"
        setattr(d, key, getattr(d, key) + r.n)
        d.cameras += r.cameras
        d.cameras_online += r.online
        d.retention_cameras += r.ret
        d.retention_compliant += r.ret_ok
        if r.oldest is not None and (d.oldest is None or r.oldest < d.oldest):
            d.oldest = r.oldest
    return [out[k] for k in sorted(out)]
