"""Fee standards (收费标准) per class type and service type, set by the facility and published; for
a 普惠 facility where the profile sets caps (济宁's central city: 乳儿班 2,500, other classes 1,900
元/人/月), a monthly fee above its cap is a breach (compliance rule `fee_cap`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import delete, select
from sqlalchemy.engine import Connection

from cloud.compliance.marks import mark_facilities
from cloud.compliance.profiles import Profile, Requirement
from cloud.registry.records import ClassType
from cloud.registry.statistics import PUHUI_KINDS
from cloud.supervision.disclosure import publish_fees
from cloud.supervision.scope import Place, facility_place
from cloud.supervision.tables import fee_standards
from cloud.supervision.vocabulary import FEE_UNIT_ZH, ServiceType


class FeeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    class_type: ClassType
    service_type: ServiceType
    amount_yuan: Annotated[int, Field(ge=0, le=100_000, description="in the service type's unit: 元 per month, hour or day")]
    effective_from: date


class FeeSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fees: Annotated[list[FeeIn], Field(max_length=len(ClassType) * len(ServiceType))]

    @field_validator("fees")
    @classmethod
    def _once_each(cls, v: list[FeeIn]) -> list[FeeIn]:
        if len({(f.class_type, f.service_type) for f in v}) != len(v):
            raise ValueError("each class type and service type may have one fee")
        return v


class Fee(FeeIn):
    unit: str
    cap_yuan: Optional[int] = Field(description="the 普惠 cap that applies to this fee, if any")
    within_cap: Optional[bool]
    cap_source: Optional[str]


class FeeReport(BaseModel):
    facility: str
    puhui: bool
    caps_apply: bool = Field(description="the profile sets caps here and the facility is 普惠")
    fees: list[Fee]
    breaches: int


def cap_for(profile: Profile, place: Place, class_type: ClassType, service_type: ServiceType) -> Optional[Requirement]:
    """The cap on this fee, or None where none applies (no caps, not 普惠, another district, or a
    service type not charged by the month)."""
    caps = profile.fee_caps
    if caps is None or place.kind not in PUHUI_KINDS or not caps.applies_in(place.district):
        return None
    if service_type not in caps.service_types:
        return None
    return caps.monthly_yuan.get(class_type)


def assess(profile: Profile, place: Place, fees: list[FeeIn]) -> FeeReport:
    """Pure: each fee with its cap and whether it keeps within it."""
    out = []
    for fee in fees:
        cap = cap_for(profile, place, fee.class_type, fee.service_type)
        out.append(Fee(**fee.model_dump(), unit=FEE_UNIT_ZH[fee.service_type],
                       cap_yuan=int(cap.value) if cap else None,
                       within_cap=fee.amount_yuan <= cap.value if cap else None,
                       cap_source=cap.source if cap else None))
    caps_apply = profile.fee_caps is not None and place.kind in PUHUI_KINDS and profile.fee_caps.applies_in(place.district)
    return FeeReport(facility=place.facility_id, puhui=place.kind in PUHUI_KINDS, caps_apply=caps_apply, fees=out,
                     breaches=sum(1 for f in out if f.within_cap is False))


def stored_fees(conn: Connection, facility_ids: Sequence[str]) -> dict[str, list[FeeIn]]:
    """facility -> its fee standards, for many facilities in one query (the compliance pass of a province)."""
    s = fee_standards.c
    out: dict[str, list[FeeIn]] = {f: [] for f in facility_ids}
    if facility_ids:
        for r in conn.execute(select(fee_standards).where(s.facility.in_(list(facility_ids)))
                              .order_by(s.facility, s.class_type, s.service_type)):
            out[r.facility].append(FeeIn(class_type=r.class_type, service_type=r.service_type,
                                         amount_yuan=r.amount_yuan, effective_from=r.effective_from))
    return out


def fee_reports(conn: Connection, places: Sequence[Place]) -> dict[str, FeeReport]:
    fees = stored_fees(conn, [p.facility_id for p in places])
    return {p.facility_id: assess(p.profile, p, fees[p.facility_id]) for p in places}


def fee_report(conn: Connection, facility_id: str) -> FeeReport:
    return fee_reports(conn, [facility_place(conn, facility_id)])[facility_id]


def set_fees(conn: Connection, facility_id: str, body: FeeSchedule, *, user: str, now: datetime) -> FeeReport:
    """Replace the facility's fee standards (and the published ones, once it is filed)."""
    facility_place(conn, facility_id)
    conn.execute(delete(fee_standards).where(fee_standards.c.facility == facility_id))
    if body.fees:
        conn.execute(fee_standards.insert(), [dict(facility=facility_id, class_type=f.class_type.value,
                                                   service_type=f.service_type.value, amount_yuan=f.amount_yuan,
                                                   effective_from=f.effective_from, set_by=user, set_at=now)
                                              for f in body.fees])
    publish_fees(conn, facility_id, now)
    mark_facilities(conn, [facility_id])
    return fee_report(conn, facility_id)
