"""Staff of a facility with role and certificates. Police have no business here."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Query, Request, status
from pydantic import Field

from cloud.api.auth import Principal, require_role, scope_facility
from cloud.api.common import Cursor, Limit, transaction
from cloud.api.facilities import FacilityPath
from cloud.care.privacy import app_cipher
from cloud.care.records import check_hiring
from cloud.config import Role
from cloud.registry import queries
from cloud.registry.records import StaffIn, StaffMember, StaffRole, add_staff
from cloud.store.paging import Page
from contracts.ids import FACILITY_ID_RE

router = APIRouter(tags=["staff"])
READERS = (Role.HEALTH, Role.SUPERVISOR, Role.ADMIN, Role.FACILITY)


class Hiring(StaffIn):
    id_number: Optional[str] = Field(default=None, pattern=r"^(\d{17}[\dXx]|\d{15})$",
                                     description="checked against the lifetime ban list (终身禁入), never stored")


@router.post("/api/facilities/{facility_id}/staff", response_model=StaffMember, status_code=status.HTTP_201_CREATED)
def register_staff(request: Request, facility_id: FacilityPath, body: Hiring,
                   _who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> StaffMember:
    """Hire a staff member; 409 when the person is on the lifetime ban list."""
    with transaction(request) as conn:
        check_hiring(conn, lambda: app_cipher(request.app), body.name, body.id_number)
        return add_staff(conn, facility_id, StaffIn.model_validate(body.model_dump(exclude={"id_number"})))


@router.get("/api/staff", response_model=Page[StaffMember])
def list_staff(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))],
               limit: Limit = 50, cursor: Cursor = None,
               facility: Annotated[Optional[str], Query(pattern=FACILITY_ID_RE)] = None,
               role: Optional[StaffRole] = None) -> Page[StaffMember]:
    with transaction(request) as conn:
        return queries.list_staff(conn, limit=limit, cursor=cursor, facility=scope_facility(who, facility), role=role,
                                  within=who.within)
