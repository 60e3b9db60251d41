"""Past one machine: a three-node RabbitMQ cluster on loopback (MQTT plugin, quorum queues). The
simulated gateways list the three nodes and publish MQTT; two ingest workers compete for the
replicated ingest queue over AMQP and acknowledge after commit. A node is killed mid-stream: the
gateways on it reconnect to the survivors, nothing the broker acknowledged to a gateway is
lost and nothing is stored twice."""

from __future__ import annotations

import asyncio
import time

import pytest
import sqlalchemy as sa

from cloud.store.db import envelopes
from firmware_sim.fleet import Fleet, FleetConfig
from helpers import fresh_pg_database
from testing.services import RabbitCluster
from tests.test_cloud_ingest import start_cloud, wait_until


@pytest.fixture(scope="module")
def cluster():
    with RabbitCluster(3) as c:
        yield c


def stored(url: str, ids: list[str]) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            found = []
            for i in range(0, len(ids), 1000):
                found += conn.execute(sa.select(envelopes.c.id).where(envelopes.c.id.in_(ids[i:i + 1000]))).scalars()
            return found
    finally:
        engine.dispose()


def test_a_node_killed_mid_stream_loses_nothing_and_stores_nothing_twice(cluster, pg_url):
    cfg = FleetConfig(gateways=30, brokers=cluster.mqtt_urls, heartbeat_s=1, camera_health_s=0.5, telemetry_s=0.5,
                      retention_s=5, cameras=1, sensors=1, alarms_per_hour=0, outages_per_hour=0, connect_per_s=100,
                      record_ids=True)
    with fresh_pg_database(pg_url, "cluster") as db:
        cloud = start_cloud(",".join(cluster.mqtt_urls).replace(",mqtt://", ","), db, ingest_workers=2,
                            ingest_amqp_url=cluster.amqp_url)
        try:
            async def scenario():
                fleet = await Fleet(cfg).start()
                assert await fleet.wait_connected(timeout=60), fleet.summary()
                # Let every node start its replica of the gateways' session queues (RabbitMQ 3.10 could
                # leave a session queue made just before a node's loss without a leader: deploy/topology.md).
                await asyncio.sleep(5)
                acked_before = fleet.stats.acked
                victim = cluster.nodes[0]
                on_victim = sum(1 for g in fleet.gateways if g.connected and g.brokers[g.broker_i % 3].port
                                == victim.mqtt_port)
                victim.kill()
                killed_at = time.monotonic()
                while fleet.stats.lost < on_victim and time.monotonic() - killed_at < 30:
                    await asyncio.sleep(0.05)
                assert await fleet.wait_connected(timeout=90), fleet.summary()
                recovered_s = time.monotonic() - killed_at
                await asyncio.sleep(3)
                assert fleet.stats.acked > acked_before + 100, "the fleet kept publishing after the node died"
                await fleet.stop()
                return fleet, on_victim, recovered_s

            fleet, on_victim, recovered_s = asyncio.run(scenario())
            assert on_victim > 0 and fleet.stats.lost >= on_victim and recovered_s < 90, fleet.summary()
            acked = fleet.acked_ids
            wait_until(lambda: len(stored(db, acked)) == len(set(acked)), timeout=90,
                       what="every fact the cluster acknowledged to a gateway in the store")
            found = stored(db, acked)
            assert len(found) == len(set(found)) == len(set(acked)), "stored once each"
            c = cloud.counters
            assert c["rejected"] == 0 and c["stored"] >= len(set(acked)), c
        finally:
            cloud.stop()
