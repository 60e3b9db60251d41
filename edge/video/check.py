"""`careguard camera-check SOURCE [--fps N] --json`: analyse a video file or stream URL
(rtsp:// with H.264 or H.265, http:// MJPEG) for camera faults and print one line per fault found, `{"kind", "start_s", "end_s"}` with --json.

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

import av
import numpy as np

from contracts.alarms import AlarmState
from edge.video.health import CameraHealthAnalyser, FaultEvent, HealthConfig
from edge.video.source import Transport, is_url, open_video, redact, video_stream


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="video file, or a stream URL (rtsp://, http://...)")
    parser.add_argument("--fps", type=float, default=1.0, help="analysis checks per second of video (default 1)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--duration", type=float, default=60.0,
                        help="URL only: seconds to watch the stream (default 60)")
    parser.add_argument("--offline-after", type=float, default=20.0,
                        help="URL only: seconds without a frame that count as offline (default 20)")
    parser.add_argument("--timeout", type=float, default=10.0, help="URL only: open and read timeout (default 10)")
    parser.add_argument("--transport", choices=("tcp", "udp"), default="tcp", help="RTSP only: transport (default tcp)")


def _frames(container, fps: float, is_live: bool, duration: float,
            size: tuple[int, int]) -> Iterator[tuple[float, Optional[np.ndarray], Optional[int]]]:
    """(seconds, small grey frame or None once a live stream stops, number of the key frame it
    was decoded from or None if coded on its own) every 1/fps seconds: of media time for a
    file (its own timestamps), of wall time for a stream."""
    stream = video_stream(container)
    intra_only = stream.codec_context.codec.intra_only
    period = 1.0 / fps
    next_t = 0.0
    started = time.monotonic()
    index = 0
    key_no: Optional[int] = None
    rate = float(stream.average_rate or stream.guessed_rate or 0)
    try:
        for packet in container.demux(stream):
            if is_live and time.monotonic() - started >= duration:
                return
            if packet.size == 0:
                break
            if is_live:
                t = time.monotonic() - started
            elif packet.pts is not None and packet.time_base is not None:
                t = float((packet.pts - (stream.start_time or 0)) * packet.time_base)
            else:  # some containers carry no timestamps: count frames
                t = index / rate if rate > 0 else float(index)
            index += 1
            due = t + 1e-6 >= next_t
            if not due and intra_only:
                continue  # a picture coded on its own need not be decoded to skip it
            for frame in packet.decode():
                if frame.key_frame and not intra_only:
                    key_no = index
                if due:
                    next_t += period * max(1, int((t - next_t) / period) + 1)
                    grey = frame.reformat(width=size[0], height=size[1], format="gray", interpolation="AREA")
                    yield t, grey.to_ndarray(), key_no
                    due = False
    except av.error.FFmpegError as exc:
        if not is_live:
            raise ValueError(f"reading {redact(container.name)}: {redact(str(exc))}") from None
    if is_live:
        yield time.monotonic() - started, None, None


def find_faults(source: str, fps: float = 1.0, *, duration: float = 60.0, config: Optional[HealthConfig] = None,
                timeout: float = 10.0, transport: Transport = "tcp") -> list[dict]:
    """The faults in a file or stream as `{"kind", "start_s", "end_s"}`; ValueError if unreadable."""
    if fps <= 0:
        raise ValueError(f"--fps must be > 0, got {fps}")
    live = is_url(source)
    if not live:
        path = Path(source)
        if not path.exists():
            raise ValueError(f"no such file: {source}")
        if not path.is_file():
            raise ValueError(f"not a file: {source}")
    analyser = CameraHealthAnalyser("camera-check", config)
    c = analyser.config
    events: list[FaultEvent] = []
    last_t = 0.0
    checked = 0
    container = open_video(source, transport=transport, open_timeout_s=timeout, read_timeout_s=timeout)
    try:
        for t, grey, key_no in _frames(container, fps, live, duration, (c.width, c.height)):
            last_t = t
            if grey is None:
                # A live stream went quiet: keep checking until it counts as offline.
                deadline = t + c.offline_after_s
                while t <= deadline:
                    events += analyser.no_frame(t)
                    t += 1.0 / fps
                last_t = t
                break
            events += analyser.check(grey, t, keyframe_id=key_no)
            checked += 1
    finally:
        container.close()
    if checked == 0:
        raise ValueError(f"no decodable frame in {redact(source)!r}")
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
        faults = find_faults(args.source, args.fps, duration=args.duration, config=config, timeout=args.timeout,
                             transport=args.transport)
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
