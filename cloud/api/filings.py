"""Filings (备案) under /api/filings: a facility submits (initial, change, closure) and resubmits
what was returned; the health department returns with reasons or accepts with a 回执 number;
every step is in the filing's history. The registration body pushes registrations to
/api/filings/import, and the health department sees who registered but has not filed."""

from __future__ import annotations

from typing import Annotated, Any, Optional

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import BaseModel, Field

from cloud.alarms.records import record_audit
from cloud.api.auth import Principal, require_role, scope_facility
from cloud.api.common import Limit
from cloud.api.scope import check_facility, write
from cloud.config import Role
from cloud.supervision.filings import (
    MAX_IMPORT,
    Filing,
    FilingIn,
    ImportResult,
    Registration,
    ReturnIn,
    ReviewStatus,
    accept_filing,
    filing_facility,
    get_filing,
    import_registrations,
    list_filings,
    list_registrations,
    resubmit_filing,
    return_filing,
    submit_filing,
)
from contracts.timefmt import utcnow

router = APIRouter(prefix="/api/filings", tags=["supervision"])
REVIEWERS = (Role.HEALTH, Role.ADMIN)
READERS = (Role.HEALTH, Role.SUPERVISOR, Role.ADMIN, Role.FACILITY)
FilingPath = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]


class FilingList(BaseModel):
    items: list[Filing]


class RegistrationList(BaseModel):
    items: list[Registration]


class ImportIn(BaseModel):
    registrations: Annotated[list[dict[str, Any]], Field(max_length=MAX_IMPORT, description=(
        "RegistrationPush objects; each is checked on its own, and the ones that fail are refused with "
        "their reason while the others are taken"))]


def _audit(conn, who: Principal, action: str, filing: Filing, **detail) -> None:
    record_audit(conn, at=utcnow(), actor=who.user, role=who.role.value, action=f"filing.{action}",
                 target=f"{filing.facility}/{filing.filing_id}", detail={"kind": filing.kind.value, **detail})


@router.post("", response_model=Filing, status_code=status.HTTP_201_CREATED)
def post_filing(request: Request, body: FilingIn,
                who: Annotated[Principal, Depends(require_role(Role.FACILITY))]) -> Filing:
    """Submit a filing for the token's facility; documents are uploads of purpose `document`."""
    with write(request) as conn:
        filing = submit_filing(conn, who.facility_id, body, user=who.user, role=who.role.value, now=utcnow())
        _audit(conn, who, "submit", filing)
    return filing


@router.get("", response_model=FilingList)
def get_filings(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))], limit: Limit = 100,
                status: Optional[ReviewStatus] = None) -> FilingList:
    """Oldest first: the review queue in order of arrival."""
    with write(request) as conn:
        return FilingList(items=list_filings(conn, facility=scope_facility(who, None), jurisdiction=who.jurisdiction,
                                             status=status, limit=limit))


@router.get("/registrations", response_model=RegistrationList)
def get_registrations(request: Request, who: Annotated[Principal, Depends(require_role(*REVIEWERS, Role.SUPERVISOR))],
                      limit: Limit = 100, unfiled_only: bool = False) -> RegistrationList:
    """Registrations pushed by the registration body; `unfiled_only`: those still to file."""
    with write(request) as conn:
        return RegistrationList(items=list_registrations(conn, jurisdiction=who.jurisdiction,
                                                         unfiled_only=unfiled_only, limit=limit))


@router.post("/import", response_model=ImportResult)
def post_import(request: Request, body: ImportIn,
                who: Annotated[Principal, Depends(require_role(Role.REGISTRAR, Role.ADMIN))]) -> ImportResult:
    now = utcnow()
    with write(request) as conn:
        result = import_registrations(conn, body.registrations, user=who.user, now=now)
        record_audit(conn, at=now, actor=who.user, role=who.role.value, action="registrations.import",
                     target="registrations", detail=result.model_dump(exclude={"refused"})
                     | {"refused": len(result.refused)})
    return result


def _check(conn, who: Principal, filing_id: str) -> None:
    check_facility(conn, who, filing_facility(conn, filing_id))


@router.get("/{filing_id}", response_model=Filing)
def get_one(request: Request, filing_id: FilingPath,
            who: Annotated[Principal, Depends(require_role(*READERS))]) -> Filing:
    with write(request) as conn:
        _check(conn, who, filing_id)
        return get_filing(conn, filing_id)


@router.put("/{filing_id}", response_model=Filing)
def put_filing(request: Request, filing_id: FilingPath, body: FilingIn,
               who: Annotated[Principal, Depends(require_role(Role.FACILITY))]) -> Filing:
    """Resubmit a returned filing, corrected."""
    with write(request) as conn:
        _check(conn, who, filing_id)
        filing = resubmit_filing(conn, filing_id, body, user=who.user, role=who.role.value, now=utcnow())
        _audit(conn, who, "resubmit", filing)
    return filing


@router.post("/{filing_id}/return", response_model=Filing)
def post_return(request: Request, filing_id: FilingPath, body: ReturnIn,
                who: Annotated[Principal, Depends(require_role(*REVIEWERS))]) -> Filing:
    with write(request) as conn:
        _check(conn, who, filing_id)
        filing = return_filing(conn, filing_id, body, user=who.user, role=who.role.value, now=utcnow())
        _audit(conn, who, "return", filing, reasons=body.reasons)
    return filing


@router.post("/{filing_id}/accept", response_model=Filing)
def post_accept(request: Request, filing_id: FilingPath,
                who: Annotated[Principal, Depends(require_role(*REVIEWERS))]) -> Filing:
    """Accept and issue the 回执 number; the registry and the public record follow."""
    with write(request) as conn:
        _check(conn, who, filing_id)
        filing = accept_filing(conn, filing_id, user=who.user, role=who.role.value, now=utcnow())
        _audit(conn, who, "accept", filing, receipt_number=filing.receipt_number)
    return filing
