"""Where a facility lies and who looks after it: its district path, the jurisdiction clause lists
are filtered by, and the local day its deadlines count in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Optional
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select, true
from sqlalchemy.engine import Connection

from cloud.compliance.profiles import Profile, profile_for
from cloud.registry.statistics import parse_district_path
from cloud.store.db import facilities
from cloud.supervision.errors import InputError, NotFound


@dataclass(frozen=True)
class Place:
    facility_id: str
    name: str
    kind: str
    province: str
    city: str
    district: str

    @property
    def district_path(self) -> str:
        return f"{self.province}/{self.city}/{self.district}"

    @property
    def profile(self) -> Profile:
        return profile_for(self.city)


def facility_place(conn: Connection, facility_id: str) -> Place:
    f = facilities.c
    row = conn.execute(select(f.facility_id, f.name, f.kind, f.province, f.city, f.district)
                       .where(f.facility_id == facility_id)).first()
    if row is None:
        raise NotFound(f"no facility {facility_id!r}")
    return Place(*row)


def jurisdiction_clause(province, city, district, jurisdiction: Optional[str]):
    """A WHERE clause keeping rows whose (province, city, district) columns lie in `jurisdiction`
    ("province/city[/district]"); everything when it is None."""
    if jurisdiction is None:
        return true()
    parts = jurisdiction.split("/")
    return and_(*(col == value for col, value in zip((province, city, district), parts)))


def district_path(value: str, field: str = "district") -> tuple[str, str, str]:
    try:
        return parse_district_path(value)
    except ValueError as exc:
        raise InputError(field, str(exc)) from None


def local_today(profile: Profile, now: datetime) -> date:
    return now.astimezone(ZoneInfo(profile.care.timezone)).date()
