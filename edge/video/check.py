"""`careguard camera-check SOURCE [--fps N] --json`: analyse a video file or stream URL for
camera faults and print one line per fault found, `{"kind", "start_s", "end_s"}` with --json.

Times are seconds of media time from the start (the file's own timestamps). A file is read
as fast as it decodes, analysing one frame every 1/fps seconds of media time; frames in
between are grabbed (demuxed and decoded) but never converted. A URL is read live, for at
most --duration seconds, and may go offline; a file cannot."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import cv2

from contracts.alarms import AlarmState
from edge.video.health import CameraHealthAnalyser, FaultEvent, HealthConfig, to_small_grey


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="video file, or a stream URL (rtsp://, http://...)")
    parser.add_argument("--fps", type=float, default=1.0, help="analysis checks per second of video (default 1)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="URL only: seconds to watch the stream (default 60)")
    parser.add_argument("--offline-after", type=float, default=20.0,
                        help="URL only: seconds without a frame that count as offline (default 20)")
    parser.add_argument("--timeout", type=float, default=10.0, help="URL only: open and read timeout (default 10)")


def _is_url(source: str) -> bool:
    return "://" in source


def _frames(cap: cv2.VideoCapture, fps: float, is_url: bool, duration: float) -> Iterator[tuple[float, object]]:
    """(media seconds, frame or None for a missing one) every 1/fps seconds of media time."""
    period = 1.0 / fps
    next_t = 0.0
    started = time.monotonic()
    index = 0
    file_fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    while True:
        if is_url and time.monotonic() - started >= duration:
            return
        if not cap.grab():
            if not is_url:
                return
            yield time.monotonic() - started, None
            return
        if is_url:
            t = time.monotonic() - started
        else:
            pos = cap.get(cv2.CAP_PROP_POS_MSEC)
            # Some containers report no timestamps; fall back to the frame count.
            t = pos / 1000.0 if pos > 0 or index == 0 or file_fps <= 0 else index / file_fps
        index += 1
        if t + 1e-6 < next_t:
            continue
        next_t += period * max(1, int((t - next_t) / period) + 1)
        ok, frame = cap.retrieve()
        yield t, frame if ok else None


def find_faults(source: str, fps: float = 1.0, *, duration: float = 60.0, config: Optional[HealthConfig] = None,
                timeout: float = 10.0) -> list[dict]:
    """The faults in a file or stream as `{"kind", "start_s", "end_s"}`; ValueError if unreadable."""
    if fps <= 0:
        raise ValueError(f"--fps must be > 0, got {fps}")
    is_url = _is_url(source)
    if not is_url:
        path = Path(source)
        if not path.exists():
            raise ValueError(f"no such file: {source}")
        if not path.is_file():
            raise ValueError(f"not a file: {source}")
    ms = int(timeout * 1000)
    cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG,
                           [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    if not cap.isOpened():
        raise ValueError(f"cannot open {source!r} as video")
    analyser = CameraHealthAnalyser("camera-check", config)
    events: list[FaultEvent] = []
    last_t = 0.0
    checked = 0
    try:
        for t, frame in _frames(cap, fps, is_url, duration):
            last_t = t
            if frame is None:
                # A live stream went quiet: keep checking until it counts as offline.
                deadline = t + analyser.config.offline_after_s
                while t <= deadline:
                    events += analyser.no_frame(t)
                    t += 1.0 / fps
                last_t = t
                break
            c = analyser.config
            events += analyser.check(to_small_grey(frame, c.width, c.height), t)
            checked += 1
    finally:
        cap.release()
    if checked == 0:
        raise ValueError(f"no decodable frame in {source!r}")
    faults: list[dict] = []
    open_fault: Optional[dict] = None
    for event in events:
        if event.state is AlarmState.ACTIVE:
            open_fault = {"kind": event.fault.value, "start_s": round(event.since_s, 2), "end_s": None}
            faults.append(open_fault)
        elif open_fault is not None:
            open_fault["end_s"] = round(event.since_s, 2)
            open_fault = None
    if open_fault is not None:
        open_fault["end_s"] = round(last_t, 2)
    return faults


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = HealthConfig(offline_after_s=args.offline_after)
        faults = find_faults(args.source, args.fps, duration=args.duration, config=config, timeout=args.timeout)
    except ValueError as exc:
        print(f"careguard camera-check: {exc}", file=sys.stderr)
        return 2
    for fault in faults:
        if args.json:
            print(json.dumps(fault))
        else:
            print(f"{fault['kind']:10} {fault['start_s']:9.2f} s .. {fault['end_s']:9.2f} s")
    if not faults and not args.json:
        print("no faults found")
    return 0
