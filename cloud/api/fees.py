"""Fee standards under /api/fees/{facility_id}: the facility sets them (published once filed);
each comes back with the 普惠 cap that applies to it and whether it keeps within it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from cloud.alarms.records import record_audit
from cloud.api.auth import Principal, require_role
from cloud.api.facilities import FacilityPath
from cloud.api.scope import INSPECTORS, check_facility, write
from cloud.config import Role
from cloud.supervision.fees import FeeReport, FeeSchedule, fee_report, set_fees
from contracts.timefmt import utcnow

router = APIRouter(prefix="/api/fees", tags=["supervision"])


@router.get("/{facility_id}", response_model=FeeReport)
def get_fees(request: Request, facility_id: FacilityPath,
             who: Annotated[Principal, Depends(require_role(*INSPECTORS, Role.FACILITY))]) -> FeeReport:
    with write(request) as conn:
        check_facility(conn, who, facility_id)
        return fee_report(conn, facility_id)


@router.put("/{facility_id}", response_model=FeeReport)
def put_fees(request: Request, facility_id: FacilityPath, body: FeeSchedule,
             who: Annotated[Principal, Depends(require_role(Role.FACILITY, Role.ADMIN))]) -> FeeReport:
    """Replace the fee standards. A fee above its cap is stored (it is what the facility charges)
    and reported: the breach is a compliance finding (rule `fee_cap`)."""
    now = utcnow()
    with write(request) as conn:
        check_facility(conn, who, facility_id)
        report = set_fees(conn, facility_id, body, user=who.user, now=now)
        record_audit(conn, at=now, actor=who.user, role=who.role.value, action="fees.set", target=facility_id,
                     detail={"fees": len(body.fees), "breaches": report.breaches})
    return report
