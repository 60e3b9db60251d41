"""The durable outbox: every message for the cloud waits here until the broker's PUBACK.

It shares one SQLite file (and connection) with the alarm journal, so an alarm and its
cloud copy are written in one transaction: there is never an alarm on disk whose cloud
copy is missing, nor the other way round.

A PUBACK is not the end of a message's life: a broker that restarts or crashes can lose
messages it had already acknowledged (seen with Debian's Mosquitto 2.0.11: QoS 1 messages
in flight to a persistent subscriber vanish over a restart; a crash also loses what came
after its last autosave). So an acked row is kept for a replay window, and after every
lost connection the uplink sends again what was acked in that window before the loss.
The cloud is idempotent on envelope id, so a replay costs duplicates, never a loss.

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
    payload  BLOB NOT NULL,
    acked_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (priority, seq) WHERE acked_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_acked ON outbox (acked_at) WHERE acked_at IS NOT NULL;
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
        """Drop the oldest waiting telemetry beyond the cap; returns how many were dropped."""
        excess = self.count() - self.max_messages
        if excess <= 0:
            return 0
        cur = self.conn.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE priority = ? AND acked_at IS NULL "
            "ORDER BY seq LIMIT ?)", (int(Priority.TELEMETRY), excess))
        self.dropped_telemetry += cur.rowcount
        return cur.rowcount

    def next_batch(self, limit: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[OutboxItem]:
        """The next `limit` items in delivery order, skipping those already in flight."""
        rows = self.conn.execute(
            "SELECT seq, priority, topic, payload FROM outbox WHERE acked_at IS NULL ORDER BY priority, seq LIMIT ?",
            (limit + len(exclude),)).fetchall()
        return [OutboxItem(*r) for r in rows if r[0] not in exclude][:limit]

    def mark_acked(self, seqs: list[int], now: float) -> None:
        self.conn.executemany("UPDATE outbox SET acked_at = ? WHERE seq = ?", [(now, s) for s in seqs])

    def replay_since(self, since: float) -> int:
        """Make rows acked at or after `since` wait again; returns how many."""
        return self.conn.execute("UPDATE outbox SET acked_at = NULL WHERE acked_at >= ?", (since,)).rowcount

    def purge_acked(self, before: float) -> int:
        return self.conn.execute("DELETE FROM outbox WHERE acked_at < ?", (before,)).rowcount

    def count(self) -> int:
        """Messages still waiting for a PUBACK."""
        return int(self.conn.execute("SELECT COUNT(*) FROM outbox WHERE acked_at IS NULL").fetchone()[0])
