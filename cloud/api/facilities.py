"""Facilities: registration (with its areas, cameras, devices, staff and gateway credentials in
one transaction), the filed record, and lists by district path."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Path, Query, Request, status

from cloud.api.auth import Principal, forbid_outside_scope, require_role, scope_facility
from cloud.api.common import Cursor, Limit, transaction
from cloud.config import Role
from cloud.registry import queries
from cloud.registry.records import (
    Facility,
    FacilityIn,
    FacilityKind,
    FacilityRegistration,
    FilingStatus,
    RegistrationResult,
    get_facility,
    register_facility,
    update_facility,
)
from cloud.store.paging import Page
from contracts.ids import FACILITY_ID_RE
from contracts.timefmt import utcnow

router = APIRouter(prefix="/api/facilities", tags=["facilities"])

# Police read the facility card (address, coordinates, contact, enrolment); health and
# supervisors read every facility; a facility reads itself.
READERS = (Role.POLICE, Role.HEALTH, Role.SUPERVISOR, Role.ADMIN, Role.FACILITY)
FacilityPath = Annotated[str, Path(pattern=FACILITY_ID_RE)]


@router.post("", response_model=RegistrationResult, status_code=status.HTTP_201_CREATED)
def register(request: Request, body: FacilityRegistration,
             _who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> RegistrationResult:
    """Register a facility. With `gateway`, the response carries its MQTT password once: only a
    hash is kept."""
    with transaction(request) as conn:
        return register_facility(conn, body, utcnow())


@router.get("", response_model=Page[Facility])
def list_facilities(
    request: Request,
    who: Annotated[Principal, Depends(require_role(*READERS))],
    limit: Limit = 50,
    cursor: Cursor = None,
    province: Annotated[Optional[str], Query(max_length=32)] = None,
    city: Annotated[Optional[str], Query(max_length=32)] = None,
    district: Annotated[Optional[str], Query(max_length=32)] = None,
    street: Annotated[Optional[str], Query(max_length=64)] = None,
    kind: Optional[FacilityKind] = None,
    filing_status: Optional[FilingStatus] = None,
) -> Page[Facility]:
    with transaction(request) as conn:
        return queries.list_facilities(conn, limit=limit, cursor=cursor, own=scope_facility(who, None),
                                       within=who.within, province=province, city=city, district=district, street=street, kind=kind,
                                       filing_status=filing_status)


@router.get("/{facility_id}", response_model=Facility)
def read_facility(request: Request, facility_id: FacilityPath,
                  who: Annotated[Principal, Depends(require_role(*READERS))]) -> Facility:
    forbid_outside_scope(request, who, facility_id)
    with transaction(request) as conn:
        return get_facility(conn, facility_id)


@router.put("/{facility_id}", response_model=Facility)
def replace_facility(request: Request, facility_id: FacilityPath, body: FacilityIn,
                     _who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> Facility:
    """Replace the filed record, its licences and classes (areas, cameras, devices, staff and
    gateways have their own resources)."""
    with transaction(request) as conn:
        return update_facility(conn, facility_id, body, utcnow())
