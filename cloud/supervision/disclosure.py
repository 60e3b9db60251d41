"""Public disclosure (公示): the read model the public pages and /api/public read, written only
when a filing is accepted or a fee standard changes. It holds what may be published and nothing
else (no children, no staff, no contacts, no credit code), so no query of the public API can
reach a private column: the private tables are not in its reach at all.

济宁: 卫生健康部门定期在官方网站上公布婴幼儿照护服务机构备案、变更、注销等信息;
株洲: 县级卫生健康部门通过政府网站平台，定期公示托育机构备案情况，接受社会监督."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import Iterable, Optional

from pydantic import BaseModel, Field
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from cloud.registry.records import CLASS_TYPE_ZH, ClassType, LicenceKind
from cloud.store.paging import keyset, trim
from cloud.supervision.export import csv_text
from cloud.supervision.tables import fee_standards, public_events, public_facilities
from cloud.supervision.vocabulary import FEE_UNIT_ZH, SERVICE_TYPE_ZH, ServiceType


class PublicStatus(str, Enum):
    FILED = "filed"
    CHANGED = "changed"
    CLOSED = "closed"


STATUS_ZH = {PublicStatus.FILED: "已备案", PublicStatus.CHANGED: "已变更", PublicStatus.CLOSED: "已注销"}
LICENCE_ZH = {LicenceKind.HEALTH_EVALUATION: "卫生评价", LicenceKind.FIRE: "消防", LicenceKind.FOOD: "食品经营许可"}


class PublicFee(BaseModel):
    class_type: ClassType
    service_type: ServiceType
    amount_yuan: int
    unit: str


class PublicLicence(BaseModel):
    kind: LicenceKind
    valid_until: date


class PublicFacility(BaseModel):
    """One facility as published: every field here may be read by anyone."""
    facility_id: str
    name: str
    province: str
    city: str
    district: str
    address: str
    status: PublicStatus
    receipt_number: str = Field(description="备案回执 number of the latest accepted filing")
    filed_on: date
    changed_on: Optional[date]
    closed_on: Optional[date]
    puhui: bool = Field(description="a 普惠 (public or inclusive) facility")
    service_types: list[ServiceType]
    places: dict[ClassType, int]
    fees: list[PublicFee]
    licences: list[PublicLicence]


class PublicEvent(BaseModel):
    id: int
    facility_id: str
    name: str
    province: str
    city: str
    district: str
    event: PublicStatus
    on_date: date
    receipt_number: str


def _fees(conn: Connection, facility_id: str) -> list[dict]:
    s = fee_standards.c
    return [PublicFee(class_type=r.class_type, service_type=r.service_type, amount_yuan=r.amount_yuan,
                      unit=FEE_UNIT_ZH[ServiceType(r.service_type)]).model_dump(mode="json")
            for r in conn.execute(select(fee_standards).where(s.facility == facility_id)
                                  .order_by(s.class_type, s.service_type))]


def publish_filing(conn: Connection, *, facility_id: str, name: str, province: str, city: str, district: str,
                   address: str, event: PublicStatus, receipt_number: str, on: date, puhui: bool,
                   service_types: list[ServiceType], places: dict[ClassType, int],
                   licences: list[PublicLicence], now: datetime) -> None:
    """An accepted filing, change or closure: the facility's public row and one public event."""
    p = public_facilities.c
    held = conn.execute(select(p.filed_on).where(p.facility_id == facility_id)).first()
    values = dict(name=name, province=province, city=city, district=district, address=address, status=event.value,
                  receipt_number=receipt_number, puhui=int(puhui),
                  service_types=[s.value for s in service_types], places={k.value: v for k, v in places.items()},
                  fees=_fees(conn, facility_id), licences=[lic.model_dump(mode="json") for lic in licences],
                  updated_at=now)
    if event is PublicStatus.FILED or held is None:
        values.update(filed_on=on, changed_on=None, closed_on=None)
    elif event is PublicStatus.CHANGED:
        values["changed_on"] = on
    else:
        values["closed_on"] = on
    if held is None:
        conn.execute(public_facilities.insert().values(facility_id=facility_id, **values))
    else:
        conn.execute(update(public_facilities).where(p.facility_id == facility_id).values(**values))
    conn.execute(public_events.insert().values(facility_id=facility_id, name=name, province=province, city=city,
                                               district=district, event=event.value, on_date=on,
                                               receipt_number=receipt_number))


def publish_fees(conn: Connection, facility_id: str, now: datetime) -> None:
    """A new fee standard reaches the public row of a filed facility (none for one not filed)."""
    conn.execute(update(public_facilities).where(public_facilities.c.facility_id == facility_id)
                 .values(fees=_fees(conn, facility_id), updated_at=now))


def _public(row) -> PublicFacility:
    m = dict(row._mapping)
    m.pop("updated_at")
    m["puhui"] = bool(m["puhui"])
    return PublicFacility.model_validate(m)


def list_public_facilities(conn: Connection, *, city: Optional[str], district: Optional[str],
                           status: Optional[PublicStatus], limit: int,
                           cursor: Optional[str]) -> tuple[list[PublicFacility], Optional[str]]:
    p = public_facilities.c
    q = select(public_facilities)
    for col, value in ((p.city, city), (p.district, district), (p.status, status.value if status else None)):
        if value is not None:
            q = q.where(col == value)
    rows, nxt = trim(conn.execute(keyset(q, [p.facility_id], limit, cursor)).all(), ["facility_id"], limit)
    return [_public(r) for r in rows], nxt


def list_public_events(conn: Connection, *, since: Optional[date], limit: int,
                       cursor: Optional[str]) -> tuple[list[PublicEvent], Optional[str]]:
    e = public_events.c
    q = select(public_events)
    if since is not None:
        q = q.where(e.on_date >= since)
    rows, nxt = trim(conn.execute(keyset(q, [e.id], limit, cursor)).all(), ["id"], limit)
    return [PublicEvent.model_validate(dict(r._mapping)) for r in rows], nxt


# --- CSV ------------------------------------------------------------------------------------
def _zh_list(values: Iterable[str], names: dict) -> str:
    return "、".join(names.get(v, str(v)) for v in values)


FACILITY_CSV = ("机构名称", "省", "市", "区县", "地址", "状态", "备案回执编号", "备案日期", "变更日期", "注销日期", "普惠",
                "服务类型", "托位（班型）", "收费标准", "许可有效期")
EVENT_CSV = ("日期", "事项", "机构名称", "省", "市", "区县", "备案回执编号")


def _facility_row(f: PublicFacility) -> list:
    return [f.name, f.province, f.city, f.district, f.address, STATUS_ZH[f.status], f.receipt_number, f.filed_on,
            f.changed_on, f.closed_on, "是" if f.puhui else "否", _zh_list(f.service_types, SERVICE_TYPE_ZH),
            "；".join(f"{CLASS_TYPE_ZH[k]}{v}" for k, v in f.places.items()),
            "；".join(f"{CLASS_TYPE_ZH[x.class_type]}{SERVICE_TYPE_ZH[x.service_type]}{x.amount_yuan}{x.unit}"
                     for x in f.fees),
            "；".join(f"{LICENCE_ZH[x.kind]}至{x.valid_until}" for x in f.licences)]


def facilities_csv(items: list[PublicFacility]) -> str:
    return csv_text(FACILITY_CSV, (_facility_row(f) for f in items))


def events_csv(items: list[PublicEvent]) -> str:
    return csv_text(EVENT_CSV, ([e.on_date, STATUS_ZH[e.event], e.name, e.province, e.city, e.district,
                                 e.receipt_number] for e in items))
