"""Care and climate read for the pages: symptom clusters past and present, and a climate
sensor's series. Counts only: who the children are is never read here."""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.engine import Connection

from cloud.registry.jurisdiction import EVERYWHERE, Jurisdiction, facilities_within
from cloud.care.health_runner import active_cluster_alarms, current_clusters
from cloud.store.db import alarms
from cloud.store.telemetry import SeriesKey, TelemetryStore
from contracts.alarms import AlarmKind


class ClusterItem(BaseModel):
    facility: str
    class_id: str
    symptom: str
    count: int = Field(description="distinct children; who they are is never shown")
    first_at: datetime
    last_at: datetime
    alarm_id: Optional[str]
    active: bool


class SeriesPoint(BaseModel):
    ts: datetime
    value: float


def cluster_items(conn: Connection, now: datetime, since: datetime, facility: Optional[str],
                  within: Jurisdiction = EVERYWHERE) -> list[ClusterItem]:
    """Clusters active now, then the cluster alarms raised since `since` that are no longer active."""
    active = active_cluster_alarms(conn, facility)
    items = [ClusterItem(facility=c.facility, class_id=c.class_id, symptom=c.symptom.value, count=c.count,
                         first_at=c.first_at, last_at=c.last_at, alarm_id=active.get((c.facility, c.source)),
                         active=True)
             for c in current_clusters(conn, now, facility) if c.last_at >= since]
    shown = {i.alarm_id for i in items}
    a = alarms.c
    q = select(a.alarm_id, a.facility, a.detail, a.state).where(a.kind == AlarmKind.SYMPTOM_CLUSTER.value,
                                                                a.raised_at >= since)
    if facility is not None:
        q = q.where(a.facility == facility)
    for r in conn.execute(q.order_by(a.raised_at)):
        d = r.detail or {}
        if r.alarm_id in shown or not {"class_id", "symptom", "count", "first_at", "last_at"} <= set(d):
            continue
        items.append(ClusterItem(facility=r.facility, class_id=d["class_id"], symptom=d["symptom"], count=d["count"],
                                 first_at=d["first_at"], last_at=d["last_at"], alarm_id=r.alarm_id,
                                 active=r.state == "active"))
    allowed = facilities_within(conn, within)
    return items if allowed is None else [i for i in items if i.facility in allowed]


def climate_series(conn: Connection, store: TelemetryStore, facility: str, device_id: str, metric: str,
                   since: datetime, until: datetime, step_s: int) -> list[SeriesPoint]:
    """One sensor's metric averaged per `step_s` over [since, until), from the telemetry store."""
    return [SeriesPoint(ts=ts, value=round(value, 3))
            for ts, value in store.buckets(conn, SeriesKey(facility, device_id, metric), since, until, step_s)]
