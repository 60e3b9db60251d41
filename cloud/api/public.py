"""Public disclosure (公示) under /api/public: no token, read-only, from the public read model
only (cloud.supervision.disclosure), as JSON pages and CSV."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cloud.api.common import Cursor, transaction
from cloud.store.paging import Page
from cloud.supervision.disclosure import (
    PublicEvent,
    PublicFacility,
    PublicStatus,
    events_csv,
    facilities_csv,
    list_public_events,
    list_public_facilities,
)

router = APIRouter(prefix="/api/public", tags=["public"])
PublicLimit = Annotated[int, Query(ge=1, le=200, description="most items in one page")]
CSV_MAX_ROWS = 20_000  # a whole city's filings; the CSV is built in pages of 500
_CSV = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "CSV (UTF-8 with BOM)"}}
Text = Annotated[Optional[str], Query(max_length=32)]


def _csv(text: str, name: str) -> Response:
    # The BOM lets spreadsheet programs read the Chinese as UTF-8.
    return Response("\ufeff" + text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "max-age=60"})


def _all(fetch) -> list:
    items, cursor = [], None
    while len(items) < CSV_MAX_ROWS:
        page, cursor = fetch(500, cursor)
        items += page
        if cursor is None:
            break
    return items[:CSV_MAX_ROWS]


@router.get("/facilities", response_model=Page[PublicFacility])
def get_facilities(request: Request, limit: PublicLimit = 50, cursor: Cursor = None, city: Text = None,
                   district: Text = None, status: Optional[PublicStatus] = None) -> Page[PublicFacility]:
    """Filed, changed and closed facilities: dates, 回执 number, address, service types, places per
    class type, 普惠 status, fee standard, licence validity."""
    with transaction(request) as conn:
        items, nxt = list_public_facilities(conn, city=city, district=district, status=status, limit=limit,
                                            cursor=cursor)
    return Page[PublicFacility](items=items, next_cursor=nxt)


@router.get("/facilities.csv", response_class=Response, responses=_CSV)
def get_facilities_csv(request: Request, city: Text = None, district: Text = None,
                       status: Optional[PublicStatus] = None) -> Response:
    with transaction(request) as conn:
        items = _all(lambda n, c: list_public_facilities(conn, city=city, district=district, status=status,
                                                         limit=n, cursor=c))
    return _csv(facilities_csv(items), "filed-facilities.csv")


@router.get("/events", response_model=Page[PublicEvent])
def get_events(request: Request, limit: PublicLimit = 50, cursor: Cursor = None,
               since: Optional[date] = None) -> Page[PublicEvent]:
    """Filings, changes and closures in the order they were accepted."""
    with transaction(request) as conn:
        items, nxt = list_public_events(conn, since=since, limit=limit, cursor=cursor)
    return Page[PublicEvent](items=items, next_cursor=nxt)


@router.get("/events.csv", response_class=Response, responses=_CSV)
def get_events_csv(request: Request, since: Optional[date] = None) -> Response:
    with transaction(request) as conn:
        items = _all(lambda n, c: list_public_events(conn, since=since, limit=n, cursor=c))
    return _csv(events_csv(items), "filing-events.csv")
