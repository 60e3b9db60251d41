"""Inspections under /api/inspections: the checklist a facility is inspected against (its
jurisdiction profile's), inspections with their results, and the findings recorded on them."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import BaseModel

from cloud.alarms.records import record_audit
from cloud.api.auth import Principal, require_role, scope_facility
from cloud.api.common import Cursor, Limit
from cloud.api.facilities import FacilityPath
from cloud.api.scope import INSPECTORS, check_facility, write
from cloud.compliance.profiles import ChecklistItem
from cloud.config import Role
from cloud.store.paging import BadCursor, decode_cursor, encode_cursor
from cloud.supervision.inspections import (
    Finding,
    FindingIn,
    Inspection,
    InspectionIn,
    add_finding,
    checklist_for,
    create_inspection,
    get_inspection,
    list_inspections,
)
from contracts.ids import FACILITY_ID_RE
from contracts.timefmt import utcnow

router = APIRouter(prefix="/api/inspections", tags=["supervision"])
READERS = (*INSPECTORS, Role.FACILITY)
InspectionPath = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]


class Checklist(BaseModel):
    facility: str
    profile: str
    items: list[ChecklistItem]


class InspectionPage(BaseModel):
    items: list[Inspection]
    next_cursor: Optional[str] = None


@router.get("/checklist/{facility_id}", response_model=Checklist)
def get_checklist(request: Request, facility_id: FacilityPath,
                  who: Annotated[Principal, Depends(require_role(*READERS))]) -> Checklist:
    with write(request) as conn:
        check_facility(conn, who, facility_id)
        profile, items = checklist_for(conn, facility_id)
    return Checklist(facility=facility_id, profile=profile, items=items)


@router.post("", response_model=Inspection, status_code=status.HTTP_201_CREATED)
def post_inspection(request: Request, body: InspectionIn,
                    who: Annotated[Principal, Depends(require_role(*INSPECTORS))]) -> Inspection:
    now = utcnow()
    with write(request) as conn:
        check_facility(conn, who, body.facility_id)
        inspection = create_inspection(conn, body, user=who.user, role=who.role.value, now=now)
        record_audit(conn, at=now, actor=who.user, role=who.role.value, action="inspection.create",
                     target=f"{body.facility_id}/{inspection.inspection_id}", detail={"kind": body.kind.value})
    return inspection


@router.get("", response_model=InspectionPage)
def get_inspections(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))],
                    limit: Limit = 20, cursor: Cursor = None,
                    facility_id: Annotated[Optional[str], Query(pattern=FACILITY_ID_RE)] = None) -> InspectionPage:
    """Newest first. A facility sees its own; an authority those within its jurisdiction."""
    before = None
    if cursor is not None:
        day, ident = decode_cursor(cursor, 2)
        try:
            before = (date.fromisoformat(str(day)), str(ident))
        except ValueError:
            raise BadCursor("not a cursor returned by this list") from None
    with write(request) as conn:
        items = list_inspections(conn, facility=scope_facility(who, facility_id), jurisdiction=who.jurisdiction,
                                 limit=limit, cursor_before=before, now=utcnow())
    nxt = encode_cursor([items[-1].inspected_on.isoformat(), items[-1].inspection_id]) if len(items) == limit else None
    return InspectionPage(items=items, next_cursor=nxt)


@router.get("/{inspection_id}", response_model=Inspection)
def get_one(request: Request, inspection_id: InspectionPath,
            who: Annotated[Principal, Depends(require_role(*READERS))]) -> Inspection:
    with write(request) as conn:
        inspection = get_inspection(conn, inspection_id, utcnow())
        check_facility(conn, who, inspection.facility)
    return inspection


@router.post("/{inspection_id}/findings", response_model=Finding, status_code=status.HTTP_201_CREATED)
def post_finding(request: Request, inspection_id: InspectionPath, body: FindingIn,
                 who: Annotated[Principal, Depends(require_role(*INSPECTORS))]) -> Finding:
    """A finding with its severity, photos (uploads of purpose `photo`) and rectification deadline."""
    now = utcnow()
    with write(request) as conn:
        check_facility(conn, who, get_inspection(conn, inspection_id, now).facility)
        return add_finding(conn, inspection_id, body, user=who.user, role=who.role.value, now=now)
