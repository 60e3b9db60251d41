"""Subsidies per facility, district and year, at the profile's rates (济宁: construction 2,000 元
per new place once the places passed acceptance; operation 3,000 元 per enrolled child and year in
乳儿班 and 2,000 in other classes, for filed 普惠 facilities).

Operation counts the days of the year the facility was filed (from the acceptance of its filing to
that of its closure; a facility filed before CareGuard kept filings counts from its registration),
times the enrolment filed in the registry per class type. The arithmetic is pure
(`construction_amount`, `operation_lines`) and rounds each class's amount half up to a yuan."""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Optional
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from cloud.compliance.profiles import SubsidyRates, profile_for
from cloud.registry.records import CLASS_TYPE_ZH, ClassType, FilingStatus
from cloud.registry.statistics import PUHUI_KINDS
from cloud.store.db import classes, facilities
from cloud.supervision.export import csv_text
from cloud.supervision.filings import FilingKind, filed_periods
from cloud.supervision.scope import facility_place, jurisdiction_clause
from cloud.supervision.tables import acceptances
from contracts.ids import FACILITY_ID_RE


class AcceptanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    facility_id: Annotated[str, Field(pattern=FACILITY_ID_RE)]
    accepted_on: date
    new_places: Annotated[int, Field(ge=1, le=1000, description="new places that passed acceptance (验收)")]
    note: Optional[Annotated[str, Field(max_length=500)]] = None


class Acceptance(AcceptanceIn):
    id: int
    recorded_by: str
    recorded_at: datetime


class OperationLine(BaseModel):
    class_type: ClassType
    enrolled: int
    rate_yuan: int = Field(description="元 per child and year")
    days_filed: int
    days_in_year: int
    amount_yuan: int


class SubsidyLine(BaseModel):
    facility: str
    name: str
    district: str
    puhui: bool
    construction_places: int
    construction_yuan: int
    operation: list[OperationLine]
    operation_yuan: int
    total_yuan: int
    sources: list[str] = Field(description="the texts the rates come from")


class DistrictSubsidy(BaseModel):
    district: str
    construction_yuan: int
    operation_yuan: int
    total_yuan: int


class SubsidyReport(BaseModel):
    year: int
    lines: list[SubsidyLine]
    districts: list[DistrictSubsidy]
    total_yuan: int


def _yuan(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def construction_amount(rates: SubsidyRates, new_places: int) -> int:
    return _yuan(Decimal(new_places) * Decimal(str(rates.construction_per_place.value)))


def days_in(year: int) -> int:
    return (date(year + 1, 1, 1) - date(year, 1, 1)).days


def days_filed(spans: list[tuple[date, Optional[date]]], year: int) -> int:
    """Days of `year` inside the filed spans [from, until) (until None: still filed)."""
    start, end = date(year, 1, 1), date(year + 1, 1, 1)
    total = 0
    for since, until in spans:
        lo, hi = max(since, start), min(until or end, end)
        total += max(0, (hi - lo).days)
    return min(total, days_in(year))


def operation_lines(rates: SubsidyRates, enrolled: dict[ClassType, int], filed_days: int, year: int) -> list[OperationLine]:
    year_days = days_in(year)
    out = []
    for class_type, children in sorted(enrolled.items(), key=lambda kv: list(ClassType).index(kv[0])):
        rate = rates.operation_per_child_year.get(class_type)
        if rate is None or children <= 0:
            continue
        amount = Decimal(children) * Decimal(str(rate.value)) * Decimal(filed_days) / Decimal(year_days)
        out.append(OperationLine(class_type=class_type, enrolled=children, rate_yuan=int(rate.value),
                                 days_filed=filed_days, days_in_year=year_days, amount_yuan=_yuan(amount)))
    return out


def filed_spans(periods: list[tuple[str, datetime]], status: FilingStatus, registered: datetime,
                tz: ZoneInfo) -> list[tuple[date, Optional[date]]]:
    """The filed spans from accepted initial filings and closures (local days); a facility filed
    with no accepted filing on record counts from its registration."""
    spans: list[tuple[date, Optional[date]]] = []
    since: Optional[date] = None
    for kind, at in periods:
        day = at.astimezone(tz).date()
        if kind == FilingKind.INITIAL.value and since is None:
            since = day
        elif kind == FilingKind.CLOSURE.value and since is not None:
            spans.append((since, day))
            since = None
    if since is not None:
        spans.append((since, None))
    if not periods and status is FilingStatus.FILED:
        spans.append((registered.astimezone(tz).date(), None))
    return spans


def record_acceptance(conn: Connection, body: AcceptanceIn, *, user: str, now: datetime) -> Acceptance:
    facility_place(conn, body.facility_id)
    result = conn.execute(acceptances.insert().values(facility=body.facility_id, accepted_on=body.accepted_on,
                                                      new_places=body.new_places, note=body.note, recorded_by=user,
                                                      recorded_at=now))
    return Acceptance(id=result.inserted_primary_key[0], recorded_by=user, recorded_at=now, **body.model_dump())


def subsidy_report(conn: Connection, year: int, *, jurisdiction: Optional[str]) -> SubsidyReport:
    f, c, a = facilities.c, classes.c, acceptances.c
    rows = conn.execute(select(f.facility_id, f.name, f.kind, f.province, f.city, f.district, f.filing_status,
                               f.created_at)
                        .where(jurisdiction_clause(f.province, f.city, f.district, jurisdiction))
                        .order_by(f.facility_id)).all()
    ids = [r.facility_id for r in rows]
    enrolled: dict[str, dict[ClassType, int]] = {i: {} for i in ids}
    built: dict[str, int] = {}
    periods = filed_periods(conn, ids)
    if ids:
        for fid, class_type, n in conn.execute(select(c.facility, c.class_type, func.sum(c.enrolled))
                                               .where(c.facility.in_(ids)).group_by(c.facility, c.class_type)):
            enrolled[fid][ClassType(class_type)] = int(n or 0)
        built = dict(conn.execute(select(a.facility, func.sum(a.new_places))
                                  .where(a.facility.in_(ids), a.accepted_on >= date(year, 1, 1),
                                         a.accepted_on < date(year + 1, 1, 1)).group_by(a.facility)).all())
    lines = []
    for r in rows:
        profile = profile_for(r.city)
        rates = profile.subsidies
        puhui = r.kind in PUHUI_KINDS
        places = int(built.get(r.facility_id) or 0)
        construction = construction_amount(rates, places) if rates else 0
        operation: list[OperationLine] = []
        if rates and puhui:
            spans = filed_spans(periods[r.facility_id], FilingStatus(r.filing_status), r.created_at,
                                ZoneInfo(profile.care.timezone))
            operation = operation_lines(rates, enrolled[r.facility_id], days_filed(spans, year), year)
        op_total = sum(x.amount_yuan for x in operation)
        sources = ([rates.construction_per_place.source,
                    next(iter(rates.operation_per_child_year.values())).source] if rates else [])
        lines.append(SubsidyLine(facility=r.facility_id, name=r.name, district=f"{r.province}/{r.city}/{r.district}",
                                 puhui=puhui, construction_places=places, construction_yuan=construction,
                                 operation=operation, operation_yuan=op_total, total_yuan=construction + op_total,
                                 sources=sources))
    districts: dict[str, DistrictSubsidy] = {}
    for line in lines:
        d = districts.setdefault(line.district, DistrictSubsidy(district=line.district, construction_yuan=0,
                                                                operation_yuan=0, total_yuan=0))
        d.construction_yuan += line.construction_yuan
        d.operation_yuan += line.operation_yuan
        d.total_yuan += line.total_yuan
    return SubsidyReport(year=year, lines=lines, districts=sorted(districts.values(), key=lambda d: d.district),
                         total_yuan=sum(x.total_yuan for x in lines))


SUBSIDY_CSV = ("年度", "机构", "机构名称", "区县", "普惠", "验收新增托位", "建设补助（元）", "运营补助明细", "运营补助（元）",
               "合计（元）")


def subsidies_csv(report: SubsidyReport) -> str:
    return csv_text(SUBSIDY_CSV, ([report.year, x.facility, x.name, x.district, "是" if x.puhui else "否",
                                   x.construction_places, x.construction_yuan,
                                   "；".join(f"{CLASS_TYPE_ZH[o.class_type]}{o.enrolled}人×{o.rate_yuan}元×"
                                            f"{o.days_filed}/{o.days_in_year}天={o.amount_yuan}" for o in x.operation),
                                   x.operation_yuan, x.total_yuan] for x in report.lines))

