"""Areas of a facility, the cameras covering them, and the latest snapshot of a camera (every
read of a picture is audited)."""

from __future__ import annotations

from typing import Annotated, Optional
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status

from cloud.alarms.records import record_audit
from cloud.api.auth import Principal, forbid_outside_scope, require_role, scope_facility
from cloud.api.common import Cursor, Limit, transaction
from cloud.api.facilities import FacilityPath
from cloud.config import Role
from cloud.registry import queries
from cloud.registry.records import Area, AreaIn, Camera, CameraIn, add_area, add_camera
from cloud.care.privacy import app_cipher
from cloud.status.snapshots import SnapshotUnreadable, has_active_alarm, latest_snapshot
from cloud.store.paging import Page
from contracts.ids import DEVICE_ID_RE, FACILITY_ID_RE
from contracts.timefmt import iso_utc, utcnow

router = APIRouter(tags=["cameras"])
READERS = (Role.POLICE, Role.SUPERVISOR, Role.ADMIN, Role.FACILITY)
SNAPSHOT_READERS = (Role.POLICE, Role.ADMIN, Role.FACILITY)


@router.post("/api/facilities/{facility_id}/areas", response_model=Area, status_code=status.HTTP_201_CREATED)
def register_area(request: Request, facility_id: FacilityPath, body: AreaIn,
                  _who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> Area:
    with transaction(request) as conn:
        return add_area(conn, facility_id, body)


@router.get("/api/areas", response_model=Page[Area])
def list_areas(request: Request, who: Annotated[Principal, Depends(require_role(*READERS, Role.HEALTH))],
               limit: Limit = 50, cursor: Cursor = None,
               facility: Annotated[Optional[str], Query(pattern=FACILITY_ID_RE)] = None,
               children_area: Optional[bool] = None) -> Page[Area]:
    with transaction(request) as conn:
        return queries.list_areas(conn, limit=limit, cursor=cursor, facility=scope_facility(who, facility),
                                  within=who.within, children_area=children_area)


@router.post("/api/facilities/{facility_id}/cameras", response_model=Camera, status_code=status.HTTP_201_CREATED)
def register_camera(request: Request, facility_id: FacilityPath, body: CameraIn,
                    _who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> Camera:
    with transaction(request) as conn:
        return add_camera(conn, facility_id, body)


@router.get("/api/cameras", response_model=Page[Camera])
def list_cameras(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))],
                 limit: Limit = 50, cursor: Cursor = None,
                 facility: Annotated[Optional[str], Query(pattern=FACILITY_ID_RE)] = None) -> Page[Camera]:
    with transaction(request) as conn:
        return queries.list_cameras(conn, limit=limit, cursor=cursor, facility=scope_facility(who, facility),
                                    within=who.within)


@router.get("/api/facilities/{facility_id}/cameras/{camera_id}/snapshot", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "the newest snapshot (JPEG)"},
                       404: {"description": "no snapshot of this camera"},
                       502: {"description": "the stored snapshot does not open or holds no valid base64 JPEG"}})
def read_snapshot(request: Request, facility_id: FacilityPath,
                  camera_id: Annotated[str, Path(pattern=DEVICE_ID_RE)],
                  who: Annotated[Principal, Depends(require_role(*SNAPSHOT_READERS))],
                  alarm_id: Optional[UUID] = None) -> Response:
    """The newest snapshot of the camera (of one alarm, with `alarm_id`). The police read one only
    while the facility has an active alarm. Every read, and every refusal, is audited."""
    forbid_outside_scope(request, who, facility_id)
    now = utcnow()
    target = f"{facility_id}/{camera_id}"
    with transaction(request) as conn:
        if who.role is Role.POLICE and not has_active_alarm(conn, facility_id):
            record_audit(conn, at=now, actor=who.user, role=who.role.value, action="snapshot.refused",
                         target=target, detail={"reason": "no active alarm"})
            found, refused = None, True
        else:
            try:
                found, refused = latest_snapshot(conn, app_cipher(request.app), facility_id, camera_id, alarm_id), False
            except SnapshotUnreadable as exc:
                raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=str(exc)) from None
            record_audit(conn, at=now, actor=who.user, role=who.role.value, action="snapshot.read", target=target,
                         detail={"alarm_id": str(alarm_id) if alarm_id else None, "found": found is not None,
                                 "envelope": found.envelope_id if found else None})
    if refused:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"the police read a snapshot of {facility_id!r} only while it has an active alarm")
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no snapshot of camera {camera_id!r} in {facility_id!r}")
    return Response(found.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store",
                                                                 "X-Snapshot-Time": iso_utc(found.ts)})
