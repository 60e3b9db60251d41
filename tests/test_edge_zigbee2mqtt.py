"""Off-the-shelf devices at the edge, end to end on real parts: Zigbee2MQTT payloads as its
documentation shows them (published by firmware_sim's bridge, or by hand) and a Tasmota sensor,
on a real Mosquitto, through the edge agent to the police receiver and the cloud's uplink."""

from __future__ import annotations

import asyncio
import json

from wire.mqtt_client import make_client
from firmware_sim.zigbee2mqtt import Zigbee2MqttBridge
from helpers import all_journaled_delivered, police_and_agent, until

ACCOUNT = "1234"
KEY = "000102030405060708090a0b0c0d0e0f"
DEVICES = [  # (friendly_name, bridge kind, device id, zone, edge profile)
    ("class1/sos", "sos", "z-sos-1", "class1", "button"),
    ("class2/button", "button", "z-btn-2", "class2", "button"),
    ("gate/door", "contact", "z-door", "gate", "contact"),
    ("kitchen/smoke", "smoke", "z-smoke", "kitchen", "smoke"),
    ("nap/air", "climate", "z-air", "nap", "climate"),
]
ZONE_NUMBER = {"class1": 1, "class2": 2, "gate": 3, "kitchen": 4, "nap": 5}


def config(local: str, uplink: str, arc_port: int, tmp) -> dict:
    return {
        "facility_id": "F1", "local_broker": local, "uplink": {"broker": uplink, "heartbeat_s": 1},
        "police": {"account": ACCOUNT, "key": KEY, "receivers": [{"host": "127.0.0.1", "port": arc_port}],
                   "ack_timeout_s": 0.5, "connect_timeout_s": 0.5, "supervision_interval_s": 0.5},
        "outbox": {"path": str(tmp / "edge.sqlite3")},
        "zones": [{"id": z, "number": n, "kind": k} for z, n, k in [
            ("class1", 1, "panic"), ("class2", 2, "panic"), ("gate", 3, "intrusion"), ("kitchen", 4, "fire"),
            ("nap", 5, "environment")]],
        "zigbee2mqtt": {"devices": [{"friendly_name": n, "device_id": d, "zone": z, "profile": p}
                                    for n, _, d, z, p in DEVICES]},
        "mqtt_devices": [{"device_id": "hall-co2", "zone": "nap", "topic": "tele/hall/SENSOR",
                          "fields": {"co2": {"path": "MHZ19B.CarbonDioxide"}, "temperature": {"path": "MHZ19B.Temperature"}},
                          "availability_topic": "tele/hall/LWT", "payload_online": "Online",
                          "payload_offline": "Offline"}],
    }


class Publisher:
    """A plain MQTT client publishing what a bridge would (or should not)."""

    def __init__(self, url: str):
        self.client, addr = make_client(url)
        self.client.connect(addr.host, addr.port)
        self.client.loop_start()

    def send(self, topic: str, payload, retain: bool = False) -> None:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, raw, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def bridge_for(url: str) -> Zigbee2MqttBridge:
    # Home Assistant's legacy action sensor and attribute output on: an empty `action` after each
    # action, and `<device>/action` beside the JSON, as a facility's bridge may well be set up.
    return Zigbee2MqttBridge(url, [{"friendly_name": n, "kind": k, "report_s": 0.3, "seed": i}
                                   for i, (n, k, *_) in enumerate(DEVICES)],
                             legacy_action_sensor=True, attribute_output=True)


def test_zigbee2mqtt_devices_reach_the_police_and_the_cloud(mosquitto, uplink_broker, collector_factory, tmp_path):
    cloud = collector_factory(uplink_broker.url)
    hits = []
    pub = Publisher(mosquitto.url)
    # A click from last week, retained by a bridge whose device option says `retain: true`.
    pub.send("zigbee2mqtt/class2/button", {"action": "single", "battery": 100, "linkquality": 90}, retain=True)
    bridge = bridge_for(mosquitto.url).start()

    def alarms(kind):
        return [e["body"] for e in cloud.of_type("alarm.raised") if e["body"]["kind"] == kind]

    def points(device_id):
        return {p["metric"] for e in cloud.of_type("telemetry.batch") for p in e["body"]["points"]
                if p["device_id"] == device_id}

    async def scenario():
        async with police_and_agent(lambda port: config(mosquitto.url, uplink_broker.url, port, tmp_path),
                                    ACCOUNT, KEY, hits) as agent:
            # One click: the state message, `<device>/action` and the empty follow-up.
            await asyncio.to_thread(bridge.click, "class1/sos", "emergency")
            assert await until(lambda: len(hits) == 1)
            await asyncio.to_thread(bridge.report, "class1/sos")  # a battery check-in after it
            # An intrusion zone armed, its door opened; smoke in the kitchen.
            agent.command("arm", "gate", "test")
            await asyncio.to_thread(bridge.set, "gate/door", contact=False)
            await asyncio.to_thread(bridge.set, "kitchen/smoke", smoke=True)
            assert await until(lambda: len(hits) == 3)
            # Climate, from the bridge's sensor and a Tasmota one.
            await asyncio.to_thread(pub.send, "tele/hall/SENSOR",
                                    {"Time": "2026-11-25T10:22:13", "MHZ19B": {"Model": "B", "CarbonDioxide": 912,
                                                                                "Temperature": 23.5}, "TempUnit": "C"})
            assert await until(lambda: {"temperature", "humidity", "co2", "battery_pct"} <= points("z-air")
                               and {"co2", "temperature"} <= points("hall-co2"))
            # Availability: a device reported offline; then the bridge dies (its last will).
            await asyncio.to_thread(bridge.set_available, "class2/button", False)
            assert await until(lambda: any(a["source"] == "z-btn-2" for a in alarms("device_offline")))
            await asyncio.to_thread(bridge.drop)
            assert await until(lambda: {a["source"] for a in alarms("device_offline")} >= {d for _, _, d, *_ in DEVICES})
            await asyncio.to_thread(pub.send, "tele/hall/LWT", b"Offline", True)
            assert await until(lambda: any(a["source"] == "hall-co2" for a in alarms("device_offline")))
            # Everything the gateway journaled is at the cloud: a second press, had one click raised two, is there.
            assert await until(lambda: all_journaled_delivered(agent, cloud))
            return agent

    try:
        agent = asyncio.run(scenario())
    finally:
        pub.close()
    assert sorted((h.code, h.zone) for h in hits) == [("BA", 3), ("FA", 4), ("PA", 1)]
    panic = alarms("panic")
    assert len(panic) == 1 and panic[0]["device_id"] == "z-sos-1" and panic[0]["zone"] == "class1"
    # One click is one press, not three (state, attribute topic, empty follow-up) nor a fourth at the check-in;
    # the latched zone would hide a second alarm, so count the device's events.
    assert [e["body"]["event"] for e in cloud.of_type("event.device") if e["body"]["device_id"] == "z-sos-1"] == ["press"]
    assert [e["body"]["event"] for e in cloud.of_type("event.device") if e["body"]["device_id"] == "z-door"] == ["door_open"]
    assert not agent.devices.rejected


def test_malformed_payloads_are_refused_counted_and_the_agent_keeps_serving(mosquitto, uplink_broker,
                                                                            collector_factory, tmp_path, caplog):
    cloud = collector_factory(uplink_broker.url)
    hits = []
    bridge = bridge_for(mosquitto.url).start()
    pub = Publisher(mosquitto.url)

    async def scenario():
        async with police_and_agent(lambda port: config(mosquitto.url, uplink_broker.url, port, tmp_path),
                                    ACCOUNT, KEY, hits) as agent:
            for topic, payload in [
                ("zigbee2mqtt/class1/sos", b"{not json"),
                ("zigbee2mqtt/class1/sos", b"[1,2,3]"),
                ("zigbee2mqtt/class1/sos", {"action": 5, "battery": 100}),
                ("zigbee2mqtt/class1/sos", b'{"x":' * 2000 + b"1" + b"}" * 2000),  # past the parser's depth
                ("zigbee2mqtt/class1/sos", b"x" * 20_000),
                ("zigbee2mqtt/nap/air", {"temperature": "warm", "humidity": 41.5, "battery": 250}),
                ("zigbee2mqtt/gate/door", {"contact": "open"}),
                ("zigbee2mqtt/class2/button/availability", b"sideways"),
                ("zigbee2mqtt/bridge/state", b'{"state": 1}'),
                ("tele/hall/SENSOR", {"MHZ19B": "broken"}),
            ] + [("zigbee2mqtt/class1/sos", b"{not json")] * 30:  # a flood of one kind
                await asyncio.to_thread(pub.send, topic, payload)
            # The agent keeps serving: a click after all that raises, and the good field went through.
            await asyncio.to_thread(bridge.click, "class1/sos", "single")
            assert await until(lambda: len(hits) == 1)
            assert await until(lambda: any(p["device_id"] == "z-air" and p["metric"] == "humidity" and p["value"] == 41.5
                                           for e in cloud.of_type("telemetry.batch") for p in e["body"]["points"]))
            return agent

    try:
        agent = asyncio.run(scenario())
    finally:
        pub.close()
        bridge.stop()
    assert [(h.code, h.zone) for h in hits] == [("PA", 1)]
    assert dict(agent.devices.rejected) == {
        "z-sos-1: not JSON": 32, "z-sos-1: not a JSON object": 1, "z-sos-1: field action wrong type": 1,
        "z-sos-1: payload too large": 1, "z-air: field temperature wrong type": 1, "z-air: field battery out of range": 1,
        "z-door: field contact wrong type": 1, "z-btn-2: availability malformed": 1,
        "bridge zigbee2mqtt/bridge/state: availability malformed": 1,
        "hall-co2: field MHZ19B.CarbonDioxide wrong type": 1, "hall-co2: field MHZ19B.Temperature wrong type": 1}
    # Every refusal is counted; the log says each kind once a minute, not 32 times.
    logged = [r.getMessage() for r in caplog.records if r.name == "careguard.edge.devices"]
    assert len([m for m in logged if "payload is not JSON" in m]) == 1
    assert len(logged) == len(agent.devices.rejected)
