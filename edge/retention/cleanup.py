"""Cleanup: free disk space by deleting only footage older than the retention requirement.

When the disk needs more space than that footage holds, cleanup deletes what it may and returns a
critical `cleanup_refused` finding for the rest: footage younger than the requirement is never
deleted to make room, and nothing is deleted quietly (each deletion is logged, in the index's
deletion log before the file goes, and returned). The recorder, not cleanup, must then stop or the
operator add disk; the edge agent raises the finding as a critical `retention_breach` alarm.

Call it after `SegmentIndex.sync`, so the index knows what is on disk."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Sequence

from pydantic import BaseModel, ConfigDict

from contracts.alarms import AlarmKind, Severity
from edge.retention.audit import DAY_S, Finding, UtcTime, disk_free_bytes
from edge.retention.index import SegmentIndex, SegmentRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanupPlan:
    delete: list[SegmentRef]
    freed_bytes: int
    shortfall_bytes: int  # space still missing once all footage older than the requirement is gone


def plan_cleanup(candidates: Sequence[SegmentRef], *, free_bytes: int, min_free_bytes: int) -> CleanupPlan:
    """Oldest first, just enough of `candidates` (all older than the requirement) to reach `min_free_bytes`."""
    need = max(0, min_free_bytes - free_bytes)
    chosen, freed = [], 0
    for ref in sorted(candidates, key=lambda r: (r.start, r.camera_id)):
        if freed >= need:
            break
        chosen.append(ref)
        freed += ref.bytes
    return CleanupPlan(chosen, freed, max(0, need - freed))


class CleanupResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checked_at: UtcTime
    cutoff: UtcTime
    deleted: int
    freed_bytes: int
    shortfall_bytes: int
    findings: list[Finding]
    errors: list[str]


def run_cleanup(index: SegmentIndex, root: str | Path, *, required_days: float, min_free_bytes: int,
                now: Optional[datetime] = None, free_bytes: Optional[int] = None) -> CleanupResult:
    if required_days <= 0:
        raise ValueError(f"required_days must be positive, got {required_days}")
    root = Path(root)
    now = now or datetime.now(timezone.utc)
    now_s = now.timestamp()
    cutoff_s = now_s - required_days * DAY_S
    free = disk_free_bytes(root) if free_bytes is None else free_bytes
    plan = plan_cleanup(index.segments_ending_before(cutoff_s), free_bytes=free, min_free_bytes=min_free_bytes)
    errors: list[str] = []
    done: list[SegmentRef] = []
    if plan.delete:
        reason = f"cleanup: older than {required_days:g} days, to keep {min_free_bytes} B free"
        index.begin_deletion(plan.delete, reason, now_s)
        for ref in plan.delete:
            path = root / ref.relpath
            try:
                path.unlink()
            except FileNotFoundError:
                pass  # already gone; the deletion log explains its absence either way
            except OSError as exc:
                errors.append(f"{path}: {exc.strerror or exc}")
                log.error("retention cleanup: cannot delete %s: %s", path, exc)
                continue
            done.append(ref)
            try:
                path.parent.rmdir()  # an emptied day folder goes with its last segment
            except OSError:
                pass
        index.finish_deletion(done, now_s)
        log.warning("retention cleanup: deleted %d segment(s), %d B, all ending before %s",
                    len(done), sum(r.bytes for r in done), datetime.fromtimestamp(cutoff_s, timezone.utc))
    findings = []
    if plan.shortfall_bytes:
        msg = (f"the disk needs {plan.shortfall_bytes} B more to keep {min_free_bytes} B free, and only footage younger "
               f"than {required_days:g} days is left: deletion refused; add disk or lower the write rate")
        log.error("retention cleanup: %s", msg)
        findings.append(Finding(code="cleanup_refused", severity=Severity.CRITICAL, alarm=AlarmKind.RETENTION_BREACH, message=msg))
    return CleanupResult(checked_at=now, cutoff=datetime.fromtimestamp(cutoff_s, timezone.utc), deleted=len(done),
                         freed_bytes=sum(r.bytes for r in done), shortfall_bytes=plan.shortfall_bytes,
                         findings=findings, errors=errors)
