"""Devices of a facility: one-button alarms, door and motion sensors, smoke and climate sensors."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Query, Request, status

from cloud.api.auth import Principal, require_role, scope_facility
from cloud.api.common import Cursor, Limit, transaction
from cloud.api.facilities import FacilityPath
from cloud.config import Role
from cloud.registry import queries
from cloud.registry.records import Device, DeviceIn, add_device
from cloud.store.paging import Page
from contracts.device import DeviceKind
from contracts.ids import FACILITY_ID_RE

router = APIRouter(tags=["devices"])
# Police locate a button's zone; health reads the climate sensors.
READERS = (Role.POLICE, Role.HEALTH, Role.SUPERVISOR, Role.ADMIN, Role.FACILITY)


@router.post("/api/facilities/{facility_id}/devices", response_model=Device, status_code=status.HTTP_201_CREATED)
def register_device(request: Request, facility_id: FacilityPath, body: DeviceIn,
                    _who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> Device:
    with transaction(request) as conn:
        return add_device(conn, facility_id, body)


@router.get("/api/devices", response_model=Page[Device])
def list_devices(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))],
                 limit: Limit = 50, cursor: Cursor = None,
                 facility: Annotated[Optional[str], Query(pattern=FACILITY_ID_RE)] = None,
                 kind: Optional[DeviceKind] = None) -> Page[Device]:
    with transaction(request) as conn:
        return queries.list_devices(conn, limit=limit, cursor=cursor, facility=scope_facility(who, facility), kind=kind,
                                    within=who.within)
