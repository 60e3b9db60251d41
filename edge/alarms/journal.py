"""The alarm journal: an alarm is on disk (SQLite WAL, fsync) before anything acts on it.

One SQLite file holds the journal, the outbox (edge/outbox.py) and the engine's durable
state (latched zones, arming), so one transaction covers an alarm, its police event and
its cloud copy. Alarms and events commit with `synchronous=FULL` (fsync of the WAL);
telemetry commits with `NORMAL`, which survives a crash of the agent but not of the
machine, and costs no fsync: a gateway flooded with readings then never delays an alarm
by more than the one fsync of its own commit.

A transaction that raises a police alarm may leave its COMMIT (and fsync) to the next
turn of the agent's loop (`open_deferred` / `commit_pending`), so that the DC-09 frame
is written to the police receiver first and the fsync runs while it travels. Nothing is
lost by it: the press that caused the alarm is acknowledged to the device broker only
after the commit (`after_commit`), so a crash before it makes the broker deliver the
press again, and the alarm id derives from the press id, so the police receiver sees
the same alarm, not a second one. Any other use of the journal first completes a
pending commit."""

from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator, Optional

from contracts.alarms import AlarmKind
from contracts.timefmt import iso_utc
from edge.uplink.outbox import Outbox

SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id   TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    severity   TEXT NOT NULL,
    source     TEXT NOT NULL,
    zone       TEXT,
    device_id  TEXT,
    raised_at  TEXT NOT NULL,
    cleared_at TEXT,
    detail     TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX IF NOT EXISTS alarms_one_active ON alarms (source, kind) WHERE cleared_at IS NULL;
CREATE TABLE IF NOT EXISTS police_events (
    event_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id     TEXT NOT NULL,
    kind         TEXT NOT NULL,
    restore      INTEGER NOT NULL,
    zone_number  INTEGER NOT NULL,
    ts           TEXT NOT NULL,
    delivered_at TEXT,
    receiver     TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS police_pending ON police_events (event_id) WHERE delivered_at IS NULL;
CREATE TABLE IF NOT EXISTS state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class AlarmRecord:
    alarm_id: uuid.UUID
    kind: AlarmKind
    severity: str
    source: str
    zone: Optional[str]
    device_id: Optional[str]
    raised_at: datetime
    detail: dict


@dataclass(frozen=True)
class PoliceRecord:
    event_id: int
    alarm_id: uuid.UUID
    kind: AlarmKind
    restore: bool
    zone_number: int
    ts: datetime


class Journal:
    def __init__(self, path: str | Path, max_outbox: int):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, used from the agent's event loop thread only.
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(SCHEMA)
        self.outbox = Outbox(self.conn, max_outbox)
        self._durable = True
        self._after_commit: Optional[list[Callable[[], None]]] = None  # set while a commit is pending

    def _begin(self, durable: bool) -> None:
        self.commit_pending()
        if durable != self._durable:
            self.conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._durable = durable
        self.conn.execute("BEGIN IMMEDIATE")

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One atomic write; `durable` commits with an fsync of the WAL."""
        self._begin(durable)
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @contextmanager
    def open_deferred(self) -> Iterator[sqlite3.Connection]:
        """A durable write whose COMMIT waits for `commit_pending` (rolled back if the body raises)."""
        self._begin(True)
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self._after_commit = []

    def commit_pending(self) -> None:
        if self._after_commit is None:
            return
        callbacks, self._after_commit = self._after_commit, None
        self.conn.execute("COMMIT")
        for cb in callbacks:
            cb()

    def after_commit(self, cb: Callable[[], None]) -> None:
        """Run `cb` once what was written so far is on disk (at once if it already is)."""
        if self._after_commit is None:
            cb()
        else:
            self._after_commit.append(cb)

    # --- alarms -------------------------------------------------------------------------
    def insert_alarm(self, a: AlarmRecord) -> None:
        self.conn.execute(
            "INSERT INTO alarms (alarm_id, kind, severity, source, zone, device_id, raised_at, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (str(a.alarm_id), a.kind.value, a.severity, a.source, a.zone, a.device_id, iso_utc(a.raised_at),
             json.dumps(a.detail)))

    def active_alarm(self, source: str, kind: AlarmKind) -> Optional[uuid.UUID]:
        row = self.conn.execute("SELECT alarm_id FROM alarms WHERE source = ? AND kind = ? AND cleared_at IS NULL",
                                (source, kind.value)).fetchone()
        return uuid.UUID(row[0]) if row else None

    def clear_alarm(self, alarm_id: uuid.UUID, at: datetime) -> None:
        self.conn.execute("UPDATE alarms SET cleared_at = ? WHERE alarm_id = ?", (iso_utc(at), str(alarm_id)))

    def alarm(self, alarm_id: uuid.UUID) -> Optional[AlarmRecord]:
        row = self.conn.execute("SELECT alarm_id, kind, severity, source, zone, device_id, raised_at, detail "
                                "FROM alarms WHERE alarm_id = ?", (str(alarm_id),)).fetchone()
        if row is None:
            return None
        return AlarmRecord(uuid.UUID(row[0]), AlarmKind(row[1]), row[2], row[3], row[4], row[5],
                           datetime.fromisoformat(row[6]), json.loads(row[7]))

    # --- police events ------------------------------------------------------------------
    def insert_police_event(self, alarm_id: uuid.UUID, kind: AlarmKind, restore: bool, zone_number: int,
                            ts: datetime) -> PoliceRecord:
        cur = self.conn.execute(
            "INSERT INTO police_events (alarm_id, kind, restore, zone_number, ts) VALUES (?, ?, ?, ?, ?)",
            (str(alarm_id), kind.value, int(restore), zone_number, iso_utc(ts)))
        return PoliceRecord(int(cur.lastrowid), alarm_id, kind, restore, zone_number, ts)

    def mark_police_delivered(self, event_id: int, delivered_at: datetime, receiver: str, attempts: int) -> None:
        self.conn.execute("UPDATE police_events SET delivered_at = ?, receiver = ?, attempts = ? WHERE event_id = ?",
                          (iso_utc(delivered_at), receiver, attempts, event_id))

    def pending_police_events(self) -> list[PoliceRecord]:
        rows = self.conn.execute("SELECT event_id, alarm_id, kind, restore, zone_number, ts FROM police_events "
                                 "WHERE delivered_at IS NULL ORDER BY event_id").fetchall()
        return [PoliceRecord(r[0], uuid.UUID(r[1]), AlarmKind(r[2]), bool(r[3]), r[4], datetime.fromisoformat(r[5]))
                for r in rows]

    def police_event(self, event_id: int) -> tuple[Optional[str], Optional[str]]:
        row = self.conn.execute("SELECT delivered_at, receiver FROM police_events WHERE event_id = ?",
                                (event_id,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    # --- durable engine state -----------------------------------------------------------
    def get_state(self, key: str, default=None):
        row = self.conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_state(self, key: str, value) -> None:
        self.conn.execute("INSERT INTO state (key, value) VALUES (?, ?) "
                          "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, json.dumps(value)))

    def close(self) -> None:
        self.commit_pending()
        self.conn.close()
