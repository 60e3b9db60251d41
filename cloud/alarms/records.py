"""The alarm store: one row per alarm_id, joined from raised / delivered / cleared envelopes
(in any order: the DC-09 ACK report may overtake the raise on the uplink) and from operator
acknowledgements. Every merge is a single UPDATE using COALESCE so the first fact wins and a
replay changes nothing. Each first fact is also a row of `alarm_events`, the alarm's history.

One active alarm per (source, kind): the gateway's alarm engine holds that rule for the alarms it
raises (a latched zone raises nothing new), and the cloud mirrors them by id, since the police
receiver knows them by that id; alarms the cloud raises itself go through
`cloud.alarms.lifecycle.raise_cloud_alarm`, which holds the rule here."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Optional
from uuid import UUID

from pydantic import BaseModel, PlainSerializer
from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.engine import Connection, Engine

from cloud.registry.jurisdiction import EVERYWHERE, Jurisdiction, under
from cloud.store.db import alarm_events, alarms, audit, escalations, facilities, inserted, upsert_insert
from cloud.store.paging import BadCursor, Page, decode_cursor, encode_cursor, keyset, trim
from contracts.alarms import AlarmBody, AlarmKind, AlarmState
from contracts.envelope import Envelope
from contracts.timefmt import iso_utc

UtcTime = Annotated[datetime, PlainSerializer(iso_utc, return_type=str)]


class AlarmRecord(BaseModel):
    """An alarm as the police see it. Times are UTC at their origin; `delivery_ms` is how long
    the direct DC-09 path took from the raise to the police receiver's ACK."""

    alarm_id: UUID
    facility: str
    kind: str
    severity: str
    source: str
    zone: Optional[str]
    device_id: Optional[str]
    state: AlarmState
    raised_at: Optional[UtcTime]
    cleared_at: Optional[UtcTime]
    delivered_at: Optional[UtcTime]
    delivery_ms: Optional[int]
    receiver: Optional[str]
    acked_at: Optional[UtcTime]
    acked_by: Optional[str]
    dispatched_at: Optional[UtcTime]
    dispatched_by: Optional[str]
    dispatch_note: Optional[str] = None
    resolved_at: Optional[UtcTime]
    resolved_by: Optional[str]
    outcome: Optional[str]
    resolve_note: Optional[str] = None
    sort_ts: UtcTime
    updated_at: UtcTime


class AlarmConflict(Exception):
    """An envelope names an alarm_id that belongs to another facility."""


def _record(row) -> AlarmRecord:
    m = dict(row._mapping)
    m.pop("detail", None)
    if m["raised_at"] is not None and m["delivered_at"] is not None:
        m["delivery_ms"] = round((m["delivered_at"] - m["raised_at"]).total_seconds() * 1000)
    else:
        m["delivery_ms"] = None
    return AlarmRecord.model_validate(m)


def record_step(conn: Connection, *, alarm_id: str, facility: str, step: str, at: datetime, actor: str,
                detail: Optional[dict] = None, n: int = 0) -> bool:
    """Add one step to an alarm's history; False when (alarm_id, step, n) was recorded before."""
    ins = upsert_insert(conn.dialect.name, alarm_events).values(
        alarm_id=alarm_id, facility=facility, step=step, n=n, at=at, actor=actor, detail=detail or {})
    return inserted(conn, ins.on_conflict_do_nothing(index_elements=["alarm_id", "step", "n"]), alarm_events.c.id)


_ENVELOPE_STEP = {"alarm.raised": "raised", "alarm.cleared": "cleared", "alarm.delivered": "delivered"}


def apply_alarm_envelope(conn: Connection, env: Envelope, body: AlarmBody,
                         delivered_at: Optional[datetime], now: datetime) -> str:
    """Merge one alarm.* envelope into its alarm row; returns the alarm_id.

    Raises AlarmConflict when the alarm_id is already owned by another facility, so one
    gateway cannot touch another's alarms."""
    alarm_id = str(body.alarm_id)
    skeleton = upsert_insert(conn.dialect.name, alarms).values(
        alarm_id=alarm_id, facility=env.facility, kind=body.kind.value, severity=body.severity.value,
        source=body.source, zone=body.zone, device_id=body.device_id,
        state=AlarmState.CLEARED.value if env.type == "alarm.cleared" else AlarmState.ACTIVE.value,
        detail=body.detail, sort_ts=env.ts, updated_at=now,
    ).on_conflict_do_nothing(index_elements=["alarm_id"])
    conn.execute(skeleton)

    c = alarms.c
    if env.type == "alarm.raised":
        # The raise is authoritative for what the alarm is, and its origin time orders the list.
        values = dict(raised_at=func.coalesce(c.raised_at, env.ts),
                      sort_ts=case((c.raised_at.is_(None), env.ts), else_=c.sort_ts),
                      kind=body.kind.value, severity=body.severity.value, source=body.source,
                      zone=body.zone, device_id=body.device_id, detail=body.detail)
    elif env.type == "alarm.cleared":
        values = dict(cleared_at=func.coalesce(c.cleared_at, env.ts), state=AlarmState.CLEARED.value)
    elif env.type == "alarm.delivered":
        values = dict(delivered_at=func.coalesce(c.delivered_at, delivered_at or env.ts),
                      receiver=func.coalesce(c.receiver, body.receiver))
    else:
        raise ValueError(f"not an alarm envelope: {env.type!r}")
    result = conn.execute(update(alarms).where(c.alarm_id == alarm_id, c.facility == env.facility)
                          .values(updated_at=now, **values))
    if result.rowcount != 1:
        raise AlarmConflict(f"alarm_id {alarm_id} belongs to another facility than {env.facility!r}")
    step_at = (delivered_at or env.ts) if env.type == "alarm.delivered" else env.ts
    record_step(conn, alarm_id=alarm_id, facility=env.facility, step=_ENVELOPE_STEP[env.type], at=step_at,
                actor=env.source, detail={"envelope": str(env.id), **({"receiver": body.receiver} if body.receiver else {})})
    return alarm_id


def get_alarms(conn: Connection, alarm_ids: list[str]) -> list[AlarmRecord]:
    if not alarm_ids:
        return []
    rows = conn.execute(select(alarms).where(alarms.c.alarm_id.in_(alarm_ids))).all()
    return [_record(r) for r in rows]


def get_alarm(engine: Engine, alarm_id: UUID) -> Optional[AlarmRecord]:
    with engine.connect() as conn:
        found = get_alarms(conn, [str(alarm_id)])
    return found[0] if found else None


def alarm_cursor(rec: AlarmRecord) -> str:
    """The `before` cursor continuing a newest-first list after `rec`."""
    return encode_cursor([iso_utc(rec.sort_ts), str(rec.alarm_id)])


def decode_alarm_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises BadCursor unless `cursor` came from alarm_cursor."""
    ts_text, alarm_id = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(str(ts_text).replace("Z", "+00:00")), str(UUID(str(alarm_id)))
    except ValueError:
        raise BadCursor("not a cursor returned by this list") from None


def list_alarms(conn: Connection, *, limit: int, before: Optional[tuple[datetime, str]] = None,
                kind: Optional[AlarmKind] = None, facility: Optional[str] = None,
                state: Optional[AlarmState] = None, city: Optional[str] = None, district: Optional[str] = None,
                acked: Optional[bool] = None, exclude_kinds: frozenset[AlarmKind] = frozenset(),
                within: Jurisdiction = EVERYWHERE) -> list[AlarmRecord]:
    """Newest first by origin time; `before` continues after the last row of a previous page.
    `city` / `district` filter by the facility's registered district path; `within` is the
    caller's jurisdiction."""
    c = alarms.c
    q = select(alarms)
    if within:
        q = q.where(under(c.facility, within))
    if city is not None or district is not None:
        fac = select(facilities.c.facility_id)
        if city is not None:
            fac = fac.where(facilities.c.city == city)
        if district is not None:
            fac = fac.where(facilities.c.district == district)
        q = q.where(c.facility.in_(fac))
    if acked is not None:
        q = q.where(c.acked_at.is_not(None) if acked else c.acked_at.is_(None))
    if before is not None:
        ts, alarm_id = before
        q = q.where(or_(c.sort_ts < ts, and_(c.sort_ts == ts, c.alarm_id < alarm_id)))
    if kind is not None:
        q = q.where(c.kind == kind.value)
    if exclude_kinds:
        q = q.where(c.kind.not_in([k.value for k in exclude_kinds]))
    if facility is not None:
        q = q.where(c.facility == facility)
    if state is not None:
        q = q.where(c.state == state.value)
    q = q.order_by(c.sort_ts.desc(), c.alarm_id.desc()).limit(limit)
    return [_record(r) for r in conn.execute(q).all()]


def record_audit(conn: Connection, *, at: datetime, actor: str, role: str, action: str, target: str,
                 detail: dict) -> None:
    conn.execute(audit.insert().values(at=at, actor=actor, role=role, action=action, target=target, detail=detail))


def acknowledge(engine: Engine, alarm_id: UUID, *, user: str, role: str,
                now: datetime) -> Optional[tuple[AlarmRecord, bool]]:
    """Record an operator's acknowledgement; the first one stands. Returns the alarm and whether
    this call was the first acknowledgement, or None for an unknown alarm."""
    c = alarms.c
    with engine.begin() as conn:
        result = conn.execute(update(alarms).where(c.alarm_id == str(alarm_id), c.acked_at.is_(None))
                              .values(acked_at=now, acked_by=user, updated_at=now))
        first = result.rowcount == 1
        found = get_alarms(conn, [str(alarm_id)])
        if not found:
            return None
        rec = found[0]
        if first:
            record_step(conn, alarm_id=str(alarm_id), facility=rec.facility, step="acknowledged", at=now, actor=user)
        record_audit(conn, at=now, actor=user, role=role, action="alarm.ack" if first else "alarm.ack_repeated",
                     target=str(alarm_id), detail={"facility": rec.facility, "acked_at": iso_utc(rec.acked_at)})
    return rec, first


class AlarmEvent(BaseModel):
    id: int
    alarm_id: UUID
    step: str
    n: int
    at: UtcTime
    actor: str
    detail: dict


class Escalation(BaseModel):
    id: int
    alarm_id: UUID
    facility: str
    n: int
    at: UtcTime
    notified_role: str
    unacked_s: float


def alarm_history(conn: Connection, alarm_id: UUID) -> list[AlarmEvent]:
    """Every step of the alarm in order of its time at origin."""
    ev = alarm_events.c
    rows = conn.execute(select(alarm_events).where(ev.alarm_id == str(alarm_id)).order_by(ev.at, ev.id)).all()
    return [AlarmEvent.model_validate(dict(r._mapping)) for r in rows]


def list_escalations_page(conn: Connection, *, limit: int, cursor: Optional[str],
                          facility: Optional[str], within: Jurisdiction = EVERYWHERE) -> Page[Escalation]:
    e = escalations.c
    q = select(escalations)
    if within:
        q = q.where(under(e.facility, within))
    if facility is not None:
        q = q.where(e.facility == facility)
    rows, nxt = trim(conn.execute(keyset(q, [e.id], limit, cursor)).all(), ["id"], limit)
    return Page[Escalation](items=[Escalation.model_validate(dict(r._mapping)) for r in rows], next_cursor=nxt)


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    detail: dict[str, Any]


def list_audit_page(conn: Connection, *, limit: int, cursor: Optional[str], actor: Optional[str] = None,
                    action: Optional[str] = None, target: Optional[str] = None,
                    since: Optional[datetime] = None) -> Page[AuditEntry]:
    """Newest first."""
    a = audit.c
    q = select(audit)
    for col, value in ((a.actor, actor), (a.action, action), (a.target, target)):
        if value is not None:
            q = q.where(col == value)
    if since is not None:
        q = q.where(a.at >= since)
    if cursor is not None:
        (before,) = decode_cursor(cursor, 1)
        q = q.where(a.id < int(before))
    rows = conn.execute(q.order_by(a.id.desc()).limit(limit + 1)).all()
    nxt = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return Page[AuditEntry](items=[AuditEntry.model_validate(dict(r._mapping)) for r in rows[:limit]], next_cursor=nxt)


def active_alarm_kinds(conn: Connection, facility_id: str) -> set[AlarmKind]:
    """The kinds of the facility's active alarms."""
    a = alarms.c
    kinds = conn.execute(select(a.kind).distinct().where(a.facility == facility_id,
                                                         a.state == AlarmState.ACTIVE.value)).scalars()
    return {AlarmKind(k) for k in kinds if k in AlarmKind._value2member_map_}
