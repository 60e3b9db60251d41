"""What every router shares: keyset pagination (limit + opaque cursor), one transaction per
request, and errors shaped like FastAPI's own (422 naming the field, 404, 409)."""

from __future__ import annotations

import base64
import binascii
import json
from contextlib import contextmanager
from typing import Annotated, Generic, Iterator, Optional, Sequence, TypeVar

from fastapi import HTTPException, Query, Request, status
from pydantic import BaseModel
from sqlalchemy import Column, and_, or_
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from cloud.registry import NotFound, RegistryConflict

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=500, description="most items in one page")]
Cursor = Annotated[Optional[str], Query(max_length=512, description="next_cursor of the previous page")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: Optional[str] = None


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


def encode_cursor(values: Sequence) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list:
    """Raises a 422 on `cursor` unless it is one this API handed out for the same list."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        values = None
    if not isinstance(values, list) or len(values) != arity or not all(isinstance(v, (str, int)) for v in values):
        raise field_error("query", "cursor", "not a cursor returned by this list")
    return values


def after(columns: Sequence[Column], values: Sequence):
    """Rows strictly after `values` in ascending order of `columns` (a keyset condition)."""
    clauses = []
    for i, col in enumerate(columns):
        equal = [columns[j] == values[j] for j in range(i)]
        clauses.append(and_(*equal, col > values[i]))
    return or_(*clauses)


def keyset(query, columns: Sequence[Column], limit: int, cursor: Optional[str]):
    """`query` ordered by `columns`, continuing after `cursor`, one row more than `limit` (to know
    whether another page follows)."""
    if cursor is not None:
        query = query.where(after(columns, decode_cursor(cursor, len(columns))))
    return query.order_by(*columns).limit(limit + 1)


def trim(rows: list, key_names: Sequence[str], limit: int) -> tuple[list, Optional[str]]:
    """Drop the extra row `keyset` fetched; the cursor is the last kept row's key."""
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]._mapping
    return rows[:limit], encode_cursor([last[k] for k in key_names])


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
