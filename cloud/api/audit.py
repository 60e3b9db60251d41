"""The audit log: who read a snapshot, acknowledged, dispatched or resolved what, and when."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from cloud.alarms.records import AuditEntry, list_audit_page
from cloud.api.auth import Principal, forbid_bound, require_role
from cloud.api.common import Cursor, Limit, transaction
from cloud.config import Role
from cloud.store.paging import Page

router = APIRouter(prefix="/api/audit", tags=["audit"])


@router.get("", response_model=Page[AuditEntry])
def list_audit(request: Request, who: Annotated[Principal, Depends(require_role(Role.SUPERVISOR, Role.ADMIN))],
               limit: Limit = 50, cursor: Cursor = None,
               actor: Annotated[Optional[str], Query(max_length=64)] = None,
               action: Annotated[Optional[str], Query(max_length=64)] = None,
               target: Annotated[Optional[str], Query(max_length=128)] = None,
               since: Optional[AwareDatetime] = None) -> Page[AuditEntry]:
    """Newest first."""
    forbid_bound(who, "the audit log")
    with transaction(request) as conn:
        return list_audit_page(conn, limit=limit, cursor=cursor, actor=actor, action=action, target=target,
                               since=since)
