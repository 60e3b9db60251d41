"""Compliance per facility (status, score, findings with their source and evidence), as the
compliance snapshots hold it (cloud.compliance.snapshot), and the jurisdiction profiles the rules apply."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Query, Request

from cloud.api.auth import Principal, forbid_outside_scope, require_role, scope_facility
from cloud.api.common import Cursor, transaction
from cloud.api.facilities import FacilityPath
from cloud.compliance.profiles import Profile, all_profiles
from cloud.compliance.rules import ComplianceReport, Status
from cloud.compliance.snapshot import read_snapshot, snapshot_page
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
    """Reports for a page of facilities (by facility_id), as stored (`checked_at`) while current.
    `status` filters by the stored status, so a page holds `limit` items unless it is the last."""
    with transaction(request) as conn:
        return snapshot_page(conn, utcnow(), limit=limit, cursor=cursor, own=scope_facility(who, None), city=city,
                             district=district, status=status, within=who.within)


@router.get("/profiles", response_model=list[Profile])
def list_profiles(_who: Annotated[Principal, Depends(require_role(*READERS))]) -> list[Profile]:
    return all_profiles()


@router.get("/{facility_id}", response_model=ComplianceReport)
def read_compliance(request: Request, facility_id: FacilityPath,
                    who: Annotated[Principal, Depends(require_role(*READERS))]) -> ComplianceReport:
    """The facility's report as stored (`checked_at`) while current, else evaluated now."""
    forbid_outside_scope(request, who, facility_id)
    with transaction(request) as conn:
        return read_snapshot(conn, facility_id, utcnow())
