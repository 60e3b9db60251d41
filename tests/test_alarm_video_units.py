"""The parts of alarm video on their own: clip planning over segments with gaps, clips cut by a real
ffmpeg from real segments (remux of H.264, transcode of MJPEG), the OSD time read back through
the codecs, the live frame codec against random bytes, and the live stream's lease and budget."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.envelope import LiveViewBody
from contracts.errors import ContractError
from edge.video.clips import Segment, chunk_count, chunks, cut_clip, find_segments, plan_clip
from edge.video.live import LiveStreamer
from wire.token_bucket import TokenBucket
from firmware_sim.osd import read_stamp, stamp
from wire.live_frame import LiveFrame, decode_frame, encode_frame

T0 = datetime(2026, 11, 30, 8, 0, 0, tzinfo=timezone.utc)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def test_plan_covers_the_window_and_names_the_gaps():
    segs = [Segment(Path("b"), at(10), at(20)), Segment(Path("a"), at(0), at(10)), Segment(Path("c"), at(30), at(40))]
    plan = plan_clip(segs, at(5), at(35))
    assert [(p.path.name, p.inpoint_s, p.outpoint_s) for p in plan.parts] == [("a", 5, 10), ("b", 0, 10), ("c", 0, 5)]
    assert (plan.start, plan.end) == (at(5), at(35))
    assert plan.missing == [(at(20), at(30))]


def test_plan_of_a_camera_offline_before_the_alarm():
    plan = plan_clip([Segment(Path("x"), at(25), at(70))], at(0), at(60))
    assert plan.missing == [(at(0), at(25))] and plan.start == at(25) and plan.end == at(60)
    empty = plan_clip([], at(0), at(60))
    assert empty.parts == [] and empty.missing == [(at(0), at(60))] and empty.start is None


def test_chunks_split_and_join():
    data = bytes(range(256)) * 1000
    pieces = list(chunks(data, 10_000))
    assert b"".join(pieces) == data and len(pieces) == chunk_count(data, 10_000) == 26
    assert list(chunks(b"", 10)) == [b""] and chunk_count(b"", 10) == 1


def _write_segments(root: Path, camera: str, start: datetime, seconds: int, codec: str) -> None:
    """Stamped frames at 5 fps as 2 s segments, the way the recorder writes them."""
    width, height, fps = 320, 180, 5
    raw = bytearray()
    for i in range(seconds * fps):
        frame = np.full((height, width, 3), 60 + (i % 50), np.uint8)
        raw += stamp(frame, start + timedelta(seconds=i / fps)).tobytes()
    enc = ["-c:v", "mjpeg", "-q:v", "5"] if codec == "mjpeg" else ["-c:v", "libx264", "-preset", "ultrafast",
                                                                      "-g", str(fps)]
    (root / camera / start.strftime("%Y-%m-%d")).mkdir(parents=True, exist_ok=True)
    # The segment muxer names files by wall clock; give it the footage's own time instead.
    for k in range(0, seconds, 2):
        seg_start = start + timedelta(seconds=k)
        chunk = raw[k * fps * width * height * 3:(k + 2) * fps * width * height * 3]
        path = root / camera / seg_start.strftime("%Y-%m-%d") / seg_start.strftime("%H-%M-%S.mkv")
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
                        "-s", f"{width}x{height}", "-r", str(fps), "-i", "-", *enc, str(path)],
                       input=bytes(chunk), check=True)


def _first_frame_time(mp4: bytes, tmp: Path) -> datetime:
    path = tmp / "clip.mp4"
    path.write_bytes(mp4)
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    cap.release()
    assert ok, "the clip has no decodable frame"
    when = read_stamp(frame)
    assert when is not None, "no OSD time in the clip's first frame"
    return when


@pytest.mark.parametrize("codec", ["mjpeg", "h264"])
def test_cut_clip_from_real_segments(tmp_path, codec):
    start = datetime(2026, 11, 30, 8, 0, 0, tzinfo=timezone.utc)
    _write_segments(tmp_path / "rec", "cam1", start, 20, codec)
    segments = find_segments(tmp_path / "rec" / "cam1", start + timedelta(seconds=5), start + timedelta(seconds=15), 2)
    assert len(segments) >= 5
    plan = plan_clip(segments, start + timedelta(seconds=5), start + timedelta(seconds=15))
    assert plan.missing == []
    clip = cut_clip(plan, max_bytes=10 * 1024 * 1024)
    assert clip.data[4:8] == b"ftyp" and clip.transcoded == (codec == "mjpeg")
    # faststart: the index (moov) comes before the media data (mdat).
    assert clip.data.find(b"moov") < clip.data.find(b"mdat")
    first = _first_frame_time(clip.data, tmp_path)
    # Copy starts at the key frame at or before the window (one per second here).
    assert start + timedelta(seconds=4) <= first <= start + timedelta(seconds=5.3), first


def test_a_clip_over_the_cap_is_made_smaller_then_truncated(tmp_path):
    start = datetime(2026, 11, 30, 9, 0, 0, tzinfo=timezone.utc)
    _write_segments(tmp_path / "rec", "cam1", start, 12, "mjpeg")
    plan = plan_clip(find_segments(tmp_path / "rec" / "cam1", start, start + timedelta(seconds=12), 2),
                     start, start + timedelta(seconds=12))
    full = cut_clip(plan, max_bytes=10 * 1024 * 1024)
    capped = cut_clip(plan, max_bytes=len(full.data) // 3)
    assert capped.truncated and len(capped.data) <= len(full.data) // 3
    if capped.data:
        assert capped.plan.window_start == start + timedelta(seconds=4)


def test_osd_time_survives_h264(tmp_path):
    when = datetime(2026, 11, 30, 10, 11, 12, 300000, tzinfo=timezone.utc)
    frame = stamp(np.random.default_rng(1).integers(0, 255, (360, 640, 3), dtype=np.uint8), when)
    path = tmp_path / "one.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", "640x360",
                    "-i", "-", "-c:v", "libx264", "-crf", "35", "-pix_fmt", "yuv420p", str(path)],
                   input=frame.tobytes(), check=True)
    cap = cv2.VideoCapture(str(path))
    ok, decoded = cap.read()
    cap.release()
    assert ok and read_stamp(decoded) == when
    assert read_stamp(np.zeros((360, 640, 3), np.uint8)) is None


def test_live_frame_round_trip_and_refusals():
    frame = LiveFrame("cam-1", T0, 7, b"\xff\xd8jpeg")
    assert decode_frame(encode_frame(frame)) == frame
    for bad, reason in [(b"XXXX" + encode_frame(frame)[4:], "magic"), (encode_frame(frame)[:8], "header"),
                        (encode_frame(LiveFrame("cam/1", T0, 1, b"\xff\xd8")), "camera_id"),
                        (encode_frame(LiveFrame("c", T0, 1, b"GIF89a")), "JPEG"),
                        (encode_frame(frame) + b"\0" * (600 * 1024), "exceeds")]:
        with pytest.raises(ContractError, match=reason):
            decode_frame(bad)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_live_frame_decoder_refuses_random_bytes_cleanly(data):
    try:
        decode_frame(data)
    except ContractError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 500), st.binary(max_size=64))
def test_live_frame_decoder_survives_mutations(pos, junk):
    good = encode_frame(LiveFrame("cam-1", T0, 7, b"\xff\xd8" + b"x" * 100))
    mutated = good[:pos] + junk + good[pos + len(junk):]
    try:
        decode_frame(mutated)
    except ContractError:
        pass


def test_live_stream_lease_budget_and_unknown_camera():
    sent: list[bytes] = []
    streamer = LiveStreamer({"cam1"}, lambda cid: b"\xff\xd8" + b"p" * 1000, lambda cid, p: sent.append(p) or True,
                            max_kbps=80, max_fps=5)
    assert not streamer.request(LiveViewBody(camera_id="nope", until=at(60)), now=at(0)) and streamer.refused == 1
    assert streamer.request(LiveViewBody(camera_id="cam1", until=at(3600), fps=10), now=at(0))
    # However long the cloud asks for, the lease is bounded.
    assert streamer.streams["cam1"].until == at(60)
    for i in range(40):  # 4 s at 10 ticks a second, frames at most 5 a second, 10 kB/s of budget
        streamer.tick(at(i / 10), 1000.0 + i / 10)
    assert 0 < len(sent) <= 21 and streamer.dropped_budget > 0
    assert sum(len(p) for p in sent) <= 10_000 * 4 + 10_000
    streamer.tick(at(61), 2000.0)
    assert streamer.active() == []


def test_token_bucket_refills_at_its_rate_up_to_its_burst():
    now = [0.0]
    budget = TokenBucket(1000, burst=1000, clock=lambda: now[0])
    assert budget.take(1000) and not budget.take(1)
    assert budget.wait_s(250) == 0.25
    now[0] = 0.5
    assert budget.take(500) and not budget.take(1)
    now[0] = 100.0  # a long pause fills it to the burst, no further
    assert budget.take(1000) and not budget.take(1)
