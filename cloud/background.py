"""The cloud's periodic work over the whole store, the compliance refresher, the health runner and
the envelope pruner, in a process of their own (`background_work = "process"`), at a lower CPU
priority: at a province's size each pass is seconds of Python, which in the API process would
hold its interpreter from the requests.

Alarms the health runner raises reach the live stream through the API process's AlarmFollower
(cloud.ingest.workers), as the ingest workers' do."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from typing import Optional

from cloud.care.health_runner import HealthRunner
from cloud.compliance.snapshot import ComplianceRefresher
from cloud.config import CloudConfig
from cloud.store.db import make_engine
from cloud.store.pruning import EnvelopePruner
from cloud.store.telemetry import TelemetryStore, make_telemetry_store

log = logging.getLogger("careguard.cloud.background")
BACKGROUND_NICE = 10


def make_health_runner(config: CloudConfig, engine, store: TelemetryStore, **kw) -> HealthRunner:
    return HealthRunner(engine, telemetry_store=store, interval_s=config.health_check_s, **kw)


def make_refresher(config: CloudConfig, engine) -> ComplianceRefresher:
    return ComplianceRefresher(engine, interval_s=config.compliance_refresh_s,
                               full_every_s=config.compliance_full_every_s)


def make_pruner(config: CloudConfig, engine) -> Optional[EnvelopePruner]:
    retention = config.envelope_retention()
    return EnvelopePruner(engine, retention, interval_s=config.envelope_prune_s) if retention is not None else None


class BackgroundProcess:
    """Start with `.start()`, stop with `.stop()`."""

    def __init__(self, config: CloudConfig):
        ctx = mp.get_context("spawn")  # a forked child would inherit the parent's threads' locks mid-use
        self._stop = ctx.Event()
        self._proc = ctx.Process(target=_main, args=(config.model_dump_json(), self._stop), name="cloud-background",
                                 daemon=True)

    def start(self) -> "BackgroundProcess":
        self._proc.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask, then terminate: every pass is transactional and done again from the store (a
        snapshot left out of date, rows left to prune), so cutting one short loses nothing, and a
        pass of 10,000 facilities at a low priority on a busy machine may take long to finish."""
        self._stop.set()
        self._proc.join(timeout)
        if self._proc.is_alive():
            log.warning("background process did not stop within %g s; terminating it", timeout)
            self._proc.terminate()
            self._proc.join(5)


def _main(config_json: str, stop) -> None:
    # Its passes are throughput work (a province's first compliance pass is a minute of a core):
    # on a shared machine they take the CPU ingest and the pages leave, not theirs.
    os.nice(BACKGROUND_NICE)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s background %(name)s: %(message)s")
    config = CloudConfig.model_validate_json(config_json)
    engine = make_engine(config.db_url)
    store = make_telemetry_store(config.telemetry_url, token=config.telemetry_token, org=config.telemetry_org,
                                 bucket=config.telemetry_bucket, query_url=config.telemetry_query_url)
    refresher = make_refresher(config, engine).start()
    health = make_health_runner(config, engine, store).start()
    pruner = make_pruner(config, engine)
    if pruner is not None:
        pruner.start()
    stop.wait()
    if pruner is not None:
        pruner.stop()
    health.stop()
    refresher.stop()
    store.close()
    engine.dispose()
