"""Gateways: MQTT credentials per facility gateway (the password shown once, a hash kept) and
the broker ACL line each needs."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Path, Query, Request, status

from cloud.api.auth import Principal, require_role, scope_facility
from cloud.api.common import Cursor, Limit, transaction
from cloud.api.facilities import FacilityPath
from cloud.config import Role
from cloud.registry import queries
from cloud.registry.records import (
    Gateway,
    GatewayCredentials,
    GatewayIn,
    issue_gateway,
    rotate_gateway,
)
from cloud.store.paging import Page
from contracts.ids import DEVICE_ID_RE, FACILITY_ID_RE
from contracts.timefmt import utcnow

router = APIRouter(tags=["gateways"])
READERS = (Role.SUPERVISOR, Role.ADMIN, Role.FACILITY)


@router.post("/api/facilities/{facility_id}/gateways", response_model=GatewayCredentials,
             status_code=status.HTTP_201_CREATED)
def issue(request: Request, facility_id: FacilityPath, body: GatewayIn,
          _who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> GatewayCredentials:
    with transaction(request) as conn:
        return issue_gateway(conn, facility_id, body.gateway_id, utcnow())


@router.post("/api/gateways/{gateway_id}/rotate", response_model=GatewayCredentials)
def rotate(request: Request, gateway_id: Annotated[str, Path(pattern=DEVICE_ID_RE)],
           _who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> GatewayCredentials:
    """A new password (shown once); the old one stops working when the broker reloads its password file."""
    with transaction(request) as conn:
        return rotate_gateway(conn, gateway_id, utcnow())


@router.get("/api/gateways", response_model=Page[Gateway])
def list_gateways(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))],
                  limit: Limit = 50, cursor: Cursor = None,
                  facility: Annotated[Optional[str], Query(pattern=FACILITY_ID_RE)] = None) -> Page[Gateway]:
    with transaction(request) as conn:
        return queries.list_gateways(conn, limit=limit, cursor=cursor, facility=scope_facility(who, facility),
                                     within=who.within)
