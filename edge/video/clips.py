"""Alarm clips: the footage of one camera around an alarm, cut from the recorder's segments.

`plan_clip` is pure: which segment files cover the window, where to cut in each, and which
parts of the window have no footage (the camera was offline or not recording). `cut_clip`
runs ffmpeg on the plan: a remux into MP4 with faststart when the codec plays in a browser
(H.264), otherwise a bounded transcode to H.264; then `chunks` splits the file for the outbox.

The segment being written is read too (Matroska can be read while it grows), so a clip is
ready soon after its window ends instead of after the segment closes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, Optional

from edge.retention.segments import SegmentPathError, day_dir_name, parse_segment_file

# Codecs Chromium plays in a <video> element without hardware help; others are transcoded.
BROWSER_CODECS = frozenset({"h264"})
FFMPEG_TIMEOUT_S = 120.0
CLIP_NICE = 10
# A recorder names a segment by its start; one whose end we cannot read is taken to run to the
# next segment's start or, for the newest, to its last write.
_SLACK = timedelta(seconds=0.5)


class ClipError(Exception):
    """ffmpeg could not make the clip; the message says why."""


@dataclass(frozen=True)
class Segment:
    path: Path
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Part:
    path: Path
    segment_start: datetime
    inpoint_s: float
    outpoint_s: float


@dataclass
class ClipPlan:
    window_start: datetime
    window_end: datetime
    parts: list[Part] = field(default_factory=list)
    start: Optional[datetime] = None
    end: Optional[datetime] = None
    missing: list[tuple[datetime, datetime]] = field(default_factory=list)


@dataclass
class Clip:
    plan: ClipPlan
    data: bytes
    transcoded: bool
    truncated: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def plan_clip(segments: list[Segment], window_start: datetime, window_end: datetime,
              min_gap: timedelta = timedelta(seconds=2)) -> ClipPlan:
    """The parts of `segments` (any order) inside the window, and the gaps of at least `min_gap`
    (a segment is named to the second and may start a frame or two after its name, and a busy
    recorder delivers frames late: shorter gaps are seams between segments, not missing footage)."""
    plan = ClipPlan(window_start, window_end)
    cursor = window_start
    for seg in sorted(segments, key=lambda s: s.start):
        lo, hi = max(seg.start, window_start), min(seg.end, window_end)
        if hi <= lo:
            continue
        if lo - cursor >= min_gap:
            plan.missing.append((cursor, lo))
        plan.parts.append(Part(seg.path, seg.start, (lo - seg.start).total_seconds(), (hi - seg.start).total_seconds()))
        plan.start = plan.start or lo
        plan.end = hi
        cursor = max(cursor, hi)
    if window_end - cursor >= min_gap:
        plan.missing.append((cursor, window_end))
    return plan


def probe_codec(path: Path, ffprobe: str = "ffprobe") -> Optional[str]:
    try:
        out = subprocess.run([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name",
                              "-of", "json", str(path)], capture_output=True, timeout=15, check=False).stdout
        streams = json.loads(out or b"{}").get("streams") or [{}]
        return streams[0].get("codec_name")
    except (subprocess.TimeoutExpired, ValueError, OSError):
        return None


def find_segments(camera_dir: Path, window_start: datetime, window_end: datetime, segment_s: int) -> list[Segment]:
    """The camera's segment files that may overlap the window, with their measured spans."""
    found: list[tuple[datetime, Path]] = []
    day = (window_start - timedelta(seconds=segment_s)).date()
    while day <= window_end.date():
        folder = camera_dir / day_dir_name(day)
        if folder.is_dir():
            for entry in folder.iterdir():
                try:
                    start, _ext = parse_segment_file(day, entry.name)
                except SegmentPathError:
                    continue
                if window_start - timedelta(seconds=2 * segment_s) <= start <= window_end:
                    found.append((start, entry))
        day += timedelta(days=1)
    found.sort()
    # Closed segments run to the next one's start, at most one segment long (no ffprobe per file:
    # a minute of 2 s segments would cost more CPU in probes than the clip itself); a gap in the
    # recording shows as the next file starting late. The newest runs to its last write.
    out = []
    for i, (start, path) in enumerate(found):
        if i + 1 < len(found):
            end = min(found[i + 1][0], start + timedelta(seconds=segment_s) + _SLACK)
        else:
            end = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        if end > start:
            out.append(Segment(path, start, end))
    return out


def _concat_list(plan: ClipPlan) -> str:
    lines = ["ffconcat version 1.0"]
    for p in plan.parts:
        # Single quotes in a path would end the quoted string; escape them as the format asks.
        lines.append("file '" + str(p.path).replace("'", "'\\''") + "'")
        lines.append(f"inpoint {p.inpoint_s:.3f}")
        lines.append(f"outpoint {p.outpoint_s:.3f}")
    return "\n".join(lines) + "\n"


def _ffmpeg(args: list[str], cancel: Optional[threading.Event]) -> None:
    """Run ffmpeg to the end, or until `cancel` is set (the agent stopping: the clip job stays in the
    journal and is cut again on the next start)."""
    # Niced: a clip may wait a moment, the alarm path on the same cores may not.
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.nice(CLIP_NICE))
    deadline = time.monotonic() + FFMPEG_TIMEOUT_S
    try:
        while True:
            try:
                _, err = proc.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    raise ClipError("cancelled: the agent is stopping") from None
                if time.monotonic() > deadline:
                    raise ClipError(f"ffmpeg took longer than {FFMPEG_TIMEOUT_S:.0f} s") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise ClipError("ffmpeg failed: " + err.decode("utf-8", "replace").strip()[-400:])


def cut_clip(plan: ClipPlan, *, max_bytes: int, ffmpeg: str = "ffmpeg", ffprobe: str = "ffprobe",
             max_width: int = 1280, cancel: Optional[threading.Event] = None) -> Clip:
    """The plan's footage as one MP4 (faststart). A clip over `max_bytes` is made again smaller
    (lower resolution and quality); failing that, it is marked truncated and holds the window's
    middle third around the alarm."""
    if not plan.parts:
        return Clip(plan, b"", transcoded=False)
    codec = probe_codec(plan.parts[0].path, ffprobe)
    copy = codec in BROWSER_CODECS
    attempts = ([("copy", max_width, 0)] if copy else []) + [("x264", max_width, 26), ("x264", 480, 34)]
    with tempfile.TemporaryDirectory(prefix="cg-clip-") as tmp:
        listing = Path(tmp) / "parts.ffconcat"
        listing.write_text(_concat_list(plan))
        out = Path(tmp) / "clip.mp4"
        for how, width, crf in attempts:
            args = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0",
                    "-i", str(listing), "-map", "0:v:0", "-an"]
            if how == "copy":
                args += ["-c", "copy"]
            else:
                # Bounded: one thread, the fastest preset, never wider than the source or `width`.
                # Frames keep their recorded times (passthrough): an MJPEG recording declares 25 fps
                # whatever the camera sent, and the MP4 muxer's default constant rate would encode
                # every frame of a 5 fps camera five times over.
                args += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-crf", str(crf),
                         "-pix_fmt", "yuv420p", "-vf", f"scale='min({width},iw)':-2", "-threads", "1",
                         "-fps_mode", "passthrough"]
            args += ["-movflags", "+faststart", str(out)]
            _ffmpeg(args, cancel)
            data = out.read_bytes()
            if len(data) <= max_bytes:
                return Clip(plan, data, transcoded=how != "copy")
    middle = (plan.window_end - plan.window_start) / 3
    # Only what the first plan found can be in the shorter one: each part's segment ends no
    # later than its outpoint as far as this window is concerned.
    known = [Segment(p.path, p.segment_start, p.segment_start + timedelta(seconds=p.outpoint_s)) for p in plan.parts]
    shorter = plan_clip(known, plan.window_start + middle, plan.window_end - middle)
    clip = Clip(shorter, b"", transcoded=True)
    if shorter.parts:
        smaller = cut_clip(shorter, max_bytes=2**62, ffmpeg=ffmpeg, ffprobe=ffprobe, max_width=480, cancel=cancel)
        if len(smaller.data) <= max_bytes:
            clip = smaller
    clip.truncated = True
    return clip


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    """`data` in pieces of `size` bytes; an empty clip is one empty piece (it still says what is missing)."""
    if not data:
        yield b""
        return
    for i in range(0, len(data), size):
        yield data[i:i + size]


def chunk_count(data: bytes, size: int) -> int:
    return max(1, -(-len(data) // size))
