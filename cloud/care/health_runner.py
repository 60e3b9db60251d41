"""The periodic health evaluation: room climate (sustained breaches raise and clear
`sensor_range`), symptom clusters (raise and clear an alarm to the health role, counts only), and
morning checks missing by the deadline (reported; the finding itself is the compliance rule's).

The decisions are cloud.health_rules' pure functions; `HealthRunner` feeds them from the store
and applies them through cloud.alarms.lifecycle, like lifecycle.EscalationRunner."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Optional

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Engine

from cloud.registry.jurisdiction import EVERYWHERE, Jurisdiction, facilities_within
from cloud.alarms.lifecycle import clear_cloud_alarm, raise_cloud_alarm
from cloud.alarms.records import AlarmRecord, get_alarms
from cloud.care.health_rules import (
    ClimateMetric,
    ClimateState,
    Cluster,
    climate_limits,
    climate_state,
    clusters_for,
    day_to_judge,
    in_range,
)
from cloud.care.records import check_summary, symptom_observations
from cloud.compliance.profiles import NATIONAL, profile_for
from cloud.periodic import PeriodicTask
from cloud.store.db import alarms, devices, facilities
from cloud.store.telemetry import RelationalTelemetryStore, TelemetryStore
from contracts.alarms import AlarmKind, AlarmState, Severity
from contracts.timefmt import iso_utc, utcnow

log = logging.getLogger("careguard.cloud.health")

CLIMATE_METRICS = tuple(m.value for m in ClimateMetric)


CLUSTER_NOTIFY_ROLE = "health"


def climate_source(device_id: str, metric: str) -> str:
    return f"{device_id}/{metric}"


# --- reading the store ------------------------------------------------------------------------
@dataclass
class SensorSeries:
    facility: str
    device_id: str
    metric: str
    zone: Optional[str]


def facility_cities(conn: Connection) -> dict[str, str]:
    return dict(conn.execute(select(facilities.c.facility_id, facilities.c.city)).all())


def device_zones(conn: Connection, facility_ids: set[str]) -> dict[tuple[str, str], Optional[str]]:
    d = devices.c
    out: dict[tuple[str, str], Optional[str]] = {}
    ids = sorted(facility_ids)
    for i in range(0, len(ids), 500):
        out.update({(r.facility, r.device_id): r.zone or r.area_id
                    for r in conn.execute(select(d.facility, d.device_id, d.zone, d.area_id)
                                          .where(d.facility.in_(ids[i:i + 500])))})
    return out


def climate_states(conn: Connection, store: TelemetryStore, now: datetime, *, since: Optional[datetime] = None,
                   facility: Optional[str] = None,
                   within: Jurisdiction = EVERYWHERE) -> list[tuple[SensorSeries, ClimateState]]:
    """Each sensor's climate state at `now`, from readings since `since` (default: twice the
    sustained duration, at least an hour), of the facilities under `within`.

    Only a sensor whose latest reading is out of range needs its history (since when?): the
    others are read as their latest reading alone, which gives the same state, so a city of
    sensors costs one read of the latest values and a few histories."""
    cities = facility_cities(conn)
    allowed = facilities_within(conn, within)
    lookback = max(2 * NATIONAL.climate.sustained_s, 3600.0)
    since = since or now - timedelta(seconds=lookback)
    latest = store.latest(conn, CLIMATE_METRICS, since, now, facility=facility)
    if allowed is not None:
        latest = {k: v for k, v in latest.items() if k.facility in allowed}
    profiles = {key: profile_for(cities.get(key.facility)) for key in latest}
    outside = []
    for key, (ts, value) in latest.items():
        climate, tz = profiles[key].climate, profiles[key].care.timezone
        limits = climate_limits(key.metric, ts, climate, tz)
        if limits is not None and not in_range(value, limits):
            outside.append(key)
    history = store.readings(conn, outside, since, now) if outside else {}
    zones = device_zones(conn, {k.facility for k in latest})
    out = []
    for key in sorted(latest):
        profile = profiles[key]
        state = climate_state(key.metric, history.get(key) or [latest[key]], profile.climate, profile.care.timezone)
        if state is not None:
            out.append((SensorSeries(key.facility, key.device_id, key.metric, zones.get((key.facility, key.device_id))),
                        state))
    return out


def active_cluster_alarms(conn: Connection, facility: Optional[str] = None) -> dict[tuple[str, str], str]:
    """(facility, source) -> alarm_id of the active symptom-cluster alarms."""
    c = alarms.c
    q = select(c.facility, c.source, c.alarm_id).where(c.kind == AlarmKind.SYMPTOM_CLUSTER.value,
                                                       c.state == AlarmState.ACTIVE.value)
    if facility is not None:
        q = q.where(c.facility == facility)
    return {(f, s): a for f, s, a in conn.execute(q)}


def current_clusters(conn: Connection, now: datetime, facility: Optional[str] = None) -> list[Cluster]:
    cities = facility_cities(conn)
    window_h = max(profile_for(city).care.cluster_window_h for city in {None, *cities.values()})
    observations = symptom_observations(conn, now - timedelta(hours=window_h), now, facility)
    out = []
    for fac in sorted({o.facility for o in observations}):
        care = profile_for(cities.get(fac)).care
        out += clusters_for([o for o in observations if o.facility == fac], now, care)
    return out


# --- applying ---------------------------------------------------------------------------------
@dataclass
class HealthOutcome:
    raised: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    missing_checks: list[tuple[str, str]] = field(default_factory=list)  # (facility, class_id)


def apply_climate(conn: Connection, store: TelemetryStore, now: datetime, out: HealthOutcome) -> None:
    active = {(f, s) for f, s in conn.execute(select(alarms.c.facility, alarms.c.source).where(
        alarms.c.kind == AlarmKind.SENSOR_RANGE.value, alarms.c.state == AlarmState.ACTIVE.value))}
    for s, state in climate_states(conn, store, now):
        source = climate_source(s.device_id, s.metric)
        if state.sustained:
            alarm_id, new = raise_cloud_alarm(
                conn, facility=s.facility, kind=AlarmKind.SENSOR_RANGE, source=source, ts=now,
                detail={"metric": s.metric, "zone": s.zone, "value": state.latest, "limit_low": state.limit_low,
                        "limit_high": state.limit_high, "breach_since": iso_utc(state.breach_since),
                        "rule": "GB/T 18883"})
            if new:
                out.raised.append(alarm_id)
        elif state.in_range and (s.facility, source) in active:
            cleared = clear_cloud_alarm(conn, facility=s.facility, kind=AlarmKind.SENSOR_RANGE, source=source,
                                        ts=state.latest_ts)
            if cleared:
                out.cleared.append(cleared)


def apply_clusters(conn: Connection, now: datetime, out: HealthOutcome) -> None:
    clusters = current_clusters(conn, now)
    live = set()
    for cl in clusters:
        live.add((cl.facility, cl.source))
        detail = {"class_id": cl.class_id, "symptom": cl.symptom.value, "count": cl.count,
                  "first_at": iso_utc(cl.first_at), "last_at": iso_utc(cl.last_at), "notify_role": CLUSTER_NOTIFY_ROLE}
        alarm_id, new = raise_cloud_alarm(conn, facility=cl.facility, kind=AlarmKind.SYMPTOM_CLUSTER,
                                          source=cl.source, ts=now, severity=Severity.MAJOR, detail=detail)
        if new:
            out.raised.append(alarm_id)
        else:
            # The alarm keeps the latest counts while it stays active.
            conn.execute(update(alarms).where(alarms.c.alarm_id == alarm_id).values(detail=detail))
    for (fac, source), alarm_id in active_cluster_alarms(conn).items():
        if (fac, source) not in live:
            if clear_cloud_alarm(conn, facility=fac, kind=AlarmKind.SYMPTOM_CLUSTER, source=source, ts=now):
                out.cleared.append(alarm_id)


def find_missing_checks(conn: Connection, now: datetime) -> list[tuple[str, str]]:
    day = day_to_judge(now, NATIONAL.care)
    if day is None:
        return []
    return [(i.facility, i.class_id) for i in check_summary(conn, day, now) if i.morning_missing_after_10]


class HealthRunner:
    """Evaluates every `interval_s`; start() / stop(), or run_once(now) directly. Room climate is
    read from `telemetry_store` (where ingest writes it). `on_alarms` gets the alarm rows raised or
    cleared, after commit (the live stream)."""

    def __init__(self, engine: Engine, *, telemetry_store: Optional[TelemetryStore] = None, interval_s: float = 60.0,
                 clock: Callable[[], datetime] = utcnow,
                 on_alarms: Optional[Callable[[list[AlarmRecord]], None]] = None):
        self.engine = engine
        self.telemetry_store = telemetry_store or RelationalTelemetryStore()
        self.interval_s = interval_s
        self.clock = clock
        self.on_alarms = on_alarms
        self.runs = 0
        self._task = PeriodicTask("cloud-health", interval_s, self.run_once, logger=log, what="health evaluation")

    @property
    def errors(self) -> int:
        return self._task.errors

    def run_once(self, now: Optional[datetime] = None) -> HealthOutcome:
        now = now or self.clock()
        out = HealthOutcome()
        with self.engine.begin() as conn:
            apply_climate(conn, self.telemetry_store, now, out)
            apply_clusters(conn, now, out)
            out.missing_checks = find_missing_checks(conn, now)
        self.runs += 1
        if self.on_alarms is not None and (out.raised or out.cleared):
            with self.engine.connect() as conn:
                self.on_alarms(get_alarms(conn, out.raised + out.cleared))
        return out

    def start(self) -> "HealthRunner":
        self._task.start()
        return self

    def stop(self) -> None:
        self._task.stop(5.0)
