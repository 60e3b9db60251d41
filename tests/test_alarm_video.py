"""The dispatcher sees the scene, end to end on real components: two simulated cameras burning
their clock into each frame, the edge agent recording and cutting clips, a real Mosquitto that
goes away in the middle of the upload, the cloud on SQLite, and Chromium on the police page.

One press must give, per zone camera, a clip that starts at least 25 s before the alarm (read
from the frames themselves), plays in Chromium, says what footage is missing for a camera that
was offline, arrives whole after the uplink came back with every chunk stored once; a live view
that updates; and video for nobody who should not see it, every view audited."""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
import threading
from datetime import timedelta

import cv2
import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from helpers import chromium, logged_in_page, sync_until, until
from test_registry_api import facility_body

from arc.receiver import ArcAccount, ArcReceiver
from cloud.config import CloudConfig, TokenEntry
from cloud.main import CloudService
from cloud.store.db import audit, envelopes
from cloud.video.clips import clip_chunks
from edge.agent import EdgeAgent
from edge.config import parse_config
from firmware_sim import connect_button
from firmware_sim.camera import SimulatedCamera
from firmware_sim.camera_scene import scene_by_name
from firmware_sim.osd import read_stamp

ADMIN, POLICE, HEALTH = "admin-token-0123456789", "police-token-0123456789", "health-token-0123456789"
FAC1, FAC2 = "facility1-token-012345", "facility2-token-012345"
BEFORE_S, AFTER_S = 30, 6


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def cameras():
    cams = [SimulatedCamera(scene_by_name("nursery", seed), fps=5, width=320, height=180, osd=True).start()
            for seed in (1, 2)]
    yield cams
    for c in cams:
        c.stop()


@pytest.fixture
def cloud(uplink_broker, tmp_path):
    config = CloudConfig(broker_url=uplink_broker.url, db_url=f"sqlite:///{tmp_path / 'cloud.db'}", port=0,
                         client_id="video-ingest", signing_key_path=tmp_path / "cloud.key",
                         tokens=[TokenEntry(token=ADMIN, user="ops", role="admin"),
                                 TokenEntry(token=POLICE, user="officer-li", role="police"),
                                 TokenEntry(token=HEALTH, user="inspector-wang", role="health"),
                                 TokenEntry(token=FAC1, user="f1-op", role="facility", facility_id="F1"),
                                 TokenEntry(token=FAC2, user="f2-op", role="facility", facility_id="F2")])
    service = CloudService(config).start()
    assert service.wait_ingest_ready() and service.live.subscribed.wait(10)
    with httpx.Client(base_url=service.url, headers=bearer(ADMIN)) as http:
        for fid, n in (("F1", 1), ("F2", 2)):
            body = facility_body(fid, n, areas=[{"area_id": "class1", "name": "托小班", "children_area": True}],
                                 cameras=[{"camera_id": "cam1", "name": "活动室", "areas": ["class1"]},
                                          {"camera_id": "cam2", "name": "午睡室", "areas": ["class1"]}])
            assert http.post("/api/facilities", json=body).status_code == 201
    yield service
    service.stop()


def edge_config(local, uplink, arc_port, cams, tmp_path, cloud_key):
    return parse_config({
        "facility_id": "F1", "local_broker": local,
        "uplink": {"broker": uplink, "heartbeat_s": 5, "cloud_public_key": cloud_key},
        "police": {"account": "1234", "receivers": [{"host": "127.0.0.1", "port": arc_port}]},
        "outbox": {"path": str(tmp_path / "edge.sqlite3")},
        "video": {"recordings_root": str(tmp_path / "rec"), "segment_s": 2, "offline_after_s": 3,
                  "clip_before_s": BEFORE_S, "clip_after_s": AFTER_S, "health_report_s": 2},
        "cameras": [{"id": f"cam{i + 1}", "source": c.url, "analysis_fps": 2} for i, c in enumerate(cams)],
        "zones": [{"id": "class1", "number": 1, "kind": "panic", "devices": ["btn1"], "cameras": ["cam1", "cam2"]}],
    })


def first_frame_time(mp4: bytes):
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        f.write(mp4)
        f.flush()
        cap = cv2.VideoCapture(f.name)
        ok, frame = cap.read()
        cap.release()
    assert ok, "no decodable frame in the clip"
    return read_stamp(frame)


def live_frames(url: str, token: str, n: int, timeout: float = 20.0) -> list[dict]:
    """The first `n` frames of a live view (keepalives skipped)."""
    frames: list[dict] = []
    with httpx.stream("GET", url, headers=bearer(token), timeout=timeout) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            item = json.loads(line)
            if "jpeg_b64" in item:
                frames.append(item)
            if len(frames) >= n:
                break
    return frames


def test_press_gives_the_police_the_scene(mosquitto, uplink_broker, cloud, cameras, tmp_path):
    hits = []
    cams = cameras
    # cam2 is offline for the first part of the clip's window: its clip must say so.
    cams[1].inject("offline", duration_s=14)
    loop_ready = threading.Event()
    result: dict = {}

    async def scenario():
        arc = ArcReceiver({"1234": ArcAccount(plaintext=True)}, on_alarm=hits.append)
        await arc.start()
        agent = EdgeAgent(edge_config(mosquitto.url, uplink_broker.url, arc.port, cams, tmp_path, cloud.public_key_hex))
        await agent.start()
        await agent.devices.connected.wait()
        loop_ready.set()
        # Enough footage before the press for the clip's window, counted from cam1's first recorded
        # bytes: ffmpeg took seconds to start on a loaded machine, and the clip then (rightly) named
        # the first seconds of its window missing.
        rec = tmp_path / "rec" / "cam1"
        assert await until(lambda: rec.is_dir() and any(f.is_file() and f.stat().st_size > 0 for f in rec.rglob("*")),
                           30), "cam1 recorded nothing"
        await asyncio.sleep(BEFORE_S + 2)
        button = await asyncio.to_thread(connect_button, mosquitto.url, "btn1", announce_status=False)
        press = await asyncio.to_thread(button.press)
        result["press_ts"] = press.ts
        assert await until(lambda: bool(hits), 10)
        button.link.close()
        # The uplink goes away just before the clips are cut and stays away while they queue.
        await asyncio.sleep(AFTER_S - 1)
        await asyncio.to_thread(uplink_broker.stop)
        await until(lambda: agent.clips_sent >= 2, 60)
        await asyncio.sleep(1)
        await asyncio.to_thread(uplink_broker.start)
        result["alarm_id"] = str(hits[0].alarm_id)
        # Live view and the page run while the agent is up.
        await asyncio.to_thread(check_cloud_side, cloud, result)
        await agent.stop()
        await arc.close()

    asyncio.run(scenario())
    assert result.get("checked"), result


def check_cloud_side(cloud: CloudService, result: dict) -> None:
    alarm_id = result["alarm_id"]
    with httpx.Client(base_url=cloud.url, timeout=20) as http:
        def clips():
            r = http.get(f"/api/alarms/{alarm_id}/clips", headers=bearer(POLICE))
            return r.json() if r.status_code == 200 else []
        assert sync_until(lambda: len(clips()) == 2 and all(c["complete"] for c in clips()), 60), clips()
        by_cam = {c["camera_id"]: c for c in clips()}
        assert not any(c["corrupt"] for c in by_cam.values())
        # Every chunk stored once, though the broker went away mid-upload.
        with cloud.engine.connect() as conn:
            chunks = conn.execute(sa.select(sa.func.count()).select_from(clip_chunks)).scalar_one()
            stored = conn.execute(sa.select(envelopes.c.body).where(envelopes.c.type == "camera.clip")).scalars().all()
        assert chunks == sum(c["chunks"] for c in by_cam.values()) == len(stored)
        assert all(b["data_b64"] == "" for b in stored), "clip bytes must not sit in clear in the envelope table"
        press_ts = result["press_ts"]
        cam1 = http.get(f"/api/clips/{by_cam['cam1']['clip_id']}", headers=bearer(POLICE))
        assert cam1.status_code == 200 and cam1.headers["content-type"] == "video/mp4"
        first = first_frame_time(cam1.content)
        assert first is not None and first <= press_ts - timedelta(seconds=25), (first, press_ts)
        assert not by_cam["cam1"]["missing"]
        # The camera that was offline: what exists, and what is missing, said.
        missing = by_cam["cam2"]["missing"]
        assert missing and missing[0]["start"] == by_cam["cam2"]["window_start"]
        ranged = http.get(f"/api/clips/{by_cam['cam1']['clip_id']}", headers={**bearer(POLICE), "Range": "bytes=0-99"})
        assert ranged.status_code == 206 and len(ranged.content) == 100 and ranged.content == cam1.content[:100]

        # Who may see the scene.
        live = f"{cloud.url}/api/facilities/F1/cameras/cam1/live"
        assert http.get(f"/api/alarms/{alarm_id}/clips", headers=bearer(HEALTH)).status_code == 403
        assert http.get(f"/api/clips/{by_cam['cam1']['clip_id']}", headers=bearer(FAC2)).status_code == 403
        assert http.get(f"/api/alarms/{alarm_id}/clips", headers=bearer(FAC1)).status_code == 200
        assert http.get("/api/facilities/F2/cameras/cam1/live", headers=bearer(POLICE)).status_code == 403  # no alarm
        assert http.get("/api/facilities/F1/cameras/cam1/live", headers=bearer(HEALTH)).status_code == 403
        assert http.get("/api/facilities/F1/cameras/cam1/live", headers=bearer(FAC2)).status_code == 403
        assert http.get("/api/facilities/F1/cameras/nope/live", headers=bearer(POLICE)).status_code == 404

        # The live view updates: frames in order, their drawn time moving on.
        frames = live_frames(live, POLICE, 4)
        seqs = [f["seq"] for f in frames]
        assert seqs == sorted(seqs) and len(set(seqs)) == 4
        stamps = [read_stamp(cv2.imdecode(np.frombuffer(base64.b64decode(f["jpeg_b64"]), np.uint8), 1))
                  for f in frames]
        assert all(stamps) and stamps[-1] > stamps[0]

        check_police_page(cloud, alarm_id)

        with cloud.engine.connect() as conn:
            actions = conn.execute(sa.select(audit.c.action, audit.c.actor, audit.c.detail)).all()
        assert any(a.action == "clip.read" and a.actor == "officer-li" for a in actions)
        views = [a for a in actions if a.action == "live.view" and a.actor == "officer-li"]
        assert views and all(v.detail["opened_at"] <= v.detail["closed_at"] for v in views)
    result["checked"] = True


def check_police_page(cloud: CloudService, alarm_id: str) -> None:
    with chromium() as browser:
        page, errors = logged_in_page(browser, f"{cloud.url}/police", POLICE)
        row = page.locator(f"tr[data-alarm-id='{alarm_id}']")
        row.wait_for(timeout=15000)
        row.get_by_role("button", name="详情").click()
        videos = page.locator("#card-clips video")
        videos.first.wait_for(timeout=20000)
        assert videos.count() >= 1
        # Chromium plays it: currentTime moves on.
        page.evaluate("(v) => { v.muted = true; return v.play(); }", videos.first.element_handle())
        page.wait_for_function("(v) => v.currentTime > 0.5", arg=videos.first.element_handle(), timeout=15000)
        page.get_by_role("button", name="查看实时画面 · 活动室").click()
        page.wait_for_function("() => { const i = document.querySelector('#card-live img'); "
                               "return i && Number(i.dataset.seq || 0) > 1; }", timeout=20000)
        page.get_by_role("button", name="停止实时画面 · 活动室").click()
        assert not errors, errors
