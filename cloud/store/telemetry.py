"""Where telemetry points go: the relational `telemetry` table (the embedded default) or any
server speaking the InfluxDB v2 write API (`/api/v2/write`: InfluxDB, VictoriaMetrics).

Both are written inside the ingest transaction, after the batch's envelope rows were inserted
and only for envelopes that were new. A store that fails raises, the transaction rolls back and
the envelopes stay unacknowledged, so the broker delivers them again: nothing is lost, and a
time-series server that keeps duplicates (VictoriaMetrics does) never sees a batch twice."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import NamedTuple, Optional, Protocol, Sequence

from sqlalchemy.engine import Connection

from cloud.store import bulk
from cloud.store.db import telemetry

MEASUREMENT = "cg_telemetry"
FIELD = "value"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
# A city's devices times their metrics; beyond that the cache of line heads starts over.
MAX_CACHED_SERIES = 200_000


class TelemetryRow(NamedTuple):
    facility: str
    device_id: str
    metric: str
    ts: datetime
    value: float


class TelemetryStore(Protocol):
    name: str

    def write(self, conn: Connection, points: Sequence[TelemetryRow]) -> int:
        """Store `points`; returns how many were new where the store can tell (else all of them).
        Raises on failure: the caller must not acknowledge the envelopes."""

    def close(self) -> None: ...


class RelationalTelemetryStore:
    """The `telemetry` table; its unique key (facility, device, metric, ts) drops a batch resent
    under a new envelope id.

    Written with driver-level SQL: on PostgreSQL staged by COPY (cloud.store.bulk) and moved by one
    INSERT ... SELECT, on SQLite one prepared statement per row. SQLAlchemy's per-row
    parameter processing cost more than the database's own work at tens of thousands of points
    per second. The values are converted here exactly as cloud.db's UTCDateTime would store them."""

    name = "relational"

    def write(self, conn: Connection, points: Sequence[TelemetryRow]) -> int:
        if not points:
            return 0
        postgres = conn.dialect.name == "postgresql"
        to_db = _aware_utc if postgres else sqlite_ts
        # Points of one batch mostly share a few times: convert each once.
        times = {ts: to_db(ts) for ts in {p.ts for p in points}}
        rows = {(p.facility, p.device_id, p.metric, times[p.ts], float(p.value)) for p in points}
        if postgres:
            bulk.stage(conn, *_PG_STAGED, rows)
            result = conn.exec_driver_sql(_PG_INSERT)
        else:
            result = conn.exec_driver_sql(_SQLITE_INSERT, list(rows))
        return result.rowcount if result.rowcount >= 0 else len(rows)

    def close(self) -> None:
        pass


_COLUMNS = f"{telemetry.name} (facility, device_id, metric, ts, value)"
_ON_CONFLICT = "ON CONFLICT (facility, device_id, metric, ts) DO NOTHING"
_PG_STAGED = ("ingest_telemetry", "facility text, device_id text, metric text, ts timestamptz, value float8")
# One order for every worker: concurrent transactions then wait on each other's unique-key locks
# instead of deadlocking.
_PG_INSERT = (f"INSERT INTO {_COLUMNS} SELECT * FROM {_PG_STAGED[0]} ORDER BY facility, device_id, metric, ts "
              f"{_ON_CONFLICT}")
_SQLITE_INSERT = f"INSERT INTO {_COLUMNS} VALUES (?, ?, ?, ?, ?) {_ON_CONFLICT}"


def sqlite_ts(ts: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text form, naive UTC, so that unique keys and ordering match
    the rows it wrote."""
    u = ts.astimezone(timezone.utc)
    return (f"{u.year:04d}-{u.month:02d}-{u.day:02d} {u.hour:02d}:{u.minute:02d}:{u.second:02d}."
            f"{u.microsecond:06d}")


def _aware_utc(ts: datetime) -> datetime:
    return ts.astimezone(timezone.utc)


def _escape_tag(value: str) -> str:
    # Contract ids cannot hold these characters; escaping keeps a wider id from corrupting a line.
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def to_line_protocol(points: Sequence[TelemetryRow],
                     series: Optional[dict[tuple[str, str, str], str]] = None) -> bytes:
    """InfluxDB line protocol at millisecond precision, time of origin:
    `cg_telemetry,facility=F,device=D,metric=M value=V <ms>` (VictoriaMetrics names the series
    `cg_telemetry_value{facility,device,metric}`). `series` keeps each series' formatted head
    for the next call."""
    # Batches repeat their series and times: each series head and each time is formatted once.
    if series is None:
        series = {}
    times: dict[datetime, int] = {}
    lines = []
    for p in points:
        key = (p.facility, p.device_id, p.metric)
        head = series.get(key)
        if head is None:
            head = series[key] = (f"{MEASUREMENT},facility={_escape_tag(p.facility)},device={_escape_tag(p.device_id)},"
                                  f"metric={_escape_tag(p.metric)} {FIELD}=")
        ms = times.get(p.ts)
        if ms is None:
            ms = times[p.ts] = (p.ts - _EPOCH) // _MS
        lines.append(f"{head}{float(p.value)!r} {ms}")
    return "\n".join(lines).encode()


class InfluxTelemetryStore:
    """Synchronous writes through influxdb-client: its batching API buffers in memory and reports
    failures to a callback, which would let an envelope be acknowledged before its points exist."""

    name = "influx"

    def __init__(self, url: str, *, token: str = "", org: str = "careguard", bucket: str = "careguard",
                 timeout_s: float = 10.0):
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.bucket = bucket
        self.org = org
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout_s * 1000))
        self._api = self._client.write_api(write_options=SYNCHRONOUS)
        self._series: dict[tuple[str, str, str], str] = {}

    def write(self, conn: Optional[Connection], points: Sequence[TelemetryRow]) -> int:
        if not points:
            return 0
        from influxdb_client import WritePrecision

        if len(self._series) > MAX_CACHED_SERIES:
            self._series.clear()
        self._api.write(bucket=self.bucket, org=self.org, record=to_line_protocol(points, self._series),
                        write_precision=WritePrecision.MS)
        return len(points)

    def close(self) -> None:
        self._api.close()
        self._client.close()


def make_telemetry_store(url: Optional[str], *, token: str = "", org: str = "careguard",
                         bucket: str = "careguard") -> TelemetryStore:
    """No URL: the relational table. Otherwise an InfluxDB v2 write endpoint at `url`."""
    if not url:
        return RelationalTelemetryStore()
    return InfluxTelemetryStore(url, token=token, org=org, bucket=bucket)
