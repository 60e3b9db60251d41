"""Findings under /api/findings: what is open (earliest deadline first), the facility's
rectification with evidence, and the inspector's acceptance or reopening; each step in the history."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from cloud.alarms.records import record_audit
from cloud.api.auth import Principal, require_role, scope_facility
from cloud.api.common import Limit
from cloud.api.scope import INSPECTORS, check_facility, write
from cloud.config import Role
from cloud.supervision.inspections import (
    AcceptIn,
    Finding,
    FindingEvent,
    FindingStatus,
    RectificationIn,
    ReopenIn,
    accept_rectification,
    finding_facility,
    finding_history,
    get_finding,
    list_findings,
    reopen_finding,
    submit_rectification,
)
from contracts.ids import FACILITY_ID_RE
from contracts.timefmt import utcnow

router = APIRouter(prefix="/api/findings", tags=["supervision"])
READERS = (*INSPECTORS, Role.FACILITY)
FindingPath = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]


class FindingList(BaseModel):
    items: list[Finding]


class FindingHistory(BaseModel):
    finding: Finding
    events: list[FindingEvent]


@router.get("", response_model=FindingList)
def get_findings(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))], limit: Limit = 100,
                 facility_id: Annotated[Optional[str], Query(pattern=FACILITY_ID_RE)] = None,
                 status: Optional[FindingStatus] = None) -> FindingList:
    with write(request) as conn:
        return FindingList(items=list_findings(conn, facility=scope_facility(who, facility_id),
                                               jurisdiction=who.jurisdiction, status=status, limit=limit,
                                               now=utcnow()))


@router.get("/{finding_id}", response_model=FindingHistory)
def get_one(request: Request, finding_id: FindingPath,
            who: Annotated[Principal, Depends(require_role(*READERS))]) -> FindingHistory:
    with write(request) as conn:
        check_facility(conn, who, finding_facility(conn, finding_id))
        return FindingHistory(finding=get_finding(conn, finding_id, utcnow()),
                              events=finding_history(conn, finding_id))


def _step(request: Request, who: Principal, finding_id: str, action: str, step) -> Finding:
    now = utcnow()
    with write(request) as conn:
        facility = finding_facility(conn, finding_id)
        check_facility(conn, who, facility)
        finding = step(conn, now)
        record_audit(conn, at=now, actor=who.user, role=who.role.value, action=f"finding.{action}",
                     target=f"{facility}/{finding_id}", detail={"status": finding.status.value})
    return finding


@router.post("/{finding_id}/rectification", response_model=Finding)
def post_rectification(request: Request, finding_id: FindingPath, body: RectificationIn,
                       who: Annotated[Principal, Depends(require_role(Role.FACILITY))]) -> Finding:
    """The facility reports the finding rectified, with evidence (uploads of purpose `evidence`)."""
    return _step(request, who, finding_id, "rectification", lambda conn, now: submit_rectification(
        conn, finding_id, body, user=who.user, role=who.role.value, now=now))


@router.post("/{finding_id}/accept", response_model=Finding)
def post_accept(request: Request, finding_id: FindingPath, body: AcceptIn,
                who: Annotated[Principal, Depends(require_role(*INSPECTORS))]) -> Finding:
    return _step(request, who, finding_id, "accept", lambda conn, now: accept_rectification(
        conn, finding_id, body, user=who.user, role=who.role.value, now=now))


@router.post("/{finding_id}/reopen", response_model=Finding)
def post_reopen(request: Request, finding_id: FindingPath, body: ReopenIn,
                who: Annotated[Principal, Depends(require_role(*INSPECTORS))]) -> Finding:
    return _step(request, who, finding_id, "reopen", lambda conn, now: reopen_finding(
        conn, finding_id, body, user=who.user, role=who.role.value, now=now))
