"""Where telemetry points go and are read back: the relational `telemetry` table (the embedded
default) or VictoriaMetrics, written through the InfluxDB v2 write API (`/api/v2/write`) and read
through its Prometheus-compatible query API.

Both are written inside the ingest transaction, after the batch's envelope rows were inserted
and only for envelopes that were new. A store that fails raises, the transaction rolls back and
the envelopes stay unacknowledged, so the broker delivers them again: nothing is lost. A
time-series server can still end up holding a point twice (a commit that failed after the write,
then the redelivery), so reads never count a (series, time) twice.

Reads are what the health runner and the environment pages need, the same from either store:
the latest reading per sensor, the raw readings of a few sensors, and one sensor's mean per step."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Iterable, NamedTuple, Optional, Protocol, Sequence

import httpx
import orjson
from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from cloud.store import bulk
from cloud.store.db import telemetry
from contracts.ids import METRIC_NAME_RE

MEASUREMENT = "cg_telemetry"
FIELD = "value"
SERIES_METRIC = f"{MEASUREMENT}_{FIELD}"  # how VictoriaMetrics names what the line protocol writes
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
_METRIC_RE = re.compile(METRIC_NAME_RE)
# A city's devices times their metrics; beyond that the cache of line heads starts over.
MAX_CACHED_SERIES = 200_000


class TelemetryRow(NamedTuple):
    facility: str
    device_id: str
    metric: str
    ts: datetime
    value: float


class SeriesKey(NamedTuple):
    facility: str
    device_id: str
    metric: str


Reading = tuple[datetime, float]


class TelemetryReadError(Exception):
    """The telemetry store could not answer a read (down, refused, or an answer we cannot use)."""


class TelemetryStore(Protocol):
    name: str

    def write(self, conn: Connection, points: Sequence[TelemetryRow]) -> int:
        """Store `points`; returns how many were new where the store can tell (else all of them).
        Raises on failure: the caller must not acknowledge the envelopes."""

    def latest(self, conn: Connection, metrics: Sequence[str], since: datetime, until: datetime, *,
               facility: Optional[str] = None) -> dict[SeriesKey, Reading]:
        """Each series' newest reading in [since, until] among `metrics` (one facility or all)."""

    def readings(self, conn: Connection, keys: Iterable[SeriesKey], since: datetime,
                 until: datetime) -> dict[SeriesKey, list[Reading]]:
        """The readings of `keys` in [since, until], ascending by time, one per time."""

    def buckets(self, conn: Connection, key: SeriesKey, since: datetime, until: datetime,
                step_s: int) -> list[Reading]:
        """The mean of `key`'s readings per bucket [since + i*step, since + (i+1)*step), clipped
        at `until` (exclusive), labelled by the bucket's start; empty buckets are left out."""

    def check_server(self) -> list[str]:
        """What about the store's server would make reads wrong; empty when nothing."""

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

    def latest(self, conn: Connection, metrics: Sequence[str], since: datetime, until: datetime, *,
               facility: Optional[str] = None) -> dict[SeriesKey, Reading]:
        t = telemetry.c
        newest = (select(t.facility, t.device_id, t.metric, func.max(t.ts).label("ts"))
                  .where(t.metric.in_(list(metrics)), t.ts >= since, t.ts <= until))
        if facility is not None:
            newest = newest.where(t.facility == facility)
        newest = newest.group_by(t.facility, t.device_id, t.metric).subquery()
        n = newest.c
        rows = conn.execute(select(t.facility, t.device_id, t.metric, t.ts, t.value).join(newest, and_(
            t.facility == n.facility, t.device_id == n.device_id, t.metric == n.metric, t.ts == n.ts)))
        return {SeriesKey(r.facility, r.device_id, r.metric): (r.ts, r.value) for r in rows}

    def readings(self, conn: Connection, keys: Iterable[SeriesKey], since: datetime,
                 until: datetime) -> dict[SeriesKey, list[Reading]]:
        wanted = set(keys)
        out: dict[SeriesKey, list[Reading]] = {}
        if not wanted:
            return out
        t = telemetry.c
        # By facility, then the exact keys here: one portable query instead of a row-value IN.
        facilities = sorted({k.facility for k in wanted})
        for i in range(0, len(facilities), _IN_CHUNK):
            q = (select(t.facility, t.device_id, t.metric, t.ts, t.value)
                 .where(t.facility.in_(facilities[i:i + _IN_CHUNK]), t.metric.in_({k.metric for k in wanted}),
                        t.ts >= since, t.ts <= until)
                 .order_by(t.facility, t.device_id, t.metric, t.ts))
            for r in conn.execute(q):
                key = SeriesKey(r.facility, r.device_id, r.metric)
                if key in wanted:
                    out.setdefault(key, []).append((r.ts, r.value))
        return out

    def buckets(self, conn: Connection, key: SeriesKey, since: datetime, until: datetime,
                step_s: int) -> list[Reading]:
        t = telemetry.c
        rows = conn.execute(select(t.ts, t.value).where(t.facility == key.facility, t.device_id == key.device_id,
                                                        t.metric == key.metric, t.ts >= since, t.ts < until))
        # Buckets are computed here rather than in SQL so SQLite and PostgreSQL agree exactly.
        sums: dict[int, list[float]] = {}
        for ts, value in rows:
            acc = sums.setdefault(int((ts - since).total_seconds() // step_s), [0.0, 0])
            acc[0] += value
            acc[1] += 1
        return [(since + timedelta(seconds=i * step_s), total / n) for i, (total, n) in sorted(sums.items())]

    def check_server(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


_COLUMNS = f"{telemetry.name} (facility, device_id, metric, ts, value)"
_ON_CONFLICT = "ON CONFLICT (facility, device_id, metric, ts) DO NOTHING"
_IN_CHUNK = 500
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
    """Writes through the InfluxDB v2 write API, reads through VictoriaMetrics' Prometheus-compatible
    query API (`query_url`, by default the same server).

    Writes are synchronous through influxdb-client: its batching API buffers in memory and reports
    failures to a callback, which would let an envelope be acknowledged before its points exist.

    Queries ask for `nocache`, which also keeps VictoriaMetrics from hiding its newest 30 s
    (`-search.latencyOffset`) from them. The server must run with `-dedup.minScrapeInterval=1ms`,
    else a point written twice counts twice in a mean; `check_server()` says so. Raw readings are
    de-duplicated here as well, whatever the server does."""

    name = "influx"

    def __init__(self, url: str, *, token: str = "", org: str = "careguard", bucket: str = "careguard",
                 timeout_s: float = 10.0, query_url: Optional[str] = None):
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.bucket = bucket
        self.org = org
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout_s * 1000))
        self._api = self._client.write_api(write_options=SYNCHRONOUS)
        self._series: dict[tuple[str, str, str], str] = {}
        self._http = httpx.Client(base_url=(query_url or url).rstrip("/"), timeout=timeout_s)

    def write(self, conn: Optional[Connection], points: Sequence[TelemetryRow]) -> int:
        if not points:
            return 0
        from influxdb_client import WritePrecision

        if len(self._series) > MAX_CACHED_SERIES:
            self._series.clear()
        self._api.write(bucket=self.bucket, org=self.org, record=to_line_protocol(points, self._series),
                        write_precision=WritePrecision.MS)
        return len(points)

    # --- reads ----------------------------------------------------------------------------------
    def _get(self, path: str, params: dict, method: str = "GET") -> bytes:
        try:
            if method == "GET":
                r = self._http.get(path, params=params)
            else:
                r = self._http.post(path, data=params)
        except httpx.HTTPError as exc:
            raise TelemetryReadError(f"telemetry query {path} failed: {exc}") from exc
        if r.status_code != 200:
            raise TelemetryReadError(f"telemetry query {path} answered {r.status_code}: {r.text[:300]}")
        return r.content

    def _query(self, path: str, params: dict) -> list[dict]:
        try:
            # nocache: VictoriaMetrics then neither serves cached results (a late buffered point would
            # be missed) nor hides the newest -search.latencyOffset (30 s) of data.
            doc = orjson.loads(self._get(path, params | {"nocache": "1"}))
            if doc.get("status") != "success":
                raise TelemetryReadError(f"telemetry query {path} failed: {doc.get('error')}")
            return doc["data"]["result"]
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise TelemetryReadError(f"telemetry query {path}: unexpected answer ({exc})") from exc

    def check_server(self) -> list[str]:
        try:
            text = self._get("/flags", {}).decode()
        except TelemetryReadError as exc:
            return [f"cannot read the server's flags (reads need VictoriaMetrics): {exc}"]
        flags = dict(line.lstrip("-").split("=", 1) for line in text.splitlines() if "=" in line)
        if flags.get("dedup.minScrapeInterval", '"0s"').strip('"') in ("0", "0s", ""):
            return ["-dedup.minScrapeInterval is not set (1ms): a point written twice counts twice in means"]
        return []

    def latest(self, conn: Optional[Connection], metrics: Sequence[str], since: datetime, until: datetime, *,
               facility: Optional[str] = None) -> dict[SeriesKey, Reading]:
        sel = _selector(facility=facility, metrics=metrics)
        window = f"[{max(_ms(until) - _ms(since) + 1, 1)}ms]"
        # One query for value and time, so that both come from the same evaluation.
        query = (f'label_set(last_over_time({sel}{window}), "{_PART}", "v") or '
                 f'label_set(tlast_over_time({sel}{window}), "{_PART}", "t")')
        parts: dict[SeriesKey, dict[str, float]] = {}
        for item in self._query("/api/v1/query", {"query": query, "time": _seconds(_ms(until))}):
            labels = item["metric"]
            key = _key(labels)
            if key is not None:
                parts.setdefault(key, {})[labels.get(_PART, "")] = float(item["value"][1])
        return {k: (_from_ms(round(p["t"] * 1000)), p["v"]) for k, p in parts.items() if "t" in p and "v" in p}

    def readings(self, conn: Optional[Connection], keys: Iterable[SeriesKey], since: datetime,
                 until: datetime) -> dict[SeriesKey, list[Reading]]:
        wanted = sorted(set(keys))
        merged: dict[SeriesKey, dict[int, float]] = {}
        for i in range(0, len(wanted), _EXPORT_CHUNK):
            params = {"match[]": [_selector(facility=k.facility, device_id=k.device_id, metrics=[k.metric])
                                  for k in wanted[i:i + _EXPORT_CHUNK]],
                      "start": _seconds(_ms(since)), "end": _seconds(_ms(until))}
            for line in self._get("/api/v1/export", params, method="POST").splitlines():
                if not line.strip():
                    continue
                try:
                    doc = orjson.loads(line)
                    key = _key(doc["metric"])
                    samples = zip(doc["timestamps"], doc["values"])
                except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                    raise TelemetryReadError(f"telemetry export: unexpected line ({exc})") from exc
                if key is not None:
                    # A series may span several lines; a time seen twice is one reading.
                    merged.setdefault(key, {}).update((int(ts), float(v)) for ts, v in samples)
        return {k: [(_from_ms(ts), v) for ts, v in sorted(by_ts.items())] for k, by_ts in merged.items()}

    def buckets(self, conn: Optional[Connection], key: SeriesKey, since: datetime, until: datetime,
                step_s: int) -> list[Reading]:
        sel = _selector(facility=key.facility, device_id=key.device_id, metrics=[key.metric])
        start_ms, until_ms, step_ms = _ms(since), _ms(until), step_s * 1000
        full = (until_ms - start_ms) // step_ms
        out: list[Reading] = []
        # A rollup at t covers (t - window, t]: evaluated 1 ms before each bucket's end it covers
        # exactly [start, end) at the store's millisecond precision.
        if full:
            for item in self._query("/api/v1/query_range", {
                    "query": f"avg_over_time({sel}[{step_s}s])", "step": f"{step_s}s",
                    "start": _seconds(start_ms + step_ms - 1), "end": _seconds(start_ms + full * step_ms - 1)}):
                for t, v in item["values"]:
                    i = round((float(t) * 1000 + 1 - start_ms) / step_ms) - 1
                    out.append((since + timedelta(seconds=i * step_s), float(v)))
        rest_ms = until_ms - (start_ms + full * step_ms)
        if rest_ms > 0:  # the last bucket, cut short by `until`
            for item in self._query("/api/v1/query", {"query": f"avg_over_time({sel}[{rest_ms}ms])",
                                                      "time": _seconds(until_ms - 1)}):
                out.append((since + timedelta(seconds=full * step_s), float(item["value"][1])))
        return sorted(out)

    def close(self) -> None:
        self._api.close()
        self._client.close()
        self._http.close()


_PART = "cg_part"
_EXPORT_CHUNK = 100


def _ms(ts: datetime) -> int:
    return (ts - _EPOCH) // _MS


def _from_ms(ms: int) -> datetime:
    return _EPOCH + ms * _MS


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}"


def _label(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _selector(*, facility: Optional[str] = None, device_id: Optional[str] = None, metrics: Sequence[str]) -> str:
    for m in metrics:
        if not _METRIC_RE.fullmatch(m):
            raise ValueError(f"metric name {m!r} does not match {METRIC_NAME_RE}")
    labels = [f'metric=~"{"|".join(sorted(metrics))}"' if len(metrics) != 1 else f"metric={_label(metrics[0])}"]
    if facility is not None:
        labels.append(f"facility={_label(facility)}")
    if device_id is not None:
        labels.append(f"device={_label(device_id)}")
    return f"{SERIES_METRIC}{{{','.join(labels)}}}"


def _key(labels: dict) -> Optional[SeriesKey]:
    try:
        return SeriesKey(labels["facility"], labels["device"], labels["metric"])
    except KeyError:
        return None


def make_telemetry_store(url: Optional[str], *, token: str = "", org: str = "careguard", bucket: str = "careguard",
                         query_url: Optional[str] = None) -> TelemetryStore:
    """No URL: the relational table. Otherwise an InfluxDB v2 write endpoint at `url`, read through
    the Prometheus query API at `query_url` (default: `url`, as VictoriaMetrics serves both)."""
    if not url:
        return RelationalTelemetryStore()
    return InfluxTelemetryStore(url, token=token, org=org, bucket=bucket, query_url=query_url)
