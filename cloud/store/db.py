"""The relational store: engine set-up for SQLite or PostgreSQL, the tables, and the schema's
creation through the Alembic migrations in cloud/store/migrations.

Times are stored in UTC. SQLite has no time zone type, so `UTCDateTime` converts on the way
in and attaches UTC on the way out: callers only ever see aware datetimes."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    event,
)
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
    Column("facility", String(32), nullable=False),
    Column("type", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("ts", UTCDateTime, nullable=False, doc="time of the fact at its origin"),
    Column("received_at", UTCDateTime, nullable=False),
    Column("body", JSON, nullable=False),
    # Compliance asks for a facility's latest envelope of a type (retention.report, camera.health).
    Index("ix_envelopes_facility_type_ts", "facility", "type", "ts"),
    # The latest report of a kind is the one received last (a gateway's clock may be ahead).
    Index("ix_envelopes_facility_type_received", "facility", "type", "received_at"),
    # Pruning (cloud.store.pruning) finds the oldest rows of a kind without reading the table.
    Index("ix_envelopes_type_received", "type", "received_at"),
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
    Column("dispatched_by", String(64)),
    Column("dispatch_note", String(500), doc="what the dispatcher sent, as they wrote it"),
    Column("resolved_at", UTCDateTime),
    Column("resolved_by", String(64)),
    Column("outcome", String(16), doc="real / false / test"),
    Column("resolve_note", String(500)),
    Column("updated_at", UTCDateTime, nullable=False),
    # The gateway watch reads the active gateway_offline alarms every second.
    Index("ix_alarms_kind_state", "kind", "state"),
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

# Liveness per facility gateway, kept by ingest (not the registry: see gateway_credentials).
gateways = Table(
    "gateways", metadata,
    Column("facility", String(32), primary_key=True),
    Column("last_seen_at", UTCDateTime, nullable=False, doc="origin time of the newest envelope"),
    Column("last_received_at", UTCDateTime, nullable=False),
    Column("last_type", String(64), nullable=False),
    Column("status", JSON, doc="body of the newest status.gateway"),
    Column("status_state", String(16), doc="its `state` (online / offline), for the gateway watch's query"),
    # No index on the times: ingest updates them about 2,000 times a second at 10,000 gateways, which
    # PostgreSQL does in place (HOT) only while no indexed column changes; the gateway watch's
    # filter scans the table in the database instead (cloud/alarms/gateway_watch.py).
)


_ID = 64  # device, camera, staff, class and area ids share the contract's device id format

# --- registry (登记备案) ---------------------------------------------------------------------
facilities = Table(
    "facilities", metadata,
    Column("facility_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("uscc", String(18), nullable=False, unique=True, doc="unified social credit code, GB 32100"),
    Column("kind", String(16), nullable=False, doc="public / private / inclusive (普惠)"),
    Column("province", String(32), nullable=False),
    Column("city", String(32), nullable=False, index=True),
    Column("district", String(32), nullable=False),
    Column("street", String(64), nullable=False),
    Column("address", String(256), nullable=False),
    Column("lat", Float),
    Column("lon", Float),
    Column("contact_name", String(64)),
    Column("contact_phone", String(32)),
    Column("filing_status", String(16), nullable=False),
    Column("filing_number", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_facilities_district_path", "province", "city", "district", "street"),
)

licences = Table(
    "licences", metadata,
    Column("facility", String(32), primary_key=True),
    Column("kind", String(32), primary_key=True, doc="health_evaluation (卫生评价) / fire (消防) / food (食品经营)"),
    Column("number", String(64), nullable=False),
    Column("expires_on", Date, nullable=False),
    ForeignKeyConstraint(["facility"], ["facilities.facility_id"], ondelete="CASCADE"),
)

# Filed places and enrolment per class; capacity per class type is their sum.
classes = Table(
    "classes", metadata,
    Column("facility", String(32), primary_key=True),
    Column("class_id", String(_ID), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("class_type", String(16), nullable=False, doc="infant 乳儿班 / toddler 托小班 / older 托大班 / mixed 混龄班"),
    Column("places", Integer, nullable=False),
    Column("enrolled", Integer, nullable=False),
    Column("carers", Integer, nullable=False),
    ForeignKeyConstraint(["facility"], ["facilities.facility_id"], ondelete="CASCADE"),
)

gateway_credentials = Table(
    "gateway_credentials", metadata,
    Column("gateway_id", String(_ID), primary_key=True),
    Column("facility", String(32), nullable=False, index=True),
    Column("mqtt_username", String(100), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False, doc="Mosquitto $7$ PBKDF2-SHA512; the password itself is never stored"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("rotated_at", UTCDateTime, nullable=False),
    ForeignKeyConstraint(["facility"], ["facilities.facility_id"], ondelete="CASCADE"),
)

devices = Table(
    "devices", metadata,
    Column("facility", String(32), primary_key=True),
    Column("device_id", String(_ID), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("zone", String(64)),
    Column("area_id", String(_ID)),
    Column("name", String(128), nullable=False),
    ForeignKeyConstraint(["facility"], ["facilities.facility_id"], ondelete="CASCADE"),
)

areas = Table(
    "areas", metadata,
    Column("facility", String(32), primary_key=True),
    Column("area_id", String(_ID), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("children_area", Boolean, nullable=False, doc="a room children use: must be covered by an online camera"),
    ForeignKeyConstraint(["facility"], ["facilities.facility_id"], ondelete="CASCADE"),
)

cameras = Table(
    "cameras", metadata,
    Column("facility", String(32), primary_key=True),
    Column("camera_id", String(_ID), primary_key=True),
    Column("name", String(128), nullable=False),
    ForeignKeyConstraint(["facility"], ["facilities.facility_id"], ondelete="CASCADE"),
)

camera_areas = Table(
    "camera_areas", metadata,
    Column("facility", String(32), primary_key=True),
    Column("camera_id", String(_ID), primary_key=True),
    Column("area_id", String(_ID), primary_key=True),
    ForeignKeyConstraint(["facility", "camera_id"], ["cameras.facility", "cameras.camera_id"], ondelete="CASCADE"),
    ForeignKeyConstraint(["facility", "area_id"], ["areas.facility", "areas.area_id"], ondelete="CASCADE"),
)

staff = Table(
    "staff", metadata,
    Column("facility", String(32), primary_key=True),
    Column("staff_id", String(_ID), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("role", String(32), nullable=False),
    Column("certificates", JSON, nullable=False, doc="[{kind, number, expires_on}]"),
    ForeignKeyConstraint(["facility"], ["facilities.facility_id"], ondelete="CASCADE"),
)

# --- compliance snapshots --------------------------------------------------------------------
# Each facility's compliance report as last evaluated (cloud.compliance.snapshot), so that pages
# over a province read a table instead of evaluating every facility. `marked` is bumped whenever
# a fact the report depends on changes; the report is current while `computed_mark` equals it and
# no deadline has passed.
compliance_snapshots = Table(
    "compliance_snapshots", metadata,
    Column("facility", String(32), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("score", Float, nullable=False),
    Column("report", JSON, nullable=False),
    Column("computed_at", UTCDateTime, nullable=False),
    Column("marked", Integer, nullable=False, default=0, doc="bumped by every change of a fact"),
    Column("computed_mark", Integer, nullable=False, doc="`marked` as the report was computed"),
    Column("recheck_at", UTCDateTime, nullable=False,
           doc="when the passing of time alone may change the report (a day, a deadline, a drill falling due)"),
    Column("heartbeat_at", UTCDateTime, doc="the newest heartbeat the report counted"),
    Column("heartbeat_until", UTCDateTime, doc="when that heartbeat grows too old; null: none fresh"),
    Column("heartbeat_digest", String(64), nullable=False, doc="what the rules read of it beyond its time"),
    Column("camera_digest", String(64), nullable=False, doc="cameras reported and whether each is online"),
    Column("cameras_until", UTCDateTime, doc="when the oldest report of an online camera grows too old"),
    Column("retention_required_days", Float, nullable=False, doc="the profile's requirement the report applied"),
    Column("retention_digest", String(64), nullable=False, doc="cameras reported and whether each reaches it"),
    Column("cameras", Integer, nullable=False),
    Column("cameras_online", Integer, nullable=False),
    Column("retention_cameras", Integer, nullable=False),
    Column("retention_compliant", Integer, nullable=False),
    ForeignKeyConstraint(["facility"], ["facilities.facility_id"], ondelete="CASCADE"),
    Index("ix_compliance_snapshots_recheck", "recheck_at"),
)

# --- alarm lifecycle --------------------------------------------------------------------------
# Every step of every alarm, once: (alarm_id, step, n) is unique so replays add nothing; `n`
# numbers repeated steps (re-notifications).
alarm_events = Table(
    "alarm_events", metadata,
    Column("id", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("alarm_id", String(36), nullable=False),
    Column("facility", String(32), nullable=False),
    Column("step", String(32), nullable=False),
    Column("n", Integer, nullable=False, default=0),
    Column("at", UTCDateTime, nullable=False, doc="time of the step at its origin"),
    Column("actor", String(64), nullable=False),
    Column("detail", JSON, nullable=False),
    UniqueConstraint("alarm_id", "step", "n", name="uq_alarm_event_step"),
)

escalations = Table(
    "escalations", metadata,
    Column("id", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("alarm_id", String(36), nullable=False),
    Column("facility", String(32), nullable=False, index=True),
    Column("n", Integer, nullable=False, doc="0: first escalation; then each re-notification"),
    Column("at", UTCDateTime, nullable=False),
    Column("notified_role", String(16), nullable=False),
    Column("unacked_s", Float, nullable=False),
    UniqueConstraint("alarm_id", "n", name="uq_escalation_n"),
)


def make_engine(url: str) -> Engine:
    """An engine for `url` (sqlite:///FILE or postgresql+psycopg://...), ready for concurrent use.

    SQLite gets WAL (readers do not block the ingest writer) and a busy timeout (a second
    writer waits instead of failing)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
            # Created 0600: it holds children's records and police alarms. SQLite gives its -wal
            # and -shm files the database file's permissions.
            os.close(os.open(u.database, os.O_CREAT | os.O_WRONLY, 0o600))
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


MIGRATIONS_DIR = Path(__file__).with_name("migrations")
ALEMBIC_INI = Path(__file__).with_name("alembic.ini")


def alembic_config(connection=None):
    """Alembic's configuration for this package, wherever it is installed; `connection` is the one
    the migrations run on (cloud/store/migrations/env.py takes it from here)."""
    from alembic.config import Config

    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def create_schema(engine: Engine) -> None:
    """Bring the store to the newest schema: `alembic upgrade head` on this engine's database."""
    from alembic import command
    from sqlalchemy import inspect

    with engine.begin() as conn:
        tables = set(inspect(conn).get_table_names())
        if "envelopes" in tables and "alembic_version" not in tables:
            raise RuntimeError(f"{engine.url.render_as_string(hide_password=True)} was created before migrations "
                               "existed; move it aside (or `alembic stamp` it after adding the new tables)")
        command.upgrade(alembic_config(conn), "head")


def upsert_insert(engine_or_dialect_name, table: Table):
    """The dialect's INSERT, which offers on_conflict_do_nothing / on_conflict_do_update."""
    name = engine_or_dialect_name if isinstance(engine_or_dialect_name, str) else engine_or_dialect_name.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"no upsert for dialect {name!r}")


def inserted(conn, stmt, key_column) -> bool:
    """Whether an INSERT ... ON CONFLICT DO NOTHING wrote its row. Asked with RETURNING: on
    PostgreSQL (psycopg 3 under SQLAlchemy 2.1) the row count of such an insert is -1 either way."""
    return conn.execute(stmt.returning(key_column)).first() is not None
