"""RTSP cameras against GStreamer's RTSP server (the camera simulator's RTSP mode): H.264 and
H.265, TCP and UDP, behind a password; health numbers under a stall, dropped connections and
a resolution change; the main stream recorded by copy into the layout the retention audit
reads; credentials kept out of every log; `careguard camera-check rtsp://...`."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from contracts.alarms import AlarmState
from edge.video.capture import CameraMonitor, CaptureConfig
from edge.video.health import CameraFault, HealthConfig
from edge.video.source import redact
from edge.config import CameraConfig, VideoConfig
from edge.video.recorder import CameraRecorder
from edge.retention.audit import audit_index
from edge.retention.index import SegmentIndex
from firmware_sim.camera_rtsp import RtspCamera, RtspStream
from firmware_sim.camera_scene import scene_by_name
from helpers import sync_until

PASSWORD = "s3cret-Pw"
STREAMS = [RtspStream(name="main", width=480, height=270, kbps=600, gop=8),
           RtspStream(name="sub", width=320, height=180, kbps=300, gop=8)]


def rtsp_camera(codec: str, **kw) -> RtspCamera:
    return RtspCamera(scene_by_name("day", seed=4), codec=codec, fps=8, width=480, height=270, streams=STREAMS,
                      user="admin", password=PASSWORD, **kw)


def monitor(url: str, events: list, transport: str = "tcp") -> CameraMonitor:
    return CameraMonitor(
        "cam-rtsp", url, events.append, analysis_fps=4,
        capture=CaptureConfig(open_timeout_s=3, read_timeout_s=2, backoff_initial_s=0.2, backoff_max_s=1,
                              transport=transport),
        health=HealthConfig(offline_after_s=30, confirm_checks=2, clear_checks=2, reference_every_s=0.5,
                            min_persist_s=1.0))


@pytest.mark.parametrize("codec,transport,decoder", [("h264", "tcp", "h264"), ("h265", "udp", "hevc")])
def test_rtsp_stream_health_under_cover_resolution_change_stall_and_drops(codec, transport, decoder, caplog):
    caplog.set_level(logging.INFO)
    events: list = []
    with rtsp_camera(codec) as camera:
        mon = monitor(camera.url("sub"), events, transport)
        try:
            mon.start()
            assert sync_until(lambda: mon.health().frames >= 10, 20)
            h = mon.health()
            assert (h.state, h.codec, h.resolution) == ("streaming", decoder, "320x180")
            assert (h.stalls, h.drops, h.resolution_changes) == (0, 0, 0) and h.fault is None

            camera.inject("covered", cover="cloth")
            assert sync_until(lambda: mon.health().fault is CameraFault.COVERED, 20)
            camera.clear_faults()
            assert sync_until(lambda: mon.health().fault is None, 20)

            # The sub-stream changes size mid-stream: counted, analysed on, no fault of the view.
            camera.inject("resolution", width=256, height=144)
            assert sync_until(lambda: mon.health().resolution == "256x144", 20)
            frames = mon.health().frames
            assert sync_until(lambda: mon.health().frames > frames + 8, 10)
            assert mon.health().resolution_changes >= 1
            camera.clear_faults()

            # Connected but silent: a stall, counted, then a reconnect once it sends again.
            stalls = mon.health().stalls
            camera.inject("stall", duration_s=8)
            assert sync_until(lambda: mon.health().stalls > stalls, 15)
            assert sync_until(lambda: mon.health().state == "streaming" and mon.health().reconnects >= 1, 20)

            # Every connection dropped every 2 s: drops counted, the quality falls, frames keep coming.
            camera.inject("drops", every_s=2)
            assert sync_until(lambda: mon.health().drops >= 2, 25)
            camera.clear_faults()
            frames = mon.health().frames
            assert sync_until(lambda: mon.health().frames > frames + 8, 15)
            h = mon.health()
            assert h.connection_quality < 0.5 and h.state == "streaming"
        finally:
            mon.stop()
    raised = [e.fault for e in events if e.state is AlarmState.ACTIVE]
    assert raised == [CameraFault.COVERED], [(e.fault, e.t, e.features) for e in events]
    text = caplog.text
    assert PASSWORD not in text


def test_credentials_never_reach_logs_or_recorder_errors(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with rtsp_camera("h264") as camera:
        wrong = camera.url("sub").replace(PASSWORD, PASSWORD + "x")
        events: list = []
        mon = monitor(wrong, events)
        cam_cfg = CameraConfig(id="cam-pw", source=wrong)
        rec = CameraRecorder(cam_cfg, VideoConfig(recordings_root=tmp_path / "rec", segment_s=2), "ffmpeg")
        try:
            mon.start()
            rec.start()
            assert sync_until(lambda: rec.restarts >= 1 and mon.health().reconnects >= 1, 20)
        finally:
            mon.stop()
            rec.stop()
        assert "401" in rec.last_error and "***@" in rec.last_error
        assert PASSWORD not in rec.last_error
        assert "***@127.0.0.1" in caplog.text and PASSWORD not in caplog.text
        assert mon.health().frames == 0 and events == []
    assert redact(f"open rtsp://u:{PASSWORD}@h/x and http://a:b@c/") == "open rtsp://***@h/x and http://***@c/"


def test_main_stream_recorded_by_copy_into_the_layout_and_audited(tmp_path):
    root = tmp_path / "rec"
    with rtsp_camera("h265") as camera:
        cam_cfg = CameraConfig(id="cam-main", source=camera.url("sub"), record_source=camera.url("main"))
        rec = CameraRecorder(cam_cfg, VideoConfig(recordings_root=root, segment_s=2), "ffmpeg")
        rec.start()
        try:
            assert sync_until(lambda: len(list(root.glob("cam-main/*/*.mkv"))) >= 3, 30)
            # The camera goes away for a while: the recorder restarts and the audit sees the hole.
            camera.inject("offline", duration_s=8)
            before = {p.name for p in root.glob("cam-main/*/*.mkv")}
            assert sync_until(lambda: rec.restarts >= 1, 15)
            # Bounded by the recorder's own retry: its backoff doubles while the camera is away (1, 2,
            # 4, 8, 16 s), and a camera that takes a while to boot can cost one more step.
            assert sync_until(lambda: len({p.name for p in root.glob("cam-main/*/*.mkv")} - before) >= 3, 90)
        finally:
            rec.stop()
    files = sorted(root.glob("cam-main/*/*.mkv"))
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=codec_name,width,height", "-of", "json", str(files[1])],
                           capture_output=True, text=True, timeout=30)
    stream = json.loads(probe.stdout)["streams"][0]
    # H.265 at the main stream's size: copied, not re-encoded (ffmpeg would re-encode to H.264).
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("hevc", 480, 270)
    with SegmentIndex(tmp_path / "index.sqlite3") as index:
        index.sync(root)
        report = audit_index(index, root, required_days=1, now=datetime.now(timezone.utc), free_bytes=10**12)
    [cam] = report.cameras
    assert cam.camera_id == "cam-main" and cam.segments == len(files)
    assert [g for g in cam.gaps if not g.ongoing and g.seconds >= 6], cam.gaps


def test_camera_check_reads_an_rtsp_stream():
    with rtsp_camera("h264", faults=[]) as camera:
        camera.inject("covered", cover="black")
        run = subprocess.run([sys.executable, "-m", "careguard", "camera-check", camera.url("sub"), "--json",
                              "--fps", "2", "--duration", "16"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    found = [json.loads(line) for line in run.stdout.splitlines()]
    assert [f["kind"] for f in found] == ["covered"], found
    assert PASSWORD not in run.stderr


def test_sim_camera_command_serves_rtsp():
    proc = subprocess.Popen([sys.executable, "-m", "careguard", "sim", "camera", "--rtsp", "h265", "--port", "0",
                             "--size", "320x180", "--fps", "5", "--duration", "60", "--user", "viewer",
                             "--password", PASSWORD], stderr=subprocess.PIPE, text=True)
    try:
        urls: list[str] = []
        for _ in range(50):
            line = proc.stderr.readline()
            if not line or "serving" in line:
                urls = line.split("serving", 1)[-1].split()
                break
        assert [u.rsplit("/", 1)[1] for u in urls] == ["main", "sub"] and PASSWORD not in line
        sub = urls[1].replace("rtsp://", f"rtsp://viewer:{PASSWORD}@")
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of",
                                "csv=p=0", sub], capture_output=True, text=True, timeout=30)
        assert probe.stdout.strip() == "hevc,160,90", probe.stderr
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_a_still_room_over_rtsp_is_not_frozen_and_a_frozen_camera_is():
    """Nobody in the room, through GStreamer's encoder (constant bit rate, not the benchmark's
    libx264 at constant quality): the live capture numbers the key frames, each picture
    carries the number of its own, and a still room is not frozen; a camera whose picture
    freezes (its encoder still running) is raised as frozen."""
    events: list = []
    streams = [RtspStream(name="sub", width=320, height=180, kbps=300, gop=8)]
    with RtspCamera(scene_by_name("empty", seed=5), codec="h264", fps=8, width=320, height=180,
                    streams=streams) as camera:
        mon = monitor(camera.url("sub"), events)
        try:
            mon.start()
            assert sync_until(lambda: mon.health().frames >= 8 * 20, 40)  # 20 s of a still room
            assert events == [] and mon.health().features["repeats"] == 0
            # A key frame a second: each picture knows which one it was decoded from.
            first_key = mon.capture.latest()[3]
            assert sync_until(lambda: mon.capture.latest()[3] >= first_key + 3, 10)
            camera.inject("frozen")
            assert sync_until(lambda: mon.health().fault is CameraFault.FROZEN, 30)
        finally:
            mon.stop()
    assert [e.fault for e in events] == [CameraFault.FROZEN]
