"""Envelope pruning against ingest (cloud.store.pruning): can pruning keep up with a province, and
what does it cost the ingest writer? PostgreSQL with fsync on. Prints one JSON line; never
pass/fail.

The store is seeded with old rows of the pruned kinds (heartbeat, camera health, telemetry
batches, received 9 days ago) for --facilities facilities. An ingest writer thread then inserts
fresh envelopes at --rate a second (2,200: 10,000 gateways, bench/fleet.py) in batches every
0.1 s, the way ingest does (cloud.ingest.sql.insert_envelopes: COPY and INSERT ... ON CONFLICT),
while windows of --window-s with the pruner running alternate with windows without it (the
baseline, interleaved). Figures: rows deleted per second of pruning against the rows a day the
ingest rate makes (pruning must delete at least as fast on average), and the ingest batch commit
time p50/p99 with and without pruning.

    python bench/pruning.py [--facilities 2000] [--old-per-kind 60] [--rate 2200] [--window-s 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from cloud.ingest.sql import insert_envelopes  # noqa: E402
from cloud.store.db import create_schema, envelopes, make_engine  # noqa: E402
from cloud.store.pruning import PRUNED_TYPES, prune_envelopes  # noqa: E402
from testing.services import postgres  # noqa: E402

RETENTION = timedelta(days=7)
BODIES = {"heartbeat": {"uptime_s": 1.0, "police_paths": {"primary": True}},
          "camera.health": {"cameras": [{"camera_id": f"cam-{k}", "state": "streaming", "camera_fps": 5.0}
                                        for k in range(1, 5)]},
          "telemetry.batch": {"points": [{"device_id": "th-1", "metric": "temp_c", "value": 22.5,
                                          "ts": "2026-01-01T00:00:00Z"}]}}


@dataclass
class Row:
    """What insert_envelopes reads of an envelope."""
    facility: str
    type: str
    ts: datetime
    body: dict
    source: str = "edge"
    seq: int = 0
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


def seed_old(engine, facilities: int, per_kind: int, now: datetime) -> int:
    """Old rows, COPYed straight in (the seeding is not what is measured)."""
    old = now - RETENTION - timedelta(days=2)
    n = 0
    with engine.begin() as conn:
        cur = conn.connection.driver_connection.cursor()
        with cur.copy("COPY envelopes (id, facility, type, source, seq, ts, received_at, body) FROM STDIN") as copy:
            for f in range(facilities):
                for type_, body in BODIES.items():
                    text = orjson.dumps(body).decode()
                    for k in range(per_kind):
                        at = old + timedelta(seconds=10 * k)
                        copy.write_row((str(uuid.uuid4()), f"P{f:05d}", type_, "edge", k, at, at, text))
                        n += 1
        cur.close()
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE envelopes")
    return n


def pct(values: list[float], q: float):
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 2)


class IngestLoad:
    """Inserts `rate` fresh envelopes a second in batches every 0.1 s; each batch's commit time is
    filed under the current phase ("idle" or "pruning")."""

    def __init__(self, engine, facilities: int, rate: float):
        self.engine = engine
        self.facilities = facilities
        self.per_batch = max(1, round(rate / 10))
        self.phase = "idle"
        self.commit_ms: dict[str, list[float]] = {"idle": [], "pruning": []}
        self.inserted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-load", daemon=True)

    def _run(self) -> None:
        k = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            now = datetime.now(timezone.utc)
            rows = []
            for _ in range(self.per_batch):
                type_ = PRUNED_TYPES[k % len(PRUNED_TYPES)]
                rows.append(Row(f"P{k % self.facilities:05d}", type_, now, BODIES[type_], seq=k))
                k += 1
            phase = self.phase
            t = time.perf_counter()
            with self.engine.begin() as conn:
                insert_envelopes(conn, [(r.id, r) for r in rows], now)
            self.commit_ms[phase].append((time.perf_counter() - t) * 1000)
            self.inserted += len(rows)
            next_at += 0.1
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> "IngestLoad":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--facilities", type=int, default=2000)
    ap.add_argument("--old-per-kind", type=int, default=60, help="old rows per facility and pruned kind")
    ap.add_argument("--rate", type=float, default=2200.0, help="fresh envelopes a second during the run")
    ap.add_argument("--window-s", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=6, help="at most this many (idle, pruning) window pairs")
    ap.add_argument("--batch", type=int, default=5000, help="rows a pruning transaction deletes")
    args = ap.parse_args()
    out: dict = {"bench": "pruning", "facilities": args.facilities, "rate": args.rate, "batch": args.batch}
    with postgres(durable=True) as pg_url:
        engine = make_engine(pg_url)
        create_schema(engine)
        now = datetime.now(timezone.utc)
        t = time.monotonic()
        out["old_rows"] = seed_old(engine, args.facilities, args.old_per_kind, now)
        out["seed_s"] = round(time.monotonic() - t, 1)
        load = IngestLoad(engine, args.facilities, args.rate).start()
        deleted, pruning_s = 0, 0.0
        try:
            for _ in range(args.rounds):
                load.phase = "idle"
                time.sleep(args.window_s)
                load.phase = "pruning"
                t = time.monotonic()
                stats = prune_envelopes(engine, datetime.now(timezone.utc), RETENTION, batch=args.batch,
                                        max_batches=10**6, budget_s=args.window_s)
                pruning_s += time.monotonic() - t
                deleted += stats.deleted
                if not stats.more:
                    break
        finally:
            load.stop()
        out["loadavg_1m"] = round(os.getloadavg()[0], 2)
        with engine.connect() as conn:
            left = conn.execute(sa.select(sa.func.count()).select_from(envelopes)
                                .where(envelopes.c.received_at < now - RETENTION)).scalar_one()
        engine.dispose()
    out["deleted"] = deleted
    out["old_rows_left"] = left
    out["pruning_s"] = round(pruning_s, 1)
    out["deleted_per_s"] = round(deleted / pruning_s, 1) if pruning_s else None
    out["needed_per_s"] = args.rate
    out["deleted_per_s_ratio_to_needed"] = round(deleted / pruning_s / args.rate, 1) if pruning_s else None
    out["ingested"] = load.inserted
    for phase, values in load.commit_ms.items():
        out[f"ingest_commit_{phase}_p50_ms"] = pct(values, 0.5)
        out[f"ingest_commit_{phase}_p99_ms"] = pct(values, 0.99)
        out[f"ingest_batches_{phase}"] = len(values)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
