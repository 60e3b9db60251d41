"""Compliance per facility (status, score, findings with their source and evidence), and the
jurisdiction profiles the rules apply."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Query, Request

from cloud.api.auth import Principal, forbid_outside_scope, require_role, scope_facility
from cloud.api.common import Cursor, transaction
from cloud.api.facilities import FacilityPath
from cloud.compliance.profiles import Profile, all_profiles
from cloud.compliance.rules import ComplianceReport, Status, compliance_page, facility_compliance
from cloud.config import Role
from cloud.store.paging import Page
from contracts.timefmt import utcnow

router = APIRouter(prefix="/api/compliance", tags=["compliance"])
READERS = (Role.SUPERVISOR, Role.ADMIN, Role.FACILITY)


@router.get("", response_model=Page[ComplianceReport])
def list_compliance(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))],
                    limit: Annotated[int, Query(ge=1, le=100)] = 20, cursor: Cursor = None,
                    city: Annotated[Optional[str], Query(max_length=32)] = None,
                    district: Annotated[Optional[str], Query(max_length=32)] = None,
                    status: Optional[Status] = None) -> Page[ComplianceReport]:
    """Reports for a page of facilities (by facility_id). `status` filters within the page, so a
    page may hold fewer than `limit` items while `next_cursor` still continues."""
    with transaction(request) as conn:
        return compliance_page(conn, utcnow(), limit=limit, cursor=cursor, own=scope_facility(who, None), city=city,
                               district=district, status=status, within=who.within)


@router.get("/profiles", response_model=list[Profile])
def list_profiles(_who: Annotated[Principal, Depends(require_role(*READERS))]) -> list[Profile]:
    return all_profiles()


@router.get("/{facility_id}", response_model=ComplianceReport)
def read_compliance(request: Request, facility_id: FacilityPath,
                    who: Annotated[Principal, Depends(require_role(*READERS))]) -> ComplianceReport:
    forbid_outside_scope(request, who, facility_id)
    with transaction(request) as conn:
        return facility_compliance(conn, facility_id, utcnow())
