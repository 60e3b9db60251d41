"""Gateway offline: a facility gateway not heard for `gateway_offline_s` (25 s by default: two
and a half of the edge's 10 s heartbeats, so one lost heartbeat raises nothing, and with the 1 s
check the alarm comes within 26 s of the last message, inside the 30 s a province asks; GB/T
28181 allows 180 s, ThingsBoard 600 s), or whose retained status says offline (its MQTT last
will), gets a `gateway_offline` alarm; hearing it again, with its status online, clears it.

`decide` is the pure rule; `GatewayWatch` is the thread that feeds it from the store and applies
what it decides through the alarm store, as alarm envelopes with source "cloud". It reads the
`gateways` table that every ingest worker updates, so it sees all of them, in any process; each
check reads only the gateways whose state may change (silent past the limit, status offline, or
with an active alarm): the database filters the table (about a millisecond for 10,000 rows; an
index on the receive time would cost ingest more, see cloud/store/db.py), and the watch's Python
handles only those, so a province's check costs little more than a city's.

An alarm's id is derived from the facility and the last time it was heard, so two clouds
watching the same store, or one restarted, raise the same alarm rather than two."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Optional

from sqlalchemy import or_, select
from sqlalchemy.engine import Engine

from cloud.alarms.lifecycle import clear_cloud_alarm, raise_cloud_alarm
from cloud.alarms.records import AlarmRecord, get_alarms
from cloud.periodic import PeriodicTask
from cloud.store.db import alarms, gateways
from contracts.alarms import AlarmKind, AlarmState
from contracts.timefmt import iso_utc, utcnow

log = logging.getLogger("careguard.cloud.gateway_watch")

_ALARM_NS = uuid.UUID("6f1d3c2e-5b7a-4f0e-9c1d-2a3b4c5d6e7f")
ALARM_SOURCE = "gateway"


@dataclass(frozen=True)
class GatewaySeen:
    """What the store knows of one gateway: when the cloud last received anything from it (cloud
    clock, so a gateway's wrong clock cannot hide it) and the state in its newest status.gateway."""
    facility: str
    last_received_at: datetime
    status_state: Optional[str]


@dataclass(frozen=True)
class Change:
    facility: str
    alarm_id: uuid.UUID
    raise_: bool
    reason: str


def offline_alarm_id(facility: str, last_received_at: datetime) -> uuid.UUID:
    return uuid.uuid5(_ALARM_NS, f"{facility}/gateway_offline/{iso_utc(last_received_at)}")


def decide(seen: list[GatewaySeen], active: dict[str, uuid.UUID], now: datetime, threshold_s: float,
           listening_since: datetime) -> list[Change]:
    """Alarms to raise and clear. `active` maps a facility to its active gateway_offline alarm.
    Silence is counted from `listening_since` at the earliest: while the cloud itself was not
    listening, a gateway's silence says nothing about the gateway."""
    limit = timedelta(seconds=threshold_s)
    changes = []
    for g in seen:
        heard = max(g.last_received_at, listening_since)
        if g.status_state == "offline":
            reason = "its last will says offline (connection to the broker lost)"
        elif now - heard > limit:
            reason = f"nothing received for {(now - g.last_received_at).total_seconds():.0f} s (limit {threshold_s:g} s)"
        else:
            reason = ""
        if reason and g.facility not in active:
            changes.append(Change(g.facility, offline_alarm_id(g.facility, g.last_received_at), True, reason))
        elif not reason and g.facility in active:
            changes.append(Change(g.facility, active[g.facility], False, "heard again"))
    return changes


def read_state(engine: Engine, now: datetime, threshold_s: float,
               listening_since: datetime) -> tuple[list[GatewaySeen], dict[str, uuid.UUID]]:
    """The gateways `decide` may change something for, and the active alarms. Any other gateway
    was heard within the limit, says online and has no alarm: `decide` would leave it alone."""
    g, a = gateways.c, alarms.c
    active = (a.kind == AlarmKind.GATEWAY_OFFLINE.value, a.source == ALARM_SOURCE, a.state == AlarmState.ACTIVE.value)
    may_change = [g.status_state == "offline", g.facility.in_(select(a.facility).where(*active))]
    cutoff = now - timedelta(seconds=threshold_s)
    if listening_since < cutoff:  # before that, `decide` counts no silence
        may_change.append(g.last_received_at < cutoff)
    with engine.connect() as conn:
        rows = conn.execute(select(g.facility, g.last_received_at, g.status_state).where(or_(*may_change))).all()
        open_alarms = conn.execute(select(a.facility, a.alarm_id).where(*active)).all()
    seen = [GatewaySeen(r.facility, r.last_received_at, r.status_state) for r in rows]
    return seen, {r.facility: uuid.UUID(r.alarm_id) for r in open_alarms}


def apply_change(engine: Engine, change: Change, now: datetime) -> list[AlarmRecord]:
    """Raise or clear the facility's gateway_offline alarm, as every alarm the cloud raises itself."""
    kind = AlarmKind.GATEWAY_OFFLINE
    with engine.begin() as conn:
        if change.raise_:
            alarm_id, _ = raise_cloud_alarm(conn, facility=change.facility, kind=kind, source=ALARM_SOURCE, ts=now,
                                            detail={"reason": change.reason}, alarm_id=str(change.alarm_id))
        else:
            alarm_id = clear_cloud_alarm(conn, facility=change.facility, kind=kind, source=ALARM_SOURCE, ts=now,
                                         detail={"reason": change.reason})
        return get_alarms(conn, [alarm_id]) if alarm_id else []


class GatewayWatch:
    """Checks every `check_s`; `on_alarms` gets the alarm rows it raised or cleared (for SSE)."""

    def __init__(self, engine: Engine, *, threshold_s: float = 25.0, check_s: float = 1.0,
                 on_alarms: Callable[[list[AlarmRecord]], None] | None = None):
        self.engine = engine
        self.threshold_s = threshold_s
        self.check_s = check_s
        self.on_alarms = on_alarms
        self.raised = 0
        self.cleared = 0
        self._task = PeriodicTask("cloud-gateway-watch", check_s, self.check, logger=log, what="gateway check")
        self._since = utcnow()

    def start(self) -> "GatewayWatch":
        self._since = utcnow()
        self._task.start()
        return self

    def stop(self) -> None:
        self._task.stop()

    def check(self) -> list[Change]:
        """One pass: read, decide, apply. Returns what it changed."""
        now = utcnow()
        seen, active = read_state(self.engine, now, self.threshold_s, self._since)
        changes = decide(seen, active, now, self.threshold_s, self._since)
        for change in changes:
            rows = apply_change(self.engine, change, now)
            log.warning("gateway %s %s: %s", change.facility, "offline" if change.raise_ else "back online",
                        change.reason)
            if change.raise_:
                self.raised += 1
            else:
                self.cleared += 1
            if self.on_alarms is not None:
                self.on_alarms(rows)
        return changes
