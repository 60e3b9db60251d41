"""Which down commands the gateway obeys: signed by the cloud's pinned key, for this facility,
fresh, and never seen before.

Whoever can publish on `cg/v1/fac/{F}/down/...` (a leaked cloud credential, a compromised broker)
could otherwise disarm zones or reset latched alarms, and a captured command could be replayed.
The uplink (edge/uplink/link.py) has already checked that the envelope is well formed and names
this facility on this facility's topic; the guard checks the signature over all of it (so the
facility, type, body and time are the cloud's), then the time window, then the id.

Seen ids are kept in the journal's SQLite file, so a replay after a restart is refused too. They
are needed only while a command is inside the window (an older one is refused for its age), so
the table holds at most `max_seen` rows: past that the oldest goes, and the time of the newest
evicted becomes a floor below which every command is refused, so eviction never opens a hole."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Optional

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contracts.envelope import Envelope
from contracts.errors import ContractError
from contracts.timefmt import iso_utc
from wire.envelope_signing import verify

MAX_SEEN = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS down_seen (
    id TEXT PRIMARY KEY,
    ts TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS down_seen_by_ts ON down_seen (ts);
CREATE TABLE IF NOT EXISTS down_floor (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    ts  TEXT NOT NULL
);
"""


class CommandRefused(Exception):
    pass


class CommandGuard:
    def __init__(self, conn: sqlite3.Connection, public_key: Optional[Ed25519PublicKey], window_s: float,
                 max_seen: int = MAX_SEEN):
        """`conn` is the journal's connection; the caller commits (the guard writes inside its transaction)."""
        self.conn = conn
        self.public_key = public_key
        self.window = timedelta(seconds=window_s)
        self.max_seen = max_seen
        conn.executescript(_SCHEMA)

    def admit(self, env: Envelope, now: datetime) -> None:
        """Raise CommandRefused naming why, or record the command as seen (in the caller's transaction)."""
        if self.public_key is None:
            raise CommandRefused("no cloud_public_key pinned in [uplink]: every command is refused")
        try:
            verify(env, self.public_key)
        except ContractError as exc:
            raise CommandRefused(exc.reason) from None
        skew = (now - env.ts).total_seconds()
        if abs(skew) > self.window.total_seconds():
            raise CommandRefused(f"signed at {iso_utc(env.ts)}, {skew:+.0f} s from the gateway's clock "
                                 f"(window {self.window.total_seconds():g} s)")
        floor = self.conn.execute("SELECT ts FROM down_floor").fetchone()
        if floor is not None and iso_utc(env.ts) <= floor[0]:
            raise CommandRefused(f"signed at {iso_utc(env.ts)}, not after {floor[0]}, the oldest command still "
                                 "remembered: it cannot be told from a replay")
        try:
            self.conn.execute("INSERT INTO down_seen (id, ts) VALUES (?, ?)", (str(env.id), iso_utc(env.ts)))
        except sqlite3.IntegrityError:
            raise CommandRefused(f"command {env.id} was already carried out: a replay") from None
        self._forget_old(now)

    def _forget_old(self, now: datetime) -> None:
        self.conn.execute("DELETE FROM down_seen WHERE ts < ?", (iso_utc(now - self.window),))
        excess = self.conn.execute("SELECT count(*) FROM down_seen").fetchone()[0] - self.max_seen
        if excess > 0:
            newest_evicted = self.conn.execute("SELECT ts FROM down_seen ORDER BY ts LIMIT 1 OFFSET ?",
                                               (excess - 1,)).fetchone()[0]
            self.conn.execute("DELETE FROM down_seen WHERE ts <= ?", (newest_evicted,))
            self.conn.execute("INSERT INTO down_floor (one, ts) VALUES (1, ?) ON CONFLICT (one) DO UPDATE "
                              "SET ts = max(ts, excluded.ts)", (newest_evicted,))
