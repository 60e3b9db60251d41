"""The police alarm centre's (ARC) store: every alarm received over DC-09, once, in SQLite.

A frame is the same alarm as one already stored when
- it carries a CareGuard alarm id and the same account, alarm id and code were stored before
  (a gateway's journal re-sends after a restart with a new sequence number), or
- it carries no alarm id (another maker's sender) and the same account, sequence number and content
  (data + extended data, not the timestamp, which a resend renews) were stored within
  DUPLICATE_HORIZON: an ACK lost on the way back. The horizon matters because sequence numbers
  wrap: a later alarm may reuse a number.

Durability: the receiver ACKs an alarm only once `record_many` has returned, and the gateway then
forgets it, so a commit must survive a power cut, not only a crash of the process. The database is
in WAL mode with synchronous=FULL: every commit fsyncs the write-ahead log. (synchronous=NORMAL
would skip that fsync, and a power cut could roll back alarms already ACKed; it survives only a
process crash.) An fsync costs milliseconds, so the receiver commits in groups (arc.group_commit):
one transaction and one fsync for all alarms that arrived together."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple, Optional, Sequence
from uuid import UUID

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
-- Files written before the two rules had indexes of their own: an alarm with an id is found by
-- the unique index (its insert checks it at no extra cost), one without by the partial index.
DROP INDEX IF EXISTS arc_alarms_by_alarm;
DROP INDEX IF EXISTS arc_alarms_by_seq;
CREATE UNIQUE INDEX IF NOT EXISTS arc_alarms_once ON arc_alarms (account, alarm_id, code) WHERE alarm_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS arc_alarms_unidentified ON arc_alarms (account, seq, content) WHERE alarm_id IS NULL;
"""

_COLUMNS = "account, facility, seq, protocol, code, zone, area, alarm_id, event_time, received_at, receiver, content"

# An alarm with an id: inserted unless the unique index already holds its account, id and code (a
# resend after a lost ACK, or after a gateway restart under a new sequence number). Its content
# names the id and the code, so the rule below could never match it without this one matching too.
_INSERT_IDENTIFIED = f"""
INSERT INTO arc_alarms ({_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
ON CONFLICT (account, alarm_id, code) WHERE alarm_id IS NOT NULL DO NOTHING
"""
# An alarm without one (another maker's sender): inserted unless the same account, sequence number
# and content arrived within the horizon (?13).
_INSERT_UNIDENTIFIED = f"""
INSERT INTO arc_alarms ({_COLUMNS}) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12
WHERE NOT EXISTS (SELECT 1 FROM arc_alarms WHERE alarm_id IS NULL AND account = ?1 AND seq = ?3 AND content = ?12
                  AND received_at >= ?13)
"""


class ArcAlarm(NamedTuple):
    """One stored alarm or path event. A plain immutable record: the receiver builds one per alarm
    of a burst on its loop from values its decoder already checked (validating them again cost more
    than the insert)."""

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
    return (ts if ts.tzinfo is timezone.utc else ts.astimezone(timezone.utc)).isoformat()


def _insert(alarm: ArcAlarm) -> tuple[str, tuple]:
    """The statement and its parameters (positional: a burst inserts a thousand of these on the
    receiver's loop, and binding by name costs more than the insert)."""
    row = (alarm.account, alarm.facility, alarm.seq, alarm.protocol, alarm.code, alarm.zone, alarm.area,
           str(alarm.alarm_id) if alarm.alarm_id else None, _iso(alarm.event_time), _iso(alarm.received_at),
           alarm.receiver, alarm.content)
    if alarm.alarm_id:
        return _INSERT_IDENTIFIED, row
    return _INSERT_UNIDENTIFIED, row + (_iso(alarm.received_at - DUPLICATE_HORIZON),)


class ArcStore:
    """One write connection, used by one writer at a time: the receiver's group commit stages a
    batch on the event loop (`stage`, CPU only) and has its commit thread `commit` it (the fsync);
    `record_many` does both for other callers. `_txn` is held from stage to the end of commit, across
    those two threads (a plain Lock may be released by another thread), so `alarms` never reads a
    batch that is staged but not yet durable."""

    def __init__(self, path: str | Path = ":memory:"):
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._txn = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def stage(self, alarms: Sequence[ArcAlarm]) -> list[bool]:
        """Insert each alarm unless it is a resend of one stored before it (earlier in `alarms`
        included) in a new transaction, and leave it open for `commit` (or `rollback`); for each
        alarm, True when inserted. Nothing is durable until `commit` returns.

        Inserting is CPU work (microseconds an alarm) and only the commit waits on the disk: done
        on the receiver's loop, the inserts need no hand-over of the interpreter lock per row to a
        thread that gets it back only every few milliseconds while the loop is busy."""
        inserts = [_insert(a) for a in alarms]
        self._txn.acquire()
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            return [db.execute(sql, row).rowcount == 1 for sql, row in inserts]
        except BaseException:
            self.rollback()
            raise

    def commit(self) -> None:
        """Make the staged batch durable (fsync); on failure it is rolled back and the error raised."""
        try:
            self._db.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise
        self._txn.release()

    def rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.ProgrammingError:
            pass  # the store was closed: nothing of the batch was written
        finally:
            self._txn.release()

    def record_many(self, alarms: Sequence[ArcAlarm]) -> list[bool]:
        """`stage` and `commit` in one call: durable when this returns."""
        stored = self.stage(alarms)
        self.commit()
        return stored

    def alarms(self) -> list[ArcAlarm]:
        with self._txn:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM arc_alarms ORDER BY id").fetchall()
        return [ArcAlarm(account, facility, seq, protocol, code, zone, area, UUID(alarm_id) if alarm_id else None,
                         datetime.fromisoformat(event_time), datetime.fromisoformat(received_at), receiver, content)
                for (account, facility, seq, protocol, code, zone, area, alarm_id, event_time, received_at, receiver,
                     content) in rows]

    def close(self) -> None:
        with self._txn:
            self._db.close()
