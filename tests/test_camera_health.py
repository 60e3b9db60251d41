"""Camera health: generated clips with known faults, the MJPEG simulator read by the
capture at run time with faults injected over HTTP, offline detection, and camera-check."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from contracts.alarms import AlarmState
from edge.video.capture import CameraMonitor, CaptureConfig
from edge.video.check import find_faults
from edge.video.health import CameraFault, CameraHealthAnalyser, HealthConfig, small_grey_from_jpeg
from firmware_sim.camera import SimulatedCamera, parse_fault, write_clip
from firmware_sim.camera_scene import (HELD_OUT_FAMILIES, Fault, FaultKind, LightMode, close_passes, frame_at,
                                       held_out_scene, scene_by_name)
from helpers import sync_until

CLIP_SIZE = dict(width=320, height=180)


def _overlaps(found: dict, label) -> bool:
    return found["kind"] == label.kind and found["start_s"] < label.end_s + 3 and found["end_s"] > label.start_s


@pytest.fixture(scope="module")
def fault_clip(tmp_path_factory):
    """Every analysed fault kind in one clip, each after a stretch of normal scene, some in
    infrared or dim light (the nursery scene cycles day 0-60, dim 60-72, infrared 72-120)."""
    path = tmp_path_factory.mktemp("clips") / "faults.avi"
    faults = [parse_fault(spec) for spec in (
        "covered@40-55", "frozen@75-100", "defocused:blur_sigma=7@125-140",
        "displaced:shift_x=50,shift_y=20@160-175", "covered:cover=cloth@200-215",
        "displaced:shift_x=0,shift_y=0,angle_deg=9@240-255")]
    labels = write_clip(path, scene_by_name("nursery", seed=2), 275, fps=2, faults=faults, **CLIP_SIZE)
    return path, labels


def test_each_fault_in_a_clip_is_found_within_its_interval(fault_clip):
    path, labels = fault_clip
    found = find_faults(str(path), fps=1)
    for label in labels:
        assert any(_overlaps(f, label) for f in found), f"{label} not found in {found}"
    for f in found:
        assert any(_overlaps(f, label) for label in labels), f"false alarm {f}"
    assert json.loads((path.parent / "faults.avi.labels.json").read_text())[0]["kind"] == "covered"


def test_normal_scene_with_infrared_lights_and_people_gives_no_fault(tmp_path):
    scene = scene_by_name("nursery", seed=5)
    modes = {scene.mode_at(t) for t in range(200)}
    assert modes == {LightMode.DAY, LightMode.DIM, LightMode.IR}
    path = tmp_path / "normal.avi"
    write_clip(path, scene, 200, fps=1, **CLIP_SIZE)
    assert find_faults(str(path), fps=1) == []
    # Quick switching of lights and infrared, three people, straight into the analyser.
    busy = scene_by_name("switching", seed=9)
    analyser = CameraHealthAnalyser("busy")
    events = []
    for t in range(600):
        grey = cv2.cvtColor(frame_at(busy, float(t), 160, 90), cv2.COLOR_BGR2GRAY)
        events += analyser.check(grey, float(t))
    assert events == []


def test_clear_is_reported_and_cooldown_holds_a_repeat():
    scene = scene_by_name("day", seed=1)
    analyser = CameraHealthAnalyser("c", HealthConfig(cooldown_s=30))
    covered = [Fault(kind=FaultKind.COVERED, start_s=40, end_s=55), Fault(kind=FaultKind.COVERED, start_s=60, end_s=110)]
    events = []
    for t in range(110):
        grey = cv2.cvtColor(frame_at(scene, float(t), 160, 90, covered), cv2.COLOR_BGR2GRAY)
        events += [(e.fault, e.state, e.t, e.since_s) for e in analyser.check(grey, float(t))]
    # Raised once it has held min_persist_s (10 s), with the time it began.
    assert events[0] == (CameraFault.COVERED, AlarmState.ACTIVE, 50, 40)
    assert events[1][:2] == (CameraFault.COVERED, AlarmState.CLEARED) and events[1][3] == 55
    # Covered again at 60, but held until the cooldown after the clear at 57 ends.
    assert events[2][:2] == (CameraFault.COVERED, AlarmState.ACTIVE) and events[2][2] >= 57 + 30
    assert len(events) == 3


def _post(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_mjpeg_camera_fault_injected_over_http_is_raised_then_cleared_then_offline():
    camera = SimulatedCamera(scene_by_name("day", seed=4), fps=8, width=320, height=180).start()
    base = f"http://127.0.0.1:{camera.port}"
    events = []
    monitor = CameraMonitor(
        "cam-1", camera.url, events.append, analysis_fps=4,
        capture=CaptureConfig(open_timeout_s=2, read_timeout_s=2, backoff_initial_s=0.2, backoff_max_s=1),
        health=HealthConfig(offline_after_s=2, confirm_checks=2, clear_checks=2, reference_every_s=0.5))
    try:
        monitor.start()
        assert sync_until(lambda: monitor.health().frames >= 10, 15)
        health = monitor.health()
        assert health.state == "streaming" and health.camera_fps > 0 and health.fault is None
        jpeg = monitor.latest_jpeg()
        assert small_grey_from_jpeg(jpeg).shape == (90, 160)
        assert monitor.capture.latest()[3] is None  # JPEG pictures stand alone: no key frame to share

        assert _post(f"{base}/fault?kind=bogus")[0] == 400
        status, body = _post(f"{base}/fault?kind=covered&cover=cloth")
        assert status == 200 and body["faults"][0]["kind"] == "covered"
        assert sync_until(lambda: any(e.state is AlarmState.ACTIVE for e in events), 15)
        raised = events[0]
        assert raised.fault is CameraFault.COVERED and raised.camera_id == "cam-1"
        assert raised.snapshot_jpeg and raised.snapshot_jpeg[:2] == b"\xff\xd8"
        assert raised.alarm_detail()["fault"] == "covered" and "snapshot_jpeg_b64" in raised.alarm_detail()
        assert monitor.health().fault is CameraFault.COVERED

        assert _post(f"{base}/fault?kind=none")[0] == 200
        assert sync_until(lambda: any(e.state is AlarmState.CLEARED for e in events), 15)
        assert monitor.health().fault is None

        camera.stop()
        assert sync_until(lambda: any(e.fault is CameraFault.OFFLINE for e in events), 20)
        health = monitor.health()
        assert health.fault is CameraFault.OFFLINE and health.connection_quality == 0.0
        assert sync_until(lambda: monitor.health().reconnects >= 1, 10)
    finally:
        monitor.stop()
        camera.stop()


def test_camera_check_cli(fault_clip, tmp_path):
    path, labels = fault_clip
    run = subprocess.run([sys.executable, "-m", "careguard", "camera-check", str(path), "--fps", "1", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    found = [json.loads(line) for line in run.stdout.splitlines()]
    assert {f["kind"] for f in found} == {lb.kind for lb in labels}
    assert all(set(f) == {"kind", "start_s", "end_s"} for f in found)

    missing = subprocess.run([sys.executable, "-m", "careguard", "camera-check", str(tmp_path / "nope.mp4"), "--json"],
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode == 2 and "no such file" in missing.stderr and missing.stdout == ""
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    bad = subprocess.run([sys.executable, "-m", "careguard", "camera-check", str(junk), "--json"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "junk.mp4" in bad.stderr


def test_bad_fault_specs_are_refused_with_the_reason(tmp_path):
    with pytest.raises(ValueError, match="START"):
        parse_fault("covered@soon")
    with pytest.raises(ValueError, match="key=value"):
        parse_fault("covered:cloth")
    with pytest.raises(ValueError, match="offline"):
        write_clip(tmp_path / "x.avi", scene_by_name("day"), 10, faults=[Fault(kind=FaultKind.OFFLINE)])
    with pytest.raises(ValueError, match="unknown scene"):
        scene_by_name("garage")
    with pytest.raises(ValueError, match="JPEG"):
        small_grey_from_jpeg(b"\xff\xd8garbage")


def test_view_faults_must_persist_so_people_passing_at_the_lens_raise_nothing():
    """An hour of a held-out nursery morning at 1 fps, with people passing right in front of
    the lens: nothing raised; without the 10 s persistence the same hour raises a fault."""
    scene = held_out_scene(HELD_OUT_FAMILIES[0], seed=11)
    start = 8 * 3600
    assert len(close_passes(scene, 8)) >= 3
    greys = [cv2.cvtColor(frame_at(scene, float(t), 160, 90), cv2.COLOR_BGR2GRAY) for t in range(start, start + 3600)]

    def raised(config: HealthConfig) -> list:
        analyser = CameraHealthAnalyser("c", config)
        events = []
        for k, grey in enumerate(greys):
            events += analyser.check(grey, float(start + k))
        return [e.fault for e in events if e.state is AlarmState.ACTIVE]

    assert raised(HealthConfig(confirm_checks=1)) == []
    assert raised(HealthConfig(confirm_checks=1, min_persist_s=0)) != []
    # A real cover is raised once it has lasted the 10 s, not before.
    analyser = CameraHealthAnalyser("c")
    cover = [Fault(kind=FaultKind.COVERED, start_s=start + 100, end_s=start + 200)]
    events = []
    for t in range(start, start + 120):
        events += analyser.check(cv2.cvtColor(frame_at(scene, float(t), 160, 90, cover), cv2.COLOR_BGR2GRAY), float(t))
    assert [(e.fault, e.t, e.since_s) for e in events] == [(CameraFault.COVERED, start + 110, start + 100)]


def _h264_clip(path, frames, seconds: float, *, fps: float, gop_s: float, crf: int) -> None:
    """`frames(t)` (320x180) as a camera streams them through libx264, a key frame every
    `gop_s` seconds."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.codec_context.gop_size = round(gop_s * fps)
        stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": str(crf)}
        for k in range(round(seconds * fps)):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frames(k / fps), format="bgr24")))
        out.mux(stream.encode(None))


def _decoded_every_second(path) -> list:
    """(t, small grey) once a second of the clip, as the gateway analyses it."""
    with av.open(str(path)) as clip:
        greys = []
        for frame in clip.decode(video=0):
            t = float(frame.time)
            if t >= len(greys):
                grey = frame.reformat(width=160, height=90, format="gray", interpolation="AREA")
                greys.append((t, grey.to_ndarray()))
        return greys


def test_a_still_room_through_h264_is_not_frozen_and_a_frozen_camera_is(tmp_path):
    """Nobody in the room, a low-bit-rate stream with a long GOP (10 s): between key frames its
    P-frames carry next to none of the sensor's noise and decode nearly identical, second
    after second, as a frozen picture would. Told which key frame each picture came from, the
    analyser does not call it frozen; without that, it would. A frozen picture in the same
    stream is raised."""
    still = scene_by_name("empty", seed=3)
    path = tmp_path / "still.mp4"
    _h264_clip(path, lambda t: frame_at(still, t, 320, 180), 300, fps=2, gop_s=10, crf=40)
    assert find_faults(str(path), fps=1) == []

    analyser = CameraHealthAnalyser("blind")
    raised = [e.fault for t, grey in _decoded_every_second(path) for e in analyser.check(grey, t)]
    assert CameraFault.FROZEN in raised  # each P-frame taken for a picture of its own

    frozen = tmp_path / "frozen.mp4"
    freeze = [Fault(kind=FaultKind.FROZEN, start_s=120, end_s=240)]
    _h264_clip(frozen, lambda t: frame_at(still, t, 320, 180, freeze), 300, fps=2, gop_s=10, crf=40)
    found = find_faults(str(frozen), fps=1)
    assert [f["kind"] for f in found] == ["frozen"]
    # A vote per key frame, and three repeats to call it: a minute or so with a 10 s GOP.
    assert 120 <= found[0]["start_s"] <= 190 and 240 <= found[0]["end_s"] <= 300


def test_a_defocused_lens_through_h264_is_raised(tmp_path):
    """A lens turned slightly out of focus (sigma 3 px at 640x360), through H.264 at a
    camera-like quality, in a room with people and lights going off into infrared. Blurred
    as optics blur: the picture before the sensor adds its noise, which stays sharp."""
    scene = scene_by_name("nursery", seed=6)
    clean = scene.model_copy(update={"noise_day": 0.0, "noise_dim": 0.0, "noise_ir": 0.0})

    def frames(t: float) -> np.ndarray:
        picture = frame_at(clean, t, 320, 180).astype(np.float32)
        if not 200 <= t < 260:
            return frame_at(scene, t, 320, 180)
        noise = frame_at(scene, t, 320, 180).astype(np.float32) - picture
        return np.clip(cv2.GaussianBlur(picture, (0, 0), 1.5) + noise, 0, 255).astype(np.uint8)

    path = tmp_path / "defocus.mp4"
    _h264_clip(path, frames, 300, fps=2, gop_s=2, crf=34)
    found = find_faults(str(path), fps=1)
    assert [f["kind"] for f in found] == ["defocused"]
    assert 200 <= found[0]["start_s"] < 215 and 260 <= found[0]["end_s"] < 275
