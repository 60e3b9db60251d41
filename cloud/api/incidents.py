"""Hazard and incident reports under /api/incidents: a facility files them; the health and
police roles of its jurisdiction are notified (GET /api/notices, and its stream)."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import BaseModel

from cloud.alarms.records import record_audit
from cloud.api.auth import Principal, require_role, scope_facility
from cloud.api.common import Limit
from cloud.api.scope import AUTHORITIES, announce, write
from cloud.config import Role
from cloud.supervision.incidents import Report, ReportIn, ReportKind, file_report, list_reports
from contracts.ids import FACILITY_ID_RE
from contracts.timefmt import utcnow

router = APIRouter(prefix="/api/incidents", tags=["supervision"])


class ReportList(BaseModel):
    items: list[Report]


@router.post("", response_model=Report, status_code=status.HTTP_201_CREATED)
def post_report(request: Request, body: ReportIn,
                who: Annotated[Principal, Depends(require_role(Role.FACILITY))]) -> Report:
    """A hazard (隐患) or an incident (事故): what, when, how many children affected (a count), what was done."""
    now = utcnow()
    with write(request) as conn:
        report, made = file_report(conn, who.facility_id, body, user=who.user, now=now)
        record_audit(conn, at=now, actor=who.user, role=who.role.value, action=f"{body.kind.value}.report",
                     target=f"{who.facility_id}/{report.report_id}", detail={"category": body.category.value})
    announce(request, made)
    return report


@router.get("", response_model=ReportList)
def get_reports(request: Request, who: Annotated[Principal, Depends(require_role(*AUTHORITIES, Role.FACILITY))],
                limit: Limit = 50, kind: Optional[ReportKind] = None,
                facility_id: Annotated[Optional[str], Query(pattern=FACILITY_ID_RE)] = None) -> ReportList:
    """Newest first; a facility sees its own, an authority those within its jurisdiction."""
    with write(request) as conn:
        return ReportList(items=list_reports(conn, facility=scope_facility(who, facility_id),
                                             jurisdiction=who.jurisdiction, limit=limit, kind=kind))
