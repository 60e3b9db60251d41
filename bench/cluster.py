"""Past one machine: ingest through a three-node RabbitMQ cluster (MQTT plugin in, quorum queue,
two AMQP ingest workers, PostgreSQL with fsync on) against a single Mosquitto (two workers on a shared subscription),
interleaved in one run; then a node killed mid-stream under a fleet of gateways listing every
node. Prints one JSON line; never pass/fail.

Throughput: publisher processes (bench/ingest.py's, QoS 1, spread over the nodes) send a fixed
number of telemetry envelopes; envelopes/s from the first publish until PostgreSQL holds them all.
The kill: simulated gateways (firmware_sim.fleet) publish their usual streams at a raised rate;
one node is SIGKILLed; lost = facts the cluster acknowledged to a gateway and not stored,
stored_twice = rows beyond one per envelope id, recovery = kill until 95 % and all of the killed
node's gateways are connected again, and until ingest stores again.

    python bench/cluster.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

import ingest as ingest_bench  # noqa: E402  (bench/ingest.py: its publishers)
from cloud.config import CloudConfig  # noqa: E402
from cloud.ingest.workers import IngestWorkers  # noqa: E402
from cloud.store.db import create_schema, envelopes, make_engine  # noqa: E402
from firmware_sim.fleet import Fleet, FleetConfig  # noqa: E402
from testing.services import Mosquitto, RabbitCluster, postgres  # noqa: E402


def fresh_db(pg_url: str, admin) -> str:
    name = f"cl_{uuid.uuid4().hex[:10]}"
    with admin.connect() as c:
        c.exec_driver_sql(f"CREATE DATABASE {name}")
    return pg_url.rsplit("/", 1)[0] + "/" + name


def count(engine) -> int:
    with engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(envelopes)).scalar_one()


def throughput(args, publish_urls: list[str], config: CloudConfig) -> dict:
    engine = make_engine(config.db_url)
    create_schema(engine)
    pool = IngestWorkers(config).start()
    ctx = mp.get_context("spawn")
    ready, go, done = ctx.Queue(), ctx.Event(), ctx.Queue()
    per_pub = args.envelopes // args.publishers
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30)
    load = {"per_pub": per_pub, "facilities": args.facilities, "points": args.points, "resend_every": 0,
            "poison_every": 0, "flood_every": 0, "timeout_s": args.timeout_s}
    pubs = [ctx.Process(target=ingest_bench.publisher_main,
                        args=(publish_urls[i % len(publish_urls)], i, load, base.isoformat(), False, ready, go, done),
                        daemon=True) for i in range(args.publishers)]
    try:
        if not pool.wait_ready(60):
            raise RuntimeError("ingest workers not ready within 60 s")
        for p in pubs:
            p.start()
        for _ in pubs:  # every publisher has built its packets before the clock starts
            ready.get(timeout=120)
        time.sleep(args.warmup_s)
        expected = per_pub * args.publishers
        t0 = time.monotonic()
        go.set()
        stored = 0
        while time.monotonic() - t0 < args.timeout_s and stored < expected:
            time.sleep(0.2)
            stored = count(engine)
        elapsed = time.monotonic() - t0
        confirmed = sum(done.get(timeout=30)[1] for _ in pubs)
        return {"envelopes": expected, "stored": stored, "confirmed": confirmed,
                "envelopes_per_s": round(stored / elapsed, 1)}
    finally:
        go.set()
        for p in pubs:
            p.join(30)
            if p.is_alive():
                p.terminate()
        pool.stop()
        engine.dispose()


async def _fleet_with_kill(args, cluster: RabbitCluster, engine) -> dict:
    cfg = FleetConfig(gateways=args.gateways, brokers=cluster.mqtt_urls, heartbeat_s=2, camera_health_s=1,
                      telemetry_s=1, retention_s=30, cameras=2, sensors=1, alarms_per_hour=60, outages_per_hour=0,
                      connect_per_s=200, record_ids=True)
    fleet = await Fleet(cfg).start()
    out: dict = {"gateways": args.gateways}
    if not await fleet.wait_connected(timeout=60):
        raise RuntimeError(f"fleet did not connect: {fleet.summary()}")
    await asyncio.sleep(args.before_kill_s)
    victim = cluster.nodes[-1]
    on_victim = sum(1 for g in fleet.gateways if g.connected and g.brokers[g.broker_i % len(g.brokers)].port
                    == victim.mqtt_port)
    stored_at_kill = await asyncio.to_thread(count, engine)
    victim.kill()
    killed = time.monotonic()
    ingest_back = back_95 = None
    while fleet.stats.lost < on_victim and time.monotonic() - killed < 30:
        await asyncio.sleep(0.05)
    while time.monotonic() - killed < args.recovery_timeout_s:
        if ingest_back is None and await asyncio.to_thread(count, engine) > stored_at_kill + 50:
            ingest_back = time.monotonic() - killed
        missing = args.gateways - fleet.stats.connected
        if back_95 is None and missing <= on_victim * 0.05:
            back_95 = time.monotonic() - killed
        if missing == 0 and ingest_back is not None:
            break
        await asyncio.sleep(0.1)
    out.update(on_killed_node=on_victim, reconnected=on_victim - (args.gateways - fleet.stats.connected),
               reconnected_95pct_s=round(back_95, 2) if back_95 is not None else None,
               all_reconnected_s=round(time.monotonic() - killed, 2) if fleet.stats.connected >= args.gateways
               else None, ingest_storing_again_s=round(ingest_back, 2) if ingest_back is not None else None)
    await asyncio.sleep(args.after_kill_s)
    await fleet.stop()
    out["acked"] = len(fleet.acked_ids)
    out["fleet"] = {k: v for k, v in fleet.summary().items() if k in ("facts", "acked", "lost", "connects")}
    return out | {"_acked_ids": fleet.acked_ids}


def kill_run(args, cluster: RabbitCluster, db_url: str) -> dict:
    engine = make_engine(db_url)
    create_schema(engine)
    config = CloudConfig(broker_url="mqtt://127.0.0.1:1", db_url=db_url, ingest_workers=2,
                         ingest_amqp_url=cluster.amqp_url, client_id=f"bench-kill-{uuid.uuid4().hex[:6]}")
    pool = IngestWorkers(config).start()
    try:
        if not pool.wait_ready(60):
            raise RuntimeError("ingest workers not ready within 60 s")
        out = asyncio.run(_fleet_with_kill(args, cluster, engine))
        acked = out.pop("_acked_ids")
        ids = sorted(set(acked))
        deadline = time.monotonic() + args.timeout_s
        while True:
            with engine.connect() as c:
                rows = sum(c.execute(sa.select(sa.func.count()).select_from(envelopes)
                                     .where(envelopes.c.id.in_(ids[i:i + 2000]))).scalar_one()
                           for i in range(0, len(ids), 2000))
            if rows >= len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        with engine.connect() as c:
            total = c.execute(sa.select(sa.func.count()).select_from(envelopes)).scalar_one()
            distinct = c.execute(sa.select(sa.func.count(sa.distinct(envelopes.c.id)))).scalar_one()
        out.update(lost=len(ids) - rows, stored_twice=total - distinct)
    finally:
        pool.stop()
        engine.dispose()
    counters = pool.counters()
    out.update(duplicates_absorbed=counters["duplicates"], rejected=counters["rejected"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envelopes", type=int, default=20_000, help="per throughput run")
    ap.add_argument("--points", type=int, default=10)
    ap.add_argument("--facilities", type=int, default=500)
    ap.add_argument("--publishers", type=int, default=3, help="publisher processes, spread over the nodes")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved Mosquitto / cluster runs")
    ap.add_argument("--warmup-s", type=float, default=3.0)
    ap.add_argument("--timeout-s", type=float, default=120.0)
    ap.add_argument("--gateways", type=int, default=300, help="fleet in the kill run")
    ap.add_argument("--before-kill-s", type=float, default=10.0)
    ap.add_argument("--after-kill-s", type=float, default=10.0)
    ap.add_argument("--recovery-timeout-s", type=float, default=90.0)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"mosquitto": [], "cluster": []}
    with postgres(durable=True) as pg_url, RabbitCluster(3) as cluster:
        admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        for _ in range(args.rounds):
            # A fresh Mosquitto each time: the last run's workers keep their persistent sessions in
            # the shared group, and Mosquitto would queue half of this run's messages for them.
            with Mosquitto() as mosquitto:
                runs["mosquitto"].append(throughput(args, [mosquitto.url], CloudConfig(
                    broker_url=mosquitto.url, db_url=fresh_db(pg_url, admin), shared_subscription=True,
                    ingest_workers=2, client_id=f"bench-m-{uuid.uuid4().hex[:6]}")))
            runs["cluster"].append(throughput(args, cluster.mqtt_urls, CloudConfig(
                broker_url=cluster.mqtt_urls[0], db_url=fresh_db(pg_url, admin), ingest_workers=2,
                ingest_amqp_url=cluster.amqp_url, client_id=f"bench-c-{uuid.uuid4().hex[:6]}")))
        kill = kill_run(args, cluster, fresh_db(pg_url, admin))
        admin.dispose()
    rate = {k: statistics.median(r["envelopes_per_s"] for r in v) for k, v in runs.items()}
    print(json.dumps({"bench": "cluster", "engine": "rabbitmq 3.10 (3 nodes, quorum queue) vs mosquitto",
                      "points_per_envelope": args.points, "mosquitto_envelopes_per_s": rate["mosquitto"],
                      "cluster_envelopes_per_s": rate["cluster"],
                      "ratio": round(rate["cluster"] / rate["mosquitto"], 3) if rate["mosquitto"] else None,
                      "runs": runs, "kill": kill}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
