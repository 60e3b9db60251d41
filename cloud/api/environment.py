"""Room climate under /api/environment: each climate sensor against GB/T 18883, and its series."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Annotated, Iterator, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from cloud.api.auth import Principal, forbid_outside_scope, require_role, scope_facility
from cloud.api.common import Problem, aware, field_error, transaction
from cloud.care.health_rules import ClimateMetric
from cloud.care.health_runner import climate_states
from cloud.care.reports import SeriesPoint, climate_series
from cloud.config import Role
from cloud.store.telemetry import TelemetryReadError
from contracts.ids import DEVICE_ID_RE, FACILITY_ID_RE
from contracts.timefmt import utcnow

router = APIRouter(tags=["environment"])
READERS = (Role.HEALTH, Role.SUPERVISOR, Role.ADMIN, Role.FACILITY)
FacilityQuery = Annotated[Optional[str], Query(pattern=FACILITY_ID_RE)]
MAX_SERIES_POINTS = 5000
MAX_ROOMS_SPAN = timedelta(days=366)


class RoomItem(BaseModel):
    facility: str
    zone: Optional[str]
    device_id: str
    metric: str
    latest: float
    latest_ts: datetime
    limit_low: Optional[float]
    limit_high: Optional[float]
    in_range: bool
    breach_since: Optional[datetime]
    sustained: bool = Field(description="out of range for at least the profile's duration (raises sensor_range)")


class RoomList(BaseModel):
    items: list[RoomItem]


class Series(BaseModel):
    facility: str
    device_id: str
    metric: str
    step_s: int
    points: list[SeriesPoint]


TELEMETRY_DOWN = {503: {"model": Problem, "description": "the telemetry store did not answer"}}


# --- room climate -----------------------------------------------------------------------------
@router.get("/api/environment/rooms", response_model=RoomList, responses=TELEMETRY_DOWN)
def list_rooms(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))],
               facility: FacilityQuery = None, since: Optional[datetime] = None) -> RoomList:
    """Each climate sensor's latest reading against GB/T 18883, and since when it is out of range."""
    now = utcnow()
    since = aware(since, "since")
    if since is not None and since > now:
        raise field_error("query", "since", "is in the future")
    if since is not None and now - since > MAX_ROOMS_SPAN:
        # Every reading since then is read to judge a breach: bounded like a series.
        raise field_error("query", "since", f"at most {MAX_ROOMS_SPAN.days} days ago")
    with transaction(request) as conn, _telemetry_errors():
        states = climate_states(conn, request.app.state.telemetry, now, since=since,
                                facility=scope_facility(who, facility), within=who.within)
    return RoomList(items=[RoomItem(facility=s.facility, zone=s.zone, device_id=s.device_id, metric=s.metric,
                                    latest=st.latest, latest_ts=st.latest_ts, limit_low=st.limit_low,
                                    limit_high=st.limit_high, in_range=st.in_range, breach_since=st.breach_since,
                                    sustained=st.sustained) for s, st in states])


@router.get("/api/environment/series", response_model=Series, responses=TELEMETRY_DOWN)
def read_series(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))],
                facility: Annotated[str, Query(pattern=FACILITY_ID_RE)],
                device_id: Annotated[str, Query(pattern=DEVICE_ID_RE)], metric: ClimateMetric,
                since: Optional[datetime] = None, until: Optional[datetime] = None,
                step_s: Annotated[int, Query(ge=10, le=86400)] = 300) -> Series:
    """One sensor's metric averaged per `step_s` between `since` (default: 24 h ago) and `until` (default: now)."""
    forbid_outside_scope(request, who, facility)
    until = aware(until, "until") or utcnow()
    since = aware(since, "since") or until - timedelta(days=1)
    if since >= until:
        raise field_error("query", "since", "must be before until")
    if (until - since).total_seconds() / step_s > MAX_SERIES_POINTS:
        raise field_error("query", "step_s", f"too small for the span: at most {MAX_SERIES_POINTS} points")
    with transaction(request) as conn, _telemetry_errors():
        points = climate_series(conn, request.app.state.telemetry, facility, device_id, metric.value, since, until,
                                step_s)
    return Series(facility=facility, device_id=device_id, metric=metric.value, step_s=step_s, points=points)


@contextmanager
def _telemetry_errors() -> Iterator[None]:
    try:
        yield
    except TelemetryReadError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc)) from None
