"""Filing (备案) with the health department: the initial filing with its documents, changes (变更)
and closure (注销), each reviewed the same way (returned with reasons, or accepted with a 回执
number), with the full history of every step; and registrations pushed by the registration body.

柴桑: 登记机关对托育机构实行登记后，及时将登记信息推送至卫生健康部门; 鼓楼: 按照告知承诺制要求向当地卫生健康部门
备案……提供餐饮服务的，还应取得食品经营许可. An accepted filing updates the registry (filing status and
number, name, address, licence validity) and the public record (cloud.supervision.disclosure)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from cloud.registry.records import (
    ClassType,
    FacilityIn,
    FilingStatus,
    Licence,
    LicenceKind,
    get_facility,
    update_facility,
    uscc_problem,
)
from cloud.registry.statistics import PUHUI_KINDS
from cloud.store.db import facilities
from cloud.supervision.credit import CreditRuleKey, add_entry
from cloud.supervision.disclosure import PublicLicence, PublicStatus, publish_filing
from cloud.supervision.errors import InputError, NotFound, WorkflowConflict
from cloud.supervision.scope import facility_place, jurisdiction_clause, local_today
from cloud.supervision.tables import filing_events, filings, registrations
from cloud.supervision.uploads import Purpose, require_uploads
from cloud.supervision.vocabulary import ServiceType
from contracts.errors import describe_validation_error

UploadId = Annotated[str, Field(pattern=r"^[0-9a-f-]{36}$")]
Reason = Annotated[str, Field(min_length=1, max_length=500)]
MAX_IMPORT = 500


class FilingKind(str, Enum):
    INITIAL = "initial"   # 备案
    CHANGE = "change"     # 变更
    CLOSURE = "closure"   # 注销


class ReviewStatus(str, Enum):
    SUBMITTED = "submitted"
    RETURNED = "returned"
    ACCEPTED = "accepted"


class DocumentKind(str, Enum):
    BUSINESS_LICENCE = "business_licence"          # 法人登记证明（营业执照）
    PREMISES = "premises"                          # 场地证明
    FIRE_ACCEPTANCE = "fire_acceptance"            # 消防验收
    HEALTH_EVALUATION = "health_evaluation"        # 卫生评价报告
    FOOD_LICENCE = "food_licence"                  # 食品经营许可证
    STAFF_QUALIFICATIONS = "staff_qualifications"  # 从业人员资格与健康证明


DOCUMENT_ZH = {DocumentKind.BUSINESS_LICENCE: "法人登记证明", DocumentKind.PREMISES: "场地证明",
               DocumentKind.FIRE_ACCEPTANCE: "消防验收", DocumentKind.HEALTH_EVALUATION: "卫生评价报告",
               DocumentKind.FOOD_LICENCE: "食品经营许可证", DocumentKind.STAFF_QUALIFICATIONS: "从业人员资格与健康证明"}
# The food licence only where the facility provides meals (鼓楼).
ALWAYS_REQUIRED = tuple(k for k in DocumentKind if k is not DocumentKind.FOOD_LICENCE)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LicenceIn(_In):
    kind: LicenceKind
    number: Annotated[str, Field(min_length=1, max_length=64)]
    valid_until: date


class FilingDetails(_In):
    """What a facility files: published (except licence numbers) once accepted."""
    name: Annotated[str, Field(min_length=1, max_length=128)]
    address: Annotated[str, Field(min_length=1, max_length=256)]
    service_types: Annotated[list[ServiceType], Field(min_length=1, max_length=4)]
    places: dict[ClassType, Annotated[int, Field(ge=0, le=1000)]] = Field(description="filed places per class type")
    provides_meals: bool
    licences: Annotated[list[LicenceIn], Field(max_length=len(LicenceKind))] = []

    @field_validator("service_types")
    @classmethod
    def _unique_services(cls, v: list[ServiceType]) -> list[ServiceType]:
        if len(set(v)) != len(v):
            raise ValueError("each service type may be listed once")
        return v

    @field_validator("places")
    @classmethod
    def _some_places(cls, v: dict[ClassType, int]) -> dict[ClassType, int]:
        if not any(v.values()):
            raise ValueError("at least one class type needs places")
        return v

    @field_validator("licences")
    @classmethod
    def _one_per_kind(cls, v: list[LicenceIn]) -> list[LicenceIn]:
        if len({lic.kind for lic in v}) != len(v):
            raise ValueError("each licence kind may be listed once")
        return v


class FilingIn(_In):
    kind: FilingKind
    details: Optional[FilingDetails] = Field(default=None, description="required for an initial filing and a change")
    reason: Optional[Reason] = Field(default=None, description="required for a change and a closure")
    documents: dict[DocumentKind, UploadId] = {}

    @model_validator(mode="after")
    def _shape(self) -> "FilingIn":
        if self.kind is not FilingKind.CLOSURE and self.details is None:
            raise ValueError(f"a {self.kind.value} filing needs details")
        if self.kind is FilingKind.CLOSURE and self.details is not None:
            raise ValueError("a closure files no details, only its reason")
        if self.kind is not FilingKind.INITIAL and not self.reason:
            raise ValueError(f"a {self.kind.value} filing needs a reason")
        return self


class ReturnIn(_In):
    reasons: Annotated[list[Reason], Field(min_length=1, max_length=20)]


class FilingEvent(BaseModel):
    step: str
    at: datetime
    actor: str
    role: str
    detail: dict[str, Any]


class Filing(BaseModel):
    filing_id: str
    facility: str
    facility_name: str
    district: str
    kind: FilingKind
    status: ReviewStatus
    details: Optional[FilingDetails]
    reason: Optional[str]
    documents: dict[DocumentKind, str]
    receipt_number: Optional[str] = Field(description="备案回执 number, once accepted")
    reasons: list[str] = Field(description="why it was last returned")
    submitted_at: datetime
    decided_at: Optional[datetime]
    decided_by: Optional[str]
    history: list[FilingEvent]


# --- reading -------------------------------------------------------------------------------------
def _row(conn: Connection, filing_id: str):
    row = conn.execute(select(filings).where(filings.c.filing_id == filing_id)).first()
    if row is None:
        raise NotFound(f"no filing {filing_id!r}")
    return row


def filing_facility(conn: Connection, filing_id: str) -> str:
    return _row(conn, filing_id).facility


def _history(conn: Connection, filing_ids: list[str]) -> dict[str, list[FilingEvent]]:
    e = filing_events.c
    out: dict[str, list[FilingEvent]] = {i: [] for i in filing_ids}
    if filing_ids:
        for r in conn.execute(select(filing_events).where(e.filing_id.in_(filing_ids)).order_by(e.id)):
            out[r.filing_id].append(FilingEvent(step=r.step, at=r.at, actor=r.actor, role=r.role, detail=r.detail))
    return out


def _filings(conn: Connection, rows) -> list[Filing]:
    history = _history(conn, [r.filing_id for r in rows])
    out = []
    for r in rows:
        m = r._mapping
        stored = dict(m["details"])
        reason = stored.pop("reason", None)
        out.append(Filing(filing_id=m["filing_id"], facility=m["facility"], facility_name=m["facility_name"],
                          district=f"{m['province']}/{m['city']}/{m['district']}", kind=m["kind"], status=m["status"],
                          details=FilingDetails.model_validate(stored) if stored else None, reason=reason,
                          documents=m["documents"], receipt_number=m["receipt_number"], reasons=m["reasons"],
                          submitted_at=m["submitted_at"], decided_at=m["decided_at"], decided_by=m["decided_by"],
                          history=history[m["filing_id"]]))
    return out


def _query():
    f = facilities.c
    return (select(filings, f.name.label("facility_name"), f.province, f.city, f.district)
            .join(facilities, f.facility_id == filings.c.facility))


def get_filing(conn: Connection, filing_id: str) -> Filing:
    rows = conn.execute(_query().where(filings.c.filing_id == filing_id)).all()
    if not rows:
        raise NotFound(f"no filing {filing_id!r}")
    return _filings(conn, rows)[0]


def list_filings(conn: Connection, *, facility: Optional[str], jurisdiction: Optional[str],
                 status: Optional[ReviewStatus], limit: int) -> list[Filing]:
    """Oldest submission first: the review queue in the order it arrived."""
    g, f = filings.c, facilities.c
    q = _query().where(jurisdiction_clause(f.province, f.city, f.district, jurisdiction))
    if facility is not None:
        q = q.where(g.facility == facility)
    if status is not None:
        q = q.where(g.status == status.value)
    return _filings(conn, conn.execute(q.order_by(g.submitted_at, g.filing_id).limit(limit)).all())


# --- the workflow ---------------------------------------------------------------------------------
def _event(conn: Connection, filing_id: str, facility: str, step: str, *, at: datetime, actor: str, role: str,
           detail: Optional[dict] = None) -> None:
    conn.execute(filing_events.insert().values(filing_id=filing_id, facility=facility, step=step, at=at, actor=actor,
                                               role=role, detail=detail or {}))


def _check_submission(conn: Connection, facility_id: str, body: FilingIn, today: date) -> None:
    missing = [k for k in ALWAYS_REQUIRED if k not in body.documents] if body.kind is FilingKind.INITIAL else []
    if body.kind is FilingKind.INITIAL and body.details.provides_meals and DocumentKind.FOOD_LICENCE not in body.documents:
        missing.append(DocumentKind.FOOD_LICENCE)
    if missing:
        raise InputError("documents", "missing " + "、".join(f"{DOCUMENT_ZH[k]} ({k.value})" for k in missing))
    if body.details is not None:
        for i, lic in enumerate(body.details.licences):
            if lic.valid_until < today:
                raise InputError(f"details.licences.{i}.valid_until", f"{lic.kind.value} licence expired on "
                                                                      f"{lic.valid_until}")
        if body.details.provides_meals and LicenceKind.FOOD not in {lic.kind for lic in body.details.licences} \
                and body.kind is FilingKind.INITIAL:
            raise InputError("details.licences", "a facility that provides meals files its food licence")
    require_uploads(conn, facility_id, list(body.documents.values()), "documents", (Purpose.DOCUMENT,))


def _stored(body: FilingIn) -> dict:
    stored = body.details.model_dump(mode="json") if body.details is not None else {}
    if body.reason:
        stored["reason"] = body.reason
    return stored


def submit_filing(conn: Connection, facility_id: str, body: FilingIn, *, user: str, role: str,
                  now: datetime) -> Filing:
    place = facility_place(conn, facility_id)
    status = FilingStatus(conn.execute(select(facilities.c.filing_status)
                                       .where(facilities.c.facility_id == facility_id)).scalar_one())
    if body.kind is FilingKind.INITIAL and status is FilingStatus.FILED:
        raise WorkflowConflict(f"facility {facility_id} is filed already: file a change or a closure")
    if body.kind is not FilingKind.INITIAL and status is not FilingStatus.FILED:
        raise WorkflowConflict(f"facility {facility_id} is {status.value}: a {body.kind.value} needs a filed facility")
    g = filings.c
    open_ = conn.execute(select(g.filing_id).where(g.facility == facility_id, g.status != ReviewStatus.ACCEPTED.value)
                         ).first()
    if open_ is not None:
        raise WorkflowConflict(f"filing {open_[0]} of facility {facility_id} is still under review or returned: "
                               "resubmit that one")
    _check_submission(conn, facility_id, body, local_today(place.profile, now))
    filing_id = str(uuid.uuid4())
    conn.execute(filings.insert().values(filing_id=filing_id, facility=facility_id, kind=body.kind.value,
                                         status=ReviewStatus.SUBMITTED.value, details=_stored(body),
                                         documents={k.value: v for k, v in body.documents.items()}, reasons=[],
                                         submitted_at=now))
    if body.kind is FilingKind.INITIAL:
        conn.execute(update(facilities).where(facilities.c.facility_id == facility_id)
                     .values(filing_status=FilingStatus.PENDING.value, updated_at=now))
    _event(conn, filing_id, facility_id, "submitted", at=now, actor=user, role=role, detail={"kind": body.kind.value})
    return get_filing(conn, filing_id)


def _move(conn: Connection, filing_id: str, allowed: ReviewStatus, values: dict) -> None:
    result = conn.execute(update(filings).where(filings.c.filing_id == filing_id, filings.c.status == allowed.value)
                          .values(**values))
    if result.rowcount != 1:
        raise WorkflowConflict(f"filing {filing_id} is {_row(conn, filing_id).status}; this step needs it "
                               f"{allowed.value}")


def resubmit_filing(conn: Connection, filing_id: str, body: FilingIn, *, user: str, role: str,
                    now: datetime) -> Filing:
    row = _row(conn, filing_id)
    if body.kind.value != row.kind:
        raise InputError("kind", f"filing {filing_id} is a {row.kind} filing")
    _check_submission(conn, row.facility, body, local_today(facility_place(conn, row.facility).profile, now))
    _move(conn, filing_id, ReviewStatus.RETURNED, dict(status=ReviewStatus.SUBMITTED.value, details=_stored(body),
                                                       documents={k.value: v for k, v in body.documents.items()},
                                                       submitted_at=now))
    _event(conn, filing_id, row.facility, "resubmitted", at=now, actor=user, role=role)
    return get_filing(conn, filing_id)


def return_filing(conn: Connection, filing_id: str, body: ReturnIn, *, user: str, role: str, now: datetime) -> Filing:
    row = _row(conn, filing_id)
    _move(conn, filing_id, ReviewStatus.SUBMITTED, dict(status=ReviewStatus.RETURNED.value, reasons=body.reasons,
                                                        decided_at=now, decided_by=user))
    _event(conn, filing_id, row.facility, "returned", at=now, actor=user, role=role, detail={"reasons": body.reasons})
    add_entry(conn, facility=row.facility, rule=CreditRuleKey.FILING_RETURNED, ref=filing_id,
              detail={"kind": row.kind, "reasons": body.reasons}, now=now)
    return get_filing(conn, filing_id)


def next_receipt_number(conn: Connection, uscc: str, year: int) -> str:
    """回执 numbers run per administrative division (the credit code's characters 3-8) and year."""
    prefix = f"TB-{uscc[2:8]}-{year}-"
    held = conn.execute(select(func.count()).select_from(filings)
                        .where(filings.c.receipt_number.like(prefix + "%"))).scalar_one()
    return f"{prefix}{held + 1:04d}"


def _apply_to_registry(conn: Connection, facility_id: str, kind: FilingKind, details: Optional[FilingDetails],
                       receipt: str, now: datetime) -> None:
    current = get_facility(conn, facility_id)
    record = FacilityIn.model_validate(current.model_dump(include=set(FacilityIn.model_fields)))
    changes: dict[str, Any] = {"filing_number": receipt}
    changes["filing_status"] = FilingStatus.REVOKED if kind is FilingKind.CLOSURE else FilingStatus.FILED
    if details is not None:
        filed = {lic.kind: lic for lic in details.licences}
        changes.update(name=details.name, address=details.address,
                       licences=[lic for lic in record.licences if lic.kind not in filed]
                       + [Licence(kind=x.kind, number=x.number, expires_on=x.valid_until) for x in filed.values()])
    update_facility(conn, facility_id, record.model_copy(update=changes), now)


def accept_filing(conn: Connection, filing_id: str, *, user: str, role: str, now: datetime) -> Filing:
    row = _row(conn, filing_id)
    facility = get_facility(conn, row.facility)
    today = local_today(facility_place(conn, row.facility).profile, now)
    receipt = next_receipt_number(conn, facility.uscc, today.year)
    _move(conn, filing_id, ReviewStatus.SUBMITTED, dict(status=ReviewStatus.ACCEPTED.value, receipt_number=receipt,
                                                        reasons=[], decided_at=now, decided_by=user))
    kind = FilingKind(row.kind)
    filing = get_filing(conn, filing_id)
    _apply_to_registry(conn, row.facility, kind, filing.details, receipt, now)
    _event(conn, filing_id, row.facility, "accepted", at=now, actor=user, role=role, detail={"receipt_number": receipt})
    details = filing.details or _last_accepted_details(conn, row.facility)
    event = {FilingKind.INITIAL: PublicStatus.FILED, FilingKind.CHANGE: PublicStatus.CHANGED,
             FilingKind.CLOSURE: PublicStatus.CLOSED}[kind]
    after = get_facility(conn, row.facility)
    publish_filing(conn, facility_id=row.facility, name=after.name, province=after.district.province,
                   city=after.district.city, district=after.district.district, address=after.address, event=event,
                   receipt_number=receipt, on=today, puhui=after.kind.value in PUHUI_KINDS,
                   service_types=details.service_types if details else [], places=details.places if details else {},
                   licences=[PublicLicence(kind=x.kind, valid_until=x.valid_until) for x in details.licences]
                   if details else [], now=now)
    return get_filing(conn, filing_id)


def _last_accepted_details(conn: Connection, facility_id: str) -> Optional[FilingDetails]:
    """What the facility filed last (a closure keeps the record it closes)."""
    g = filings.c
    for (stored,) in conn.execute(select(g.details).where(g.facility == facility_id,
                                                          g.status == ReviewStatus.ACCEPTED.value,
                                                          g.kind != FilingKind.CLOSURE.value)
                                  .order_by(g.decided_at.desc())):
        stored = dict(stored)
        stored.pop("reason", None)
        return FilingDetails.model_validate(stored)
    return None


def filed_periods(conn: Connection, facility_ids: list[str]) -> dict[str, list[tuple[str, datetime]]]:
    """Accepted initial filings and closures per facility, in order: (kind, decided_at)."""
    g = filings.c
    out: dict[str, list[tuple[str, datetime]]] = {i: [] for i in facility_ids}
    if facility_ids:
        for r in conn.execute(select(g.facility, g.kind, g.decided_at)
                              .where(g.facility.in_(facility_ids), g.status == ReviewStatus.ACCEPTED.value,
                                     g.kind.in_([FilingKind.INITIAL.value, FilingKind.CLOSURE.value]))
                              .order_by(g.decided_at)):
            out[r.facility].append((r.kind, r.decided_at))
    return out


# --- registrations pushed by the registration body ---------------------------------------------------
class LegalForm(str, Enum):
    FOR_PROFIT = "for_profit"    # 市场监管部门登记
    NON_PROFIT = "non_profit"    # 机构编制或民政部门登记


class RegistrationState(str, Enum):
    REGISTERED = "registered"
    DEREGISTERED = "deregistered"


class RegistrationPush(_In):
    uscc: str
    name: Annotated[str, Field(min_length=1, max_length=128)]
    legal_form: LegalForm
    authority: Annotated[str, Field(min_length=1, max_length=64, description="the registration body")]
    registered_on: date
    province: Annotated[str, Field(min_length=1, max_length=32)]
    city: Annotated[str, Field(min_length=1, max_length=32)]
    district: Annotated[str, Field(min_length=1, max_length=32)]
    address: Annotated[str, Field(min_length=1, max_length=256)]
    service_types: Annotated[list[ServiceType], Field(max_length=4)] = Field(
        default=[], description="services in the registered business scope (晋宁: 在业务范围明确全日托、半日托、计时托、临时托)")
    status: RegistrationState = RegistrationState.REGISTERED

    @field_validator("uscc")
    @classmethod
    def _uscc(cls, v: str) -> str:
        problem = uscc_problem(v)
        if problem:
            raise ValueError(f"not a unified social credit code: {problem}")
        return v


class ImportRefusal(BaseModel):
    index: int
    reason: str


class ImportResult(BaseModel):
    created: int
    updated: int
    unchanged: int
    refused: list[ImportRefusal] = Field(description="items not taken, each with why; the others were taken")


class Registration(RegistrationPush):
    received_at: datetime
    received_from: str
    facility_id: Optional[str] = Field(description="the registry's facility with this credit code, if any")
    filing_status: Optional[FilingStatus] = Field(description="its filing status; none: not in the registry")


def import_registrations(conn: Connection, items: list[dict], *, user: str, now: datetime) -> ImportResult:
    """Take each well-formed item (upsert by credit code); refuse the others, each with its reason."""
    result = ImportResult(created=0, updated=0, unchanged=0, refused=[])
    for index, raw in enumerate(items):
        try:
            reg = RegistrationPush.model_validate(raw)
        except ValidationError as exc:
            result.refused.append(ImportRefusal(index=index, reason=describe_validation_error(exc)))
            continue
        values = {**reg.model_dump(mode="json"), "registered_on": reg.registered_on}
        held = conn.execute(select(registrations).where(registrations.c.uscc == reg.uscc)).first()
        if held is None:
            conn.execute(registrations.insert().values(**values, received_at=now, received_from=user))
            result.created += 1
        elif {k: held._mapping[k] for k in values} == values:
            result.unchanged += 1
        else:
            conn.execute(update(registrations).where(registrations.c.uscc == reg.uscc)
                         .values(**values, received_at=now, received_from=user))
            result.updated += 1
    return result


def list_registrations(conn: Connection, *, jurisdiction: Optional[str], unfiled_only: bool,
                       limit: int) -> list[Registration]:
    r, f = registrations.c, facilities.c
    q = (select(registrations, f.facility_id, f.filing_status).outerjoin(facilities, f.uscc == r.uscc)
         .where(jurisdiction_clause(r.province, r.city, r.district, jurisdiction)))
    if unfiled_only:
        q = q.where(r.status == RegistrationState.REGISTERED.value,
                    (f.filing_status.is_(None)) | (f.filing_status != FilingStatus.FILED.value))
    return [Registration.model_validate(dict(row._mapping))
            for row in conn.execute(q.order_by(r.registered_on, r.uscc).limit(limit))]
