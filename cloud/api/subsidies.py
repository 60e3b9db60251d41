"""Subsidies under /api/subsidies: per facility and district for a year at the profile's rates
(JSON or CSV), and the construction acceptances the construction subsidy counts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import Response

from cloud.alarms.records import record_audit
from cloud.api.auth import Principal, require_role
from cloud.api.scope import check_facility, write
from cloud.config import Role
from cloud.supervision.subsidies import (
    Acceptance,
    AcceptanceIn,
    SubsidyReport,
    record_acceptance,
    subsidies_csv,
    subsidy_report,
)
from contracts.timefmt import utcnow

router = APIRouter(prefix="/api/subsidies", tags=["supervision"])
READERS = (Role.SUPERVISOR, Role.HEALTH, Role.ADMIN)
Year = Annotated[int, Query(ge=2000, le=2100)]


def _report(request: Request, who: Principal, year: int) -> SubsidyReport:
    with write(request) as conn:
        return subsidy_report(conn, year, jurisdiction=who.jurisdiction)


@router.get("", response_model=SubsidyReport)
def get_subsidies(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))],
                  year: Year) -> SubsidyReport:
    """Every facility within the caller's jurisdiction, with the rates' sources, and district totals."""
    return _report(request, who, year)


@router.get("/export.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the same, as CSV"}})
def export_subsidies(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))],
                     year: Year) -> Response:
    return Response("\ufeff" + subsidies_csv(_report(request, who, year)), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="subsidies-{year}.csv"'})


@router.post("/acceptances", response_model=Acceptance, status_code=status.HTTP_201_CREATED)
def post_acceptance(request: Request, body: AcceptanceIn,
                    who: Annotated[Principal, Depends(require_role(Role.SUPERVISOR, Role.ADMIN))]) -> Acceptance:
    """New places that passed acceptance (验收): the construction subsidy of that year counts them."""
    now = utcnow()
    with write(request) as conn:
        check_facility(conn, who, body.facility_id)
        made = record_acceptance(conn, body, user=who.user, now=now)
        record_audit(conn, at=now, actor=who.user, role=who.role.value, action="construction.acceptance",
                     target=body.facility_id, detail={"new_places": body.new_places,
                                                      "accepted_on": body.accepted_on.isoformat()})
    return made
