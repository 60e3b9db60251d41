"""Notices under /api/notices: what the supervision loop told the caller's role within its
jurisdiction (hazards and incidents to health and police, overdue rectifications to supervisors),
listed and streamed (Server-Sent Events)."""

from __future__ import annotations

import asyncio
from typing import Annotated, AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from cloud.alarms.events_bus import CLOSED, LAGGED
from cloud.api.auth import Principal, require_role
from cloud.api.common import Cursor, Limit, transaction
from cloud.api.scope import AUTHORITIES
from cloud.config import Role
from cloud.store.paging import Page
from cloud.supervision.notices import Notice, list_notices

router = APIRouter(prefix="/api/notices", tags=["supervision"])
KEEPALIVE_S = 15.0


def _for(who: Principal, notice: Notice) -> bool:
    return ((who.role is Role.ADMIN or notice.role == who.role.value)
            and who.covers(notice.province, notice.city, notice.district))


@router.get("", response_model=Page[Notice])
def get_notices(request: Request, who: Annotated[Principal, Depends(require_role(*AUTHORITIES))],
                limit: Limit = 50, cursor: Cursor = None) -> Page[Notice]:
    """Newest first: the notices to the caller's role (an administrator: every role's)."""
    with transaction(request) as conn:
        items, nxt = list_notices(conn, role=None if who.role is Role.ADMIN else who.role.value,
                                  jurisdiction=who.jurisdiction, limit=limit, cursor=cursor)
    return Page[Notice](items=items, next_cursor=nxt)


@router.get("/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`event: notice` with a Notice per new notice to the caller's role "
                                            "within its jurisdiction; `event: resync` when the client fell behind"}})
async def stream_notices(request: Request,
                         who: Annotated[Principal, Depends(require_role(*AUTHORITIES, allow_ticket=True))]
                         ) -> StreamingResponse:
    bus = request.app.state.notice_bus
    sub = bus.subscribe()

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 2000\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(sub.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keepalive\n\n"
                    continue
                if item is CLOSED:
                    return
                if item is LAGGED:
                    yield "event: resync\ndata: {}\n\n"
                elif isinstance(item, Notice) and _for(who, item):
                    yield f"event: notice\ndata: {item.model_dump_json()}\n\n"
        finally:
            bus.unsubscribe(sub)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
