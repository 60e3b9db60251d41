"""The audit log: who read a snapshot, acknowledged, dispatched or resolved what, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel
from sqlalchemy import select

from cloud.api.auth import Principal, require_role
from cloud.api.common import Cursor, Limit, transaction
from cloud.config import Role
from cloud.store.db import audit
from cloud.store.paging import Page, decode_cursor, encode_cursor

router = APIRouter(prefix="/api/audit", tags=["audit"])


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    detail: dict[str, Any]


@router.get("", response_model=Page[AuditEntry])
def list_audit(request: Request, _who: Annotated[Principal, Depends(require_role(Role.SUPERVISOR, Role.ADMIN))],
               limit: Limit = 50, cursor: Cursor = None,
               actor: Annotated[Optional[str], Query(max_length=64)] = None,
               action: Annotated[Optional[str], Query(max_length=64)] = None,
               target: Annotated[Optional[str], Query(max_length=128)] = None,
               since: Optional[AwareDatetime] = None) -> Page[AuditEntry]:
    """Newest first."""
    a = audit.c
    q = select(audit)
    for col, value in ((a.actor, actor), (a.action, action), (a.target, target)):
        if value is not None:
            q = q.where(col == value)
    if since is not None:
        q = q.where(a.at >= since)
    if cursor is not None:
        (before,) = decode_cursor(cursor, 1)
        q = q.where(a.id < int(before))
    with transaction(request) as conn:
        rows = conn.execute(q.order_by(a.id.desc()).limit(limit + 1)).all()
    nxt = encode_cursor([rows[limit - 1].id]) if len(rows) > limit else None
    return Page[AuditEntry](items=[AuditEntry.model_validate(dict(r._mapping)) for r in rows[:limit]], next_cursor=nxt)
