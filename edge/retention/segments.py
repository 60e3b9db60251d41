"""The recordings layout of DESIGN.md: `{root}/{camera_id}/{YYYY-MM-DD}/{HH-MM-SS}.{ext}`, named by
the segment's UTC start. Pure functions: names in, values out; nothing here touches the disk.

ffmpeg's segment muxer with `-strftime 1` writes exactly this layout from the pattern
`ffmpeg_output_pattern` returns, with two caveats for a recorder: ffmpeg expands strftime in local
time, so run it with the environment variable TZ=UTC (`FFMPEG_ENV`); and the segment muxer does not
create folders (`-strftime_mkdir` is an HLS option), so create today's and tomorrow's day folder
ahead of midnight UTC."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path, PurePath

from contracts.ids import DEVICE_ID_RE

# Containers a camera recorder writes; anything else in a day folder (a `.tmp`, a thumbnail, notes)
# is not footage and is reported as skipped rather than guessed at.
VIDEO_EXTS = frozenset({"mp4", "mkv", "ts", "m2ts", "avi", "mov", "flv", "webm", "m4v", "mjpeg", "h264", "h265"})
FFMPEG_ENV = {"TZ": "UTC"}

_CAMERA_RE = re.compile(DEVICE_ID_RE)
_DAY_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_NAME_RE = re.compile(r"^(\d{2})-(\d{2})-(\d{2})\.([A-Za-z0-9]{1,8})$")


class SegmentPathError(ValueError):
    """A path that is not a segment of the layout; the message says which part is wrong."""


@dataclass(frozen=True, slots=True)
class SegmentName:
    camera_id: str
    start: datetime  # UTC, whole seconds
    ext: str

    @property
    def day(self) -> date:
        return self.start.date()

    @property
    def start_s(self) -> int:
        return int(self.start.timestamp())


def parse_camera_dir(name: str) -> str:
    if not _CAMERA_RE.match(name):
        raise SegmentPathError(f"camera folder {name!r} is not a camera id ([A-Za-z0-9_-]{{1,64}})")
    return name


def parse_day_dir(name: str) -> date:
    m = _DAY_RE.match(name)
    if not m:
        raise SegmentPathError(f"day folder {name!r} is not YYYY-MM-DD")
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError as exc:
        raise SegmentPathError(f"day folder {name!r} is not a calendar date: {exc}") from None


def parse_segment_name(name: str) -> tuple[int, str]:
    """Seconds after midnight UTC and extension (as written) of a segment file `HH-MM-SS.ext`."""
    m = _NAME_RE.match(name)
    if not m:
        raise SegmentPathError(f"segment file {name!r} is not HH-MM-SS.ext")
    ext = m[4]
    if ext.lower() not in VIDEO_EXTS:
        raise SegmentPathError(f"segment file {name!r}: extension {ext!r} is not a video container")
    h, mi, s = int(m[1]), int(m[2]), int(m[3])
    if h > 23 or mi > 59 or s > 59:
        raise SegmentPathError(f"segment file {name!r} is not a time of day")
    return h * 3600 + mi * 60 + s, ext


def parse_segment_file(day: date, name: str) -> tuple[datetime, str]:
    """Start (UTC) and extension of a segment file named `HH-MM-SS.ext` inside the folder of `day`."""
    offset, ext = parse_segment_name(name)
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(seconds=offset), ext


def parse_segment_path(root: str | PurePath, path: str | PurePath) -> SegmentName:
    """The camera, UTC start and extension of `path`, which must be `{root}/{camera}/{day}/{name}`."""
    try:
        rel = PurePath(path).relative_to(PurePath(root))
    except ValueError:
        raise SegmentPathError(f"{path} is not under {root}") from None
    parts = rel.parts
    if len(parts) != 3:
        raise SegmentPathError(f"{rel} is not camera_id/YYYY-MM-DD/HH-MM-SS.ext")
    camera_id = parse_camera_dir(parts[0])
    start, ext = parse_segment_file(parse_day_dir(parts[1]), parts[2])
    return SegmentName(camera_id, start, ext)


def segment_relpath(camera_id: str, start: datetime | int, ext: str) -> str:
    """`camera/YYYY-MM-DD/HH-MM-SS.ext` for a start given as a datetime or UTC epoch seconds."""
    if isinstance(start, datetime):
        start = int(start.timestamp())
    return f"{camera_id}/{time.strftime('%Y-%m-%d/%H-%M-%S', time.gmtime(start))}.{ext}"


def segment_file_name(start_s: int, ext: str) -> str:
    return f"{time.strftime('%H-%M-%S', time.gmtime(start_s))}.{ext}"


def format_segment_path(root: str | Path, camera_id: str, start: datetime, ext: str = "mp4") -> Path:
    if start.tzinfo is None:
        raise SegmentPathError("segment start must be timezone-aware (the layout names UTC)")
    parse_camera_dir(camera_id)
    if ext.lower() not in VIDEO_EXTS:
        raise SegmentPathError(f"extension {ext!r} is not a video container")
    if start.microsecond:
        raise SegmentPathError("segment start must be a whole second (the name has no fraction)")
    return Path(root) / segment_relpath(camera_id, start, ext)


def day_dir_name(day: date) -> str:
    return day.strftime("%Y-%m-%d")


def day_bounds_s(day: date) -> tuple[int, int]:
    """The day as [start, end) in UTC epoch seconds, to select its segments from the index."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return int(start.timestamp()), int((start + timedelta(days=1)).timestamp())


def ffmpeg_output_pattern(root: str | Path, camera_id: str, ext: str = "mp4") -> str:
    """The output argument of `ffmpeg -f segment -strftime 1` for this layout (see the module notes)."""
    parse_camera_dir(camera_id)
    return str(Path(root) / camera_id / "%Y-%m-%d" / f"%H-%M-%S.{ext}")
