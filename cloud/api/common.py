"""What every router shares: the limit and cursor of keyset pagination (cloud/store/paging.py),
one transaction per request, and errors shaped like FastAPI's own (422 naming the field, 404, 409)."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Iterator, Optional

from fastapi import HTTPException, Query, Request, status
from pydantic import BaseModel
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from cloud.registry.records import NotFound, RegistryConflict

Limit = Annotated[int, Query(ge=1, le=500, description="most items in one page")]
Cursor = Annotated[Optional[str], Query(max_length=512, description="next_cursor of the previous page")]


class Problem(BaseModel):
    detail: str


# Documented on every API route, so clients (and schemathesis) know each answer it may give.
ERROR_RESPONSES = {
    401: {"model": Problem, "description": "no bearer token, or an unknown one"},
    403: {"model": Problem, "description": "the role may not do this, or a facility token asks about another facility"},
    404: {"model": Problem, "description": "no such record"},
    409: {"model": Problem, "description": "conflicts with what is stored (duplicate, or a workflow step not allowed)"},
}


def field_error(where: str, field: str, msg: str) -> HTTPException:
    """A 422 in the shape FastAPI gives validation errors, so clients read one format."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                         detail=[{"loc": [where, field], "msg": msg, "type": "value_error"}])


def aware(value: Optional[datetime], name: str) -> Optional[datetime]:
    """`value` of query parameter `name`, refused with a 422 when it carries no UTC offset."""
    if value is not None and value.tzinfo is None:
        raise field_error("query", name, "must carry its UTC offset (e.g. 2026-11-23T08:00:00Z)")
    return value


@contextmanager
def transaction(request: Request) -> Iterator[Connection]:
    """One transaction per request, with registry errors turned into HTTP answers: nothing of a
    failed request stays written."""
    try:
        with request.app.state.engine.begin() as conn:
            yield conn
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except RegistryConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    except IntegrityError as exc:
        # Two requests raced past the checks: the database's constraint decided.
        raise HTTPException(status.HTTP_409_CONFLICT,
                            detail=f"conflicts with a record written meanwhile: {exc.orig}") from None
