"""The alarm API: the list, a live stream of alarm updates and escalations, and the police
workflow (acknowledge, dispatch, resolve with outcome), each alarm's history and the response
times per district."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated, AsyncIterator, Optional
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, Field

from cloud.alarms.events_bus import CLOSED, LAGGED
from cloud.alarms.lifecycle import (
    EscalationNotice,
    Outcome,
    ResponseTimes,
    UnknownAlarm,
    WorkflowConflict,
    dispatch,
    resolve,
    response_times,
)
from cloud.alarms.records import (
    AlarmEvent,
    AlarmRecord,
    Escalation,
    UtcTime,
    acknowledge,
    alarm_cursor,
    alarm_history,
    decode_alarm_cursor,
    get_alarm,
    list_alarms,
    list_escalations_page,
)
from cloud.api.auth import Principal, forbid_outside_scope, require_role, scope_facility
from cloud.api.common import Cursor, Limit, field_error
from cloud.config import Role
from cloud.registry.jurisdiction import facility_visible
from cloud.status.reports import Place, places
from cloud.store.paging import BadCursor, Page
from contracts.alarms import HEALTH_KINDS, AlarmKind, AlarmState
from contracts.envelope import AlarmAckBody, DownType, make_envelope
from contracts.ids import FACILITY_ID_RE
from contracts.timefmt import utcnow
from contracts.topics import DownKind

router = APIRouter(prefix="/api/alarms", tags=["police"])

POLICE_ROLES = (Role.POLICE, Role.ADMIN)


def hidden_kinds(who: Principal) -> frozenset[AlarmKind]:
    """The police board shows security alarms; climate and infectious disease are the health role's."""
    return HEALTH_KINDS if who.role is Role.POLICE else frozenset()
# Supervisors read everything; a facility reads its own alarms. Only the police act on them.
READERS = (Role.POLICE, Role.ADMIN, Role.SUPERVISOR, Role.FACILITY)
# Response times are computed from every alarm of the span in memory: a year at most.
MAX_RESPONSE_SPAN = timedelta(days=366)
STREAM_READERS = (Role.POLICE, Role.ADMIN, Role.SUPERVISOR)
# A comment line this often keeps proxies from closing an idle stream and reveals dead clients.
SSE_KEEPALIVE_S = 15.0


class AlarmPage(BaseModel):
    items: list[AlarmRecord]
    next_before: Optional[str] = None
    places: dict[str, Place] = Field(default_factory=dict,
                                     description="facility id -> its name, address, phone and zone names, for the items")


class AckResult(BaseModel):
    alarm: AlarmRecord
    first_ack: bool
    published: bool
    acked_at: UtcTime
    acked_by: str


class DispatchRequest(BaseModel):
    note: Optional[str] = Field(default=None, max_length=500, description="who or what was sent (unit, car, officer)")


class ResolveRequest(BaseModel):
    outcome: Outcome = Field(description="real: an emergency; false: a false alarm; test: a drill (test alarms only)")
    note: Optional[str] = Field(default=None, max_length=500)


@router.get("", response_model=AlarmPage)
def get_alarm_list(
    request: Request,
    who: Annotated[Principal, Depends(require_role(*READERS))],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[Optional[str], Query(description="next_before of the previous page")] = None,
    kind: Optional[AlarmKind] = None,
    facility: Annotated[Optional[str], Query(pattern=FACILITY_ID_RE)] = None,
    state: Optional[AlarmState] = None,
    city: Annotated[Optional[str], Query(max_length=32)] = None,
    district: Annotated[Optional[str], Query(max_length=32)] = None,
    acked: Optional[bool] = None,
) -> AlarmPage:
    cursor = None
    if before is not None:
        try:
            cursor = decode_alarm_cursor(before)
        except BadCursor as exc:
            raise field_error("query", "before", str(exc)) from None
    # One connection (one checkout, one snapshot) for the page and the places it names.
    with request.app.state.engine.connect() as conn:
        items = list_alarms(conn, limit=limit, before=cursor, kind=kind, facility=scope_facility(who, facility),
                            state=state, city=city, district=district, acked=acked,
                            exclude_kinds=hidden_kinds(who), within=who.within)
        found = places(conn, [a.facility for a in items])
    return AlarmPage(items=items, next_before=alarm_cursor(items[-1]) if len(items) == limit else None, places=found)


@router.get("/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`event: alarm` with an AlarmRecord as JSON per new or changed alarm; "
                                            "`event: escalation` with an EscalationNotice when an unacknowledged "
                                            "panic escalates to supervisors or is re-notified; "
                                            "`event: resync` when the client fell behind and should refetch the list"}})
async def stream_alarms(
    request: Request,
    who: Annotated[Principal, Depends(require_role(*STREAM_READERS, allow_ticket=True))],
) -> StreamingResponse:
    bus = request.app.state.bus
    engine = request.app.state.engine
    tokens = request.app.state.tokens
    sub = bus.subscribe()
    hidden = {k.value for k in hidden_kinds(who)}
    inside: dict[str, bool] = {}  # facility -> under the caller's jurisdiction, asked once per stream

    async def visible(facility: str) -> bool:
        if not who.within:
            return True
        if facility not in inside:
            inside[facility] = await asyncio.to_thread(facility_visible, engine, facility, who.within)
        return inside[facility]

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(sub.get(), SSE_KEEPALIVE_S)
                except asyncio.TimeoutError:
                    if await request.is_disconnected() or not tokens.is_live(who):
                        return
                    yield ": keepalive\n\n"
                    continue
                if item is CLOSED or not tokens.is_live(who):
                    return  # closing, or the token was revoked or expired meanwhile
                if item is LAGGED:
                    yield "event: resync\ndata: {}\n\n"
                    continue
                if isinstance(item, AlarmRecord) and item.kind in hidden:
                    continue
                if isinstance(item, (AlarmRecord, EscalationNotice)) and not await visible(item.facility):
                    continue
                name = "escalation" if isinstance(item, EscalationNotice) else "alarm"
                yield f"event: {name}\ndata: {item.model_dump_json()}\n\n"
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
    _alarm_in_scope(request, who, alarm_id)
    found = acknowledge(state.engine, alarm_id, user=who.user, role=who.role.value, now=utcnow())
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no alarm {alarm_id}")
    rec, first = found
    published = False
    if first:
        body = AlarmAckBody(alarm_id=rec.alarm_id, acked_by=rec.acked_by, acked_at=rec.acked_at)
        env = make_envelope(rec.facility, DownType.ACK_ALARM.value, body.model_dump(mode="json"), source="cloud")
        published = state.downlink.publish(env, DownKind.ACK) if state.downlink is not None else False
        state.bus.publish(rec)
    return AckResult(alarm=rec, first_ack=first, published=published, acked_at=rec.acked_at, acked_by=rec.acked_by)


def _workflow_error(exc: Exception) -> HTTPException:
    if isinstance(exc, UnknownAlarm):
        return HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc))
    return HTTPException(status.HTTP_409_CONFLICT, detail=str(exc))


@router.post("/{alarm_id}/dispatch", response_model=AlarmRecord,
             responses={409: {"description": "a test alarm, not acknowledged yet, already dispatched or resolved"}})
def dispatch_alarm(request: Request, alarm_id: UUID,
                   who: Annotated[Principal, Depends(require_role(*POLICE_ROLES))],
                   body: Optional[DispatchRequest] = None) -> AlarmRecord:
    state = request.app.state
    _alarm_in_scope(request, who, alarm_id)
    note = (body.note or "").strip() or None if body is not None else None
    try:
        with state.engine.begin() as conn:
            rec = dispatch(conn, alarm_id, user=who.user, role=who.role.value, now=utcnow(), note=note)
    except (UnknownAlarm, WorkflowConflict) as exc:
        raise _workflow_error(exc) from None
    state.bus.publish(rec)
    return rec


@router.post("/{alarm_id}/resolve", response_model=AlarmRecord,
             responses={409: {"description": "outcome does not fit the alarm, not acknowledged, or already resolved"}})
def resolve_alarm(request: Request, alarm_id: UUID, body: ResolveRequest,
                  who: Annotated[Principal, Depends(require_role(*POLICE_ROLES))]) -> AlarmRecord:
    state = request.app.state
    _alarm_in_scope(request, who, alarm_id)
    try:
        with state.engine.begin() as conn:
            rec = resolve(conn, alarm_id, body.outcome, user=who.user, role=who.role.value, now=utcnow(),
                          note=(body.note or "").strip() or None)
    except (UnknownAlarm, WorkflowConflict) as exc:
        raise _workflow_error(exc) from None
    state.bus.publish(rec)
    return rec


@router.get("/response-times", response_model=list[ResponseTimes])
def get_response_times(
    request: Request,
    who: Annotated[Principal, Depends(require_role(Role.POLICE, Role.SUPERVISOR, Role.ADMIN))],
    since: Annotated[Optional[AwareDatetime], Query(description="raised at or after; default 30 days ago")] = None,
    until: Annotated[Optional[AwareDatetime], Query(description="raised before; default now")] = None,
    city: Annotated[Optional[str], Query(max_length=32)] = None,
    kind: Optional[AlarmKind] = None,
) -> list[ResponseTimes]:
    """Raise to acknowledgement and raise to dispatch, per district (drills excluded)."""
    until = until or utcnow()
    since = since or until - timedelta(days=30)
    if until - since > MAX_RESPONSE_SPAN:
        raise field_error("query", "since", f"the span may be at most {MAX_RESPONSE_SPAN.days} days")
    with request.app.state.engine.connect() as conn:
        return response_times(conn, since=since, until=until, city=city, kinds=[kind] if kind else None,
                              within=who.within)


@router.get("/escalations", response_model=Page[Escalation])
def get_escalations(request: Request,
                     who: Annotated[Principal, Depends(require_role(*READERS))],
                     limit: Limit = 50, cursor: Cursor = None,
                     facility: Annotated[Optional[str], Query(pattern=FACILITY_ID_RE)] = None) -> Page[Escalation]:
    with request.app.state.engine.connect() as conn:
        return list_escalations_page(conn, limit=limit, cursor=cursor, facility=scope_facility(who, facility),
                                     within=who.within)


def _alarm_in_scope(request: Request, who: Principal, alarm_id: UUID) -> AlarmRecord:
    """The alarm, if `who` may see its facility: else 404 or 403."""
    rec = get_alarm(request.app.state.engine, alarm_id)
    if rec is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no alarm {alarm_id}")
    forbid_outside_scope(request, who, rec.facility)
    return rec


@router.get("/{alarm_id}", response_model=AlarmRecord)
def read_alarm(request: Request, alarm_id: UUID,
               who: Annotated[Principal, Depends(require_role(*READERS))]) -> AlarmRecord:
    return _alarm_in_scope(request, who, alarm_id)


@router.get("/{alarm_id}/events", response_model=list[AlarmEvent])
def read_alarm_events(request: Request, alarm_id: UUID,
                      who: Annotated[Principal, Depends(require_role(*READERS))]) -> list[AlarmEvent]:
    """Every step of the alarm in order of its time at origin."""
    _alarm_in_scope(request, who, alarm_id)
    with request.app.state.engine.connect() as conn:
        return alarm_history(conn, alarm_id)
