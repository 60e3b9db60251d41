"""The retention check as the agent runs it: sync the segment index with the disk, re-hash
a slice of the archive, audit, and clean up what is past the requirement.

All of it runs on one thread of its own (it reads the disk, and the index's SQLite
connection stays on the thread that opened it); the agent's loop only gets the result."""

from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from edge.retention.cleanup import CleanupResult, run_cleanup
from edge.config import VideoConfig
from edge.retention.audit import CameraRetention, RetentionReport, TamperFinding, audit_index
from edge.retention.index import SegmentIndex


@dataclass
class RetentionCheck:
    report: RetentionReport
    cleanup: CleanupResult
    new_tamper: list[TamperFinding]


class RetentionRunner:
    def __init__(self, video: VideoConfig, free_bytes: Optional[int] = None):
        self.video = video
        self.free_bytes = free_bytes  # a reported free-space figure, for tests; None reads the disk
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="retention")
        self._index: Optional[SegmentIndex] = None

    async def check(self) -> RetentionCheck:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._check)

    def _check(self) -> RetentionCheck:
        root = Path(self.video.recordings_root)
        root.mkdir(parents=True, exist_ok=True)
        if self._index is None:
            Path(self.video.index_path).parent.mkdir(parents=True, exist_ok=True)
            self._index = SegmentIndex(str(self.video.index_path))
        idx = self._index
        synced = idx.sync(root)
        idx.verify(root, max_bytes=self.video.verify_bytes)
        cleanup = run_cleanup(idx, root, required_days=self.video.required_days,
                              min_free_bytes=self.video.min_free_bytes, free_bytes=self.free_bytes)
        report = audit_index(idx, root, required_days=self.video.required_days, free_bytes=self.free_bytes,
                             skipped=synced.skipped_count)
        new_tamper = idx.open_tamper()
        idx.acknowledge_tamper([t.id for t in new_tamper])
        return RetentionCheck(report, cleanup, new_tamper)

    def close(self) -> None:
        def _close():
            if self._index is not None:
                self._index.close()
        self._pool.submit(_close).result(10)
        self._pool.shutdown(wait=True)


def breach_reasons(cam: CameraRetention) -> list[str]:
    """Why a camera's footage is (or will be) short, as alarms see it.

    An archive younger than the requirement with no break in it is still building up (a
    new camera, a new gateway): the report says so, but it is no breach. A break (a gap,
    or recording stopped) is one, and so is a disk that cannot hold the requirement at
    the measured write rate: that is raised before the footage runs short, not after."""
    codes = {f.code for f in cam.findings}
    reasons = [f.message for f in cam.findings if f.code in ("recording_stopped", "projected_breach")]
    if "retention_short" in codes and any(not g.ongoing for g in cam.gaps):
        reasons += [f.message for f in cam.findings if f.code == "retention_short"]
    return reasons
