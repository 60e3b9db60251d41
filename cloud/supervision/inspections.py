"""Inspections (督导检查) from the jurisdiction's checklist, their findings, and rectification
(整改): the facility submits evidence, the inspector accepts or reopens; a finding still open past
its deadline escalates once per deadline to the district's supervisor, enters the facility's credit
record and is a compliance finding (rule `rectification_overdue`) until it is dealt with."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Annotated, Callable, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import or_, select, update
from sqlalchemy.engine import Connection, Engine

from cloud.alarms.events_bus import EventBus
from cloud.compliance.marks import mark_facilities
from cloud.compliance.profiles import ChecklistItem, Profile, profile_for
from cloud.periodic import PeriodicTask
from cloud.store.db import facilities
from cloud.supervision.credit import CreditRuleKey, add_entry
from cloud.supervision.errors import InputError, NotFound, WorkflowConflict
from cloud.supervision.notices import Notice, NoticeKind, notify
from cloud.supervision.scope import facility_place, jurisdiction_clause, local_today
from cloud.supervision.tables import finding_events, findings, inspections
from cloud.supervision.uploads import Purpose, require_uploads
from contracts.ids import FACILITY_ID_RE
from contracts.timefmt import utcnow

log = logging.getLogger("careguard.supervision")

UploadId = Annotated[str, Field(pattern=r"^[0-9a-f-]{36}$")]
ItemId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$")]
Note = Annotated[str, Field(min_length=1, max_length=1000)]
MAX_DEADLINE_DAYS = 365
RECTIFICATION_SOURCE = ("株洲市实施意见（株政办发〔2022〕23号）: 由卫生健康部门牵头，联合相关职能部门，定期对婴幼儿照护服务机构进行"
                        "综合监督检查……确保各项规范制度、安全措施落到实处（CareGuard: 检查发现的问题须在整改期限内整改，"
                        "逾期未整改的上报区县监管部门）")


class InspectionKind(str, Enum):
    ROUTINE = "routine"        # 日常巡查
    JOINT = "joint"            # 部门联合执法
    SPECIAL = "special"        # 专项督导
    FOLLOW_UP = "follow_up"    # 复查


class ItemResult(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "not_applicable"


class Severity(str, Enum):
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


class FindingStatus(str, Enum):
    OPEN = "open"              # to rectify (also after a reopen)
    SUBMITTED = "submitted"    # the facility says it is done; the inspector reviews
    RECTIFIED = "rectified"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResultIn(_In):
    item_id: ItemId
    result: ItemResult
    note: Optional[Annotated[str, Field(max_length=500)]] = None


class InspectionIn(_In):
    facility_id: Annotated[str, Field(pattern=FACILITY_ID_RE)]
    kind: InspectionKind
    inspected_on: date
    departments: Annotated[list[Annotated[str, Field(min_length=1, max_length=32)]], Field(max_length=10)] = []
    results: Annotated[list[ResultIn], Field(max_length=200)] = []
    note: Optional[Note] = None

    @field_validator("results")
    @classmethod
    def _once_each(cls, v: list[ResultIn]) -> list[ResultIn]:
        if len({r.item_id for r in v}) != len(v):
            raise ValueError("each checklist item may be given one result")
        return v


class FindingIn(_In):
    item_id: ItemId
    severity: Severity
    description: Note
    photos: Annotated[list[UploadId], Field(max_length=10)] = []
    deadline: date = Field(description="rectify by the end of this local day")


class RectificationIn(_In):
    description: Note
    evidence: Annotated[list[UploadId], Field(min_length=1, max_length=10)]


class AcceptIn(_In):
    note: Optional[Note] = None


class ReopenIn(_In):
    reason: Note
    deadline: Optional[date] = Field(default=None, description="a new deadline; none keeps the old one")


class Finding(BaseModel):
    finding_id: str
    inspection_id: str
    facility: str
    item_id: str
    item_text: Optional[str]
    area: Optional[str]
    source: Optional[str] = Field(description="the text the checklist item comes from")
    severity: Severity
    description: str
    photos: list[str]
    deadline: date
    status: FindingStatus
    overdue: bool = Field(description="still open after its deadline (local day)")
    escalated: bool = Field(description="this deadline's overrun went to the district supervisor")
    created_at: datetime
    updated_at: datetime
    closed_at: Optional[datetime]


class Inspection(BaseModel):
    inspection_id: str
    facility: str
    kind: InspectionKind
    profile: str
    inspected_on: date
    departments: list[str]
    results: list[ResultIn]
    note: Optional[str]
    inspector: str
    inspector_role: str
    created_at: datetime
    findings: list[Finding]


class FindingEvent(BaseModel):
    step: str
    at: datetime
    actor: str
    role: str
    note: Optional[str]
    evidence: list[str]
    deadline: Optional[date]


def _items(profile: Profile) -> dict[str, ChecklistItem]:
    return {i.item_id: i for i in profile.checklist}


def _finding(row, profile: Profile, today: date) -> Finding:
    m = row._mapping
    item = _items(profile).get(m["item_id"])
    status = FindingStatus(m["status"])
    return Finding(finding_id=m["finding_id"], inspection_id=m["inspection_id"], facility=m["facility"],
                   item_id=m["item_id"], item_text=item.text if item else None, area=item.area if item else None,
                   source=item.source if item else None, severity=m["severity"], description=m["description"],
                   photos=m["photos"], deadline=m["deadline"], status=status,
                   overdue=status is FindingStatus.OPEN and m["deadline"] < today,
                   escalated=m["escalated_for"] is not None and m["escalated_for"] == m["deadline"],
                   created_at=m["created_at"], updated_at=m["updated_at"], closed_at=m["closed_at"])


def _event(conn: Connection, finding_id: str, step: str, *, at: datetime, actor: str, role: str,
           note: Optional[str] = None, evidence: Optional[list[str]] = None, deadline: Optional[date] = None) -> None:
    conn.execute(finding_events.insert().values(finding_id=finding_id, step=step, at=at, actor=actor, role=role,
                                                note=note, evidence=evidence or [], deadline=deadline))
    # Every step of a finding may change whether a rectification is overdue (a compliance rule).
    mark_facilities(conn, [finding_facility(conn, finding_id)])


def _check_deadline(deadline: date, start: date, field: str = "deadline") -> None:
    if deadline < start:
        raise InputError(field, f"deadline {deadline} is before {start}")
    if deadline > start + timedelta(days=MAX_DEADLINE_DAYS):
        raise InputError(field, f"deadline {deadline} is more than {MAX_DEADLINE_DAYS} days after {start}")


# --- inspections ----------------------------------------------------------------------------
def create_inspection(conn: Connection, body: InspectionIn, *, user: str, role: str, now: datetime) -> Inspection:
    place = facility_place(conn, body.facility_id)
    profile = place.profile
    if body.inspected_on > local_today(profile, now):
        raise InputError("inspected_on", f"{body.inspected_on} is in the future")
    known = _items(profile)
    for i, r in enumerate(body.results):
        if r.item_id not in known:
            raise InputError(f"results.{i}.item_id", f"{r.item_id!r} is not on the {profile.name} checklist")
    inspection_id = str(uuid.uuid4())
    conn.execute(inspections.insert().values(
        inspection_id=inspection_id, facility=body.facility_id, kind=body.kind.value, profile=profile.name,
        inspected_on=body.inspected_on, departments=body.departments,
        results=[r.model_dump(mode="json") for r in body.results], note=body.note, inspector=user,
        inspector_role=role, created_at=now))
    return get_inspection(conn, inspection_id, now)


def _inspection_row(conn: Connection, inspection_id: str):
    row = conn.execute(select(inspections).where(inspections.c.inspection_id == inspection_id)).first()
    if row is None:
        raise NotFound(f"no inspection {inspection_id!r}")
    return row


def get_inspection(conn: Connection, inspection_id: str, now: datetime) -> Inspection:
    row = _inspection_row(conn, inspection_id)
    profile = facility_place(conn, row.facility).profile
    today = local_today(profile, now)
    found = [_finding(r, profile, today) for r in conn.execute(
        select(findings).where(findings.c.inspection_id == inspection_id).order_by(findings.c.created_at))]
    m = dict(row._mapping)
    m["results"] = [ResultIn.model_validate(r) for r in m["results"]]
    return Inspection(**m, findings=found)


def list_inspections(conn: Connection, *, facility: Optional[str], jurisdiction: Optional[str], limit: int,
                     cursor_before: Optional[tuple[date, str]], now: datetime) -> list[Inspection]:
    """Newest first (by day inspected, then id)."""
    i, f = inspections.c, facilities.c
    q = (select(i.inspection_id).join(facilities, f.facility_id == i.facility)
         .where(jurisdiction_clause(f.province, f.city, f.district, jurisdiction)))
    if facility is not None:
        q = q.where(i.facility == facility)
    if cursor_before is not None:
        day, ident = cursor_before
        q = q.where(or_(i.inspected_on < day, (i.inspected_on == day) & (i.inspection_id < ident)))
    ids = conn.execute(q.order_by(i.inspected_on.desc(), i.inspection_id.desc()).limit(limit)).scalars().all()
    return [get_inspection(conn, x, now) for x in ids]


def checklist_for(conn: Connection, facility_id: str) -> tuple[str, list[ChecklistItem]]:
    profile = facility_place(conn, facility_id).profile
    return profile.name, list(profile.checklist)


# --- findings -------------------------------------------------------------------------------
def add_finding(conn: Connection, inspection_id: str, body: FindingIn, *, user: str, role: str,
                now: datetime) -> Finding:
    insp = _inspection_row(conn, inspection_id)
    profile = facility_place(conn, insp.facility).profile
    if body.item_id not in _items(profile):
        raise InputError("item_id", f"{body.item_id!r} is not on the {profile.name} checklist")
    _check_deadline(body.deadline, insp.inspected_on)
    require_uploads(conn, insp.facility, body.photos, "photos", (Purpose.PHOTO,))
    finding_id = str(uuid.uuid4())
    conn.execute(findings.insert().values(
        finding_id=finding_id, inspection_id=inspection_id, facility=insp.facility, item_id=body.item_id,
        severity=body.severity.value, description=body.description, photos=body.photos, deadline=body.deadline,
        status=FindingStatus.OPEN.value, created_at=now, updated_at=now))
    _event(conn, finding_id, "raised", at=now, actor=user, role=role, note=body.description, evidence=body.photos,
           deadline=body.deadline)
    return get_finding(conn, finding_id, now)


def _finding_row(conn: Connection, finding_id: str):
    row = conn.execute(select(findings).where(findings.c.finding_id == finding_id)).first()
    if row is None:
        raise NotFound(f"no finding {finding_id!r}")
    return row


def finding_facility(conn: Connection, finding_id: str) -> str:
    return _finding_row(conn, finding_id).facility


def get_finding(conn: Connection, finding_id: str, now: datetime) -> Finding:
    row = _finding_row(conn, finding_id)
    profile = facility_place(conn, row.facility).profile
    return _finding(row, profile, local_today(profile, now))


def list_findings(conn: Connection, *, facility: Optional[str], jurisdiction: Optional[str],
                  status: Optional[FindingStatus], limit: int, now: datetime) -> list[Finding]:
    """Earliest deadline first: what is due soonest comes first."""
    g, f = findings.c, facilities.c
    q = (select(findings, f.city).join(facilities, f.facility_id == g.facility)
         .where(jurisdiction_clause(f.province, f.city, f.district, jurisdiction)))
    if facility is not None:
        q = q.where(g.facility == facility)
    if status is not None:
        q = q.where(g.status == status.value)
    out = []
    for row in conn.execute(q.order_by(g.deadline, g.finding_id).limit(limit)):
        profile = profile_for(row.city)
        out.append(_finding(row, profile, local_today(profile, now)))
    return out


def finding_history(conn: Connection, finding_id: str) -> list[FindingEvent]:
    _finding_row(conn, finding_id)
    e = finding_events.c
    return [FindingEvent.model_validate(dict(r._mapping)) for r in conn.execute(
        select(e.step, e.at, e.actor, e.role, e.note, e.evidence, e.deadline)
        .where(e.finding_id == finding_id).order_by(e.id))]


def _move(conn: Connection, finding_id: str, allowed: FindingStatus, values: dict) -> None:
    """Change a finding's state only from `allowed`: two reviewers racing change it once."""
    result = conn.execute(update(findings).where(findings.c.finding_id == finding_id,
                                                 findings.c.status == allowed.value).values(**values))
    if result.rowcount != 1:
        status = _finding_row(conn, finding_id).status
        raise WorkflowConflict(f"finding {finding_id} is {status}; this step needs it {allowed.value}")


def submit_rectification(conn: Connection, finding_id: str, body: RectificationIn, *, user: str, role: str,
                         now: datetime) -> Finding:
    row = _finding_row(conn, finding_id)
    require_uploads(conn, row.facility, body.evidence, "evidence", (Purpose.EVIDENCE, Purpose.PHOTO))
    _move(conn, finding_id, FindingStatus.OPEN, dict(status=FindingStatus.SUBMITTED.value, updated_at=now))
    _event(conn, finding_id, "rectification_submitted", at=now, actor=user, role=role, note=body.description,
           evidence=body.evidence)
    return get_finding(conn, finding_id, now)


def accept_rectification(conn: Connection, finding_id: str, body: AcceptIn, *, user: str, role: str,
                         now: datetime) -> Finding:
    _move(conn, finding_id, FindingStatus.SUBMITTED,
          dict(status=FindingStatus.RECTIFIED.value, updated_at=now, closed_at=now))
    _event(conn, finding_id, "accepted", at=now, actor=user, role=role, note=body.note)
    return get_finding(conn, finding_id, now)


def reopen_finding(conn: Connection, finding_id: str, body: ReopenIn, *, user: str, role: str,
                   now: datetime) -> Finding:
    row = _finding_row(conn, finding_id)
    deadline = body.deadline or row.deadline
    if body.deadline is not None:
        _check_deadline(body.deadline, local_today(facility_place(conn, row.facility).profile, now))
    _move(conn, finding_id, FindingStatus.SUBMITTED,
          dict(status=FindingStatus.OPEN.value, deadline=deadline, updated_at=now))
    _event(conn, finding_id, "reopened", at=now, actor=user, role=role, note=body.reason, deadline=deadline)
    return get_finding(conn, finding_id, now)


# --- overdue rectification --------------------------------------------------------------------
@dataclass(frozen=True)
class Overdue:
    finding_id: str
    facility: str
    item_id: str
    severity: str
    deadline: date
    escalated: bool


def overdue_findings(conn: Connection, now: datetime, facility: Optional[str] = None) -> list[Overdue]:
    """Open findings whose deadline (a local day of the facility's profile) has passed."""
    g, f = findings.c, facilities.c
    q = (select(g.finding_id, g.facility, g.item_id, g.severity, g.deadline, g.escalated_for, f.city)
         .join(facilities, f.facility_id == g.facility)
         .where(g.status == FindingStatus.OPEN.value, g.deadline < now.date() + timedelta(days=1)))
    if facility is not None:
        q = q.where(g.facility == facility)
    out = []
    for r in conn.execute(q.order_by(g.deadline, g.finding_id)):
        if r.deadline < local_today(profile_for(r.city), now):
            out.append(Overdue(r.finding_id, r.facility, r.item_id, r.severity, r.deadline,
                               r.escalated_for == r.deadline))
    return out


def escalate_overdue(conn: Connection, item: Overdue, now: datetime) -> list[Notice]:
    """Escalate one overdue finding (once per deadline): history, credit entry, notice to the
    district's supervisors. The notices, to announce after the commit."""
    g = findings.c
    claimed = conn.execute(update(findings).where(
        g.finding_id == item.finding_id, g.status == FindingStatus.OPEN.value, g.deadline == item.deadline,
        or_(g.escalated_for.is_(None), g.escalated_for != item.deadline)).values(escalated_for=item.deadline))
    if claimed.rowcount != 1:
        return []
    place = facility_place(conn, item.facility)
    ref = f"{item.finding_id}@{item.deadline.isoformat()}"
    _event(conn, item.finding_id, "escalated", at=now, actor="cloud", role="system", deadline=item.deadline,
           note=f"逾期未整改，已上报{place.district}监管部门")
    add_entry(conn, facility=item.facility, rule=CreditRuleKey.RECTIFICATION_OVERDUE, ref=ref,
              detail={"finding_id": item.finding_id, "deadline": item.deadline.isoformat(), "item_id": item.item_id},
              now=now)
    return notify(conn, place=place, kind=NoticeKind.RECTIFICATION_OVERDUE, ref=ref, roles=("supervisor",),
                  summary={"facility_name": place.name, "finding_id": item.finding_id, "item_id": item.item_id,
                           "severity": item.severity, "deadline": item.deadline.isoformat()}, now=now)


class RectificationWatch:
    """Escalates overdue rectifications every `interval_s`; start() / stop(), or run_once()."""

    def __init__(self, engine: Engine, bus: EventBus, *, interval_s: float = 60.0,
                 clock: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.bus = bus
        self.clock = clock
        self._task = PeriodicTask("cloud-rectification-watch", interval_s, self.run_once, logger=log,
                                  what="overdue rectification check")

    @property
    def errors(self) -> int:
        return self._task.errors

    def run_once(self, now: Optional[datetime] = None) -> list[Notice]:
        now = now or self.clock()
        made: list[Notice] = []
        with self.engine.begin() as conn:
            for item in overdue_findings(conn, now):
                if not item.escalated:
                    made += escalate_overdue(conn, item, now)
        for notice in made:
            self.bus.publish(notice)
        return made

    def start(self) -> "RectificationWatch":
        self._task.start()
        return self

    def stop(self) -> None:
        self._task.stop(5.0)
