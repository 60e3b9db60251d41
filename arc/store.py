"""The police alarm centre's (ARC) store: every alarm received over DC-09, once, in SQLite.

A frame is the same alarm as one already stored when
- it carries a CareGuard alarm id and the same account, alarm id and code were stored before
  (a gateway's journal re-sends after a restart with a new sequence number), or
- the same account, sequence number and content (data + extended data, not the timestamp, which a
  resend renews) were stored within DUPLICATE_HORIZON: an ACK lost on the way back.
The horizon matters because sequence numbers wrap: a later alarm may reuse a number."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional
from uuid import UUID

from pydantic import BaseModel, ConfigDict

DUPLICATE_HORIZON = timedelta(hours=1)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS arc_alarms (
    id          INTEGER PRIMARY KEY,
    account     TEXT NOT NULL,
    facility    TEXT,
    seq         INTEGER NOT NULL,
    protocol    TEXT NOT NULL,
    code        TEXT NOT NULL,
    zone        INTEGER NOT NULL,
    area        INTEGER NOT NULL,
    alarm_id    TEXT,
    event_time  TEXT NOT NULL,
    received_at TEXT NOT NULL,
    receiver    TEXT NOT NULL,
    content     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS arc_alarms_by_alarm ON arc_alarms (account, alarm_id, code);
CREATE INDEX IF NOT EXISTS arc_alarms_by_seq ON arc_alarms (account, seq, content);
"""


class ArcAlarm(BaseModel):
    model_config = ConfigDict(frozen=True)

    account: str
    facility: Optional[str]
    seq: int
    protocol: str
    code: str
    zone: int
    area: int
    alarm_id: Optional[UUID]
    event_time: datetime  # time of origin when the frame carries it, else the frame's timestamp
    received_at: datetime
    receiver: str  # which ARC receiver took it ("host:port")
    content: str  # data and extended data as sent


def _iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).isoformat()


class ArcStore:
    def __init__(self, path: str | Path = ":memory:"):
        # Created on one thread, used on the receiver's loop thread only.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def record(self, alarm: ArcAlarm) -> bool:
        """Store the alarm unless it is a resend of one already stored; True when stored."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if alarm.alarm_id is not None and db.execute(
                    "SELECT 1 FROM arc_alarms WHERE account=? AND alarm_id=? AND code=?",
                    (alarm.account, str(alarm.alarm_id), alarm.code)).fetchone():
                db.execute("COMMIT")
                return False
            if db.execute("SELECT 1 FROM arc_alarms WHERE account=? AND seq=? AND content=? AND received_at>=?",
                          (alarm.account, alarm.seq, alarm.content,
                           _iso(alarm.received_at - DUPLICATE_HORIZON))).fetchone():
                db.execute("COMMIT")
                return False
            db.execute(
                "INSERT INTO arc_alarms (account, facility, seq, protocol, code, zone, area, alarm_id, event_time,"
                " received_at, receiver, content) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (alarm.account, alarm.facility, alarm.seq, alarm.protocol, alarm.code, alarm.zone, alarm.area,
                 str(alarm.alarm_id) if alarm.alarm_id else None, _iso(alarm.event_time), _iso(alarm.received_at),
                 alarm.receiver, alarm.content))
            db.execute("COMMIT")
            return True
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def alarms(self) -> list[ArcAlarm]:
        rows = self._db.execute(
            "SELECT account, facility, seq, protocol, code, zone, area, alarm_id, event_time, received_at, receiver,"
            " content FROM arc_alarms ORDER BY id").fetchall()
        keys = ("account", "facility", "seq", "protocol", "code", "zone", "area", "alarm_id", "event_time",
                "received_at", "receiver", "content")
        return [ArcAlarm.model_validate(dict(zip(keys, row))) for row in rows]

    def close(self) -> None:
        self._db.close()
