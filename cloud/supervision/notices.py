"""Notices to the authorities of a facility's jurisdiction: hazards and incidents to health and
police, overdue rectifications to the district's supervisor. Written in the workflow's transaction
(once per what, record and role), announced on the notice bus only after the commit."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Optional

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.engine import Connection

from cloud.store.db import upsert_insert
from cloud.store.paging import decode_cursor, encode_cursor
from cloud.supervision.scope import Place, jurisdiction_clause
from cloud.supervision.tables import notices


class NoticeKind(str, Enum):
    HAZARD = "hazard"
    INCIDENT = "incident"
    RECTIFICATION_OVERDUE = "rectification_overdue"


class Notice(BaseModel):
    id: int
    at: datetime
    role: str
    province: str
    city: str
    district: str
    facility: str
    kind: NoticeKind
    ref: str
    summary: dict[str, Any]


def _notice(row) -> Notice:
    m = row._mapping
    return Notice.model_validate({k: m[k] for k in Notice.model_fields})


def notify(conn: Connection, *, place: Place, kind: NoticeKind, ref: str, roles: tuple[str, ...],
           summary: dict[str, Any], now: datetime) -> list[Notice]:
    """One notice per role (none again for the same kind, record and role); the new ones."""
    made = []
    for role in roles:
        ins = upsert_insert(conn.dialect.name, notices).values(
            at=now, role=role, province=place.province, city=place.city, district=place.district,
            facility=place.facility_id, kind=kind.value, ref=ref, summary=summary)
        # RETURNING tells a new row from a conflict the same way on both dialects (rowcount does not).
        new = conn.execute(ins.on_conflict_do_nothing(index_elements=["kind", "ref", "role"])
                           .returning(notices.c.id)).scalar()
        if new is not None:
            made.append(_notice(conn.execute(select(notices).where(notices.c.id == new)).one()))
    return made


def list_notices(conn: Connection, *, role: Optional[str], jurisdiction: Optional[str], limit: int,
                 cursor: Optional[str]) -> tuple[list[Notice], Optional[str]]:
    """Newest first; `role` None lists every role's (an administrator)."""
    n = notices.c
    q = select(notices).where(jurisdiction_clause(n.province, n.city, n.district, jurisdiction))
    if role is not None:
        q = q.where(n.role == role)
    if cursor is not None:
        (before,) = decode_cursor(cursor, 1)
        q = q.where(n.id < int(before))
    rows = conn.execute(q.order_by(n.id.desc()).limit(limit + 1)).all()
    nxt = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return [_notice(r) for r in rows[:limit]], nxt
