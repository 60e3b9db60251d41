"""Capacity statistics per district: places (托位) per 1,000 residents against the profile's
targets, the share of 普惠 places, and occupancy. Populations are data the supervisor enters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, Integer, String, Table, delete, func, select
from sqlalchemy.engine import Connection

from cloud.registry.jurisdiction import EVERYWHERE, Jurisdiction, path_clause
from cloud.compliance.profiles import Requirement, profile_for
from cloud.registry.records import FacilityKind, FilingStatus
from cloud.store.db import UTCDateTime, classes, facilities, metadata

district_population = Table(
    "district_population", metadata,
    Column("province", String(32), primary_key=True),
    Column("city", String(32), primary_key=True),
    Column("district", String(32), primary_key=True),
    Column("year", Integer, nullable=False),
    Column("population", Integer, nullable=False, doc="resident population (常住人口)"),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(64), nullable=False),
)

# 公办 places count as 普惠 as well as those of 普惠性 private facilities (国办发〔2019〕15号).
PUHUI_KINDS = (FacilityKind.PUBLIC.value, FacilityKind.INCLUSIVE.value)


class PopulationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    population: Annotated[int, Field(ge=1, le=100_000_000)]
    year: Annotated[int, Field(ge=2000, le=2100)]


class DistrictPopulation(PopulationIn):
    district: str


class PlacesItem(BaseModel):
    district: str = Field(description="province/city/district")
    population: Optional[int]
    year: Optional[int]
    places: int
    places_per_1000: Optional[float]
    target: Optional[float]
    target_source: Optional[str]
    puhui_places: int
    puhui_share: Optional[float] = Field(description="0-1")
    enrolled: int
    occupancy: Optional[float] = Field(description="enrolled / places, 0-1 (above 1 when over-enrolled)")


def parse_district_path(path: str) -> tuple[str, str, str]:
    """'province/city/district' into its three parts; ValueError naming what is wrong."""
    parts = path.split("/")
    if len(parts) != 3 or not all(1 <= len(p.strip()) <= 32 for p in parts):
        raise ValueError("must be province/city/district, each 1-32 characters")
    return parts[0].strip(), parts[1].strip(), parts[2].strip()


def set_population(conn: Connection, path: str, body: PopulationIn, *, user: str, now: datetime) -> DistrictPopulation:
    province, city, district = parse_district_path(path)
    p = district_population.c
    conn.execute(delete(district_population).where(p.province == province, p.city == city, p.district == district))
    conn.execute(district_population.insert().values(province=province, city=city, district=district, year=body.year,
                                                     population=body.population, updated_at=now, updated_by=user))
    return DistrictPopulation(district=f"{province}/{city}/{district}", population=body.population, year=body.year)


def target_for(targets: dict[int, Requirement], year: Optional[int]) -> Optional[Requirement]:
    """The target of `year`, else the next one set after it (a target 'by 2025' applies on the
    way), else the last one set."""
    if not targets:
        return None
    if year is None:
        return targets[max(targets)]
    later = [y for y in targets if y >= year]
    return targets[min(later)] if later else targets[max(targets)]


def _ratio(a: float, b: float, digits: int) -> Optional[float]:
    return round(a / b, digits) if b else None


def places_by_district(conn: Connection, *, city: Optional[str] = None,
                       within: Jurisdiction = EVERYWHERE) -> list[PlacesItem]:
    f, c, p = facilities.c, classes.c, district_population.c
    q = (select(f.province, f.city, f.district, f.kind, func.sum(c.places), func.sum(c.enrolled))
         .join(classes, c.facility == f.facility_id)
         .where(f.filing_status != FilingStatus.REVOKED.value)
         .group_by(f.province, f.city, f.district, f.kind))
    pq = select(district_population).where(*path_clause((p.province, p.city, p.district), within))
    q = q.where(*path_clause((f.province, f.city, f.district), within))
    if city is not None:
        q = q.where(f.city == city)
        pq = pq.where(p.city == city)
    totals: dict[tuple[str, str, str], list[int]] = {}
    for province, city_, district, kind, places, enrolled in conn.execute(q):
        t = totals.setdefault((province, city_, district), [0, 0, 0])
        t[0] += places or 0
        t[1] += enrolled or 0
        if kind in PUHUI_KINDS:
            t[2] += places or 0
    pops = {(r.province, r.city, r.district): r for r in conn.execute(pq)}
    out = []
    for key in sorted(set(totals) | set(pops)):
        places, enrolled, puhui = totals.get(key, [0, 0, 0])
        pop = pops.get(key)
        target = target_for(profile_for(key[1]).places_per_1000_targets, pop.year if pop else None)
        out.append(PlacesItem(
            district="/".join(key), population=pop.population if pop else None, year=pop.year if pop else None,
            places=places, places_per_1000=_ratio(places * 1000, pop.population, 3) if pop else None,
            target=target.value if target else None, target_source=target.source if target else None,
            puhui_places=puhui, puhui_share=_ratio(puhui, places, 4), enrolled=enrolled,
            occupancy=_ratio(enrolled, places, 4)))
    return out
