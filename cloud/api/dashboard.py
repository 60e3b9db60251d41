"""Routes under /api/dashboard: what the police, facility and supervision pages show, read by
cloud/status/reports.py."""

from __future__ import annotations

import re
from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from cloud.api.auth import Principal, forbid_other_facility, forbid_outside_scope, require_role
from cloud.api.common import Cursor, Limit, field_error, transaction
from cloud.api.facilities import FacilityPath
from cloud.config import Role
from cloud.ingest.dead_letters import dead_letter_counts
from cloud.status.reports import (
    FacilityStatus,
    Place,
    OverviewCache,
    PoliceCard,
    PolicePaths,
    SupervisionOverview,
    facility_status,
    places,
    police_card,
    police_paths_page,
    supervision_overview,
)
from cloud.store.paging import Page
from contracts.ids import DEVICE_ID_RE, FACILITY_ID_RE
from contracts.timefmt import utcnow

router = APIRouter(prefix="/api/dashboard", tags=["dashboard"])


@router.get("/police-paths", response_model=Page[PolicePaths])
def police_paths(request: Request,
                 who: Annotated[Principal, Depends(require_role(Role.POLICE, Role.SUPERVISOR, Role.ADMIN))],
                 limit: Limit = 50, cursor: Cursor = None,
                 city: Annotated[Optional[str], Query(max_length=32)] = None,
                 district: Annotated[Optional[str], Query(max_length=32)] = None) -> Page[PolicePaths]:
    """Each facility's DC-09 paths as its gateway last reported them, with its open
    police_link_down alarms; a page of facilities by facility_id."""
    with transaction(request) as conn:
        return police_paths_page(conn, limit, cursor, city, district, within=who.within)


class Me(BaseModel):
    user: str
    role: Role
    facility_id: Optional[str] = None


@router.get("/me", response_model=Me)
def me(who: Annotated[Principal, Depends(require_role(*Role))]) -> Me:
    """Who the token belongs to: the pages name the officer or inspector signed in."""
    return Me(user=who.user, role=who.role, facility_id=who.facility_id)


MAX_PLACES = 100


@router.get("/places", response_model=dict[str, Place])
def get_places(request: Request,
               who: Annotated[Principal, Depends(require_role(*Role))],
               facility: Annotated[list[str], Query(max_length=MAX_PLACES)] = []) -> dict[str, Place]:
    """Names, address, phone and time zone of the facilities an alarm pushed live names, with the
    names of their zones, devices and cameras. A facility token reads its own facility only."""
    for fid in facility:
        if not re.fullmatch(FACILITY_ID_RE, fid):
            raise field_error("query", "facility", f"{fid[:40]!r} is not a facility id")
        forbid_other_facility(who, fid)
    with transaction(request) as conn:
        return places(conn, facility)


@router.get("/police-card/{facility_id}", response_model=PoliceCard)
def get_police_card(request: Request, facility_id: FacilityPath,
                    who: Annotated[Principal, Depends(require_role(Role.POLICE, Role.ADMIN))],
                    zone: Annotated[Optional[str], Query(pattern=DEVICE_ID_RE)] = None) -> PoliceCard:
    """What the facility card needs beyond GET /api/facilities/{id}, which the police may not
    read elsewhere: the guards, and which cameras look at the alarm's zone."""
    forbid_outside_scope(request, who, facility_id)
    with transaction(request) as conn:
        return police_card(conn, facility_id, zone)


@router.get("/facility/{facility_id}", response_model=FacilityStatus)
def get_facility_status(request: Request, facility_id: FacilityPath,
                        who: Annotated[Principal, Depends(require_role(Role.FACILITY, Role.SUPERVISOR, Role.ADMIN))]
                        ) -> FacilityStatus:
    forbid_outside_scope(request, who, facility_id)
    with transaction(request) as conn:
        return facility_status(conn, facility_id)


@router.get("/supervision", response_model=SupervisionOverview)
def supervision(request: Request,
                who: Annotated[Principal, Depends(require_role(Role.SUPERVISOR, Role.ADMIN))],
                city: Annotated[Optional[str], Query(max_length=32)] = None,
                fresh: Annotated[bool, Query(description="recompute now instead of a copy up to 10 s old")] = False
                ) -> SupervisionOverview:
    """Compliance counts per district (drill down with GET /api/compliance?district=), cameras
    online, retention compliance and response times."""
    cache = getattr(request.app.state, "supervision_cache", None)
    if cache is None:
        cache = request.app.state.supervision_cache = OverviewCache()
    key = (city, who.within)
    if not fresh and (hit := cache.get(key)) is not None:
        return hit
    with transaction(request) as conn:
        overview = supervision_overview(conn, utcnow(), city, within=who.within)
    cache.put(key, overview)
    return overview


class DeadLetterCount(BaseModel):
    facility: str = Field(description="the facility its topic names; '' for a topic naming none")
    dead_letters: int


@router.get("/dead-letters", response_model=list[DeadLetterCount])
def dead_letters(request: Request, who: Annotated[Principal, Depends(require_role(Role.SUPERVISOR, Role.ADMIN))],
                 limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[DeadLetterCount]:
    """Messages ingest refused for good (kept as dead letters), per facility, most first: a
    gateway sending poison is found here."""
    with transaction(request) as conn:
        counts = dead_letter_counts(conn, within=who.within, limit=limit)
    return [DeadLetterCount(facility=f, dead_letters=n) for f, n in counts]

