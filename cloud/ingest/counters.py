"""Ingest counters: what was received, stored, refused and why, per reason."""

from __future__ import annotations

import threading
from collections import Counter

from cloud.ingest.validate import reason_key


class IngestCounters:
    """Health as numbers: what came in, what was stored, what was refused and why."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._c: Counter[str] = Counter()
        self._reasons: Counter[str] = Counter()
        # Counted by the MQTT thread alone, once per message: a plain int needs no lock for that.
        self.received = 0

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._c[name] += n

    def reject(self, reason: str) -> None:
        with self._lock:
            self._c["rejected"] += 1
            self._reasons[reason_key(reason)] += 1

    def snapshot(self) -> dict:
        with self._lock:
            out = {"received": self.received} | {k: self._c[k] for k in (
                "stored", "duplicates", "rejected", "store_errors", "batches", "alarm_updates", "telemetry_points")}
            out["rejected_by_reason"] = dict(self._reasons)
            return out

