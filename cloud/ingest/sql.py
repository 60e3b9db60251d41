"""The SQL ingest writes envelopes and gateway last-seen times with, for SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import datetime

import orjson
from sqlalchemy import delete, update
from sqlalchemy.engine import Connection

from cloud.ingest.validate import Accepted
from cloud.store import bulk
from cloud.store.db import envelopes, gateways
from cloud.store.telemetry import sqlite_ts
from contracts.envelope import Envelope

log = logging.getLogger("careguard.cloud.ingest")

# Envelope and gateway rows are written with driver-level SQL: on PostgreSQL staged by COPY
# (cloud.store.bulk), on SQLite one prepared statement per row. SQLAlchemy's multi-row VALUES, rebuilt
# and re-parsed for every batch, cost more than the database's own work. The values are
# converted exactly as cloud.db's UTCDateTime and JSON types store them.
_ENVELOPE_COLUMNS = "id, facility, type, source, seq, ts, received_at, body"
_PG_STAGED_ENVELOPES = ("ingest_envelopes", "id text, facility text, type text, source text, seq bigint, "
                        "ts timestamptz, body text")
# ORDER BY: two workers inserting overlapping batches wait for each other instead of deadlocking.
_PG_INSERT_ENVELOPES = (
    f"INSERT INTO {envelopes.name} ({_ENVELOPE_COLUMNS}) "
    f"SELECT id, facility, type, source, seq, ts, %s, body::json FROM {_PG_STAGED_ENVELOPES[0]} "
    "ORDER BY id ON CONFLICT (id) DO NOTHING RETURNING id")
_SQLITE_INSERT_ENVELOPE = (
    f"INSERT INTO {envelopes.name} ({_ENVELOPE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO NOTHING")
# The SET expressions read the row as it was: a late buffered envelope does not move last_seen_at back.
_GATEWAY_ON_CONFLICT = (
    "ON CONFLICT (facility) DO UPDATE SET "
    f"last_seen_at = CASE WHEN {gateways.name}.last_seen_at < excluded.last_seen_at "
    f"THEN excluded.last_seen_at ELSE {gateways.name}.last_seen_at END, "
    f"last_type = CASE WHEN {gateways.name}.last_seen_at < excluded.last_seen_at "
    f"THEN excluded.last_type ELSE {gateways.name}.last_type END, "
    "last_received_at = excluded.last_received_at")
_GATEWAY_COLUMNS = "facility, last_seen_at, last_received_at, last_type"
_PG_STAGED_GATEWAYS = ("ingest_gateways", "facility text, last_seen_at timestamptz, last_type text")
# In key order, like the envelopes: workers share facilities under a shared subscription.
_PG_TOUCH_GATEWAYS = (
    f"INSERT INTO {gateways.name} ({_GATEWAY_COLUMNS}) SELECT facility, last_seen_at, %s, last_type "
    f"FROM {_PG_STAGED_GATEWAYS[0]} ORDER BY facility " + _GATEWAY_ON_CONFLICT)
_SQLITE_TOUCH_GATEWAYS = f"INSERT INTO {gateways.name} ({_GATEWAY_COLUMNS}) VALUES (?, ?, ?, ?) " + _GATEWAY_ON_CONFLICT


def _body_json(body: dict) -> str:
    return orjson.dumps(body).decode()


def insert_envelopes(conn: Connection, rows: list[tuple[str, Envelope]], now: datetime) -> set[str]:
    """Insert the (id, envelope) `rows` whose id is not stored yet; returns the ids that were new.
    Each id at most once per call."""
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        bulk.stage(conn, *_PG_STAGED_ENVELOPES, ((k, e.facility, e.type, e.source, e.seq, e.ts, _body_json(e.body))
                                                 for k, e in rows))
        return set(conn.exec_driver_sql(_PG_INSERT_ENVELOPES, (now,)).scalars().all())
    # SQLite: one writer at a time holds the database, so each row's own count says whether it was new.
    received = sqlite_ts(now)
    cur = conn.connection.cursor()
    try:
        new: set[str] = set()
        for eid, e in rows:
            cur.execute(_SQLITE_INSERT_ENVELOPE, (eid, e.facility, e.type, e.source, e.seq, sqlite_ts(e.ts), received,
                                                  _body_json(e.body)))
            if cur.rowcount == 1:
                new.add(eid)
        return new
    finally:
        cur.close()


def delete_envelopes(conn: Connection, ids: set[str]) -> None:
    """Take back envelope rows this transaction inserted, for envelopes the store refused after all."""
    conn.execute(delete(envelopes).where(envelopes.c.id.in_(sorted(ids))))


def touch_gateways(conn: Connection, fresh: list[Accepted], now: datetime) -> None:
    """Last seen per facility, by origin time: a late buffered envelope does not move it back."""
    newest: dict[str, Envelope] = {}
    status: dict[str, Envelope] = {}
    for item in fresh:
        env = item.env
        if env.facility not in newest or env.ts > newest[env.facility].ts:
            newest[env.facility] = env
        if env.type == "status.gateway":
            status[env.facility] = env  # the one received last, whatever its gateway's clock says
    if not newest:
        return
    if conn.dialect.name == "postgresql":
        bulk.stage(conn, *_PG_STAGED_GATEWAYS, ((f, e.ts, e.type) for f, e in newest.items()))
        conn.exec_driver_sql(_PG_TOUCH_GATEWAYS, (now,))
    else:
        received = sqlite_ts(now)
        conn.exec_driver_sql(_SQLITE_TOUCH_GATEWAYS,
                             [(f, sqlite_ts(e.ts), received, e.type) for f, e in newest.items()])
    for facility, env in status.items():
        state = env.body.get("state")
        conn.execute(update(gateways).where(gateways.c.facility == facility)
                     .values(status=env.body, status_state=state[:16] if isinstance(state, str) else None))

