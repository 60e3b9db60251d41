"""The alarm lifecycle after the raise: the police workflow (dispatch, resolve with outcome),
escalation of unacknowledged panics to supervisors, alarms the cloud raises itself, and
response times per district.

The escalation decision is a pure function (`due_escalations`); `EscalationRunner` is the small
periodic object that feeds it from the store and records and announces what it decides."""

from __future__ import annotations

import logging
import statistics
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Callable, Optional
from uuid import UUID

from pydantic import BaseModel, Field
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection, Engine

from cloud.alarms.events_bus import EventBus
from cloud.alarms.records import AlarmRecord, UtcTime, get_alarms, record_audit, record_step
from cloud.periodic import PeriodicTask
from cloud.registry.jurisdiction import EVERYWHERE, Jurisdiction, under
from cloud.store.db import alarms, escalations, facilities, inserted, upsert_insert
from contracts.alarms import DEFAULT_SEVERITY, AlarmKind, AlarmState, Severity
from contracts.timefmt import utcnow

log = logging.getLogger("careguard.cloud.lifecycle")


class Outcome(str, Enum):
    REAL = "real"
    FALSE = "false"
    TEST = "test"


class WorkflowConflict(Exception):
    """A police workflow step the alarm's state does not allow; the message says why."""


class UnknownAlarm(Exception):
    pass


def _load(conn: Connection, alarm_id: UUID) -> AlarmRecord:
    found = get_alarms(conn, [str(alarm_id)])
    if not found:
        raise UnknownAlarm(f"no alarm {alarm_id}")
    return found[0]


def dispatch(conn: Connection, alarm_id: UUID, *, user: str, role: str, now: datetime,
             note: Optional[str] = None) -> AlarmRecord:
    """Send officers. A drill (`test`) is never dispatchable; an alarm is acknowledged first, so
    the record shows who took it before anyone was sent."""
    rec = _load(conn, alarm_id)
    if rec.kind == AlarmKind.TEST.value:
        raise WorkflowConflict("a test alarm (drill) is never dispatched: resolve it with outcome 'test'")
    if rec.resolved_at is not None:
        raise WorkflowConflict(f"alarm already resolved ({rec.outcome}) at {rec.resolved_at.isoformat()}")
    if rec.acked_at is None:
        raise WorkflowConflict("acknowledge the alarm before dispatching")
    if rec.dispatched_at is not None:
        raise WorkflowConflict(f"already dispatched by {rec.dispatched_by} at {rec.dispatched_at.isoformat()}")
    c = alarms.c
    conn.execute(update(alarms).where(c.alarm_id == str(alarm_id), c.dispatched_at.is_(None))
                 .values(dispatched_at=now, dispatched_by=user, dispatch_note=note, updated_at=now))
    record_step(conn, alarm_id=str(alarm_id), facility=rec.facility, step="dispatched", at=now, actor=user,
                detail={"note": note} if note else None)
    record_audit(conn, at=now, actor=user, role=role, action="alarm.dispatch", target=str(alarm_id),
                 detail={"facility": rec.facility})
    return _load(conn, alarm_id)


def resolve(conn: Connection, alarm_id: UUID, outcome: Outcome, *, user: str, role: str, now: datetime,
            note: Optional[str] = None) -> AlarmRecord:
    """Close the police case. A drill resolves only as `test`, and only a drill resolves as `test`."""
    rec = _load(conn, alarm_id)
    is_test = rec.kind == AlarmKind.TEST.value
    if is_test != (outcome is Outcome.TEST):
        raise WorkflowConflict("a test alarm resolves with outcome 'test' only" if is_test else
                               "outcome 'test' is for test alarms (drills) only; this is a "
                               f"{rec.kind} alarm: use 'real' or 'false'")
    if rec.resolved_at is not None:
        raise WorkflowConflict(f"already resolved ({rec.outcome}) by {rec.resolved_by} at {rec.resolved_at.isoformat()}")
    if rec.acked_at is None:
        raise WorkflowConflict("acknowledge the alarm before resolving it")
    c = alarms.c
    conn.execute(update(alarms).where(c.alarm_id == str(alarm_id), c.resolved_at.is_(None))
                 .values(resolved_at=now, resolved_by=user, outcome=outcome.value, resolve_note=note,
                         updated_at=now))
    record_step(conn, alarm_id=str(alarm_id), facility=rec.facility, step="resolved", at=now, actor=user,
                detail={"outcome": outcome.value, **({"note": note} if note else {})})
    record_audit(conn, at=now, actor=user, role=role, action="alarm.resolve", target=str(alarm_id),
                 detail={"facility": rec.facility, "outcome": outcome.value})
    return _load(conn, alarm_id)


# --- alarms the cloud raises itself -------------------------------------------------------------
def raise_cloud_alarm(conn: Connection, *, facility: str, kind: AlarmKind, source: str, ts: datetime,
                      severity: Optional[Severity] = None, detail: Optional[dict] = None,
                      alarm_id: Optional[str] = None) -> tuple[str, bool]:
    """Raise `kind` about `source` unless one is active already (one active alarm per (source,
    kind), as ThingsBoard keeps it). Returns the alarm_id and whether it is new. An `alarm_id`
    derived from the cause makes two cloud processes deciding the same thing raise one alarm."""
    c = alarms.c
    active = conn.execute(select(c.alarm_id).where(c.facility == facility, c.source == source, c.kind == kind.value,
                                                   c.state == AlarmState.ACTIVE.value)).first()
    if active is not None:
        return active[0], False
    alarm_id = alarm_id or str(uuid.uuid4())
    if not inserted(conn, upsert_insert(conn.dialect.name, alarms).values(
            alarm_id=alarm_id, facility=facility, kind=kind.value, severity=(severity or DEFAULT_SEVERITY[kind]).value,
            source=source, state=AlarmState.ACTIVE.value, detail=detail or {}, sort_ts=ts, raised_at=ts,
            updated_at=utcnow()).on_conflict_do_nothing(index_elements=["alarm_id"]), c.alarm_id):
        return alarm_id, False
    record_step(conn, alarm_id=alarm_id, facility=facility, step="raised", at=ts, actor="cloud", detail=detail)
    return alarm_id, True


def clear_cloud_alarm(conn: Connection, *, facility: str, kind: AlarmKind, source: str, ts: datetime,
                      detail: Optional[dict] = None) -> Optional[str]:
    """Clear the active `kind` alarm about `source`, if any; returns its alarm_id."""
    c = alarms.c
    active = conn.execute(select(c.alarm_id).where(c.facility == facility, c.source == source, c.kind == kind.value,
                                                   c.state == AlarmState.ACTIVE.value)).first()
    if active is None:
        return None
    conn.execute(update(alarms).where(c.alarm_id == active[0])
                 .values(state=AlarmState.CLEARED.value, cleared_at=ts, updated_at=utcnow()))
    record_step(conn, alarm_id=active[0], facility=facility, step="cleared", at=ts, actor="cloud", detail=detail)
    return active[0]


# --- escalation ---------------------------------------------------------------------------------
class EscalationPolicy(BaseModel):
    after_s: float = Field(default=60.0, gt=0, description="an unacknowledged panic escalates this long after its raise")
    renotify_s: float = Field(default=60.0, gt=0, description="then supervisors are notified again this often")
    max_notifications: int = Field(default=5, ge=1, description="escalation plus re-notifications, at most")
    kinds: tuple[AlarmKind, ...] = (AlarmKind.PANIC,)
    notify_role: str = "supervisor"


@dataclass(frozen=True)
class EscalationCandidate:
    """An unacknowledged, unresolved alarm of an escalating kind, with its escalations so far."""
    alarm_id: str
    facility: str
    raised_at: datetime
    notified: int                     # escalation records so far
    last_notified_at: Optional[datetime]


@dataclass(frozen=True)
class EscalationDue:
    alarm_id: str
    facility: str
    n: int                            # 0: the escalation; 1..: re-notifications
    unacked_s: float


def due_escalations(candidates: list[EscalationCandidate], now: datetime,
                    policy: EscalationPolicy) -> list[EscalationDue]:
    """Which alarms to escalate or re-notify at `now`. Pure: same input, same answer."""
    out = []
    for c in candidates:
        unacked = (now - c.raised_at).total_seconds()
        if c.notified >= policy.max_notifications:
            continue
        if c.notified == 0:
            due = unacked >= policy.after_s
        else:
            due = c.last_notified_at is not None and (now - c.last_notified_at).total_seconds() >= policy.renotify_s
        if due:
            out.append(EscalationDue(c.alarm_id, c.facility, c.notified, unacked))
    return out


class EscalationNotice(BaseModel):
    """Published on the event bus (SSE `event: escalation`) for each escalation or re-notification."""
    alarm_id: UUID
    facility: str
    n: int
    notified_role: str
    unacked_s: float
    at: UtcTime
    alarm: AlarmRecord


def escalation_candidates(conn: Connection, policy: EscalationPolicy, now: datetime) -> list[EscalationCandidate]:
    c = alarms.c
    e = escalations.c
    counts = (select(e.alarm_id, func.count().label("notified"), func.max(e.at).label("last_at"))
              .group_by(e.alarm_id).subquery())
    q = (select(c.alarm_id, c.facility, c.raised_at, counts.c.notified, counts.c.last_at)
         .outerjoin(counts, counts.c.alarm_id == c.alarm_id)
         .where(c.kind.in_([k.value for k in policy.kinds]), c.acked_at.is_(None), c.resolved_at.is_(None),
                c.raised_at.is_not(None), c.raised_at <= now - timedelta(seconds=policy.after_s)))
    return [EscalationCandidate(r.alarm_id, r.facility, r.raised_at, r.notified or 0, r.last_at)
            for r in conn.execute(q)]


def apply_escalation(conn: Connection, due: EscalationDue, policy: EscalationPolicy, now: datetime) -> bool:
    """Record one escalation; False when another worker recorded the same one first."""
    ins = upsert_insert(conn.dialect.name, escalations).values(
        alarm_id=due.alarm_id, facility=due.facility, n=due.n, at=now, notified_role=policy.notify_role,
        unacked_s=due.unacked_s).on_conflict_do_nothing(index_elements=["alarm_id", "n"])
    if not inserted(conn, ins, escalations.c.id):
        return False
    record_step(conn, alarm_id=due.alarm_id, facility=due.facility, step="escalated" if due.n == 0 else "renotified",
                n=due.n, at=now, actor="cloud",
                detail={"notified_role": policy.notify_role, "unacked_s": round(due.unacked_s, 3)})
    return True


class EscalationRunner:
    """Checks every `interval_s` for panics to escalate; start() / stop(), or run_once() directly."""

    def __init__(self, engine: Engine, bus: EventBus, policy: Optional[EscalationPolicy] = None, *,
                 interval_s: float = 1.0, clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.bus = bus
        self.policy = policy or EscalationPolicy()
        self.interval_s = interval_s
        self.clock = clock
        self.escalated = 0
        self._task = PeriodicTask("cloud-escalation", interval_s, self.run_once, logger=log,
                                  what="escalation check")

    @property
    def errors(self) -> int:
        return self._task.errors

    def run_once(self, now: Optional[datetime] = None) -> list[EscalationNotice]:
        now = now or self.clock()
        notices = []
        with self.engine.begin() as conn:
            for due in due_escalations(escalation_candidates(conn, self.policy, now), now, self.policy):
                if apply_escalation(conn, due, self.policy, now):
                    notices.append(EscalationNotice(alarm_id=due.alarm_id, facility=due.facility, n=due.n,
                                                    notified_role=self.policy.notify_role, unacked_s=due.unacked_s,
                                                    at=now, alarm=get_alarms(conn, [due.alarm_id])[0]))
        # Announced only after commit: a listener never hears of an escalation the store lost.
        for notice in notices:
            self.bus.publish(notice)
        self.escalated += len(notices)
        return notices

    def start(self) -> "EscalationRunner":
        self._task.start()
        return self

    def stop(self) -> None:
        self._task.stop(5.0)


# --- response times ---------------------------------------------------------------------------
class ResponseTimes(BaseModel):
    """Police response per district, over alarms raised in the window (drills excluded)."""
    province: str
    city: str
    district: str
    alarms: int
    acknowledged: int
    dispatched: int
    ack_median_s: Optional[float]
    ack_p90_s: Optional[float]
    ack_max_s: Optional[float]
    dispatch_median_s: Optional[float]
    dispatch_p90_s: Optional[float]


def _p(values: list[float], q: float) -> Optional[float]:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1], 3)


def response_times(conn: Connection, *, since: datetime, until: datetime, city: Optional[str] = None,
                   kinds: Optional[list[AlarmKind]] = None, within: Jurisdiction = EVERYWHERE) -> list[ResponseTimes]:
    c = alarms.c
    f = facilities.c
    q = (select(f.province, f.city, f.district, c.raised_at, c.acked_at, c.dispatched_at)
         .join(facilities, f.facility_id == c.facility)
         .where(c.raised_at >= since, c.raised_at < until, c.kind != AlarmKind.TEST.value))
    if within:
        q = q.where(under(c.facility, within))
    if city is not None:
        q = q.where(f.city == city)
    if kinds:
        q = q.where(c.kind.in_([k.value for k in kinds]))
    groups: dict[tuple[str, str, str], list] = {}
    for r in conn.execute(q):
        groups.setdefault((r.province, r.city, r.district), []).append(r)
    out = []
    for (province, city_, district), rows in sorted(groups.items()):
        ack = sorted((r.acked_at - r.raised_at).total_seconds() for r in rows if r.acked_at is not None)
        disp = sorted((r.dispatched_at - r.raised_at).total_seconds() for r in rows if r.dispatched_at is not None)
        out.append(ResponseTimes(province=province, city=city_, district=district, alarms=len(rows),
                                 acknowledged=len(ack), dispatched=len(disp), ack_median_s=_p(ack, 0.5),
                                 ack_p90_s=_p(ack, 0.9), ack_max_s=round(ack[-1], 3) if ack else None,
                                 dispatch_median_s=_p(disp, 0.5), dispatch_p90_s=_p(disp, 0.9)))
    return out
