"""The police API: the alarm list, a live stream of alarm updates, and acknowledgement."""

from __future__ import annotations

import asyncio
from typing import Annotated, AsyncIterator, Optional
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from cloud.alarms import AlarmRecord, UtcTime, acknowledge, decode_cursor, encode_cursor, list_alarms
from cloud.auth import Principal, require_role
from cloud.config import Role
from cloud.events_bus import CLOSED, LAGGED
from contracts.alarms import AlarmKind, AlarmState
from contracts.envelope import make_envelope
from contracts.ids import FACILITY_ID_RE
from contracts.timefmt import utcnow
from contracts.topics import DownKind

router = APIRouter(prefix="/api/alarms", tags=["police"])

POLICE_ROLES = (Role.POLICE, Role.ADMIN)
# A comment line this often keeps proxies from closing an idle stream and reveals dead clients.
SSE_KEEPALIVE_S = 15.0


class AlarmPage(BaseModel):
    items: list[AlarmRecord]
    next_before: Optional[str] = None


class AckResult(BaseModel):
    alarm: AlarmRecord
    first_ack: bool
    published: bool
    acked_at: UtcTime
    acked_by: str


@router.get("", response_model=AlarmPage)
def get_alarm_list(
    request: Request,
    _who: Annotated[Principal, Depends(require_role(*POLICE_ROLES))],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[Optional[str], Query(description="next_before of the previous page")] = None,
    kind: Optional[AlarmKind] = None,
    facility: Annotated[Optional[str], Query(pattern=FACILITY_ID_RE)] = None,
    state: Optional[AlarmState] = None,
) -> AlarmPage:
    cursor = None
    if before is not None:
        try:
            cursor = decode_cursor(before)
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                detail=[{"loc": ["query", "before"], "msg": str(exc), "type": "value_error"}])
    items = list_alarms(request.app.state.engine, limit=limit, before=cursor, kind=kind, facility=facility,
                        state=state)
    return AlarmPage(items=items, next_before=encode_cursor(items[-1]) if len(items) == limit else None)


@router.get("/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`event: alarm` with an AlarmRecord as JSON per new or changed alarm; "
                                            "`event: resync` when the client fell behind and should refetch the list"}})
async def stream_alarms(
    request: Request,
    _who: Annotated[Principal, Depends(require_role(*POLICE_ROLES, allow_query_token=True))],
) -> StreamingResponse:
    bus = request.app.state.bus
    sub = bus.subscribe()

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(sub.get(), SSE_KEEPALIVE_S)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keepalive\n\n"
                    continue
                if item is CLOSED:
                    return
                if item is LAGGED:
                    yield "event: resync\ndata: {}\n\n"
                    continue
                yield f"event: alarm\ndata: {item.model_dump_json()}\n\n"
        finally:
            bus.unsubscribe(sub)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.post("/{alarm_id}/ack", response_model=AckResult)
def ack_alarm(
    request: Request,
    alarm_id: UUID,
    who: Annotated[Principal, Depends(require_role(*POLICE_ROLES))],
) -> AckResult:
    """Record the operator's acknowledgement (the first one stands), audit it, and tell the
    facility's gateway with an `ack.alarm` envelope on `down/ack`."""
    state = request.app.state
    found = acknowledge(state.engine, alarm_id, user=who.user, role=who.role.value, now=utcnow())
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no alarm {alarm_id}")
    rec, first = found
    published = False
    if first:
        env = make_envelope(rec.facility, "ack.alarm", {
            "alarm_id": str(rec.alarm_id), "acked_by": rec.acked_by,
            "acked_at": rec.model_dump(mode="json")["acked_at"]}, source="cloud")
        published = state.downlink.publish(env, DownKind.ACK) if state.downlink is not None else False
        state.bus.publish(rec)
    return AckResult(alarm=rec, first_ack=first, published=published, acked_at=rec.acked_at, acked_by=rec.acked_by)
