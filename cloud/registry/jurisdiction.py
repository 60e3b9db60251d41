"""Jurisdictions: a province/city/district path (行政区划) a police, health or supervisor token
is bound to. Such a token sees only the facilities filed under its path; an empty path is
every facility. Query functions take the path and filter with `under`."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql.elements import ColumnElement

from cloud.store.db import facilities

Jurisdiction = tuple[str, ...]  # (), (province,), (province, city) or (province, city, district)
EVERYWHERE: Jurisdiction = ()
JURISDICTION_RE = r"^[^/\x00-\x1f]{1,32}(/[^/\x00-\x1f]{1,32}){0,2}$"


def parse_jurisdiction(path: Optional[str]) -> Jurisdiction:
    """'province/city/district' (or a leading part of it) as a tuple; None or '' for everywhere."""
    if not path:
        return EVERYWHERE
    parts = tuple(p.strip() for p in path.split("/"))
    if len(parts) > 3 or not all(parts):
        raise ValueError(f"jurisdiction {path!r}: expected province[/city[/district]]")
    return parts


def show(within: Jurisdiction) -> str:
    return "/".join(within) or "everywhere"


def under(facility_column, within: Jurisdiction) -> ColumnElement:
    """`facility_column` names a facility filed under `within`."""
    f = facilities.c
    return facility_column.in_(select(f.facility_id).where(*path_clause((f.province, f.city, f.district), within)))


def facility_in(conn: Connection, facility_id: str, within: Jurisdiction) -> bool:
    """Whether the facility is filed under `within` (a facility not filed is under none but everywhere)."""
    if not within:
        return True
    f = facilities.c
    row = conn.execute(select(f.province, f.city, f.district).where(f.facility_id == facility_id)).first()
    return row is not None and tuple(row)[:len(within)] == within


def facility_visible(engine: Engine, facility_id: str, within: Jurisdiction) -> bool:
    """`facility_in` on a connection of its own (for the alarm stream, asked from a worker thread)."""
    with engine.connect() as conn:
        return facility_in(conn, facility_id, within)


def facilities_within(conn: Connection, within: Jurisdiction) -> Optional[set[str]]:
    """The ids of the facilities filed under `within`; None for everywhere (no filter to apply).
    For results assembled from several queries, filtered once at the end."""
    if not within:
        return None
    f = facilities.c
    return set(conn.execute(select(f.facility_id).where(*path_clause((f.province, f.city, f.district), within)))
               .scalars())


def path_clause(columns, within: Jurisdiction) -> list[ColumnElement]:
    """Conditions that (province, city, district) `columns` lie under `within`."""
    return [col == value for col, value in zip(columns, within)]
