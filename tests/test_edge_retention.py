"""The agent's retention check on a real folder of segments: a gap breaks the footage and
raises retention_breach; a disk too small for the requirement raises it before footage runs
short; a segment deleted outside the recorder is footage tamper; reports reach the cloud."""

import asyncio
import os
from datetime import datetime, timedelta, timezone

from testing.services import free_port
from edge.agent import EdgeAgent
from edge.config import parse_config
from helpers import until

SEGMENT_S = 60


def write_segments(root, camera, start, end, skip=None):
    """One tiny file per minute from start to end (UTC), leaving out the `skip` span."""
    t = start
    made = []
    while t < end:
        if not (skip and skip[0] <= t < skip[1]):
            day = root / camera / t.strftime("%Y-%m-%d")
            day.mkdir(parents=True, exist_ok=True)
            f = day / t.strftime("%H-%M-%S.mkv")
            f.write_bytes(b"x" * 1000)
            os.utime(f, (t.timestamp() + SEGMENT_S, t.timestamp() + SEGMENT_S))
            made.append(f)
        t += timedelta(seconds=SEGMENT_S)
    return made


def agent_for(tmp_path, local, uplink, required_days=1):
    return EdgeAgent(parse_config({
        "facility_id": "F1", "local_broker": local, "uplink": {"broker": uplink},
        "police": {"account": "1234", "receivers": [{"host": "127.0.0.1", "port": free_port()}]},
        "outbox": {"path": str(tmp_path / "edge.sqlite3")},
        "video": {"recordings_root": str(tmp_path / "rec"), "index_path": str(tmp_path / "idx.sqlite3"),
                  "required_days": required_days, "segment_s": SEGMENT_S, "retention_check_s": 3600,
                  "min_free_bytes": 0},
        # Sources nobody serves: these cameras are recorded by someone else; the agent audits.
        "cameras": [{"id": "cam1", "source": f"http://127.0.0.1:{free_port()}/x"},
                    {"id": "cam2", "source": f"http://127.0.0.1:{free_port()}/x"}],
        "zones": [{"id": "z", "number": 1, "kind": "panic", "devices": ["btn"], "cameras": ["cam1", "cam2"]}],
    }))


def breaches(cloud, kind="retention_breach"):
    return {e["body"]["source"]: e for e in cloud.of_type("alarm.raised") if e["body"]["kind"] == kind}


def test_gap_breach_projected_breach_and_tamper(mosquitto, uplink_broker, collector_factory, tmp_path):
    cloud = collector_factory(uplink_broker.url)
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    root = tmp_path / "rec"
    # cam1: two days, unbroken. cam2: two days with an hour missing three hours ago.
    write_segments(root, "cam1", now - timedelta(days=2), now)
    cam2 = write_segments(root, "cam2", now - timedelta(days=2), now,
                          skip=(now - timedelta(hours=3), now - timedelta(hours=2)))

    async def scenario():
        agent = agent_for(tmp_path, mosquitto.url, uplink_broker.url)
        await agent.start()
        await agent.check_retention()
        assert await until(lambda: "retention:cam2" in breaches(cloud)
                           and cloud.of_type("retention.report"), 10)
        assert "retention:cam1" not in breaches(cloud)
        report = cloud.of_type("retention.report")[-1]["body"]
        assert {c["camera_id"] for c in report["cameras"]} == {"cam1", "cam2"}

        # A disk that cannot hold the requirement at the measured rate: raised before it runs short.
        agent.retention.free_bytes = 10
        agent.cfg.video.required_days = 30
        agent.retention.video.required_days = 30
        await agent.check_retention()
        assert await until(lambda: "retention:cam1" in breaches(cloud), 10)
        reasons = breaches(cloud)["retention:cam1"]["body"]["detail"]["reasons"]
        assert any("sustains" in r for r in reasons), reasons

        # A segment deleted behind the recorder's back is tamper.
        cam2[len(cam2) // 2].unlink()
        os.utime(cam2[len(cam2) // 2].parent, None)
        await agent.check_retention()
        assert await until(lambda: "footage:cam2" in breaches(cloud, "tamper"), 10)
        await agent.stop()

    asyncio.run(scenario())
    tamper = breaches(cloud, "tamper")["footage:cam2"]["body"]["detail"]
    assert tamper["kind"] == "missing" and tamper["camera_id"] == "cam2"
