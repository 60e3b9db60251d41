"""What the supervision routers share: one transaction per request with input errors as 422, who
may act on which facility (a facility token on its own; an authority's token within its
jurisdiction), and notices announced on the notice bus once their transaction committed."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from fastapi import HTTPException, Request, status
from sqlalchemy.engine import Connection

from cloud.api.auth import Principal, forbid_other_facility
from cloud.api.common import field_error, transaction
from cloud.config import Role
from cloud.supervision.errors import InputError
from cloud.supervision.notices import Notice
from cloud.supervision.scope import Place, facility_place

INSPECTORS = (Role.SUPERVISOR, Role.HEALTH, Role.ADMIN)
AUTHORITIES = (Role.SUPERVISOR, Role.HEALTH, Role.POLICE, Role.ADMIN)


@contextmanager
def write(request: Request) -> Iterator[Connection]:
    """`transaction`, with an InputError answered as a 422 naming its field (nothing written)."""
    try:
        with transaction(request) as conn:
            yield conn
    except InputError as exc:
        raise field_error("body", exc.field, str(exc)) from None


def check_facility(conn: Connection, who: Principal, facility_id: str) -> Place:
    """The facility's place, or 403 unless `who` is that facility or an authority over its district
    (404 for an unknown facility comes first only for those who could see it anyway)."""
    forbid_other_facility(who, facility_id)
    place = facility_place(conn, facility_id)
    if not who.covers(place.province, place.city, place.district):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"facility {facility_id!r} lies outside the token's jurisdiction {who.jurisdiction!r}")
    return place


def announce(request: Request, made: list[Notice]) -> None:
    """Call after the transaction that wrote `made` committed: a listener never hears of a notice
    the store lost."""
    for notice in made:
        request.app.state.notice_bus.publish(notice)
