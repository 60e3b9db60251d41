"""The annual report under /api/reports/annual: per district and year, as figures (JSON) and as an
XLSX workbook; the printable page is /annual-report."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import Response

from cloud.api.auth import Principal, require_role
from cloud.api.scope import write
from cloud.config import Role
from cloud.supervision.annual_report import AnnualReport, annual_report, annual_xlsx
from cloud.supervision.scope import district_path
from contracts.timefmt import utcnow

router = APIRouter(prefix="/api/reports", tags=["supervision"])
READERS = (Role.SUPERVISOR, Role.HEALTH, Role.ADMIN)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DistrictQuery = Annotated[str, Query(max_length=100, description="province/city/district")]
Year = Annotated[int, Query(ge=2000, le=2100)]


def _report(request: Request, who: Principal, district: str, year: int) -> AnnualReport:
    with write(request) as conn:
        province, city, name = district_path(district)
        if not who.covers(province, city, name):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail=f"{district} lies outside the token's jurisdiction {who.jurisdiction!r}")
        return annual_report(conn, province, city, name, year, utcnow())


@router.get("/annual", response_model=AnnualReport)
def get_annual(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))],
               district: DistrictQuery, year: Year) -> AnnualReport:
    return _report(request, who, district, year)


@router.get("/annual.xlsx", response_class=Response,
            responses={200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}},
                             "description": "the same report as a workbook (sheets 汇总 and 机构明细)"}})
def get_annual_xlsx(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))],
                    district: DistrictQuery, year: Year) -> Response:
    report = _report(request, who, district, year)
    name = f"annual-report-{report.figures.district.split('/')[-1]}-{year}.xlsx"
    return Response(annual_xlsx(report), media_type=XLSX,
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})
