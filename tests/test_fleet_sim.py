"""The fleet simulator against a real Mosquitto with per-gateway credentials and ACL, and into the
real cloud ingest: every envelope passes the contracts, the last will reports a dropped gateway,
facts made during an outage arrive afterwards with their own times and none is lost, a dead
first broker address is skipped, bad credentials are refused and counted."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import datetime

from wire.mqtt_client import make_client
from cloud.registry.records import broker_acl
from contracts import topics
from contracts.envelope import parse_envelope
from firmware_sim.fleet import Fleet, FleetConfig
from testing.services import Mosquitto, free_port
from tests.test_cloud_ingest import start_cloud, wait_until

FAST = dict(heartbeat_s=0.5, camera_health_s=0.5, telemetry_s=0.5, retention_s=1.0, cameras=2, sensors=1,
            alarm_clear_s=0.5, connect_per_s=200)


def password(facility: str) -> str:
    return f"pw-{facility}"


def credentials(facility: str) -> tuple[str, str]:
    return f"{facility}.g1", password(facility)


def acl(facilities: list[str], collector: str) -> dict:
    table = {u: (p, broker_acl(f, u).splitlines()[1:]) for f in facilities for u, p in [credentials(f)]}
    table[collector] = ("collector-pw", [f"topic read {topics.UP_WILDCARD}"])
    return table


class Collector:
    """A subscriber to every uplink topic, keeping (topic, envelope dict, retained) as they come."""

    def __init__(self, url: str, user: str):
        self.messages: list[tuple[str, dict, bool]] = []
        self.lock = threading.Lock()
        self.client, addr = make_client(url, f"collector-{uuid.uuid4().hex[:6]}")
        self.client.username_pw_set(user, "collector-pw")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topics.UP_WILDCARD, qos=1)
        self.client.on_message = self._on
        self.client.connect(addr.host, addr.port)
        self.client.loop_start()

    def _on(self, client, userdata, msg) -> None:
        env = parse_envelope(msg.payload, expect_facility=topics.parse_up_topic(msg.topic)[0],
                             expect_stream=topics.parse_up_topic(msg.topic)[1])  # raises on a contract breach
        with self.lock:
            self.messages.append((msg.topic, env.model_dump(mode="json"), msg.retain))

    def types(self) -> set[str]:
        with self.lock:
            return {m[1]["type"] for m in self.messages}

    def ids(self) -> set[str]:
        with self.lock:
            return {m[1]["id"] for m in self.messages}

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_fleet_speaks_the_contracts_with_credentials_will_and_outages():
    cfg = FleetConfig(gateways=6, brokers=[f"mqtt://127.0.0.1:{free_port()}", "mqtt://127.0.0.1:1"],
                      alarms_per_hour=3600, outages_per_hour=0, record_ids=True, **FAST)
    facilities = [cfg.facility(i) for i in range(cfg.gateways)]
    with Mosquitto(acl=acl(facilities, "collector")) as broker:
        # The first listed address has nothing listening: every gateway must move on to the broker.
        cfg.brokers[1] = broker.url
        collector = Collector(broker.url, "collector")

        async def scenario():
            fleet = await Fleet(cfg, credentials).start()
            assert await fleet.wait_connected(timeout=20), fleet.summary()
            await asyncio.sleep(2.5)
            # An outage: the connection drops without a goodbye while facts keep being made.
            gw = fleet.gateways[0]
            gw.outage()
            await asyncio.sleep(2.0)
            made_during = [i for i in fleet.ids[-40:]]
            assert not gw.connected and gw.outbox, "facts pile up in the outbox during the outage"
            backlog_ts = [json.loads(p)["ts"] for _, p, _ in gw.outbox]
            gw.end_outage()
            [victim] = fleet.kill(1)
            await asyncio.sleep(2.0)
            await fleet.stop()
            return fleet, made_during, backlog_ts, victim

        fleet, made_during, backlog_ts, victim = run(scenario())
        wait_until(lambda: set(fleet.ids) <= collector.ids(), timeout=10, what="every fact at the broker")
        collector.stop()
    s = fleet.summary()
    assert s["connect_failures"] >= cfg.gateways // 2 and s["refused"] == 0 and s["backlog"] == 0, s
    assert {"heartbeat", "camera.health", "telemetry.batch", "retention.report", "status.gateway", "alarm.raised",
            "alarm.cleared"} <= collector.types()
    assert set(made_during) <= collector.ids()
    # Buffered facts keep the time they were made at, before the reconnection.
    reconnect_ts = max(datetime.fromisoformat(m[1]["ts"]) for m in collector.messages
                       if m[1]["facility"] == fleet.gateways[0].facility and m[1]["type"] == "status.gateway"
                       and m[1]["body"]["state"] == "online")
    assert backlog_ts and all(datetime.fromisoformat(t) < reconnect_ts for t in backlog_ts)
    # The victim's last will: a retained offline status, which nobody published in a goodbye.
    wills = [m for m in collector.messages if m[1]["facility"] == victim and m[1]["type"] == "status.gateway"
             and m[1]["body"]["state"] == "offline"]
    assert wills, "the broker published the killed gateway's last will"
    # Every fact once per id: a gateway's sequence numbers never repeat.
    seqs = [(m[1]["facility"], m[1]["seq"]) for m in collector.messages if m[1]["type"] != "status.gateway"]
    assert len(set(seqs)) == len({(m[1]["facility"], m[1]["id"]) for m in collector.messages
                                  if m[1]["type"] != "status.gateway"})


def test_wrong_credentials_are_refused_and_counted():
    cfg = FleetConfig(gateways=2, brokers=["mqtt://127.0.0.1:1"], **FAST)
    with Mosquitto(acl=acl([cfg.facility(0), cfg.facility(1)], "collector")) as broker:
        cfg.brokers[0] = broker.url

        async def scenario():
            fleet = await Fleet(cfg, lambda f: (credentials(f)[0], "wrong")).start()
            await asyncio.sleep(1.5)
            await fleet.stop()
            return fleet.summary()

        s = run(scenario())
    assert s["refused"] >= 2 and s["connects"] == 0 and s["acked"] == 0, s


def test_the_cloud_ingests_the_fleet_without_a_rejection(mosquitto, tmp_path):
    cloud = start_cloud(mosquitto.url, f"sqlite:///{tmp_path / 'c.db'}", shared_subscription=True)
    cfg = FleetConfig(gateways=10, brokers=[mosquitto.url], alarms_per_hour=3600, **FAST)
    try:
        async def scenario():
            fleet = await Fleet(cfg).start()
            assert await fleet.wait_connected(timeout=20)
            await asyncio.sleep(3)
            await fleet.stop()
            return fleet.summary()

        s = run(scenario())
        wait_until(lambda: cloud.counters["stored"] >= s["acked"] + s["heartbeats"] * 0.9, timeout=15,
                   what="the fleet's envelopes stored")
        c = cloud.counters
        assert c["rejected"] == 0 and c["store_errors"] == 0, c
        assert c["telemetry_points"] > 0 and c["alarm_updates"] > 0, c
    finally:
        cloud.stop()
