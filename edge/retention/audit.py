"""The retention audit: what the footage on disk proves, per camera, at a moment.

Pure: `audit` takes the per-camera facts the segment index holds (`CameraState`) plus the free
space and the requirement, and returns a `RetentionReport`. `audit_index` is the thin wrapper the
edge agent and the CLI call; it reads the index and the disk's free space.

Definitions (DESIGN.md, Recordings):
- segment length L: the file's duration when known, else the median spacing of starts (so a
  recorder we did not write is measured, not assumed);
- a segment ends at start + duration, else at min(next start, start + L); the newest one ends at
  its file's mtime (the recorder is still writing it), capped at start + L;
- a gap is the time between one segment's end and the next one's start, reported when longer than
  2 L; the time from the newest end to now counts too (recording stopped);
- achieved retention is the oldest span without a reported gap that reaches now;
- the write rate is the bytes written over the last day (or since the first segment);
- the disk holds `free / total rate` more days, and in steady state `(footage + free) / total rate`
  days of footage (capacity); capacity below the requirement is a breach projected before it
  happens, while achieved retention may still be compliant."""

from __future__ import annotations

import shutil
import statistics
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Iterable, Literal, Optional, Sequence

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

from contracts.alarms import AlarmKind, Severity
from contracts.timefmt import iso_utc

DAY_S = 86400
NATIONAL_REQUIRED_DAYS = 90  # 托育机构管理规范; a city profile may lower the floor to 30
DEFAULT_SEGMENT_S = 60.0      # when a camera has a single segment and no known duration
RATE_WINDOW_S = DAY_S         # one day of writing smooths day/night bitrate swings

UtcTime = Annotated[AwareDatetime, PlainSerializer(iso_utc, return_type=str, when_used="json")]


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


@dataclass(frozen=True, slots=True)
class Break:
    """Two consecutive segments further apart than a segment; the audit decides if it is a gap."""
    prev_start: int
    prev_duration: Optional[float]
    next_start: int


@dataclass(frozen=True, slots=True)
class CameraState:
    """What the index knows of one camera; times in UTC epoch seconds."""
    camera_id: str
    segment_s: float
    segments: int
    bytes: int
    oldest_start: int
    newest_start: int
    newest_duration: Optional[float]
    newest_mtime: float
    breaks: Sequence[Break] = ()
    recent_bytes: int = 0          # bytes of segments starting within the rate window
    recent_since: Optional[int] = None  # start of the oldest of those segments


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Gap(_Model):
    start: UtcTime
    end: UtcTime
    seconds: float
    ongoing: bool = Field(default=False, description="reaches now: the camera is not recording")


class Finding(_Model):
    code: str = Field(description="retention_short, projected_breach, recording_stopped, gaps, cleanup_refused, ...")
    severity: Severity
    alarm: Optional[AlarmKind] = Field(default=None, description="the alarm kind the edge agent raises for it")
    message: str


TamperKind = Literal["missing", "changed", "checksum_mismatch"]


class TamperFinding(_Model):
    """Footage deleted or changed outside the recorder, one run of consecutive segments."""
    id: Optional[int] = Field(default=None, description="index row; acknowledge it once the alarm is raised")
    camera_id: str
    kind: TamperKind
    first_start: UtcTime
    last_start: UtcTime
    segments: int
    bytes: int = Field(description="bytes the index recorded for these segments")
    detected_at: UtcTime
    detail: str = ""


class CameraRetention(_Model):
    camera_id: str
    segment_s: float
    segments: int
    bytes: int
    oldest: UtcTime
    newest: UtcTime = Field(description="end of the newest segment")
    achieved_days: float
    gaps: list[Gap]
    write_rate_bytes_per_day: Optional[float]
    days_disk_can_hold: Optional[float] = Field(description="free space / the disk's total write rate; None when nothing is written")
    capacity_days: Optional[float] = Field(description="(all footage + free) / total write rate: the retention the disk sustains")
    required_days: float
    compliant: bool
    projected_breach: bool
    projected_days_short: float
    findings: list[Finding]


class RetentionReport(_Model):
    root: str
    checked_at: UtcTime
    required_days: float
    disk_free_bytes: int
    footage_bytes: int
    write_rate_bytes_per_day: float = Field(description="all cameras together")
    days_disk_can_hold: Optional[float]
    capacity_days: Optional[float]
    compliant: bool = Field(description="every camera compliant and no open tamper finding")
    projected_breach: bool
    cameras: list[CameraRetention]
    tamper: list[TamperFinding]
    findings: list[Finding] = Field(default_factory=list)


def infer_segment_s(starts: Iterable[int]) -> Optional[float]:
    """Median spacing of consecutive starts: robust to the occasional gap or short segment."""
    s = sorted(starts)
    spacings = [b - a for a, b in zip(s, s[1:]) if b > a]
    return float(statistics.median(spacings)) if spacings else None


def newest_end(state: CameraState) -> float:
    if state.newest_duration is not None:
        return state.newest_start + state.newest_duration
    return min(max(state.newest_mtime, state.newest_start), state.newest_start + state.segment_s)


def camera_gaps(state: CameraState, now_s: float) -> list[Gap]:
    L = state.segment_s
    gaps = []
    for b in sorted(state.breaks, key=lambda b: b.next_start):
        if b.next_start <= state.oldest_start:
            continue
        prev_end = b.prev_start + (b.prev_duration if b.prev_duration is not None else L)
        seconds = b.next_start - prev_end
        if seconds > 2 * L:
            gaps.append(Gap(start=_dt(prev_end), end=_dt(b.next_start), seconds=seconds))
    end = newest_end(state)
    if now_s - end > 2 * L:
        gaps.append(Gap(start=_dt(end), end=_dt(now_s), seconds=now_s - end, ongoing=True))
    return gaps


def write_rate(state: CameraState, now_s: float) -> Optional[float]:
    if state.recent_since is None:
        return None
    span = now_s - state.recent_since
    return state.recent_bytes / span * DAY_S if span > 0 else None


def _days(x: float) -> str:
    return f"{x:.1f}"


def _camera(state: CameraState, now_s: float, required_days: float, rate: Optional[float],
            days_can_hold: Optional[float], capacity: Optional[float]) -> CameraRetention:
    gaps = camera_gaps(state, now_s)
    stopped = bool(gaps and gaps[-1].ongoing)
    span_start = state.oldest_start if not gaps else gaps[-1].end.timestamp()
    achieved = 0.0 if stopped else max(0.0, now_s - span_start) / DAY_S
    compliant = achieved >= required_days
    projected = capacity is not None and capacity < required_days
    short = max(0.0, required_days - capacity) if projected else 0.0
    findings = []
    if stopped:
        findings.append(Finding(code="recording_stopped", severity=Severity.MAJOR, alarm=AlarmKind.RETENTION_BREACH,
                                message=f"no footage since {iso_utc(gaps[-1].start)} ({gaps[-1].seconds:.0f} s)"))
    if not compliant:
        findings.append(Finding(code="retention_short", severity=Severity.MAJOR, alarm=AlarmKind.RETENTION_BREACH,
                                message=f"achieved {_days(achieved)} days of unbroken footage, {_days(required_days)} required"))
    if projected:
        findings.append(Finding(
            code="projected_breach", severity=Severity.MAJOR if not compliant else Severity.WARNING,
            alarm=AlarmKind.RETENTION_BREACH,
            message=(f"at {rate or 0:.0f} B/day for this camera the disk sustains {_days(capacity)} days of footage, "
                     f"{_days(short)} days short of {_days(required_days)}; free space lasts {_days(days_can_hold or 0)} days")))
    closed = [g for g in gaps if not g.ongoing]
    if closed:
        longest = max(closed, key=lambda g: g.seconds)
        findings.append(Finding(code="gaps", severity=Severity.MINOR,
                                message=f"{len(closed)} gap(s) longer than {2 * state.segment_s:.0f} s; longest {longest.seconds:.0f} s "
                                        f"from {iso_utc(longest.start)}"))
    return CameraRetention(
        camera_id=state.camera_id, segment_s=state.segment_s, segments=state.segments, bytes=state.bytes,
        oldest=_dt(state.oldest_start), newest=_dt(newest_end(state)), achieved_days=achieved, gaps=gaps,
        write_rate_bytes_per_day=rate, days_disk_can_hold=days_can_hold, capacity_days=capacity,
        required_days=required_days, compliant=compliant, projected_breach=projected, projected_days_short=short,
        findings=findings)


def audit(cameras: Sequence[CameraState], *, required_days: float, now: datetime, free_bytes: int,
          tamper: Sequence[TamperFinding] = (), root: str = "", skipped: int = 0) -> RetentionReport:
    """The retention report for cameras sharing one disk with `free_bytes` free."""
    if required_days <= 0:
        raise ValueError(f"required_days must be positive, got {required_days}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now_s = now.timestamp()
    rates = {c.camera_id: write_rate(c, now_s) for c in cameras}
    total_rate = sum(r for r in rates.values() if r)
    footage = sum(c.bytes for c in cameras)
    free = max(0, int(free_bytes))
    days_can_hold = free / total_rate * 1.0 if total_rate > 0 else None
    capacity = (footage + free) / total_rate if total_rate > 0 else None
    out = [_camera(c, now_s, required_days, rates[c.camera_id], days_can_hold, capacity)
           for c in sorted(cameras, key=lambda c: c.camera_id)]
    findings = []
    if not cameras:
        findings.append(Finding(code="no_footage", severity=Severity.MAJOR, alarm=AlarmKind.RETENTION_BREACH,
                                message="no camera segments found under the recordings root"))
    if skipped:
        findings.append(Finding(code="skipped_paths", severity=Severity.MINOR,
                                message=f"{skipped} path(s) under the root are not in the layout camera/YYYY-MM-DD/HH-MM-SS.ext"))
    for t in tamper:
        findings.append(Finding(code=f"tamper_{t.kind}", severity=Severity.MAJOR, alarm=AlarmKind.TAMPER,
                                message=f"{t.camera_id}: {t.segments} segment(s) {t.kind} from {iso_utc(t.first_start)} "
                                        f"to {iso_utc(t.last_start)}{': ' + t.detail if t.detail else ''}"))
    return RetentionReport(
        root=root, checked_at=now, required_days=required_days, disk_free_bytes=free, footage_bytes=footage,
        write_rate_bytes_per_day=total_rate, days_disk_can_hold=days_can_hold, capacity_days=capacity,
        compliant=bool(out) and all(c.compliant for c in out) and not tamper,
        projected_breach=any(c.projected_breach for c in out), cameras=out, tamper=list(tamper), findings=findings)


def disk_free_bytes(root: str | Path) -> int:
    return shutil.disk_usage(root).free


def audit_index(index, root: str | Path, *, required_days: float, now: Optional[datetime] = None,
                free_bytes: Optional[int] = None, skipped: int = 0) -> RetentionReport:
    """Audit what `index` (a SegmentIndex kept in step with `root`) holds. `free_bytes` overrides
    the disk's own figure (a reported free-space figure, or a test)."""
    now = now or datetime.now(timezone.utc)
    free = disk_free_bytes(root) if free_bytes is None else free_bytes
    return audit(index.camera_states(now.timestamp()), required_days=required_days, now=now, free_bytes=free,
                 tamper=index.open_tamper(), root=str(root), skipped=skipped)
