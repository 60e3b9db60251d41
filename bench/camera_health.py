"""Camera health benchmark: prints one JSON line, never a pass or fail.

Detection, on scenes the thresholds were never tuned on. The thresholds of
edge/video/health.py were tuned on firmware_sim's SCENES only: one room layout (classic), one
camera height (mid), and two lightings (a three-minute light cycle, and whole days with an
east window: the `classic-day` scene, run here with `--families tuning`). The figures are
of HELD_OUT_FAMILIES (other room layouts, camera heights and lightings; camera_scene.py
refuses a held-out family that shares any of them); the JSON names both. Each camera lives
one continuous simulated day (00:00-24:00: lights, nap with curtains drawn, infrared at
night, lights-off spells, people in the room, people passing right at the lens) with fault
episodes of every kind scattered through it. Every frame is rendered at 640x360 and goes
through a real JPEG encode/decode (q80, reduced decode to 160x90, the MJPEG camera path) and
a real H.264 encode/decode (libx264 through PyAV, crf 28, the RTSP camera path), each path
with its own analyser. The H.264 camera sends a key frame every 2 s, as cameras ship: for
each check, its frames since the last key frame are encoded and decoded, the checked one
anywhere in its GOP, and the analyser is told which key frame it came from, as the capture
does. To fit the run, the day is checked every `--check-every` s (default 20) instead of
the gateway's 1 s: the analyser's rules are in seconds (view faults must persist 10 s), in
consecutive checks and in key frames, so sparser checks confirm faults later and see
passing people less often; the JSON says so. Reported per path: recall per fault kind
(episodes where that fault was raised during the episode), wrong-type alarms (another fault
raised during an episode), false alarms per camera-day (raises outside episodes), median
detection delay.

Cost, in the same run: cameras analysed per CPU core at 1 fps against pure decode,
- MJPEG: 640x360 JPEG frames, reduced decode (libjpeg scales in the IDCT) plus analysis,
  process CPU time, best of several rounds;
- RTSP: a real RTSP server (the camera simulator's RTSP mode) serving H.264 and H.265 at
  640x360 and 1920x1080; one connection per source, read for a few seconds in rounds that
  interleave three modes: decode only (the baseline), decode + analysis at 1 fps, and key
  frames only + analysis. CPU is the reading thread's own (time.thread_time; PyAV decodes
  on the caller's thread with one decoder thread), per second of stream at the served rate;
- recorder: ffmpeg copying the same stream into segments, its CPU from wait4's rusage, per
  second of recording.

    python bench/camera_health.py [--cameras 4] [--check-every 20] [--rtsp-seconds 18]
    python bench/camera_health.py --families tuning --no-cost    # what the thresholds were tuned on
"""

from __future__ import annotations

import argparse
import ctypes
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.frame import PictureType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contracts.alarms import AlarmState  # noqa: E402
from edge.retention.segments import FFMPEG_ENV  # noqa: E402
from edge.video.capture import small_grey_from_frame  # noqa: E402
from edge.video.health import CameraHealthAnalyser, HealthConfig, small_grey_from_jpeg  # noqa: E402
from edge.video.recorder import ensure_day_folders, ffmpeg_command  # noqa: E402
from edge.video.source import open_video, video_stream  # noqa: E402
from firmware_sim.camera_rtsp import RtspCamera, RtspStream  # noqa: E402
from firmware_sim.camera_scene import (HELD_OUT_FAMILIES, SCENES, TUNING_FAMILIES, Fault, Scene,  # noqa: E402
                                       family_of, frame_at, held_out_scene, scene_by_name)

DAY_S = 86_400
SIZE = (640, 360)
FAULT_VARIANTS: dict[str, list[dict]] = {
    "offline": [{"kind": "offline"}],
    "frozen": [{"kind": "frozen"}],
    "covered": [{"kind": "covered", "cover": "black"}, {"kind": "covered", "cover": "cloth"}],
    "defocused": [{"kind": "defocused", "blur_sigma": s} for s in (5.0, 7.0, 10.0)],
    "displaced": [{"kind": "displaced", "shift_x": 50.0, "shift_y": 20.0},
                  {"kind": "displaced", "shift_x": -40.0, "shift_y": 30.0},
                  {"kind": "displaced", "shift_x": 0.0, "shift_y": 0.0, "angle_deg": 10.0},
                  {"kind": "displaced", "shift_x": 20.0, "shift_y": -10.0, "angle_deg": -7.0}],
}
EPISODE_S = (300, 600)
# After an episode the fault takes a few checks to clear; a raise then is not a false alarm.
CLEAR_GRACE_S = 120
RTSP_SOURCES = [("h264", 640, 360, 512), ("h265", 640, 360, 384), ("h264", 1920, 1080, 4096),
                ("h265", 1920, 1080, 2048)]
RTSP_FPS, RTSP_GOP = 15, 15  # a key frame a second, as cameras are often set
# The day's H.264 camera: a key frame every 2 s, as IP cameras ship (an I-frame interval of
# twice the frame rate); one frame a second, to fit the run.
CAMERA_GOP_S, CAMERA_FPS = 2.0, 1.0
# Whole days of the tuning family, to tune on days as the held-out families are evaluated.
TUNING_DAY_SCENES = [scene for scene in SCENES.values() if scene.day is not None]


# --- detection over simulated days ------------------------------------------------------------

def day_episodes(rng: random.Random, per_kind: int) -> list[Fault]:
    """Fault episodes spread over the day (any hour: day, nap, night), never overlapping."""
    kinds = [k for k in FAULT_VARIANTS for _ in range(per_kind)]
    rng.shuffle(kinds)
    slot = DAY_S / len(kinds)
    faults = []
    for i, kind in enumerate(kinds):
        duration = rng.uniform(*EPISODE_S)
        start = i * slot + rng.uniform(600, slot - duration - CLEAR_GRACE_S)
        faults.append(Fault(**rng.choice(FAULT_VARIANTS[kind]), start_s=start, end_s=start + duration))
    return faults


class H264Path:
    """An RTSP camera's stream as the gateway decodes it: libx264 at a camera-like quality with a
    key frame every CAMERA_GOP_S seconds, then FFmpeg's decoder. The day is checked more
    sparsely than a GOP lasts, so for each check the camera's frames since its last key frame
    are encoded (the decoder needs them all to decode the checked one), the checked frame
    falling anywhere in its GOP. A camera that comes back from offline starts a new stream
    (new encoder, new decoder)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.enc = self.dec = None
        self.key_frames = 0

    def restart(self) -> None:
        self.enc = av.CodecContext.create("libx264", "w")
        self.enc.width, self.enc.height, self.enc.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        self.enc.time_base = Fraction(1, 1000)
        self.enc.gop_size = 1 << 30  # key frames are placed by the camera's clock, below
        self.enc.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "28"}
        self.enc.thread_count = 1
        self.dec = av.CodecContext.create("h264", "r")
        self.dec.thread_count = 1

    def grey(self, render, t: float, frame: np.ndarray, config: HealthConfig) -> tuple[np.ndarray, int] | None:
        """The checked frame at `t` (`frame`, already rendered) as the analyser gets it, with the
        number of the key frame it was decoded from; `render(t)` gives the camera's other frames."""
        if self.enc is None:
            self.restart()
        n = self.rng.randrange(round(CAMERA_GOP_S * CAMERA_FPS))  # frames since the key frame
        shots = [(u, render(u)) for u in (t - k / CAMERA_FPS for k in range(n, 0, -1)) if u >= 0] + [(t, frame)]
        out = None
        for i, (u, f) in enumerate((u, f) for u, f in shots if f is not None):
            vf = av.VideoFrame.from_ndarray(f, format="bgr24")
            vf.pts = round(u * 1000)
            vf.pict_type = PictureType.I if i == 0 else PictureType.NONE
            for packet in self.enc.encode(vf):
                for decoded in self.dec.decode(packet):
                    self.key_frames += decoded.key_frame
                    out = small_grey_from_frame(decoded, config), self.key_frames
        return out


def day_scene(families: str, index: int, seed: int) -> Scene:
    """The scene of camera `index`: a held-out family, or a tuning day (to tune thresholds on)."""
    if families == "tuning":
        return TUNING_DAY_SCENES[index % len(TUNING_DAY_SCENES)].model_copy(update={"seed": seed})
    return held_out_scene(HELD_OUT_FAMILIES[index % len(HELD_OUT_FAMILIES)], seed)


def simulate_day(job: tuple[str, int, int, int, float]) -> dict:
    """One camera's day through both codec paths: the raised events and the episodes."""
    families, index, seed, per_kind, step = job
    scene = day_scene(families, index, seed)
    faults = day_episodes(random.Random(seed), per_kind)
    config = HealthConfig()
    analysers = {"jpeg": CameraHealthAnalyser("jpeg", config), "h264": CameraHealthAnalyser("h264", config)}
    h264 = H264Path(random.Random(seed + 1))
    raised: dict[str, list] = {"jpeg": [], "h264": []}
    cpu = time.process_time()
    frames = 0
    t = 0.0
    while t < DAY_S:
        frame = frame_at(scene, t, SIZE[0], SIZE[1], faults)
        if frame is None:
            h264.enc = None  # offline: the camera's next stream starts afresh
            events = {k: a.no_frame(t) for k, a in analysers.items()}
        else:
            frames += 1
            jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
            decoded = h264.grey(lambda u: frame_at(scene, u, SIZE[0], SIZE[1], faults), t, frame, config)
            events = {"jpeg": analysers["jpeg"].check(small_grey_from_jpeg(jpeg, config.width, config.height), t),
                      "h264": analysers["h264"].check(decoded[0], t, keyframe_id=decoded[1]) if decoded else []}
        for path, evs in events.items():
            raised[path] += [(e.fault.value, e.t) for e in evs if e.state is AlarmState.ACTIVE]
        t += step
    return {"family": family_of(scene).model_dump(), "seed": seed, "frames": frames,
            "cpu_s": time.process_time() - cpu, "episodes": [(f.kind.value, f.start_s, f.end_s) for f in faults],
            "raised": raised}


def score(days: list[dict], path: str) -> dict:
    hits: dict[str, list[int]] = {k: [] for k in FAULT_VARIANTS}
    delays: dict[str, list[float]] = {k: [] for k in FAULT_VARIANTS}
    wrong = false = 0
    false_kinds: dict[str, int] = {}
    normal_s = 0.0
    for day in days:
        episodes = day["episodes"]
        covered_s = sum(end + CLEAR_GRACE_S - start for _, start, end in episodes)
        normal_s += DAY_S - covered_s
        for kind, start, end in episodes:
            right = [t for k, t in day["raised"][path] if k == kind and start <= t <= end]
            hits[kind].append(bool(right))
            if right:
                delays[kind].append(right[0] - start)
        for kind, t in day["raised"][path]:
            episode = next((e for e in episodes if e[1] <= t <= e[2] + CLEAR_GRACE_S), None)
            if episode is None:
                false += 1
                false_kinds[kind] = false_kinds.get(kind, 0) + 1
            elif episode[0] != kind:
                wrong += 1
    return {
        "recall": {k: round(sum(v) / len(v), 3) for k, v in hits.items()},
        "episodes_per_kind": len(hits["covered"]),
        "wrong_type_alarms": wrong,
        "false_alarms": false,
        "normal_camera_days": round(normal_s / DAY_S, 3),
        "false_alarms_per_camera_day": round(false / (normal_s / DAY_S), 3),
        "false_alarms_by_kind": false_kinds,
        "detect_delay_s_median": {k: float(np.median(v)) for k, v in delays.items() if v},
    }


def _keep_freed_memory() -> None:
    """Every rendered frame allocates a few MB; glibc hands blocks that large back to the
    kernel on free and takes fresh zeroed pages the next time, which cost a third of the
    worker's CPU in page faults. Keep them in the process instead (glibc only)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 256 << 20)
    libc.mallopt(m_trim_threshold, 512 << 20)


def simulate_days(families: str, cameras: int, per_kind: int, step: float, seed: int) -> list[dict]:
    jobs = [(families, i, seed * 1000 + i, per_kind, step) for i in range(cameras)]
    # Spawned, not forked: this runs beside the RTSP threads, and a fork copies their locks.
    with ProcessPoolExecutor(max_workers=min(2, cameras), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_keep_freed_memory) as pool:
        days = list(pool.map(simulate_day, jobs))
    return days


def detection_summary(families: str, days: list[dict], step: float) -> dict:
    frames = sum(d["frames"] for d in days)
    return {
        "detection": {
            "tuning_families": sorted(f"{f.layout}/{f.camera_height}/{f.lighting}" for f in TUNING_FAMILIES),
            "evaluated_on": families,
            "evaluated_families": sorted({"{layout}/{camera_height}/{lighting}".format(**d["family"]) for d in days}),
            "camera_days": len(days),
            "frame": "640x360 rendered; JPEG q80 -> reduced decode 160x90; libx264 crf 28, a key frame every "
                     f"{CAMERA_GOP_S:g} s, frames every {1 / CAMERA_FPS:g} s since it -> decode -> 160x90",
            "check_every_s": step,
            "note": f"the day is checked every {step:g} s instead of every 1 s, to fit the run; view faults must "
                    "persist 10 s and 3 checks, frozen 3 repeats among 6 key frames and 3 checks, so sparser "
                    "checks delay detection",
            "episode_s": list(EPISODE_S),
            "mjpeg_path": score(days, "jpeg"),
            "h264_path": score(days, "h264"),
            "render_and_codecs_ms_per_frame": round(sum(d["cpu_s"] for d in days) / frames * 1e3, 2),
        }
    }


# --- cost: MJPEG ------------------------------------------------------------------------------

def _best_cpu(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def cost_mjpeg(frames: int, rounds: int) -> dict:
    scene = scene_by_name("nursery", seed=1)
    # Spread over the lighting cycle: day, dim and infrared frames compress differently.
    jpegs = [cv2.imencode(".jpg", frame_at(scene, 180.0 * k / frames, *SIZE), [cv2.IMWRITE_JPEG_QUALITY, 80])[1]
             .tobytes() for k in range(frames)]
    smalls = [small_grey_from_jpeg(j) for j in jpegs]

    def decode_reduced():
        for j in jpegs:
            small_grey_from_jpeg(j)

    def analyse():
        analyser = CameraHealthAnalyser("bench", HealthConfig())
        for k, s in enumerate(smalls):
            analyser.check(s, float(k))

    def both():
        analyser = CameraHealthAnalyser("bench", HealthConfig())
        for k, j in enumerate(jpegs):
            analyser.check(small_grey_from_jpeg(j), float(k))

    analyse()  # warm caches and imports
    per = {name: _best_cpu(fn, rounds) / frames
           for name, fn in (("decode", decode_reduced), ("analysis", analyse), ("decode_and_analysis", both))}
    return {
        "frame": "640x360 JPEG q80 -> 160x90 grey (reduced decode)",
        "cpu_us_per_frame": {k: round(v * 1e6, 1) for k, v in per.items()},
        "cameras_per_core_1fps_decode_only": round(1.0 / per["decode"]),
        "cameras_per_core_1fps_decode_and_analysis": round(1.0 / per["decode_and_analysis"]),
        "analysis_to_decode_ratio": round(per["analysis"] / per["decode"], 3),
    }


# --- cost: RTSP -------------------------------------------------------------------------------

MODES = ("decode_only", "decode_and_analysis", "keyframes_and_analysis")


def read_modes(url: str, seconds: float, round_s: float = 3.0, warmup_s: float = 1.0) -> dict:
    """Read one RTSP connection for `seconds` after a warm-up, interleaving the modes in
    rounds; per mode, this thread's CPU and the seconds of video handled (from the stream's
    own timestamps, so a burst after connecting or a slow camera does not skew the rate)."""
    container = open_video(url, open_timeout_s=15, read_timeout_s=10)
    stream = video_stream(container)
    config = HealthConfig()
    analyser = CameraHealthAnalyser("bench", config)
    cpu = dict.fromkeys(MODES, 0.0)
    video_s = dict.fromkeys(MODES, 0.0)
    decoded = dict.fromkeys(MODES, 0)
    keyed = False
    mode_i = 0
    round_started = None
    round_cpu = round_pts = last_pts = 0.0
    last_check = -1.0
    started = time.monotonic()
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                break
            if packet.pts is not None:
                last_pts = float(packet.pts * packet.time_base)
            mode = MODES[mode_i]
            for frame in packet.decode():
                keyed = keyed or frame.key_frame
                decoded[mode] += round_started is not None
                now = time.monotonic()
                if mode != "decode_only" and keyed and now - last_check >= 1.0:
                    last_check = now
                    analyser.check(small_grey_from_frame(frame, config), now)
            now = time.monotonic()
            if round_started is None:
                if now - started >= warmup_s and keyed:
                    round_started, round_cpu, round_pts = now, time.thread_time(), last_pts
                continue
            if now - round_started >= round_s:
                tt = time.thread_time()
                cpu[mode] += tt - round_cpu
                video_s[mode] += last_pts - round_pts
                round_cpu, round_started, round_pts = tt, now, last_pts
                mode_i = (mode_i + 1) % len(MODES)
                stream.codec_context.skip_frame = "NONKEY" if MODES[mode_i] == "keyframes_and_analysis" else "DEFAULT"
                if now - started >= warmup_s + seconds and mode_i == 0:
                    break
    finally:
        container.close()
    return {m: {"cpu_s": cpu[m], "video_s": video_s[m], "decoded": decoded[m]} for m in MODES}


def record_copy(ffmpeg: str, url: str, root: Path, camera_id: str, seconds: float) -> dict:
    """The recorder's own command on this stream; its CPU from the kernel's rusage at exit."""
    ensure_day_folders(root / camera_id, datetime.now(timezone.utc))
    proc = subprocess.Popen(ffmpeg_command(ffmpeg, url, root, camera_id, 2), env={**os.environ, **FFMPEG_ENV},
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = time.monotonic()
    time.sleep(seconds)
    proc.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    written = sum(p.stat().st_size for p in (root / camera_id).rglob("*.mkv"))
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": wall, "bytes": written}


def cost_rtsp(seconds: float) -> dict:
    out = {}
    tmp = Path(tempfile.mkdtemp(prefix="cg-camera-bench-"))
    scene = scene_by_name("nursery", seed=1)
    for codec, width, height, kbps in RTSP_SOURCES:
        name = f"{codec}_{width}x{height}"
        streams = [RtspStream(name="main", width=width, height=height, kbps=kbps, gop=RTSP_GOP)]
        with RtspCamera(scene, codec=codec, fps=RTSP_FPS, width=640, height=360, streams=streams) as camera:
            rec: dict = {}
            recorder = threading.Thread(target=lambda: rec.update(
                record_copy("ffmpeg", camera.url("main"), tmp, name, seconds)))
            recorder.start()
            modes = read_modes(camera.url("main"), seconds)
            recorder.join()
        base = modes["decode_only"]
        # Per decoded frame, scaled to the camera's nominal rate: on a loaded machine the
        # simulated camera's encoder may serve fewer frames than it should.
        entry = {"kbps": kbps, "served_fps": round(base["decoded"] / base["video_s"], 1) if base["video_s"] else None}
        per_s = {}
        for mode, m in modes.items():
            if not m["decoded"]:
                per_s[mode] = None
            elif mode == "keyframes_and_analysis":
                per_s[mode] = m["cpu_s"] / m["decoded"] * RTSP_FPS / RTSP_GOP  # one key frame per GOP
            else:
                per_s[mode] = m["cpu_s"] / m["decoded"] * RTSP_FPS
            entry[mode] = {"cpu_ms_per_s": round(per_s[mode] * 1e3, 2) if per_s[mode] else None,
                           "cameras_per_core": round(1.0 / per_s[mode], 1) if per_s[mode] else None,
                           "frames_decoded": m["decoded"]}
        entry["analysis_over_decode"] = round(per_s["decode_and_analysis"] / per_s["decode_only"] - 1, 3) \
            if per_s["decode_only"] and per_s["decode_and_analysis"] else None
        entry["recorder_copy_cpu_ms_per_s"] = round(rec["cpu_s"] / rec["wall_s"] * 1e3, 2)
        entry["recorder_cameras_per_core"] = round(rec["wall_s"] / rec["cpu_s"], 1) if rec["cpu_s"] else None
        entry["recorded_kbps"] = round(rec["bytes"] * 8 / 1000 / rec["wall_s"])
        out[name] = entry
    shutil.rmtree(tmp, ignore_errors=True)
    return {"rtsp": {"fps": RTSP_FPS, "gop_frames": RTSP_GOP,
                     "cpu": "reader thread's CPU (thread_time) per decoded frame, times the nominal fps (key frames "
                            "only: per key frame, one per GOP); recorder: ffmpeg's rusage per second recorded",
                     "sources": out}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=4,
                        help=f"simulated camera-days, one per held-out family in turn ({len(HELD_OUT_FAMILIES)} "
                             "families: two layouts, two heights, two lightings; default 4)")
    parser.add_argument("--episodes", type=int, default=2, help="fault episodes per kind per camera-day (default 2)")
    parser.add_argument("--check-every", type=float, default=20.0, help="seconds between checks of the day (default 20)")
    parser.add_argument("--rtsp-seconds", type=float, default=18.0,
                        help="seconds read per RTSP source, in 3 s rounds of each mode (default 18)")
    parser.add_argument("--frames", type=int, default=60, help="JPEG frames in the MJPEG cost test (default 60)")
    parser.add_argument("--rounds", type=int, default=5, help="MJPEG cost rounds, best kept (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--families", choices=("held-out", "tuning"), default="held-out",
                        help="days of the held-out families (default: the figures), or of the tuning family "
                             "(to tune thresholds on)")
    parser.add_argument("--no-cost", action="store_true", help="detection only, without the cost measurements")
    args = parser.parse_args()
    if args.check_every < CAMERA_GOP_S:
        parser.error(f"--check-every must be at least the simulated camera's GOP, {CAMERA_GOP_S:g} s")
    started = time.monotonic()
    # The simulated days run on worker processes meanwhile: the cost figures are CPU time, so
    # they hold under that load, and the RTSP part is mostly waiting for real-time streams.
    with ThreadPoolExecutor(max_workers=1) as background:
        days = background.submit(simulate_days, args.families, args.cameras, args.episodes, args.check_every,
                                 args.seed)
        cost = {} if args.no_cost else {"mjpeg": cost_mjpeg(args.frames, args.rounds), **cost_rtsp(args.rtsp_seconds)}
        detection = detection_summary(args.families, days.result(), args.check_every)
    result = {"bench": "camera_health", **cost, **detection,
              "goals": {"recall_per_kind_min": 0.95, "false_alarms_per_camera_day_max": 1.0},
              "wall_s": round(time.monotonic() - started, 1)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
