"""Cameras on the edge agent, against the MJPEG camera simulator: a panic sends the zone's
pictures to the cloud behind the DC-09 frame; a covered camera is a camera_fault alarm with
its snapshot, cleared when the cloth is taken away; health numbers reach the cloud."""

import asyncio
import base64
import re

import pytest

from arc.receiver import ArcAccount, ArcReceiver
from edge.agent import EdgeAgent
from edge.config import parse_config
from firmware_sim import connect_button
from firmware_sim.camera import SimulatedCamera
from firmware_sim.camera_scene import scene_by_name
from helpers import until

JPEG_MAGIC = b"\xff\xd8"


@pytest.fixture
def camera():
    cam = SimulatedCamera(scene_by_name("nursery", 3), fps=8, width=320, height=180)
    cam.start()
    yield cam
    cam.stop()


def config(local, uplink, arc_port, camera_url, tmp_path):
    return parse_config({
        "facility_id": "F1", "local_broker": local, "uplink": {"broker": uplink},
        "police": {"account": "1234", "receivers": [{"host": "127.0.0.1", "port": arc_port}]},
        "outbox": {"path": str(tmp_path / "edge.sqlite3")},
        "video": {"recordings_root": str(tmp_path / "rec"), "health_report_s": 0.5, "offline_after_s": 3,
                  "segment_s": 2},
        "cameras": [{"id": "cam1", "source": camera_url, "analysis_fps": 4}],
        "zones": [{"id": "class1", "number": 1, "kind": "panic", "devices": ["btn1"], "cameras": ["cam1"]}],
    })


def test_panic_snapshot_and_camera_fault(mosquitto, uplink_broker, collector_factory, camera, tmp_path):
    cloud = collector_factory(uplink_broker.url)
    hits = []

    async def scenario():
        arc = ArcReceiver({"1234": ArcAccount(plaintext=True)}, on_alarm=hits.append)
        await arc.start()
        agent = EdgeAgent(config(mosquitto.url, uplink_broker.url, arc.port, camera.url, tmp_path))
        await agent.start()
        await agent.devices.connected.wait()
        # The camera streams and reports its health.
        assert await until(lambda: any(c["camera_id"] == "cam1" and c["frames"] > 0
                                       for e in cloud.of_type("camera.health") for c in e["body"]["cameras"]))
        button = await asyncio.to_thread(connect_button, mosquitto.url, "btn1", announce_status=False)
        await asyncio.to_thread(button.press)
        assert await until(lambda: any(e["body"]["alarm_id"] == str(hits[0].alarm_id)
                                       for e in cloud.of_type("camera.snapshot")) if hits else False)
        button.link.close()
        # A cloth over the lens: a camera_fault alarm with a snapshot; taken away: cleared.
        camera.inject("covered", cover="cloth")
        assert await until(lambda: any(e["body"]["kind"] == "camera_fault" for e in cloud.of_type("alarm.raised")), 30)
        camera.clear_faults()
        assert await until(lambda: any(e["body"]["kind"] == "camera_fault" for e in cloud.of_type("alarm.cleared")), 30)
        # Meanwhile the recorder has been writing segments in the layout of DESIGN.md.
        assert await until(lambda: len(list((tmp_path / "rec" / "cam1").glob("*/*.mkv"))) >= 2, 20)
        await agent.stop()
        await arc.close()

    asyncio.run(scenario())
    names = sorted(p.relative_to(tmp_path / "rec").as_posix() for p in (tmp_path / "rec").glob("cam1/*/*.mkv"))
    assert all(re.fullmatch(r"cam1/\d{4}-\d{2}-\d{2}/\d{2}-\d{2}-\d{2}\.mkv", n) for n in names), names
    panic_snap = next(e for e in cloud.of_type("camera.snapshot") if e["body"]["alarm_id"] == str(hits[0].alarm_id))
    assert base64.b64decode(panic_snap["body"]["jpeg_b64"]).startswith(JPEG_MAGIC)
    assert panic_snap["body"]["camera_id"] == "cam1" and panic_snap["body"]["zone"] == "class1"
    fault = next(e for e in cloud.of_type("alarm.raised") if e["body"]["kind"] == "camera_fault")
    assert fault["body"]["source"] == "cam1" and fault["body"]["detail"]["fault"] == "covered"
    fault_snaps = [e for e in cloud.of_type("camera.snapshot") if e["body"]["alarm_id"] == fault["body"]["alarm_id"]]
    assert fault_snaps and base64.b64decode(fault_snaps[0]["body"]["jpeg_b64"]).startswith(JPEG_MAGIC)
