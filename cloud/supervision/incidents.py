"""Hazard reports (安全隐患) a facility raises and incident reports (事故) of what happened, when, how
many children were affected (a count: never who) and what was done. Both notify the health and
police roles of the facility's jurisdiction; an incident enters the facility's credit record.

晋宁: 建立安全隐患排查、事故查处通报、责任追究制度和措施."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from enum import Enum
from typing import Annotated, Optional

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.engine import Connection

from cloud.care.privacy import RESIDENT_ID_RE
from cloud.store.db import facilities
from cloud.supervision.credit import CreditRuleKey, add_entry
from cloud.supervision.errors import InputError
from cloud.supervision.notices import Notice, NoticeKind, notify
from cloud.supervision.scope import facility_place, jurisdiction_clause
from cloud.supervision.tables import incidents

NOTIFIED_ROLES = ("health", "police")
# A free text carrying a citizen identity number would put a child's identity into a report that
# must hold counts only: refused where it is found.
_ID_IN_TEXT = re.compile(r"(?<!\d)(\d{17}[\dXx]|\d{15})(?![\dXx])")
Text = Annotated[str, Field(min_length=1, max_length=2000)]


class ReportKind(str, Enum):
    HAZARD = "hazard"
    INCIDENT = "incident"


class Category(str, Enum):
    FIRE = "fire"
    INJURY = "injury"
    FOOD = "food"
    ILLNESS = "illness"
    SECURITY = "security"
    FACILITY = "facility"   # premises, equipment
    OTHER = "other"


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: ReportKind
    category: Category
    occurred_at: AwareDatetime
    description: Text
    children_affected: Annotated[int, Field(ge=0, le=1000, description="how many children: a count, never who")] = 0
    actions_taken: Text

    @field_validator("description", "actions_taken")
    @classmethod
    def _no_identity_numbers(cls, v: str) -> str:
        if _ID_IN_TEXT.search(v) or RESIDENT_ID_RE.match(v.strip()):
            raise ValueError("must not carry an identity number: a report counts children, it never names them")
        return v

    @model_validator(mode="after")
    def _hazard_has_no_victims(self) -> "ReportIn":
        if self.kind is ReportKind.HAZARD and self.children_affected:
            raise ValueError("a hazard report has no children affected; report what happened as an incident")
        return self


class Report(BaseModel):
    report_id: str
    facility: str
    facility_name: str
    district: str
    kind: ReportKind
    category: Category
    occurred_at: datetime
    description: str
    children_affected: int
    actions_taken: str
    reported_by: str
    reported_at: datetime


def file_report(conn: Connection, facility_id: str, body: ReportIn, *, user: str,
                now: datetime) -> tuple[Report, list[Notice]]:
    if body.occurred_at > now:
        raise InputError("occurred_at", f"{body.occurred_at.isoformat()} is in the future")
    place = facility_place(conn, facility_id)
    report_id = str(uuid.uuid4())
    conn.execute(incidents.insert().values(report_id=report_id, facility=facility_id, kind=body.kind.value,
                                           category=body.category.value, occurred_at=body.occurred_at,
                                           description=body.description, children_affected=body.children_affected,
                                           actions_taken=body.actions_taken, reported_by=user, reported_at=now))
    kind = NoticeKind.INCIDENT if body.kind is ReportKind.INCIDENT else NoticeKind.HAZARD
    if body.kind is ReportKind.INCIDENT:
        add_entry(conn, facility=facility_id, rule=CreditRuleKey.INCIDENT, ref=report_id,
                  detail={"category": body.category.value, "children_affected": body.children_affected,
                          "occurred_at": body.occurred_at.isoformat()}, now=now)
    made = notify(conn, place=place, kind=kind, ref=report_id, roles=NOTIFIED_ROLES,
                  summary={"facility_name": place.name, "category": body.category.value,
                           "occurred_at": body.occurred_at.isoformat(), "children_affected": body.children_affected},
                  now=now)
    return list_reports(conn, facility=facility_id, jurisdiction=None, report_id=report_id, limit=1)[0], made


def list_reports(conn: Connection, *, facility: Optional[str], jurisdiction: Optional[str], limit: int,
                 kind: Optional[ReportKind] = None, report_id: Optional[str] = None) -> list[Report]:
    """Newest first."""
    r, f = incidents.c, facilities.c
    q = (select(incidents, f.name.label("facility_name"), f.province, f.city, f.district)
         .join(facilities, f.facility_id == r.facility)
         .where(jurisdiction_clause(f.province, f.city, f.district, jurisdiction)))
    for col, value in ((r.facility, facility), (r.kind, kind.value if kind else None), (r.report_id, report_id)):
        if value is not None:
            q = q.where(col == value)
    out = []
    for row in conn.execute(q.order_by(r.reported_at.desc(), r.report_id).limit(limit)):
        m = dict(row._mapping)
        m["district"] = f"{m.pop('province')}/{m.pop('city')}/{m['district']}"
        out.append(Report.model_validate(m))
    return out
