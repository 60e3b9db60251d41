"""The media outbox: alarm clip chunks on their way to the cloud, durable like the outbox but
apart from it.

A clip is megabytes. In the journal's SQLite file its writes would share the WAL, the fsync
and the checkpoints with the alarm path: the next alarm's commit would wait for the clip's
pages to reach the disk, and the agent's loop with it (measured: p99 press-to-police 8 ms
without clips, 800 ms with). So chunks live in a SQLite file of their own, written and sent
from a thread of their own, one chunk in flight at a time through the uplink's MQTT client
(paho is thread-safe for publish; the uplink ignores PUBACKs of messages it did not send).

As for the outbox (edge/uplink/outbox.py), an acked chunk is kept for a replay window and sent
again after a lost connection, since a broker can lose what it had acknowledged; the cloud
stores a chunk once per (clip, index)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import paho.mqtt.client as mqtt

log = logging.getLogger("careguard.edge.media")

REPLAY_WINDOW_S = 15.0
PUBACK_WAIT_S = 1.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS media (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    topic    TEXT NOT NULL,
    payload  BLOB NOT NULL,
    acked_at REAL
);
CREATE INDEX IF NOT EXISTS media_unacked ON media (seq) WHERE acked_at IS NULL;
"""


class MediaOutbox:
    """The file and its queries; one connection, used under a lock (the clip thread writes, the
    sender thread reads and marks)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(SCHEMA)

    def put_many(self, items: list[tuple[str, bytes]]) -> None:
        """All chunks of a clip in one transaction (one fsync)."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany("INSERT INTO media (topic, payload) VALUES (?, ?)", items)
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    def next_unacked(self, after: int) -> Optional[tuple[int, str, bytes]]:
        with self._lock:
            return self.conn.execute("SELECT seq, topic, payload FROM media WHERE acked_at IS NULL AND seq > ? "
                                     "ORDER BY seq LIMIT 1", (after,)).fetchone()

    def mark_acked(self, seq: int, now: float) -> None:
        with self._lock:
            self.conn.execute("UPDATE media SET acked_at = ? WHERE seq = ?", (now, seq))
            self.conn.execute("DELETE FROM media WHERE acked_at < ?", (now - REPLAY_WINDOW_S,))

    def replay_since(self, since: float) -> int:
        with self._lock:
            return self.conn.execute("UPDATE media SET acked_at = NULL WHERE acked_at >= ?", (since,)).rowcount

    def pending(self) -> int:
        with self._lock:
            return self.conn.execute("SELECT count(*) FROM media WHERE acked_at IS NULL").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self.conn.close()


class MediaSender:
    """Sends the media outbox in order, one chunk awaiting its PUBACK at a time. Paho resends a
    chunk it has sent after a reconnect (persistent session); a chunk is handed to paho once."""

    def __init__(self, outbox: MediaOutbox, client: mqtt.Client, connected: Callable[[], bool]):
        self.outbox = outbox
        self.client = client
        self.connected = connected
        self.sent = 0
        self.replayed = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="media-sender", daemon=True)

    def start(self) -> "MediaSender":
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)

    def _run(self) -> None:
        last, was_up, lost_at = 0, False, None
        while not self._stop.is_set():
            up = self.connected()
            if up and not was_up and lost_at is not None:
                self.replayed += self.outbox.replay_since(lost_at - REPLAY_WINDOW_S)
                last = 0
            if not up and was_up:
                lost_at = time.time()
            was_up = up
            row = self.outbox.next_unacked(last) if up else None
            if row is None:
                if not up or last == 0:
                    self._wake.wait(PUBACK_WAIT_S)
                    self._wake.clear()
                last = 0  # from the start again: rows replayed or added meanwhile
                continue
            seq, topic, payload = row
            info = self.client.publish(topic, payload, qos=1)
            while not self._stop.is_set() and not info.is_published():
                try:
                    info.wait_for_publish(PUBACK_WAIT_S)
                except (RuntimeError, ValueError):
                    break  # not queued by paho (disconnected without a session): sent again later
            if info.is_published():
                self.outbox.mark_acked(seq, time.time())
                self.sent += 1
            last = seq
