"""The relational store: engine set-up for SQLite or PostgreSQL, and the tables.

Times are stored in UTC. SQLite has no time zone type, so `UTCDateTime` converts on the way
in and attaches UTC on the way out: callers only ever see aware datetimes."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (JSON, BigInteger, Column, DateTime, Float, Integer, MetaData, String, Table,
                        UniqueConstraint, create_engine, event)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.types import TypeDecorator

SQLITE_BUSY_TIMEOUT_MS = 10_000


class UTCDateTime(TypeDecorator):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: every stored time must carry its zone")
        value = value.astimezone(timezone.utc)
        # SQLite would drop the offset silently; storing naive UTC keeps ordering by text correct.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


metadata = MetaData()

# Every accepted envelope, once: the primary key is what makes ingest idempotent.
envelopes = Table(
    "envelopes", metadata,
    Column("id", String(36), primary_key=True),
    Column("facility", String(32), nullable=False, index=True),
    Column("type", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("ts", UTCDateTime, nullable=False, doc="time of the fact at its origin"),
    Column("received_at", UTCDateTime, nullable=False),
    Column("body", JSON, nullable=False),
)

# One row per alarm, joined from raised / delivered / cleared envelopes and operator actions,
# whatever order they arrive in. `sort_ts` is the origin time the list is ordered by: the raise
# time once known, until then the time of the first envelope seen about the alarm.
alarms = Table(
    "alarms", metadata,
    Column("alarm_id", String(36), primary_key=True),
    Column("facility", String(32), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("source", String(128), nullable=False),
    Column("zone", String(64)),
    Column("device_id", String(64)),
    Column("state", String(16), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("sort_ts", UTCDateTime, nullable=False, index=True),
    Column("raised_at", UTCDateTime),
    Column("cleared_at", UTCDateTime),
    Column("delivered_at", UTCDateTime, doc="police receiver ACK, at the gateway"),
    Column("receiver", String(128)),
    Column("acked_at", UTCDateTime),
    Column("acked_by", String(64)),
    Column("dispatched_at", UTCDateTime),
    Column("resolved_at", UTCDateTime),
    Column("outcome", String(16), doc="real / false / test"),
    Column("updated_at", UTCDateTime, nullable=False),
)

telemetry = Table(
    "telemetry", metadata,
    Column("id", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("facility", String(32), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("metric", String(32), nullable=False),
    Column("ts", UTCDateTime, nullable=False),
    Column("value", Float, nullable=False),
    # A batch resent under a new envelope id must not double its points.
    UniqueConstraint("facility", "device_id", "metric", "ts", name="uq_telemetry_point"),
)

audit = Table(
    "audit", metadata,
    Column("id", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(128), nullable=False),
    Column("detail", JSON, nullable=False),
)

gateways = Table(
    "gateways", metadata,
    Column("facility", String(32), primary_key=True),
    Column("last_seen_at", UTCDateTime, nullable=False, doc="origin time of the newest envelope"),
    Column("last_received_at", UTCDateTime, nullable=False),
    Column("last_type", String(64), nullable=False),
    Column("status", JSON, doc="body of the newest status.gateway"),
)


def make_engine(url: str) -> Engine:
    """An engine for `url` (sqlite:///FILE or postgresql+psycopg://...), ready for concurrent use.

    SQLite gets WAL (readers do not block the ingest writer) and a busy timeout (a second
    writer waits instead of failing)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if u.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    raise ValueError(f"database URL {url!r}: only sqlite:// and postgresql+psycopg:// are supported")


def create_schema(engine: Engine) -> None:
    metadata.create_all(engine)


def upsert_insert(engine_or_dialect_name, table: Table):
    """The dialect's INSERT, which offers on_conflict_do_nothing / on_conflict_do_update."""
    name = engine_or_dialect_name if isinstance(engine_or_dialect_name, str) else engine_or_dialect_name.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"no upsert for dialect {name!r}")
