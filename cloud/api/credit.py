"""Credit records under /api/credit: every facility's score within the caller's jurisdiction, and
one facility's entries, each with the rule that put it there and that rule's source."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from cloud.api.auth import Principal, require_role
from cloud.api.facilities import FacilityPath
from cloud.api.scope import check_facility, write
from cloud.config import Role
from cloud.supervision.credit import (
    CREDIT_RULES,
    CreditRecord,
    CreditRule,
    CreditSummary,
    credit_record,
    credit_summaries,
)

router = APIRouter(prefix="/api/credit", tags=["supervision"])
READERS = (Role.SUPERVISOR, Role.HEALTH, Role.ADMIN)


class CreditList(BaseModel):
    items: list[CreditSummary]


@router.get("", response_model=CreditList)
def get_credit(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))]) -> CreditList:
    """Lowest score first."""
    with write(request) as conn:
        return CreditList(items=credit_summaries(conn, who.jurisdiction))


@router.get("/rules", response_model=list[CreditRule])
def get_rules(_who: Annotated[Principal, Depends(require_role(*READERS))]) -> list[CreditRule]:
    return list(CREDIT_RULES.values())


@router.get("/{facility_id}", response_model=CreditRecord)
def get_record(request: Request, facility_id: FacilityPath,
               who: Annotated[Principal, Depends(require_role(*READERS))]) -> CreditRecord:
    with write(request) as conn:
        place = check_facility(conn, who, facility_id)
        return credit_record(conn, facility_id, place.name)
