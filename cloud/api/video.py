"""The scene of an alarm: its clips (GET /api/alarms/{id}/clips, GET /api/clips/{id}) and the live
view of a camera (GET /api/facilities/{f}/cameras/{c}/live). Police see a facility's video
only while it has an alarm for them; a facility sees its own cameras; nobody else sees video.
Every read of a clip and every live view (who, which camera, from when to when) is audited."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta
from typing import Annotated, AsyncIterator
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from fastapi.responses import StreamingResponse

from cloud.alarms.records import active_alarm_kinds, get_alarm, record_audit
from cloud.api.auth import Principal, check_in_scope, forbid_outside_scope, require_role
from cloud.api.common import transaction
from cloud.api.facilities import FacilityPath
from cloud.care.privacy import PrivacyError, app_cipher
from cloud.config import Role
from cloud.registry.records import require_camera
from cloud.video.clips import ClipInfo, clips_of_alarm, get_clip, read_clip_bytes
from cloud.video.live import LiveHub
from contracts.dc09_codes import POLICE_KINDS
from contracts.ids import DEVICE_ID_RE
from contracts.timefmt import iso_utc, utcnow

router = APIRouter(tags=["video"])
VIEWERS = (Role.POLICE, Role.FACILITY)
# A live view ends after this long; the page opens a new one if the viewer is still there.
MAX_VIEW = timedelta(minutes=10)
KEEPALIVE_S = 5.0


def _audit(conn, who: Principal, action: str, target: str, **detail) -> None:
    record_audit(conn, at=utcnow(), actor=who.user, role=who.role.value, action=action, target=target, detail=detail)


def require_scene_access(conn, who: Principal, facility_id: str) -> None:
    """A facility sees its own video; the police only while the facility has an active police alarm."""
    check_in_scope(conn, who, facility_id)
    if who.role is Role.POLICE and not active_police_alarm(conn, facility_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"facility {facility_id!r} has no active alarm: its video is not for the police now")


def active_police_alarm(conn, facility_id: str) -> bool:
    return bool(active_alarm_kinds(conn, facility_id) & POLICE_KINDS)


@router.get("/api/alarms/{alarm_id}/clips", response_model=list[ClipInfo])
def list_alarm_clips(request: Request, alarm_id: UUID,
                     who: Annotated[Principal, Depends(require_role(*VIEWERS))]) -> list[ClipInfo]:
    """The clips of the alarm's zone cameras, as far as they have arrived."""
    rec = get_alarm(request.app.state.engine, alarm_id)
    if rec is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no alarm {alarm_id}")
    forbid_outside_scope(request, who, rec.facility)
    with transaction(request) as conn:
        return clips_of_alarm(conn, alarm_id)


@router.get("/api/clips/{clip_id}", response_class=Response,
            responses={200: {"content": {"video/mp4": {}}, "description": "the clip (MP4)"},
                       206: {"description": "part of the clip (Range)"},
                       404: {"description": "no such clip, or not complete yet"}})
def read_clip(request: Request, clip_id: UUID,
              who: Annotated[Principal, Depends(require_role(*VIEWERS))]) -> Response:
    """The whole clip, or the byte range asked for; audited."""
    with transaction(request) as conn:
        info = get_clip(conn, clip_id)
        if info is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no clip {clip_id}")
        check_in_scope(conn, who, info.facility)
        if not info.complete or info.corrupt or info.size == 0:
            raise HTTPException(status.HTTP_404_NOT_FOUND,
                                detail=f"clip {clip_id} has {info.received} of {info.chunks} chunks"
                                       + (" and does not match its hash" if info.corrupt else ""))
        try:
            data = read_clip_bytes(conn, app_cipher(request.app), str(clip_id), info.chunks)
        except PrivacyError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
        _audit(conn, who, "clip.read", f"{info.facility}/{info.camera_id}", clip_id=str(clip_id),
               alarm_id=str(info.alarm_id))
    headers = {"Cache-Control": "no-store", "Accept-Ranges": "bytes", "X-Clip-Start": iso_utc(info.start)}
    rng = request.headers.get("range", "")
    if rng.startswith("bytes="):
        first, _, last = rng[6:].partition("-")
        try:
            lo = int(first) if first else max(0, len(data) - int(last))
            hi = min(int(last), len(data) - 1) if first and last else len(data) - 1
        except ValueError:
            lo, hi = 0, -1
        if not 0 <= lo <= hi:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{len(data)}"})
        return Response(data[lo:hi + 1], status_code=206, media_type="video/mp4",
                        headers={**headers, "Content-Range": f"bytes {lo}-{hi}/{len(data)}"})
    return Response(data, media_type="video/mp4", headers=headers)


@router.get("/api/facilities/{facility_id}/cameras/{camera_id}/live", response_class=StreamingResponse,
            responses={200: {"content": {"application/x-ndjson": {}},
                             "description": "one JSON line per frame: {seq, ts, received_at, jpeg_b64}; "
                                            "a line {keepalive: true} every 5 s without frames"},
                       503: {"description": "live view is not running on this cloud"}})
async def live_view(request: Request, facility_id: FacilityPath,
                    camera_id: Annotated[str, Path(pattern=DEVICE_ID_RE)],
                    who: Annotated[Principal, Depends(require_role(*VIEWERS))]) -> StreamingResponse:
    """The camera live, while the client reads (at most 10 minutes per request); audited from open to close."""
    hub: LiveHub | None = request.app.state.live_hub
    if hub is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="live view is not running on this cloud")
    with transaction(request) as conn:
        require_scene_access(conn, who, facility_id)
        require_camera(conn, facility_id, camera_id)
    viewer = hub.watch(facility_id, camera_id)
    target = f"{facility_id}/{camera_id}"

    async def frames() -> AsyncIterator[bytes]:
        ends = viewer.opened_at + MAX_VIEW
        try:
            while utcnow() < ends and not await request.is_disconnected():
                try:
                    frame, arrived = await asyncio.wait_for(viewer.frames.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    yield b'{"keepalive":true}\n'
                    continue
                viewer.sent += 1
                yield orjson.dumps({"seq": frame.seq, "ts": iso_utc(frame.ts), "received_at": iso_utc(arrived),
                                    "jpeg_b64": base64.b64encode(frame.jpeg).decode("ascii")}) + b"\n"
        finally:
            hub.unwatch(viewer)
            with transaction(request) as conn:
                _audit(conn, who, "live.view", target, opened_at=iso_utc(viewer.opened_at),
                       closed_at=iso_utc(utcnow()), frames=viewer.sent)

    with transaction(request) as conn:
        _audit(conn, who, "live.open", target, opened_at=iso_utc(viewer.opened_at))
    return StreamingResponse(frames(), media_type="application/x-ndjson", headers={"Cache-Control": "no-store"})
