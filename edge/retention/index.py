"""The segment index: one SQLite file listing every segment (camera, start, duration, bytes, mtime,
checksum), kept in step with the recordings folder incrementally.

`sync(root)` never rescans everything. A day folder's mtime changes when a file in it is created,
removed or renamed, so only day folders whose mtime moved since the last scan (in practice, today's)
are listed again. A folder modified within `RACY_NS` of its scan is listed again next time too,
because a file created in the same timestamp tick would not move the mtime (git's "racy" rule).
Content changes do not move a folder's mtime: `verify` finds them, a bounded number of files per
call, least recently verified first, so repeated calls rotate through the whole archive.

Checksums are BLAKE2b-128 over the whole file (hashlib.file_digest). Hashing only the head and tail
would miss a blanked stretch in the middle of a segment, which is exactly the alteration that
matters as evidence. A segment is hashed once it is sealed (a later segment exists, or the file has
not been written for two segment lengths), within a per-call byte budget: the file was just written
so it is usually in the page cache, and a fresh index over a large archive is hashed progressively
by `verify` instead of all at once.

Derived state the audit needs is maintained as segments come and go, so an audit after a sync
costs per camera, not per segment: counts and bytes per camera, and `breaks` (consecutive segments
more than half a segment apart beyond the previous segment's length), from which the audit picks
the gaps. Appending a segment updates them in place; anything else marks the camera dirty from that
point and `refresh` recomputes its breaks from there on, in SQL.

Footage deleted by cleanup is logged in `deletions` before the file goes, so a missing file the log
explains is not tamper; any other missing, changed or re-hashed-different file is a tamper finding,
kept until acknowledged."""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import statistics
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from edge.retention.audit import DEFAULT_SEGMENT_S, RATE_WINDOW_S, Break, CameraState, TamperFinding
from edge.retention.segments import (SegmentPathError, day_bounds_s, day_dir_name, parse_camera_dir, parse_day_dir,
                           parse_segment_name, segment_file_name, segment_relpath)

log = logging.getLogger(__name__)

RACY_NS = 2_000_000_000          # coarse-timestamp filesystems (FAT: 2 s) still move mtime within this
SPACING_SAMPLE = 101             # newest starts used for the median spacing
REF_TOLERANCE = (0.6, 1.6)       # breaks stay valid while the segment length stays within this ratio
BREAK_FRACTION = 0.5             # store breaks from half a segment; the audit reports from two segments
MAX_SKIPPED_KEPT = 100
DEFAULT_HASH_BUDGET = 256 * 1024 * 1024
HASH_CHUNK = 1 << 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cameras(
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,
    seg_len_s REAL, ref_len_s REAL,
    segments INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
    oldest INTEGER, newest INTEGER,
    dirty_from INTEGER, len_stale INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS segments(
    cam INTEGER NOT NULL, start INTEGER NOT NULL, ext TEXT NOT NULL, dur REAL,
    bytes INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, checksum TEXT, verified_at INTEGER,
    PRIMARY KEY(cam, start)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS segments_unhashed ON segments(cam, start) WHERE checksum IS NULL;
CREATE INDEX IF NOT EXISTS segments_verified ON segments(verified_at);
CREATE TABLE IF NOT EXISTS days(
    cam INTEGER NOT NULL, day TEXT NOT NULL, mtime_ns INTEGER NOT NULL, scanned_ns INTEGER NOT NULL,
    PRIMARY KEY(cam, day)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS breaks(
    cam INTEGER NOT NULL, prev_start INTEGER NOT NULL, prev_dur REAL, next_start INTEGER NOT NULL,
    PRIMARY KEY(cam, next_start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deletions(
    cam INTEGER NOT NULL, start INTEGER NOT NULL, bytes INTEGER NOT NULL, reason TEXT NOT NULL,
    requested_at INTEGER NOT NULL, done_at INTEGER, PRIMARY KEY(cam, start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tamper(
    id INTEGER PRIMARY KEY, camera TEXT NOT NULL, kind TEXT NOT NULL, first_start INTEGER NOT NULL,
    last_start INTEGER NOT NULL, segments INTEGER NOT NULL, bytes INTEGER NOT NULL,
    detected_at REAL NOT NULL, detail TEXT NOT NULL, acknowledged INTEGER NOT NULL DEFAULT 0);
"""


@dataclass
class SkippedPath:
    path: str
    reason: str


@dataclass
class SyncResult:
    added: int = 0
    removed: int = 0
    hashed: int = 0
    days_scanned: int = 0
    skipped_count: int = 0
    skipped: list[SkippedPath] = field(default_factory=list)
    tamper: list[TamperFinding] = field(default_factory=list)

    def skip(self, path: str, reason: str) -> None:
        self.skipped_count += 1
        log.warning("retention: skipped %s: %s", path, reason)
        if len(self.skipped) < MAX_SKIPPED_KEPT:
            self.skipped.append(SkippedPath(path, reason))


@dataclass
class VerifyResult:
    checked: int = 0
    hashed_bytes: int = 0
    tamper: list[TamperFinding] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SegmentRef:
    camera_id: str
    start: int
    ext: str
    bytes: int
    end: float

    @property
    def relpath(self) -> str:
        return segment_relpath(self.camera_id, self.start, self.ext)


def file_fingerprint(path: str | Path) -> tuple[str, int, int]:
    """BLAKE2b-128 of the whole file, with the size and mtime of the very file that was hashed."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest(), st.st_size, st.st_mtime_ns


class SegmentIndex:
    def __init__(self, path: str | Path = ":memory:", *, hash_budget_bytes: int = DEFAULT_HASH_BUDGET):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        self.hash_budget_bytes = hash_budget_bytes
        self._cams: dict[str, int] = dict(self.db.execute("SELECT name, id FROM cameras"))
        self._names: dict[int, str] = {}
        # Starts on disk of the day folder last listed per camera (today's, while recording), so the
        # next listing of that folder is a set difference instead of a query.
        self._day_cache: dict[int, tuple[date, set[int]]] = {}

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "SegmentIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- cameras --------------------------------------------------------------------------
    def _cam(self, name: str) -> int:
        cid = self._cams.get(name)
        if cid is None:
            cid = self.db.execute("INSERT INTO cameras(name) VALUES (?)", (name,)).lastrowid
            self._cams[name] = cid
        return cid

    def _cam_name(self, cid: int) -> str:
        if self._names.get(cid) is None:
            self._names = {i: n for n, i in self._cams.items()}
        return self._names[cid]

    # ---- writes shared by sync, the recorder and cleanup ----------------------------------
    def record(self, camera_id: str, start_s: int, *, ext: str, bytes_: int, mtime_ns: int,
               duration_s: Optional[float] = None, checksum: Optional[str] = None) -> None:
        """A segment the recorder closed (with its duration, when it knows it) or sync found."""
        parse_camera_dir(camera_id)
        with self._tx():
            self._insert(self._cam(camera_id), [(start_s, ext, duration_s, bytes_, mtime_ns, checksum)])
        self._day_cache.pop(self._cams[camera_id], None)

    def bulk_load(self, camera_id: str, rows: Iterable[tuple[int, str, Optional[float], int, int, Optional[str]]]) -> None:
        """Rows (start_s, ext, duration_s, bytes, mtime_ns, checksum) for a migration or a benchmark;
        derived state is rebuilt by the next `refresh`."""
        cid = self._cam(camera_id)
        with self._tx():
            self.db.executemany("INSERT OR REPLACE INTO segments(cam, start, ext, dur, bytes, mtime_ns, checksum) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?)", ((cid, *r) for r in rows))
            self.db.execute("UPDATE cameras SET (segments, bytes, oldest, newest) = "
                            "(SELECT COUNT(*), COALESCE(SUM(bytes), 0), MIN(start), MAX(start) FROM segments WHERE cam=?), "
                            "dirty_from = -1, len_stale = 1, ref_len_s = NULL WHERE id=?", (cid, cid))
        self._day_cache.pop(cid, None)

    def _tx(self):
        return _Transaction(self.db)

    def _insert(self, cid: int, rows: list[tuple]) -> None:
        """Rows (start, ext, dur, bytes, mtime_ns, checksum), replacing any with the same start."""
        if not rows:
            return
        rows.sort()
        ref, newest = self.db.execute("SELECT ref_len_s, newest FROM cameras WHERE id=?", (cid,)).fetchone()
        starts = {r[0] for r in rows}
        existing = [b for st, b in self.db.execute(
            "SELECT start, bytes FROM segments WHERE cam=? AND start BETWEEN ? AND ?", (cid, rows[0][0], rows[-1][0]))
            if st in starts]
        prev = None if newest is None else self.db.execute(
            "SELECT start, dur FROM segments WHERE cam=? AND start=?", (cid, newest)).fetchone()
        self.db.executemany("INSERT OR REPLACE INTO segments(cam, start, ext, dur, bytes, mtime_ns, checksum) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)", [(cid, *r) for r in rows])
        appended = [r for r in rows if newest is None or r[0] > newest]
        if len(appended) < len(rows):
            self._mark_dirty(cid, rows[0][0])
        if ref is not None:
            breaks = []
            for start, _ext, dur, *_ in appended:
                if prev is not None and start - prev[0] - (prev[1] if prev[1] is not None else ref) > BREAK_FRACTION * ref:
                    breaks.append((cid, prev[0], prev[1], start))
                prev = (start, dur)
            self.db.executemany("INSERT OR REPLACE INTO breaks VALUES (?, ?, ?, ?)", breaks)
        self.db.execute(
            "UPDATE cameras SET segments = segments + :n, bytes = bytes + :b, len_stale = 1, "
            "oldest = MIN(COALESCE(oldest, :lo), :lo), newest = MAX(COALESCE(newest, :hi), :hi) WHERE id = :c",
            {"n": len(rows) - len(existing), "b": sum(r[3] for r in rows) - sum(existing), "lo": rows[0][0], "hi": rows[-1][0], "c": cid})

    def _mark_dirty(self, cid: int, from_start: int) -> None:
        self.db.execute("UPDATE cameras SET dirty_from = MIN(COALESCE(dirty_from, :s), :s) WHERE id = :c",
                        {"s": from_start, "c": cid})

    def _remove(self, cid: int, items: list[tuple[int, int]]) -> None:
        """Drop rows (start, bytes) whose footage is gone, keeping the derived state right."""
        if not items:
            return
        self.db.executemany("DELETE FROM segments WHERE cam=? AND start=?", [(cid, s) for s, _ in items])
        self.db.execute(
            "UPDATE cameras SET segments = segments - ?, bytes = bytes - ?, len_stale = 1, "
            "oldest = (SELECT MIN(start) FROM segments WHERE cam = cameras.id), "
            "newest = (SELECT MAX(start) FROM segments WHERE cam = cameras.id) WHERE id = ?",
            (len(items), sum(b for _, b in items), cid))
        oldest = self.db.execute("SELECT oldest FROM cameras WHERE id=?", (cid,)).fetchone()[0]
        if oldest is None:
            self.db.execute("DELETE FROM breaks WHERE cam=?", (cid,))
        else:
            # Removing the oldest footage (cleanup, the usual case) only drops breaks before it;
            # a hole anywhere else changes the breaks around it.
            self.db.execute("DELETE FROM breaks WHERE cam=? AND prev_start < ?", (cid, oldest))
            inner = [s for s, _ in items if s > oldest]
            if inner:
                self._mark_dirty(cid, min(inner))
        self._day_cache.pop(cid, None)

    # ---- derived state ---------------------------------------------------------------------
    def refresh(self) -> None:
        """Bring segment lengths and breaks up to date; costs nothing for cameras without changes."""
        stale = self.db.execute("SELECT id, ref_len_s, dirty_from, len_stale FROM cameras "
                                "WHERE len_stale = 1 OR dirty_from IS NOT NULL").fetchall()
        if not stale:
            return
        with self._tx():
            for cid, ref, dirty_from, len_stale in stale:
                if len_stale:
                    seg_len = self._segment_length(cid)
                    if ref is None or not (REF_TOLERANCE[0] <= seg_len / ref <= REF_TOLERANCE[1]):
                        ref, dirty_from = seg_len, -1
                    self.db.execute("UPDATE cameras SET seg_len_s=?, ref_len_s=?, len_stale=0 WHERE id=?", (seg_len, ref, cid))
                if dirty_from is not None:
                    self._recompute_breaks(cid, dirty_from, ref)

    def rebuild_derived(self) -> None:
        """Recompute every camera's counts, lengths and breaks from the segment rows."""
        with self._tx():
            for cid in list(self._cams.values()):
                n, nbytes, oldest, newest = self.db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(bytes), 0), MIN(start), MAX(start) FROM segments WHERE cam=?", (cid,)).fetchone()
                seg_len = self._segment_length(cid)
                self.db.execute("UPDATE cameras SET segments=?, bytes=?, oldest=?, newest=?, seg_len_s=?, ref_len_s=?, "
                                "len_stale=0, dirty_from=-1 WHERE id=?", (n, nbytes, oldest, newest, seg_len, seg_len, cid))
                self._recompute_breaks(cid, -1, seg_len)

    def _segment_length(self, cid: int) -> float:
        rows = self.db.execute("SELECT start, dur FROM segments WHERE cam=? ORDER BY start DESC LIMIT ?",
                               (cid, SPACING_SAMPLE)).fetchall()
        spacings = [a[0] - b[0] for a, b in zip(rows, rows[1:])]
        if spacings:
            return float(statistics.median(spacings))
        durs = [d for _, d in rows if d]
        return float(statistics.median(durs)) if durs else DEFAULT_SEGMENT_S

    def _recompute_breaks(self, cid: int, dirty_from: int, ref: float) -> None:
        pred = self.db.execute("SELECT MAX(start) FROM segments WHERE cam=? AND start < ?", (cid, dirty_from)).fetchone()[0]
        lo = -1 if pred is None else pred
        self.db.execute("DELETE FROM breaks WHERE cam=? AND next_start > ?", (cid, lo))
        # One aggregate row per camera, parsed by numpy: fetching a hundred thousand rows one
        # tuple at a time costs several times more than SQLite's scan itself.
        starts_csv, durs_csv = self.db.execute(
            "SELECT group_concat(start), group_concat(CASE WHEN dur IS NOT NULL THEN start || ':' || dur END) "
            "FROM segments WHERE cam=? AND start >= ?", (cid, lo)).fetchone()
        if starts_csv:
            starts = np.sort(np.array(starts_csv.split(","), dtype=np.int64))
            prev_len = np.full(len(starts) - 1, ref, dtype=np.float64)
            durs: dict[int, float] = {}
            for pair in (durs_csv.split(",") if durs_csv else ()):
                st, d = pair.split(":")
                durs[int(st)] = float(d)
            if durs:
                known = np.array(sorted(durs), dtype=np.int64)
                at = np.searchsorted(starts, known)
                keep = at < len(prev_len)
                prev_len[at[keep]] = [durs[int(k)] for k in known[keep]]
            over = np.nonzero(np.diff(starts) - prev_len > BREAK_FRACTION * ref)[0]
            self.db.executemany("INSERT OR REPLACE INTO breaks VALUES (?, ?, ?, ?)",
                                [(cid, int(starts[i]), durs.get(int(starts[i])), int(starts[i + 1])) for i in over])
        self.db.execute("UPDATE cameras SET dirty_from = NULL WHERE id=?", (cid,))

    # ---- reads -----------------------------------------------------------------------------
    def camera_states(self, now_s: float, window_s: float = RATE_WINDOW_S) -> list[CameraState]:
        self.refresh()
        out = []
        for cid, name, seg_len, n, nbytes, oldest, newest in self.db.execute(
                "SELECT id, name, seg_len_s, segments, bytes, oldest, newest FROM cameras WHERE segments > 0").fetchall():
            dur, mtime_ns = self.db.execute("SELECT dur, mtime_ns FROM segments WHERE cam=? AND start=?", (cid, newest)).fetchone()
            breaks = [Break(*b) for b in self.db.execute(
                "SELECT prev_start, prev_dur, next_start FROM breaks WHERE cam=? ORDER BY next_start", (cid,))]
            recent_bytes, recent_since = self.db.execute(
                "SELECT COALESCE(SUM(bytes), 0), MIN(start) FROM segments WHERE cam=? AND start >= ?",
                (cid, int(now_s - window_s))).fetchone()
            out.append(CameraState(camera_id=name, segment_s=seg_len, segments=n, bytes=nbytes, oldest_start=oldest,
                                   newest_start=newest, newest_duration=dur, newest_mtime=mtime_ns / 1e9, breaks=breaks,
                                   recent_bytes=recent_bytes, recent_since=recent_since))
        return out

    def segment_count(self) -> int:
        return self.db.execute("SELECT COALESCE(SUM(segments), 0) FROM cameras").fetchone()[0]

    def segments_ending_before(self, cutoff_s: float) -> list[SegmentRef]:
        """Segments that ended at or before `cutoff_s`, oldest first across cameras."""
        self.refresh()
        out = []
        for cid, name, seg_len, newest in self.db.execute("SELECT id, name, seg_len_s, newest FROM cameras WHERE segments > 0").fetchall():
            rows = self.db.execute("SELECT start, ext, bytes, dur FROM segments WHERE cam=? AND start <= ? ORDER BY start",
                                   (cid, int(cutoff_s))).fetchall()
            for (start, ext, nbytes, dur), nxt in zip(rows, [r[0] for r in rows[1:]] + [None]):
                end = start + (dur if dur is not None else seg_len)
                if nxt is not None and dur is None:
                    end = min(end, nxt)
                if end <= cutoff_s and start != newest:
                    out.append(SegmentRef(name, start, ext, nbytes, end))
        out.sort(key=lambda r: (r.start, r.camera_id))
        return out

    def open_tamper(self) -> list[TamperFinding]:
        return [TamperFinding(id=i, camera_id=c, kind=k, first_start=datetime.fromtimestamp(a, timezone.utc),
                              last_start=datetime.fromtimestamp(b, timezone.utc), segments=n, bytes=nb,
                              detected_at=datetime.fromtimestamp(d, timezone.utc), detail=det)
                for i, c, k, a, b, n, nb, d, det in self.db.execute(
                    "SELECT id, camera, kind, first_start, last_start, segments, bytes, detected_at, detail "
                    "FROM tamper WHERE acknowledged = 0 ORDER BY id")]

    def acknowledge_tamper(self, ids: Iterable[int]) -> None:
        """The edge agent raised the alarm for these; the tamper table keeps them as history."""
        with self._tx():
            self.db.executemany("UPDATE tamper SET acknowledged = 1 WHERE id = ?", [(i,) for i in ids])

    # ---- cleanup's side: the deletion log ----------------------------------------------------
    def begin_deletion(self, refs: list[SegmentRef], reason: str, now_s: float) -> None:
        """Log deletions before the files go, so their absence is never mistaken for tamper."""
        with self._tx():
            self.db.executemany("INSERT OR REPLACE INTO deletions(cam, start, bytes, reason, requested_at) VALUES (?, ?, ?, ?, ?)",
                                [(self._cams[r.camera_id], r.start, r.bytes, reason, int(now_s)) for r in refs])

    def finish_deletion(self, refs: list[SegmentRef], now_s: float) -> None:
        with self._tx():
            by_cam: dict[int, list[tuple[int, int]]] = {}
            for r in refs:
                by_cam.setdefault(self._cams[r.camera_id], []).append((r.start, r.bytes))
            for cid, items in by_cam.items():
                self._remove(cid, items)
                self.db.executemany("UPDATE deletions SET done_at=? WHERE cam=? AND start=?",
                                    [(int(now_s), cid, s) for s, _ in items])

    def _expected_deleted(self, cid: int, lo: int, hi: int) -> set[int]:
        return {s for (s,) in self.db.execute("SELECT start FROM deletions WHERE cam=? AND start BETWEEN ? AND ?", (cid, lo, hi))}

    # ---- tamper ------------------------------------------------------------------------------
    def _tamper(self, cid: int, kind: str, items: list[tuple[int, int]], detail: str, now_s: float) -> list[TamperFinding]:
        """Record runs of consecutive affected segments as findings (one per run, not per file)."""
        if not items:
            return []
        seg_len = self.db.execute("SELECT COALESCE(seg_len_s, ?) FROM cameras WHERE id=?", (DEFAULT_SEGMENT_S, cid)).fetchone()[0]
        items = sorted(items)
        runs: list[list[tuple[int, int]]] = [[items[0]]]
        for it in items[1:]:
            if it[0] - runs[-1][-1][0] <= 3 * seg_len:
                runs[-1].append(it)
            else:
                runs.append([it])
        name = self._cam_name(cid)
        out = []
        for run in runs:
            tid = self.db.execute(
                "INSERT INTO tamper(camera, kind, first_start, last_start, segments, bytes, detected_at, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, kind, run[0][0], run[-1][0], len(run), sum(b for _, b in run), now_s, detail)).lastrowid
            f = TamperFinding(id=tid, camera_id=name, kind=kind, first_start=datetime.fromtimestamp(run[0][0], timezone.utc),
                              last_start=datetime.fromtimestamp(run[-1][0], timezone.utc), segments=len(run),
                              bytes=sum(b for _, b in run), detected_at=datetime.fromtimestamp(now_s, timezone.utc), detail=detail)
            log.warning("retention: tamper %s %s: %d segment(s) from %s %s", name, kind, f.segments, f.first_start, detail)
            out.append(f)
        return out

    def _vanished(self, cid: int, items: list[tuple[int, int]], now_s: float, detail: str) -> list[TamperFinding]:
        """Files the index had and the disk no longer has: tamper unless cleanup logged them."""
        if not items:
            return []
        expected = self._expected_deleted(cid, min(s for s, _ in items), max(s for s, _ in items))
        self._remove(cid, items)
        return self._tamper(cid, "missing", [i for i in items if i[0] not in expected], detail, now_s)

    # ---- disk -> index -------------------------------------------------------------------------
    def sync(self, root: str | Path, now: Optional[float] = None) -> SyncResult:
        """List what changed under `root` since the last sync and bring the index in step."""
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"recordings root {root} does not exist or is not a folder")
        now_s = time.time() if now is None else now
        res = SyncResult()
        budget = [self.hash_budget_bytes]
        on_disk: dict[str, str] = {}
        with os.scandir(root) as it:
            for e in it:
                if not e.is_dir():
                    res.skip(e.path, "not a camera folder (a file at the top of the recordings root)")
                    continue
                try:
                    on_disk[parse_camera_dir(e.name)] = e.path
                except SegmentPathError as exc:
                    res.skip(e.path, str(exc))
        with self._tx():
            for name in sorted(set(self._cams) - set(on_disk)):
                self._sync_camera(self._cams[name], None, res, now_s, budget)
            for name in sorted(on_disk):
                self._sync_camera(self._cam(name), on_disk[name], res, now_s, budget)
        self.refresh()
        return res

    def _sync_camera(self, cid: int, cam_path: Optional[str], res: SyncResult, now_s: float, budget: list[int]) -> None:
        known = {d: (m, s) for d, m, s in self.db.execute("SELECT day, mtime_ns, scanned_ns FROM days WHERE cam=?", (cid,))}
        disk_days: dict[str, tuple[str, int]] = {}
        if cam_path is not None:
            with os.scandir(cam_path) as it:
                for e in it:
                    try:
                        parse_day_dir(e.name)
                        if not e.is_dir():
                            raise SegmentPathError(f"{e.name} is a file where a day folder belongs")
                        disk_days[e.name] = (e.path, e.stat().st_mtime_ns)
                    except (SegmentPathError, FileNotFoundError) as exc:
                        res.skip(e.path, str(exc))
        for day in sorted(set(known) - set(disk_days)):
            lo, hi = day_bounds_s(parse_day_dir(day))
            items = self.db.execute("SELECT start, bytes FROM segments WHERE cam=? AND start >= ? AND start < ?", (cid, lo, hi)).fetchall()
            res.removed += len(items)
            res.tamper += self._vanished(cid, items, now_s, f"day folder {day} is gone")
            self.db.execute("DELETE FROM days WHERE cam=? AND day=?", (cid, day))
        for day in sorted(disk_days):
            path, mtime_ns = disk_days[day]
            k = known.get(day)
            if k is not None and k[0] == mtime_ns and mtime_ns < k[1] - RACY_NS:
                continue
            scan_ns = time.time_ns()  # the filesystem's clock, not `now`, which may be an audit time
            self._scan_day(cid, parse_day_dir(day), path, res, now_s)
            self.db.execute("INSERT OR REPLACE INTO days VALUES (?, ?, ?, ?)", (cid, day, mtime_ns, scan_ns))
            res.days_scanned += 1
        if cam_path is not None:
            root = os.path.dirname(cam_path)
            self._follow_newest(cid, root, now_s)
            res.hashed += self._seal(cid, root, now_s, budget)

    def _scan_day(self, cid: int, day: date, path: str, res: SyncResult, now_s: float) -> None:
        day_lo, day_hi = day_bounds_s(day)
        cached = self._day_cache.get(cid)
        if cached is not None and cached[0] == day:
            known = cached[1]
        else:
            known = {segment_file_name(st, ext): st for st, ext in self.db.execute(
                "SELECT start, ext FROM segments WHERE cam=? AND start >= ? AND start < ?", (cid, day_lo, day_hi))}
        names = set(os.listdir(path))
        gone = [known[n] for n in known.keys() - names]
        fresh = names - known.keys()
        taken = set(known.values()) - set(gone) if fresh else set()
        new = []
        for name in sorted(fresh):
            full = os.path.join(path, name)
            try:
                offset, ext = parse_segment_name(name)
            except SegmentPathError as exc:
                res.skip(full, str(exc))
                continue
            start = day_lo + offset
            if start in taken:
                res.skip(full, "another file of this camera starts at the same second")
                continue
            try:
                st = os.stat(full)
            except FileNotFoundError:
                continue
            taken.add(start)
            new.append((start, ext, None, st.st_size, st.st_mtime_ns, None, name))
        if gone:
            items = self.db.execute(
                f"SELECT start, bytes FROM segments WHERE cam=? AND start IN ({','.join('?' * len(gone))})", (cid, *gone)).fetchall()
            res.removed += len(items)
            res.tamper += self._vanished(cid, items, now_s, f"files deleted from {day_dir_name(day)}")
        self._insert(cid, [r[:6] for r in new])
        res.added += len(new)
        newest = self.db.execute("SELECT newest FROM cameras WHERE id=?", (cid,)).fetchone()[0]
        if newest is not None and day_lo <= newest < day_hi:
            # Skipped names stay out of the cache, so they are reported again on every listing.
            kept = known if not gone else {n: st for n, st in known.items() if n in names}
            kept.update((r[6], r[0]) for r in new)
            self._day_cache[cid] = (day, kept)

    def _path(self, root: str | Path, cid: int, start: int, ext: str) -> str:
        return os.path.join(root, segment_relpath(self._cam_name(cid), start, ext))

    def _follow_newest(self, cid: int, root: str, now_s: float) -> None:
        """The newest segment is still being written: track its size, it is not tamper."""
        row = self.db.execute("SELECT s.start, s.ext, s.bytes, s.mtime_ns FROM segments s JOIN cameras c ON c.id = s.cam "
                              "AND s.start = c.newest WHERE c.id=? AND s.checksum IS NULL", (cid,)).fetchone()
        if row is None:
            return
        start, ext, nbytes, mtime_ns = row
        try:
            st = os.stat(self._path(root, cid, start, ext))
        except FileNotFoundError:
            return
        if st.st_size != nbytes or st.st_mtime_ns != mtime_ns:
            self.db.execute("UPDATE segments SET bytes=?, mtime_ns=? WHERE cam=? AND start=?", (st.st_size, st.st_mtime_ns, cid, start))
            self.db.execute("UPDATE cameras SET bytes = bytes + ? WHERE id=?", (st.st_size - nbytes, cid))

    def _sealed_before(self, cid: int, now_s: float) -> Optional[int]:
        """Segments starting before this are closed; the newest is too once it stops growing."""
        row = self.db.execute("SELECT c.newest, COALESCE(c.seg_len_s, ?), s.mtime_ns FROM cameras c "
                              "JOIN segments s ON s.cam = c.id AND s.start = c.newest WHERE c.id=?",
                              (DEFAULT_SEGMENT_S, cid)).fetchone()
        if row is None:
            return None
        newest, seg_len, mtime_ns = row
        return newest + 1 if mtime_ns / 1e9 < now_s - 2 * seg_len else newest

    def _seal(self, cid: int, root: str, now_s: float, budget: list[int]) -> int:
        limit = self._sealed_before(cid, now_s)
        if limit is None or budget[0] <= 0:
            return 0
        done, delta = [], 0
        for start, ext, nbytes in self.db.execute(
                "SELECT start, ext, bytes FROM segments WHERE cam=? AND checksum IS NULL AND start < ? "
                "ORDER BY start DESC", (cid, limit)).fetchall():
            if budget[0] <= 0:
                break
            try:
                digest, size, mtime_ns = file_fingerprint(self._path(root, cid, start, ext))
            except FileNotFoundError:
                continue  # its day folder's mtime moved: the next sync reports it
            budget[0] -= size
            # The first fingerprint takes the file as it is now: before it there is nothing to
            # compare with (the newest segment was still growing when last seen).
            done.append((digest, size, mtime_ns, int(now_s), cid, start))
            delta += size - nbytes
        self.db.executemany("UPDATE segments SET checksum=?, bytes=?, mtime_ns=?, verified_at=? WHERE cam=? AND start=?", done)
        if delta:
            self.db.execute("UPDATE cameras SET bytes = bytes + ? WHERE id=?", (delta, cid))
        return len(done)

    def verify(self, root: str | Path, *, max_files: int = 1000, max_bytes: int = DEFAULT_HASH_BUDGET,
               now: Optional[float] = None) -> VerifyResult:
        """Re-check up to `max_files` segments, least recently verified first: stat each against
        the index, and re-hash while `max_bytes` lasts. Repeated calls rotate through the archive."""
        if not os.path.isdir(root):
            raise FileNotFoundError(f"recordings root {root} does not exist or is not a folder")
        now_s = time.time() if now is None else now
        res = VerifyResult()
        open_newest = {cid: self._sealed_before(cid, now_s) for cid in self._cams.values()}
        rows = self.db.execute("SELECT cam, start, ext, bytes, mtime_ns, checksum FROM segments "
                               "ORDER BY verified_at LIMIT ?", (max_files + len(self._cams),)).fetchall()
        missing: dict[int, list[tuple[int, int]]] = {}
        with self._tx():
            for cid, start, ext, nbytes, mtime_ns, checksum in rows:
                if res.checked >= max_files:
                    break
                sealed_before = open_newest.get(cid)
                if sealed_before is None or start >= sealed_before:
                    continue
                path = self._path(root, cid, start, ext)
                res.checked += 1
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    missing.setdefault(cid, []).append((start, nbytes))
                    continue
                changed = st.st_size != nbytes or st.st_mtime_ns != mtime_ns
                if not (checksum is None or changed or res.hashed_bytes < max_bytes):
                    continue  # stat checked; it keeps its place in the rotation until it is hashed
                try:
                    digest, size, new_mtime_ns = file_fingerprint(path)
                except FileNotFoundError:
                    missing.setdefault(cid, []).append((start, nbytes))
                    continue
                res.hashed_bytes += size
                if checksum is not None and changed:
                    res.tamper += self._tamper(cid, "changed", [(start, nbytes)],
                                               f"size {nbytes} -> {st.st_size} B, mtime moved {(st.st_mtime_ns - mtime_ns) / 1e9:+.0f} s", now_s)
                elif checksum is not None and digest != checksum:
                    res.tamper += self._tamper(cid, "checksum_mismatch", [(start, nbytes)],
                                               "same size and mtime, different content", now_s)
                self.db.execute("UPDATE segments SET checksum=?, bytes=?, mtime_ns=?, verified_at=? WHERE cam=? AND start=?",
                                (digest, size, new_mtime_ns, int(now_s), cid, start))
                self.db.execute("UPDATE cameras SET bytes = bytes + ? WHERE id=?", (size - nbytes, cid))
            for cid, items in missing.items():
                res.tamper += self._vanished(cid, items, now_s, "file gone (found by verify)")
        self.refresh()
        return res


class _Transaction:
    """BEGIN/COMMIT around a batch of writes; nested use joins the outer transaction."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.outer = False

    def __enter__(self):
        self.outer = not self.db.in_transaction
        if self.outer:
            self.db.execute("BEGIN")
        return self.db

    def __exit__(self, exc_type, *_):
        if self.outer:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")
