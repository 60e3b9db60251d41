"""The edge agent end to end on real parts: Mosquitto (local and uplink), the ARC receiver,
simulated buttons, and the agent itself in-process or as a process killed with SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from wire.mqtt_client import make_client
from testing.services import free_port
from arc.receiver import ArcAccount, ArcReceiver
from contracts import topics
from contracts.alarms import AlarmKind
from contracts.device import DeviceEvent, DeviceEventKind
from contracts.envelope import make_envelope
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from contracts.timefmt import utcnow
from edge.agent import EdgeAgent
from edge.config import parse_config
from edge.devices import DeviceGateway
from edge.alarms.journal import Journal
from firmware_sim import connect_button
from helpers import all_journaled_delivered, police_and_agent, sync_until, until
from wire.envelope_signing import public_key_hex, sign

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "1234"
KEY = "000102030405060708090a0b0c0d0e0f"
CLOUD_KEY = Ed25519PrivateKey.generate()  # the cloud's command signing key, as the gateways pin it


def edge_config(local: str, uplink: str, receivers: list[int], tmp: Path, **police) -> dict:
    return {
        "facility_id": "F1", "local_broker": local,
        "uplink": {"broker": uplink, "heartbeat_s": 1, "cloud_public_key": public_key_hex(CLOUD_KEY)},
        "police": {"account": ACCOUNT, "receivers": [{"host": "127.0.0.1", "port": p} for p in receivers],
                   "ack_timeout_s": 0.5, "connect_timeout_s": 0.5, "supervision_interval_s": 0.5,
                   "retry_backoff_max_s": 0.2, **police},
        "outbox": {"path": str(tmp / "edge.sqlite3")},
        "zones": [
            {"id": "class1", "number": 1, "kind": "panic", "devices": ["btn1"]},
            {"id": "class2", "number": 2, "kind": "panic", "devices": ["btn2"]},
            {"id": "kitchen", "number": 3, "kind": "fire", "devices": ["smoke1"]},
        ],
    }


def alarms_received(arc_hits, code=None):
    return [a for a in arc_hits if code is None or a.code == code]


def agent_and_receiver(mosquitto, uplink_broker, tmp_path, hits, key=None):
    """A police receiver recording into `hits` and an edge agent reporting to it, both stopped after."""
    police = {"key": key} if key else {}
    return police_and_agent(lambda port: edge_config(mosquitto.url, uplink_broker.url, [port], tmp_path, **police),
                            ACCOUNT, key, hits)


def test_press_reaches_police_and_cloud_with_one_alarm_id(mosquitto, uplink_broker, collector_factory, tmp_path):
    cloud = collector_factory(uplink_broker.url)
    hits = []

    async def scenario():
        async with agent_and_receiver(mosquitto, uplink_broker, tmp_path, hits, key=KEY) as agent:
            button = await asyncio.to_thread(connect_button, mosquitto.url, "btn1", announce_status=False)
            await asyncio.to_thread(button.press, bounce=4)  # contact bounce: four presses in 8 ms
            assert await until(lambda: len(cloud.of_type("alarm.delivered")) == 1)
            # Every press handled (three were bounce) and everything journaled at the cloud: a second
            # alarm, had the bounce raised one, would be there now.
            assert await until(lambda: agent.engine.bounces == 3 and all_journaled_delivered(agent, cloud))
            button.link.close()
        return agent

    agent = asyncio.run(scenario())
    assert [a.code for a in hits] == ["PA"] and hits[0].zone == 1
    raised = cloud.of_type("alarm.raised")
    delivered = cloud.of_type("alarm.delivered")
    assert len(raised) == 1 and raised[0]["body"]["kind"] == "panic" and raised[0]["body"]["zone"] == "class1"
    assert str(hits[0].alarm_id) == raised[0]["body"]["alarm_id"] == delivered[0]["body"]["alarm_id"]
    assert delivered[0]["body"]["delivered_at"] >= raised[0]["ts"]
    assert agent.engine.bounces == 3


def test_primary_down_backup_gets_it_and_path_down_is_raised(mosquitto, uplink_broker, collector_factory, tmp_path):
    cloud = collector_factory(uplink_broker.url)
    hits = []
    dead_primary = free_port()

    async def scenario():
        backup = ArcReceiver({ACCOUNT: ArcAccount(plaintext=True)}, on_alarm=hits.append)
        await backup.start()
        agent = EdgeAgent(parse_config(edge_config(mosquitto.url, uplink_broker.url, [dead_primary, backup.port],
                                                   tmp_path)))
        await agent.start()
        await agent.devices.connected.wait()
        button = await asyncio.to_thread(connect_button, mosquitto.url, "btn2", announce_status=False)
        await asyncio.to_thread(button.press)
        assert await until(lambda: len(hits) == 1)
        assert await until(lambda: any(e["body"]["source"] == f"police:127.0.0.1:{dead_primary}"
                                       for e in cloud.of_type("alarm.raised")))
        # The primary comes back: supervision clears its police_link_down alarm.
        primary = ArcReceiver({ACCOUNT: ArcAccount(plaintext=True)}, port=dead_primary)
        await primary.start()
        assert await until(lambda: any(e["body"]["kind"] == "police_link_down" for e in cloud.of_type("alarm.cleared")))
        button.link.close()
        await agent.stop()
        await primary.close()
        await backup.close()

    asyncio.run(scenario())
    assert hits[0].code == "PA" and hits[0].zone == 2
    delivered = cloud.of_type("alarm.delivered")
    assert delivered and delivered[0]["body"]["receiver"] != f"127.0.0.1:{dead_primary}"


def test_police_path_failure_reaches_the_cloud_within_the_supervision_bound(mosquitto, uplink_broker,
                                                                           collector_factory, tmp_path):
    """Measured, not summed: the time from the receiver going away to the police_link_down alarm the
    cloud receives, from the alarm's own origin time, against the bound the configuration sets
    (the next NULL within one interval, failing within a connect or reply timeout)."""
    cloud = collector_factory(uplink_broker.url)
    cfg = parse_config(edge_config(mosquitto.url, uplink_broker.url, [free_port()], tmp_path, key=KEY,
                                   supervision_interval_s=1.0))
    police = cfg.police

    async def scenario():
        arc = ArcReceiver({ACCOUNT: ArcAccount(key=KEY)}, port=police.receivers[0].port)
        await arc.start()
        agent = EdgeAgent(cfg)
        await agent.start()
        try:
            assert await until(lambda: agent.police.path_states() == {arc.name: True})
            assert await until(lambda: cloud.of_type("heartbeat"))
            assert cloud.of_type("heartbeat")[-1]["body"]["police_encrypted"] is True
            killed_at = utcnow()
            await arc.close()
            assert await until(lambda: [e for e in cloud.of_type("alarm.raised")
                                        if e["body"]["kind"] == "police_link_down"])
            return killed_at
        finally:
            await agent.stop()

    killed_at = asyncio.run(scenario())
    (raised,) = [e for e in cloud.of_type("alarm.raised") if e["body"]["kind"] == "police_link_down"]
    detected_after = datetime.fromisoformat(raised["ts"]) - killed_at
    bound = timedelta(seconds=police.supervision_interval_s + police.connect_timeout_s + police.ack_timeout_s)
    assert timedelta(seconds=-0.001) <= detected_after <= bound, detected_after


def test_bad_device_input_is_counted_and_does_not_stop_the_agent(mosquitto, uplink_broker, collector_factory, tmp_path):
    cloud = collector_factory(uplink_broker.url)
    hits = []

    async def scenario():
        async with agent_and_receiver(mosquitto, uplink_broker, tmp_path, hits) as agent:
            pub, addr = make_client(mosquitto.url)
            pub.connect(addr.host, addr.port)
            pub.loop_start()
            for topic, payload in [("cg/dev/btn1/event", b"{not json"), ("cg/dev/btn1/event", b'{"id": 1}'),
                                   ("cg/dev/ghost/event", b"{}"), ("cg/dev/btn1/event", b"x" * 100_000),
                                   ("cg/dev/btn1/status", b"sideways")]:
                pub.publish(topic, payload, qos=1).wait_for_publish(5)
            pub.loop_stop()
            button = await asyncio.to_thread(connect_button, mosquitto.url, "btn1", announce_status=False)
            await asyncio.to_thread(button.press)
            assert await until(lambda: len(hits) == 1)
            button.link.close()
        return agent

    agent = asyncio.run(scenario())
    assert dict(agent.devices.rejected) == {"invalid event": 2, "unknown device _": 1,
                                            "payload of _ bytes exceeds _": 1,
                                            "status must be _ or _, got _": 1}


def test_reset_sends_restore_and_drill_is_a_test(mosquitto, uplink_broker, collector_factory, tmp_path):
    cloud = collector_factory(uplink_broker.url)
    hits = []

    async def scenario():
        async with agent_and_receiver(mosquitto, uplink_broker, tmp_path, hits) as agent:
            await agent.uplink.ever_connected.wait()
            button = await asyncio.to_thread(connect_button, mosquitto.url, "btn1", announce_status=False)
            await asyncio.to_thread(button.press)
            assert await until(lambda: len(hits) == 1)
            # The cloud resets the latch over the down topic; a disarm of the 24-hour zone is refused.
            pub, addr = make_client(uplink_broker.url)
            pub.connect(addr.host, addr.port)
            pub.loop_start()
            for action in ("disarm", "reset", "test"):
                env = sign(make_envelope("F1", "arm.set", {"action": action, "zone": "class1", "by": "officer-7"},
                                         source="cloud"), CLOUD_KEY)
                pub.publish(topics.down("F1", "arm"), env.to_bytes(), qos=1).wait_for_publish(5)
            pub.loop_stop()
            assert await until(lambda: [h.code for h in hits] == ["PA", "PR", "TX"])
            assert await until(lambda: len(cloud.of_type("event.latch_reset")) == 1)
            button.link.close()

    asyncio.run(scenario())
    refused = [e for e in cloud.of_type("event.arming") if "refused" in e["body"]]
    assert refused and "cannot be disarmed" in refused[0]["body"]["refused"]
    # The key and its values, for the pages to word the refusal in their language.
    assert refused[0]["body"]["refused_key"] == "arming.cannot_disarm"
    assert refused[0]["body"]["refused_params"] == {"zone": "class1", "zone_kind": "panic"}
    assert cloud.of_type("event.latch_reset")[0]["body"]["by"] == "officer-7"
    assert any(e["body"]["kind"] == "test" for e in cloud.of_type("alarm.raised"))


def test_sigkill_right_after_press_is_delivered_after_restart(mosquitto, uplink_broker, collector_factory, tmp_path):
    """The police receiver is away when the button is pressed; the agent is SIGKILLed once the
    alarm is journalled (its cloud copy is out); the restarted agent delivers it to the police."""
    cloud = collector_factory(uplink_broker.url)
    arc_port = free_port()
    cfg = edge_config(mosquitto.url, uplink_broker.url, [arc_port], tmp_path)
    cfg_path = tmp_path / "edge.toml"
    cfg_path.write_text(_toml(cfg))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def start_agent():
        return subprocess.Popen([sys.executable, "-m", "careguard", "edge", "--config", str(cfg_path)], cwd=ROOT,
                                env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "agent.log", "ab"))

    proc = start_agent()
    hits = []
    try:
        button = connect_button(mosquitto.url, "btn1", announce_status=False)
        # The first heartbeat comes a second after start, subscriptions long done.
        sync_until(lambda: cloud.of_type("heartbeat"), 20)
        button.press()

        def panics():
            return [e for e in cloud.of_type("alarm.raised") if e["body"]["kind"] == "panic"]

        sync_until(panics, 20)
        raised = panics()
        assert raised, (tmp_path / "agent.log").read_text()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        button.link.close()

        async def receive():
            arc = ArcReceiver({ACCOUNT: ArcAccount(plaintext=True)}, port=arc_port, on_alarm=hits.append)
            await arc.start()
            p2 = await asyncio.to_thread(start_agent)
            try:
                ok = await until(lambda: len(hits) >= 1, 30)
            finally:
                p2.send_signal(signal.SIGTERM)
                await asyncio.to_thread(p2.wait, 15)
                await arc.close()
            return ok

        assert asyncio.run(receive()), (tmp_path / "agent.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert hits[0].code == "PA" and str(hits[0].alarm_id) == raised[0]["body"]["alarm_id"]
    assert len(hits) == 1


def _toml(cfg: dict) -> str:
    """Just enough TOML for the test's config (tables, arrays of tables, inline tables)."""
    def val(v):
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + " }"
        raise TypeError(v)
    out = [f"{k} = {val(v)}" for k, v in cfg.items() if not isinstance(v, (dict, list))]
    for k, v in cfg.items():
        if isinstance(v, dict):
            out.append(f"[{k}]")
            out += [f"{kk} = {val(vv)}" for kk, vv in v.items()]
    for z in cfg["zones"]:
        out.append("[[zones]]")
        out += [f"{kk} = {val(vv)}" for kk, vv in z.items()]
    return "\n".join(out) + "\n"


def test_press_not_acknowledged_before_it_is_safe_is_delivered_again(mosquitto):
    """A press the agent never acknowledged (it died before its journal commit) comes back
    from the broker to the next agent on the same persistent session."""
    async def session(handler):
        gw = DeviceGateway(mosquitto.url, {"btn1"}, asyncio.get_running_loop(), handler, client_id="edge-F1-local")
        gw.start()
        await asyncio.wait_for(gw.subscribed.wait(), 10)
        return gw

    async def scenario():
        first: list = []
        gw = await session(lambda msg, ack: first.append(msg))  # never acks: dies before the commit
        button = await asyncio.to_thread(connect_button, mosquitto.url, "btn1", announce_status=False)
        pressed = await asyncio.to_thread(button.press)
        assert await until(lambda: len(first) == 1)
        gw.client.loop_stop()
        gw.client._sock_close()  # vanish without DISCONNECT, as a killed process does
        button.link.close()
        second: list = []
        gw2 = await session(lambda msg, ack: (second.append(msg), ack()))
        assert await until(lambda: len(second) == 1)
        gw2.stop()
        return pressed, first, second

    pressed, first, second = asyncio.run(scenario())
    assert str(first[0].id) == str(second[0].id) == pressed.id


def test_alarm_id_derives_from_the_press(mosquitto, uplink_broker, tmp_path):
    """The same press raises the same alarm id, so a redelivered press is one alarm at the police."""
    press = DeviceEvent(id=uuid.uuid4(), device_id="btn1", ts=utcnow(), event=DeviceEventKind.PRESS)
    ids = []
    for run in range(2):
        async def once():
            agent = EdgeAgent(parse_config(edge_config(mosquitto.url, uplink_broker.url, [free_port()],
                                                       tmp_path / f"run{run}")))
            await agent.start()
            agent._on_device_message(press, lambda: None)
            await agent.stop()
            j = Journal(tmp_path / f"run{run}" / "edge.sqlite3", 10)
            found = j.active_alarm("class1", AlarmKind.PANIC)
            j.close()
            return found
        (tmp_path / f"run{run}").mkdir()
        ids.append(asyncio.run(once()))
    assert ids[0] is not None and ids[0] == ids[1]
