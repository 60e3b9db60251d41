"""The durable outbox: every message for the cloud waits here until the broker's PUBACK.

It shares one SQLite file (and connection) with the alarm journal, so an alarm and its
cloud copy are written in one transaction: there is never an alarm on disk whose cloud
copy is missing, nor the other way round.

Order of delivery: by priority (alarms first, then events, then telemetry), then by
insertion. When full, the oldest telemetry goes first; alarms and events are never
dropped (a full outbox of alarms grows past the cap rather than lose one)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import IntEnum


class Priority(IntEnum):
    ALARM = 0
    EVENT = 1
    STATUS = 2
    TELEMETRY = 3


SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    priority INTEGER NOT NULL,
    topic    TEXT NOT NULL,
    payload  BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (priority, seq);
"""


@dataclass(frozen=True)
class OutboxItem:
    seq: int
    priority: int
    topic: str
    payload: bytes


class Outbox:
    """Rows of the `outbox` table. Callers own the transaction (see Journal.transaction)."""

    def __init__(self, conn: sqlite3.Connection, max_messages: int):
        self.conn = conn
        self.max_messages = max_messages
        conn.executescript(SCHEMA)
        self.dropped_telemetry = 0

    def put(self, topic: str, payload: bytes, priority: Priority) -> int:
        cur = self.conn.execute("INSERT INTO outbox (priority, topic, payload) VALUES (?, ?, ?)",
                                (int(priority), topic, payload))
        return int(cur.lastrowid)

    def enforce_cap(self) -> int:
        """Drop the oldest telemetry beyond the cap; returns how many were dropped."""
        excess = self.count() - self.max_messages
        if excess <= 0:
            return 0
        cur = self.conn.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE priority = ? ORDER BY seq LIMIT ?)",
            (int(Priority.TELEMETRY), excess))
        self.dropped_telemetry += cur.rowcount
        return cur.rowcount

    def next_batch(self, limit: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[OutboxItem]:
        """The next `limit` items in delivery order, skipping those already in flight."""
        rows = self.conn.execute(
            "SELECT seq, priority, topic, payload FROM outbox ORDER BY priority, seq LIMIT ?",
            (limit + len(exclude),)).fetchall()
        return [OutboxItem(*r) for r in rows if r[0] not in exclude][:limit]

    def delete(self, seqs: list[int]) -> None:
        self.conn.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in seqs])

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
