"""Bulk inserts into PostgreSQL at the driver level, for ingest.

Rows are COPYed into a temporary staging table of the session, then moved into their table by
one INSERT ... SELECT ... ON CONFLICT in the caller's transaction, so idempotency and locking
stay the database's. psycopg formats COPY rows in C; SQLAlchemy's multi-row VALUES and psycopg's
array parameters format every value in Python, which cost far more than the database's work
(array parameters: about 30 times the client CPU of COPY per envelope row, measured)."""

from __future__ import annotations

from typing import Iterable, Sequence

from sqlalchemy.engine import Connection


def stage(conn: Connection, name: str, columns: str, rows: Iterable[Sequence]) -> None:
    """Fill the session's temporary table `name` with `rows`. It is created on first use with the
    column definitions `columns` and empties itself when the transaction ends, committed or not."""
    cur = conn.connection.driver_connection.cursor()
    try:
        cur.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DELETE ROWS")
        with cur.copy(f"COPY {name} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    finally:
        cur.close()
