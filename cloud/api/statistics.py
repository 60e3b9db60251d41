"""Capacity statistics per district (托位 per 1,000 residents, 普惠 share, occupancy) and the
district populations supervisors enter."""

from __future__ import annotations

from typing import Annotated, Optional

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from cloud.alarms.records import record_audit
from cloud.api.auth import Principal, forbid_outside_jurisdiction, require_role
from cloud.api.common import field_error, transaction
from cloud.config import Role
from cloud.registry.statistics import DistrictPopulation, PlacesItem, PopulationIn, places_by_district, set_population
from contracts.timefmt import utcnow

router = APIRouter(prefix="/api/statistics", tags=["statistics"])


class PlacesList(BaseModel):
    items: list[PlacesItem]


@router.put("/districts/{district_path:path}", response_model=DistrictPopulation)
def put_population(request: Request, district_path: Annotated[str, Path(max_length=100,
                                                                        description="province/city/district")],
                   body: PopulationIn,
                   who: Annotated[Principal, Depends(require_role(Role.SUPERVISOR, Role.ADMIN))]) -> DistrictPopulation:
    """Set a district's resident population (常住人口) and the year it counts for."""
    forbid_outside_jurisdiction(who, district_path)
    now = utcnow()
    try:
        with transaction(request) as conn:
            result = set_population(conn, district_path, body, user=who.user, now=now)
            record_audit(conn, at=now, actor=who.user, role=who.role.value, action="statistics.population",
                         target=result.district, detail=body.model_dump())
            return result
    except ValueError as exc:
        raise field_error("path", "district_path", str(exc)) from None


@router.get("/places", response_model=PlacesList)
def list_places(request: Request,
                who: Annotated[Principal, Depends(require_role(Role.SUPERVISOR, Role.ADMIN, Role.HEALTH))],
                city: Annotated[Optional[str], Query(max_length=32)] = None) -> PlacesList:
    """Per district: places, places per 1,000 residents against the profile's target, 普惠 share, occupancy."""
    with transaction(request) as conn:
        return PlacesList(items=places_by_district(conn, city=city, within=who.within))
