"""Care and health (卫生保健): rosters and morning/noon checks (children's data: the facility and
the health role only, every read audited), symptom clusters (counts only), staff certificates,
the ban list, and room climate from the sensors."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Optional

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel

from cloud.alarms.records import record_audit
from cloud.api.auth import Principal, forbid_outside_scope, require_role, scope_facility
from cloud.api.common import aware, field_error, transaction
from cloud.care.health_rules import local_day
from cloud.care.privacy import PrivacyError, app_cipher
from cloud.care.records import (
    BanEntry,
    BanEntryIn,
    CareInputError,
    CertificateItem,
    CheckIn,
    CheckRecord,
    CheckRecorded,
    CheckSummary,
    Roster,
    RosterIn,
    StaffRecord,
    StaffRecordIn,
    add_ban_entry,
    certificate_items,
    check_summary,
    read_checks,
    read_roster,
    record_check,
    record_staff_record,
    write_roster,
)
from cloud.care.reports import ClusterItem, cluster_items
from cloud.compliance.profiles import NATIONAL
from cloud.config import Role
from contracts.ids import DEVICE_ID_RE, FACILITY_ID_RE
from contracts.timefmt import utcnow

router = APIRouter(tags=["care"])

CHILD_READERS = (Role.FACILITY, Role.HEALTH)
MAX_CLUSTER_SPAN = timedelta(days=366)
HEALTH_READERS = (Role.HEALTH, Role.SUPERVISOR, Role.ADMIN, Role.FACILITY)
ClassPath = Annotated[str, Path(pattern=DEVICE_ID_RE)]
FacilityQuery = Annotated[Optional[str], Query(pattern=FACILITY_ID_RE)]


class SummaryList(BaseModel):
    items: list[CheckSummary]


class ClusterList(BaseModel):
    items: list[ClusterItem]


class CertificateList(BaseModel):
    items: list[CertificateItem]


class CheckList(BaseModel):
    items: list[CheckRecord]


def _care_errors(exc: Exception) -> HTTPException:
    if isinstance(exc, CareInputError):
        return field_error("body", exc.field, str(exc))
    return HTTPException(status.HTTP_409_CONFLICT, detail=str(exc))


def _cipher(request: Request):
    try:
        return app_cipher(request.app)
    except (RuntimeError, ValueError) as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from None


def _audit(conn, who: Principal, action: str, target: str, **detail) -> None:
    record_audit(conn, at=utcnow(), actor=who.user, role=who.role.value, action=action, target=target, detail=detail)


# --- rosters and checks (children's data) ----------------------------------------------------
@router.post("/api/care/classes/{class_id}/roster", response_model=Roster)
def put_roster(request: Request, class_id: ClassPath, body: RosterIn,
               who: Annotated[Principal, Depends(require_role(Role.FACILITY))]) -> Roster:
    """Replace the roster of one of the facility's classes (pseudonymous children only)."""
    cipher = _cipher(request)
    try:
        with transaction(request) as conn:
            roster = write_roster(conn, cipher, who.facility_id, class_id, body, user=who.user, now=utcnow())
            _audit(conn, who, "care.roster.write", f"{who.facility_id}/{class_id}", children=len(body.children))
            return roster
    except CareInputError as exc:
        raise _care_errors(exc) from None


@router.get("/api/care/classes/{class_id}/roster", response_model=Roster)
def get_roster(request: Request, class_id: ClassPath, who: Annotated[Principal, Depends(require_role(*CHILD_READERS))],
               facility: FacilityQuery = None) -> Roster:
    """The class roster; the health role names the facility. The read is audited."""
    fid = scope_facility(who, facility)
    if fid is None:
        raise field_error("query", "facility", "required for the health role")
    forbid_outside_scope(request, who, fid)
    cipher = _cipher(request)
    with transaction(request) as conn:
        try:
            roster = read_roster(conn, cipher, fid, class_id)
        except PrivacyError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
        _audit(conn, who, "care.roster.read", f"{fid}/{class_id}", children=len(roster.children))
        return roster


@router.post("/api/care/checks", response_model=CheckRecorded, status_code=status.HTTP_201_CREATED)
def post_check(request: Request, body: CheckIn, who: Annotated[Principal, Depends(require_role(Role.FACILITY))]):
    """Record one morning or noon check (晨午检) of a child on the class roster."""
    cipher = _cipher(request)
    now = utcnow()
    try:
        with transaction(request) as conn:
            return record_check(conn, cipher, who.facility_id, body, user=who.user, now=now)
    except CareInputError as exc:
        raise _care_errors(exc) from None


@router.get("/api/care/checks", response_model=CheckList)
def list_checks(request: Request, who: Annotated[Principal, Depends(require_role(*CHILD_READERS))],
                date_: Annotated[Optional[date], Query(alias="date")] = None, facility: FacilityQuery = None,
                class_id: Annotated[Optional[str], Query(pattern=DEVICE_ID_RE)] = None) -> CheckList:
    """Each check of a day, with the child's pseudonym. The read is audited."""
    fid = scope_facility(who, facility)
    if fid is None:
        raise field_error("query", "facility", "required for the health role")
    forbid_outside_scope(request, who, fid)
    day = date_ or local_day(utcnow(), NATIONAL.care)
    cipher = _cipher(request)
    with transaction(request) as conn:
        try:
            items = read_checks(conn, cipher, fid, day, class_id)
        except PrivacyError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
        _audit(conn, who, "care.checks.read", fid, day=day.isoformat(), class_id=class_id, checks=len(items))
    return CheckList(items=items)


@router.get("/api/care/checks/summary", response_model=SummaryList)
def checks_summary(request: Request, who: Annotated[Principal, Depends(require_role(*HEALTH_READERS))],
                   date_: Annotated[Optional[date], Query(alias="date")] = None,
                   facility: FacilityQuery = None) -> SummaryList:
    """Per class: children, morning and noon checks done, and whether the morning check was missing by 10:00."""
    now = utcnow()
    day = date_ or local_day(now, NATIONAL.care)
    with transaction(request) as conn:
        return SummaryList(items=check_summary(conn, day, now, scope_facility(who, facility), within=who.within))


# --- clusters ---------------------------------------------------------------------------------
@router.get("/api/care/clusters", response_model=ClusterList)
def list_clusters(request: Request, who: Annotated[Principal, Depends(require_role(Role.HEALTH, Role.SUPERVISOR,
                                                                                    Role.ADMIN))],
                  since: Optional[datetime] = None, facility: FacilityQuery = None) -> ClusterList:
    """Symptom clusters (3+ children of one class, same symptom, 48 h): those active now and the
    alarms raised since `since` (default: 7 days). Counts only."""
    now = utcnow()
    since = aware(since, "since") or now - timedelta(days=7)
    if now - since > MAX_CLUSTER_SPAN:
        raise field_error("query", "since", f"at most {MAX_CLUSTER_SPAN.days} days ago")
    with transaction(request) as conn:
        return ClusterList(items=cluster_items(conn, now, since, facility, within=who.within))


# --- staff records, certificates, ban list ----------------------------------------------------
@router.post("/api/care/staff/{staff_id}/certificates", response_model=StaffRecord, status_code=status.HTTP_201_CREATED)
def post_staff_record(request: Request, staff_id: ClassPath, body: StaffRecordIn,
                      who: Annotated[Principal, Depends(require_role(Role.ADMIN, Role.HEALTH, Role.FACILITY))]):
    """Record a staff member's health certificate, yearly check or training (the latest of each kind stands)."""
    forbid_outside_scope(request, who, body.facility)
    with transaction(request) as conn:
        return record_staff_record(conn, staff_id, body, user=who.user, now=utcnow())


@router.get("/api/care/certificates", response_model=CertificateList)
def list_certificates(request: Request, who: Annotated[Principal, Depends(require_role(*HEALTH_READERS))],
                      within_days: Annotated[Optional[int], Query(ge=0, le=3650)] = None,
                      facility: FacilityQuery = None) -> CertificateList:
    """Staff documents with an expiry: ok, expiring (within the profile's 30 days) or expired."""
    today = local_day(utcnow(), NATIONAL.care)
    with transaction(request) as conn:
        return CertificateList(items=certificate_items(conn, today, facility=scope_facility(who, facility),
                                                       within_days=within_days, within=who.within))


@router.post("/api/care/ban-list", response_model=BanEntry, status_code=status.HTTP_201_CREATED)
def post_ban_entry(request: Request, body: BanEntryIn,
                   who: Annotated[Principal, Depends(require_role(Role.ADMIN, Role.HEALTH))]) -> BanEntry:
    """Add a person banned for life (终身禁入). Only keyed references are stored: the list is checked, never read."""
    cipher = _cipher(request)
    with transaction(request) as conn:
        entry = add_ban_entry(conn, cipher, body, user=who.user, now=utcnow())
        _audit(conn, who, "care.ban_list.add", str(entry.id), authority=body.authority)
        return entry
