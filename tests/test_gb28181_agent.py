"""GB/T 28181 in the edge agent: a button press reaches the police receiver over DC-09 and the
police video platform (SIPp) as an Alarm notify; the registration rides the heartbeat; losing
the platform raises video_platform_down to the cloud and finding it again clears it. And the
[gb28181] configuration, checked with errors naming the key."""

from __future__ import annotations

import asyncio

import pytest

from arc.receiver import ArcAccount, ArcReceiver
from edge.agent import EdgeAgent
from edge.config import ConfigError, parse_config
from firmware_sim import connect_button
from helpers import until
from test_edge_agent import ACCOUNT, KEY, edge_config
from test_gb28181_sipp import DEVICE_ID, DOMAIN, PLATFORM_ID, platform_for, received_bodies
from testing.services import LOOPBACK

CAMERA_GB_ID = "34020000001320000001"


def gb_table(port: int, **over) -> dict:
    return {"platform_id": PLATFORM_ID, "platform_domain": DOMAIN, "platform_host": LOOPBACK, "platform_port": port,
            "device_id": DEVICE_ID, "password": "secret", "local_ip": LOOPBACK, "local_port": 0,
            "keepalive_s": 0.3, "response_timeout_s": 0.5, "register_retry_max_s": 1.0, **over}


def test_press_is_told_to_the_video_platform_and_losing_it_is_an_alarm(mosquitto, uplink_broker, collector_factory,
                                                                         tmp_path):
    cloud = collector_factory(uplink_broker.url)
    platform = platform_for(tmp_path)
    hits = []

    async def scenario():
        arc = ArcReceiver({ACCOUNT: ArcAccount(key=KEY)}, on_alarm=hits.append)
        await arc.start()
        raw = edge_config(mosquitto.url, uplink_broker.url, [arc.port], tmp_path, key=KEY)
        raw["zones"][0]["name"] = "大班"
        raw["gb28181"] = gb_table(platform.port)
        agent = EdgeAgent(parse_config(raw))
        platform.start()
        await agent.start()
        try:
            await agent.devices.connected.wait()
            assert await until(lambda: agent.gb.registered)
            button = await asyncio.to_thread(connect_button, mosquitto.url, "btn1", announce_status=False)
            await asyncio.to_thread(button.press)
            assert await until(lambda: hits and agent.gb.counters["alarm_notified"] == 1)
            button.link.close()
            assert await until(lambda: any(e["body"].get("gb28181", {}).get("registered")
                                           for e in cloud.of_type("heartbeat")))
            platform.stop()
            assert await until(lambda: any(e["body"]["kind"] == "video_platform_down"
                                           for e in cloud.of_type("alarm.raised")))
            platform.start()
            assert await until(lambda: any(e["body"]["kind"] == "video_platform_down"
                                           for e in cloud.of_type("alarm.cleared")))
        finally:
            await agent.stop()
            platform.stop()
            await arc.close()

    asyncio.run(scenario())
    assert [a.code for a in hits] == ["PA"]
    (alarm,) = received_bodies(platform, "Alarm", run=1)
    assert (alarm.findtext("DeviceID"), alarm.findtext("AlarmPriority"), alarm.findtext("AlarmMethod")) == \
        (DEVICE_ID, "1", "2")
    assert alarm.findtext("AlarmDescription") == "一键报警 大班"
    (down,) = [e for e in cloud.of_type("alarm.raised") if e["body"]["kind"] == "video_platform_down"]
    assert down["body"]["source"] == f"gb28181:{LOOPBACK}:{platform.port}"
    assert down["body"]["detail"]["reason"] == "3 keepalives unanswered"
    beat = next(e["body"]["gb28181"] for e in cloud.of_type("heartbeat") if e["body"].get("gb28181"))
    assert (beat["platform_id"], beat["device_id"], beat["transport"]) == (PLATFORM_ID, DEVICE_ID, "udp")


def base_config(tmp_path, **gb) -> dict:
    raw = edge_config("mqtt://127.0.0.1:1", "mqtt://127.0.0.1:2", [3], tmp_path)
    raw["cameras"] = [{"id": "cam1", "source": "cam.mp4", "gb_id": CAMERA_GB_ID}]
    raw["gb28181"] = gb_table(5060, **gb)
    return raw


@pytest.mark.parametrize("change,message", [
    ({"device_id": "3402000000118000000"}, "gb28181.device_id: String should match pattern"),
    ({"platform_domain": "34020"}, "gb28181.platform_domain: String should match pattern"),
    ({"transport": "sctp"}, "gb28181.transport: Input should be 'udp' or 'tcp'"),
    ({"keepalive_s": 0}, "gb28181.keepalive_s: Input should be greater than 0"),
    ({"device_id": PLATFORM_ID}, "device_id: the same as platform_id"),
    ({"password": ""}, "gb28181.password: String should have at least 1 character"),
    ({"device_id": CAMERA_GB_ID}, "a gb_id is the gateway's own gb28181.device_id"),
    ({"typo_key": 1}, "gb28181.typo_key: Extra inputs are not permitted"),
])
def test_bad_gb28181_config_names_the_key(tmp_path, change, message):
    with pytest.raises(ConfigError) as err:
        parse_config(base_config(tmp_path, **change))
    assert message in str(err.value)


def test_camera_gb_ids_are_checked(tmp_path):
    raw = base_config(tmp_path)
    raw["cameras"].append({"id": "cam2", "source": "cam2.mp4", "gb_id": CAMERA_GB_ID})
    with pytest.raises(ConfigError, match="a gb_id appears twice"):
        parse_config(raw)
    raw["cameras"][1]["gb_id"] = "3402-0000"
    with pytest.raises(ConfigError, match=r"cameras\.1\.gb_id: String should match pattern"):
        parse_config(raw)
    cfg = parse_config(base_config(tmp_path))
    assert cfg.gb28181.keepalive_s == 0.3 and cfg.gb28181.keepalive_misses == 3 and cfg.cameras[0].gb_id == CAMERA_GB_ID
