"""Keyset pagination, one cursor format for every list: an opaque URL-safe token holding the
last row's key values, continued strictly after them."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Generic, Optional, Sequence, TypeVar

from pydantic import BaseModel
from sqlalchemy import Column, and_, or_

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: Optional[str] = None


class BadCursor(ValueError):
    """A cursor this API did not hand out for this list."""


def encode_cursor(values: Sequence) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list:
    """The key values in `cursor`; raises BadCursor unless it is one handed out for a list keyed
    by `arity` columns."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        values = None
    if not isinstance(values, list) or len(values) != arity or not all(isinstance(v, (str, int)) for v in values):
        raise BadCursor("not a cursor returned by this list")
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
