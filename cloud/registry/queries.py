"""Lists of the registry, one keyset page at a time, with the filters the API offers. A `facility`
of None means every facility the caller may see (the route has already scoped it)."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import select
from sqlalchemy.engine import Connection

from cloud.registry.records import (
    Area,
    Camera,
    Device,
    Facility,
    FacilityKind,
    FilingStatus,
    Gateway,
    StaffMember,
    StaffRole,
    camera_rows_to_models,
    facility_rows_to_models,
    gateway_query,
    gateway_rows,
)
from cloud.registry.jurisdiction import EVERYWHERE, Jurisdiction, path_clause, under
from cloud.store.db import areas, cameras, devices, facilities, gateway_credentials, staff
from cloud.store.paging import Page, keyset, trim
from contracts.device import DeviceKind


def _page(conn: Connection, query, key_columns, limit: int, cursor: Optional[str]) -> tuple[list, Optional[str]]:
    return trim(conn.execute(keyset(query, key_columns, limit, cursor)).all(), [c.name for c in key_columns], limit)


def list_facilities(conn: Connection, *, limit: int, cursor: Optional[str], own: Optional[str] = None,
                    province: Optional[str] = None, city: Optional[str] = None, district: Optional[str] = None,
                    street: Optional[str] = None, kind: Optional[FacilityKind] = None,
                    filing_status: Optional[FilingStatus] = None, within: Jurisdiction = EVERYWHERE) -> Page[Facility]:
    f = facilities.c
    q = select(facilities).where(*path_clause((f.province, f.city, f.district), within))
    if own is not None:
        q = q.where(f.facility_id == own)
    for col, value in ((f.province, province), (f.city, city), (f.district, district), (f.street, street),
                       (f.kind, kind.value if kind else None),
                       (f.filing_status, filing_status.value if filing_status else None)):
        if value is not None:
            q = q.where(col == value)
    rows, nxt = _page(conn, q, [f.facility_id], limit, cursor)
    return Page[Facility](items=facility_rows_to_models(conn, rows), next_cursor=nxt)


def list_devices(conn: Connection, *, limit: int, cursor: Optional[str], facility: Optional[str] = None,
               within: Jurisdiction = EVERYWHERE,                  kind: Optional[DeviceKind] = None) -> Page[Device]:
    d = devices.c
    q = select(devices)
    if facility is not None:
        q = q.where(d.facility == facility)
    if within:
        q = q.where(under(d.facility, within))
    if kind is not None:
        q = q.where(d.kind == kind.value)
    rows, nxt = _page(conn, q, [d.facility, d.device_id], limit, cursor)
    return Page[Device](items=[Device.model_validate(dict(r._mapping)) for r in rows], next_cursor=nxt)


def list_staff(conn: Connection, *, limit: int, cursor: Optional[str], facility: Optional[str] = None,
               within: Jurisdiction = EVERYWHERE,                role: Optional[StaffRole] = None) -> Page[StaffMember]:
    s = staff.c
    q = select(staff)
    if facility is not None:
        q = q.where(s.facility == facility)
    if within:
        q = q.where(under(s.facility, within))
    if role is not None:
        q = q.where(s.role == role.value)
    rows, nxt = _page(conn, q, [s.facility, s.staff_id], limit, cursor)
    return Page[StaffMember](items=[StaffMember.model_validate(dict(r._mapping)) for r in rows], next_cursor=nxt)


def list_areas(conn: Connection, *, limit: int, cursor: Optional[str], facility: Optional[str] = None,
               within: Jurisdiction = EVERYWHERE,                children_area: Optional[bool] = None) -> Page[Area]:
    a = areas.c
    q = select(areas)
    if facility is not None:
        q = q.where(a.facility == facility)
    if within:
        q = q.where(under(a.facility, within))
    if children_area is not None:
        q = q.where(a.children_area.is_(children_area))
    rows, nxt = _page(conn, q, [a.facility, a.area_id], limit, cursor)
    return Page[Area](items=[Area.model_validate(dict(r._mapping)) for r in rows], next_cursor=nxt)


def list_cameras(conn: Connection, *, limit: int, cursor: Optional[str],
                 facility: Optional[str] = None, within: Jurisdiction = EVERYWHERE) -> Page[Camera]:
    c = cameras.c
    q = select(cameras)
    if facility is not None:
        q = q.where(c.facility == facility)
    if within:
        q = q.where(under(c.facility, within))
    rows, nxt = _page(conn, q, [c.facility, c.camera_id], limit, cursor)
    return Page[Camera](items=camera_rows_to_models(conn, rows), next_cursor=nxt)


def list_gateways(conn: Connection, *, limit: int, cursor: Optional[str],
                  facility: Optional[str] = None, within: Jurisdiction = EVERYWHERE) -> Page[Gateway]:
    g = gateway_credentials.c
    q = gateway_query()
    if facility is not None:
        q = q.where(g.facility == facility)
    if within:
        q = q.where(under(g.facility, within))
    rows, nxt = _page(conn, q, [g.gateway_id], limit, cursor)
    return Page[Gateway](items=gateway_rows(rows), next_cursor=nxt)
