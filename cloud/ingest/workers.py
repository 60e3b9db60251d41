"""Ingest in several processes: `IngestWorkers` starts `ingest_workers` processes that split one
MQTT v5 shared subscription (`$share/ingest/...`), or compete for a broker cluster's replicated
ingest queue (`ingest_amqp_url`, cloud.ingest.amqp_session), each with its own client id
(`{client_id}-{n}`, stable so each keeps its broker session across restarts) and its own
database connections. Python runs one thread at a time per process, so processes are how ingest
uses more than one core. The same worker runs alone under `careguard cloud --ingest-only`.

`AlarmFollower` gives the parent process the alarm rows the workers changed (for the police
page's live stream) by following `alarms.updated_at` in the store."""

from __future__ import annotations

import gc
import logging
import multiprocessing as mp
import queue
import threading
from datetime import timedelta
from typing import Callable

from sqlalchemy import select
from sqlalchemy.engine import Engine

from cloud.alarms.records import AlarmRecord, get_alarms
from cloud.care.privacy import FieldCipher, load_data_key
from cloud.config import CloudConfig, data_key_file
from cloud.ingest.consumer import Ingest
from cloud.ingest.counters import merge_counters
from cloud.ingest.throttle import FacilityBuckets
from cloud.periodic import PeriodicTask
from cloud.store.db import alarms, make_engine
from cloud.store.telemetry import make_telemetry_store
from contracts.timefmt import utcnow

log = logging.getLogger("careguard.cloud.ingest_workers")

STATS_EVERY_S = 0.5
GC_YOUNG_THRESHOLD = 20_000


def worker_client_id(client_id: str, index: int) -> str:
    return f"{client_id}-{index}"


def facility_buckets(config: CloudConfig) -> FacilityBuckets:
    """One ingest's share of each facility's telemetry bucket: the workers split a facility's
    messages about evenly (a shared subscription deals them out in turn, a queue to whichever
    consumer has room), so each holds 1/N of the rate and burst the settings give the cloud."""
    n = config.ingest_workers
    return FacilityBuckets(config.facility_rate_per_s / n, max(1.0, config.facility_burst / n))


def make_ingest(config: CloudConfig, engine: Engine, *, client_id: str,
                on_alarms: Callable[[list[AlarmRecord]], None] | None = None) -> Ingest:
    """One ingest (consumer and writer) as `config` asks, with its telemetry store."""
    store = make_telemetry_store(config.telemetry_url, token=config.telemetry_token, org=config.telemetry_org,
                                 bucket=config.telemetry_bucket, query_url=config.telemetry_query_url)
    return Ingest(engine, config.broker_url, client_id=client_id, shared=config.shared_subscription,
                  session_expiry_s=config.session_expiry_s, batch_max=config.batch_max, on_alarms=on_alarms,
                  telemetry_store=store, buckets=facility_buckets(config),
                  cipher=FieldCipher(load_data_key(data_key_file(config))), amqp_url=config.ingest_amqp_url,
                  retention=config.envelope_retention())


def _worker_main(config_json: str, index: int, stats, stop) -> None:
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s %(levelname)s worker-{index} %(name)s: %(message)s")
    config = CloudConfig.model_validate_json(config_json)
    engine = make_engine(config.db_url)
    ingest = make_ingest(config, engine, client_id=worker_client_id(config.client_id, index))
    # Ingest makes tens of short-lived objects per message: leave the long-lived ones of start-up
    # out of every collection, and collect the young ones in larger steps.
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
    ingest.start()
    try:
        while not stop.wait(STATS_EVERY_S):
            stats.put((index, ingest.consumer.subscribed.is_set(), ingest.counters.snapshot()))
    finally:
        ingest.stop()
        stats.put((index, False, ingest.counters.snapshot()))
        engine.dispose()


class IngestWorkers:
    """Start with `.start()`, stop with `.stop()`; `.counters()` sums the workers' counters."""

    def __init__(self, config: CloudConfig):
        self.config = config
        # spawn: a forked child would inherit the parent's threads' locks (paho, uvicorn) mid-use.
        self._ctx = mp.get_context("spawn")
        self._stats = self._ctx.Queue()
        self._stop = self._ctx.Event()
        self._procs: list = []
        self._latest: dict[int, tuple[bool, dict]] = {}
        self._lock = threading.Lock()
        self._drain_stop = threading.Event()
        self._drainer: threading.Thread | None = None

    def start(self) -> "IngestWorkers":
        config_json = self.config.model_dump_json()
        for i in range(self.config.ingest_workers):
            p = self._ctx.Process(target=_worker_main, args=(config_json, i, self._stats, self._stop),
                                  name=f"cloud-ingest-{i}", daemon=True)
            p.start()
            self._procs.append(p)
        self._drainer = threading.Thread(target=self._drain, name="cloud-ingest-stats", daemon=True)
        self._drainer.start()
        return self

    def _drain(self) -> None:
        while not self._drain_stop.is_set():
            try:
                index, subscribed, snapshot = self._stats.get(timeout=0.2)
            except queue.Empty:
                continue
            with self._lock:
                self._latest[index] = (subscribed, snapshot)

    def ready(self) -> bool:
        with self._lock:
            return len(self._latest) == len(self._procs) and all(s for s, _ in self._latest.values())

    def wait_ready(self, timeout: float) -> bool:
        tick = threading.Event()
        for _ in range(int(timeout / 0.1)):
            if self.ready():
                return True
            tick.wait(0.1)
        return self.ready()

    def counters(self) -> dict:
        with self._lock:
            return merge_counters([s for _, s in self._latest.values()])

    def per_worker(self) -> dict[int, dict]:
        """The latest counters of each worker, by worker index."""
        with self._lock:
            return {i: s for i, (_, s) in self._latest.items()}

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        for p in self._procs:
            p.join(timeout)
            if p.is_alive():
                log.warning("ingest worker %s did not stop; terminating it", p.name)
                p.terminate()
                p.join(5)
        # The final counters each worker sent on its way out.
        tick = threading.Event()
        tick.wait(STATS_EVERY_S)
        self._drain_stop.set()
        if self._drainer is not None:
            self._drainer.join(5)
        self._procs = []


class AlarmFollower:
    """Polls the alarm rows changed since the last look. The window overlaps by `skew_s`
    because workers stamp `updated_at` with their own clocks and commit in any order."""

    def __init__(self, engine: Engine, on_alarms: Callable[[list[AlarmRecord]], None], *, every_s: float = 0.5,
                 skew_s: float = 5.0):
        self.engine = engine
        self.on_alarms = on_alarms
        self.every_s = every_s
        self.skew = timedelta(seconds=skew_s)
        self._seen: dict[str, object] = {}
        self._mark = utcnow()
        self._task = PeriodicTask("cloud-alarm-follower", every_s, self._follow, logger=log,
                                  what="following alarm changes")

    def start(self) -> "AlarmFollower":
        self._task.start()
        return self

    def stop(self) -> None:
        self._task.stop()

    def poll(self) -> list[AlarmRecord]:
        since = self._mark - self.skew
        with self.engine.connect() as conn:
            rows = conn.execute(select(alarms.c.alarm_id, alarms.c.updated_at)
                                .where(alarms.c.updated_at > since)).all()
            changed = [r.alarm_id for r in rows if self._seen.get(r.alarm_id) != r.updated_at]
            records = get_alarms(conn, changed)
        for r in rows:
            self._seen[r.alarm_id] = r.updated_at
            self._mark = max(self._mark, r.updated_at)
        # Forget what fell out of the window, so the memory stays bounded.
        self._seen = {k: v for k, v in self._seen.items() if v > since}
        return records

    def _follow(self) -> None:
        records = self.poll()
        if records:
            self.on_alarms(records)
