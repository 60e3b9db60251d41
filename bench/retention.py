"""Retention benchmark: prints one JSON line, never a pass/fail.

- full_audit_s: audit of 90 days of 60 s segments for 64 cameras (8,294,400 segments) from the
  segment index alone, derived state rebuilt from scratch. That many files cannot be created on a
  test machine, so the index rows are loaded directly ("index_rows_synthetic": true), with a few
  holes so there are gaps to find.
- incremental_s: after one new segment per camera is recorded in that index, the audit again
  (goal < 50 ms; full audit goal < 10 s).
- disk_scan_s / disk_incremental_s: a real tree that is created (64 cameras x 18 hours of 60 s
  segments, 3-byte files): the first sync (list, stat and hash everything) plus audit, then one new
  file per camera in today's folder (720 files by then), sync and audit.
- cold_*: the same full audit of the 90-day index, and a first sync + audit of the disk tree
  into a new index, each in a fresh process after the page cache was emptied, beside the same
  run in a fresh process on a warm cache right after. As root the caches are dropped for the
  whole machine (sync, then `echo 3 > /proc/sys/vm/drop_caches`: pages, dentries and inodes);
  otherwise only the files' own pages are evicted (posix_fadvise DONTNEED), which leaves the
  directory entries and inodes cached: "cold_method" says which.
Temporary files are removed at the end."""

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.retention.audit import audit_index  # noqa: E402
from edge.retention.index import SegmentIndex  # noqa: E402
from edge.retention.segments import format_segment_path  # noqa: E402

CAMERAS = 64
DAYS = 90
SEG_S = 60
DISK_HOURS = 18  # bounded by file creation, which is slow on a shared machine
NOW = datetime(2026, 11, 25, 0, 0, tzinfo=timezone.utc)
FREE = 4 * 1024 ** 4


def big_index(tmp: Path) -> dict:
    rng = random.Random(1)
    n = DAYS * 1440
    t0 = int(NOW.timestamp()) - n * SEG_S
    index = SegmentIndex(tmp / "big.sqlite3")
    t = time.perf_counter()
    # Rows are generated inside SQLite (a recursive CTE), not passed from Python one by one, so the
    # load takes seconds, not minutes; the audit below reads them like any other rows.
    for c in range(CAMERAS):
        name = f"cam{c:02d}"
        index.bulk_load(name, ())
        cid = index.db.execute("SELECT id FROM cameras WHERE name=?", (name,)).fetchone()[0]
        index.db.execute(
            "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < :n - 1) "
            "INSERT INTO segments(cam, start, ext, dur, bytes, mtime_ns, checksum) "
            "SELECT :c, :t0 + i * :L, 'mp4', NULL, 15000000 + abs(random() % 1000000), (:t0 + i * :L + :L) * 1000000000, "
            "'00000000000000000000000000000000' FROM seq", {"n": n, "c": cid, "t0": t0, "L": SEG_S})
        for _ in range(3):  # a hole of four segments: one gap to find
            h = t0 + rng.randrange(n - 10) * SEG_S
            index.db.execute("DELETE FROM segments WHERE cam=? AND start BETWEEN ? AND ?", (cid, h, h + 3 * SEG_S))
    load_s = time.perf_counter() - t

    t = time.perf_counter()
    index.rebuild_derived()
    report = audit_index(index, tmp, required_days=90, now=NOW, free_bytes=FREE)
    full_s = time.perf_counter() - t
    segments = index.segment_count()
    gaps = sum(len(c.gaps) for c in report.cameras)

    now2 = NOW + timedelta(seconds=SEG_S)
    t = time.perf_counter()
    for c in range(CAMERAS):
        start = int(NOW.timestamp())
        index.record(f"cam{c:02d}", start, ext="mp4", bytes_=15_000_000, mtime_ns=(start + SEG_S) * 1_000_000_000)
    report2 = audit_index(index, tmp, required_days=90, now=now2, free_bytes=FREE)
    inc_s = time.perf_counter() - t
    index.close()
    assert report2.cameras[0].segments == report.cameras[0].segments + 1
    return {"segments": segments, "index_rows_synthetic": True, "load_s": round(load_s, 2),
            "full_audit_s": round(full_s, 3), "incremental_s": round(inc_s, 4), "gaps_found": gaps}


def write_segment(root: Path, cam: str, start: datetime) -> None:
    fd = os.open(format_segment_path(root, cam, start, "mp4"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"seg")
        end_ns = int(start.timestamp() + SEG_S) * 1_000_000_000
        os.utime(fd, ns=(end_ns, end_ns))
    finally:
        os.close(fd)


def disk_tree(tmp: Path) -> dict:
    """18 hours up to noon of the audit day, so the incremental sync lists a half-full day folder."""
    root = tmp / "rec"
    now = NOW + timedelta(hours=12)
    t0 = now - timedelta(hours=DISK_HOURS)
    t = time.perf_counter()
    files = 0
    for c in range(CAMERAS):
        cam = f"cam{c:02d}"
        ts = t0
        while ts < now:
            day_dir = root / cam / f"{ts:%Y-%m-%d}"
            day_dir.mkdir(parents=True, exist_ok=True)
            write_segment(root, cam, ts)
            files += 1
            ts += timedelta(seconds=SEG_S)
        for day_dir in (root / cam).iterdir():
            # A real archive's past day folders were last written when their day ended.
            end = datetime.strptime(day_dir.name, "%Y-%m-%d").replace(tzinfo=timezone.utc) + timedelta(days=1)
            if end < now:
                os.utime(day_dir, (end.timestamp(), end.timestamp()))
    create_s = time.perf_counter() - t

    index = SegmentIndex(tmp / "disk.sqlite3")
    t = time.perf_counter()
    index.sync(root, now=now.timestamp())
    audit_index(index, root, required_days=DISK_HOURS / 24, now=now, free_bytes=FREE)
    scan_s = time.perf_counter() - t

    for c in range(CAMERAS):
        write_segment(root, f"cam{c:02d}", now)
    now2 = now + timedelta(seconds=SEG_S)
    t = time.perf_counter()
    res = index.sync(root, now=now2.timestamp())
    audit_index(index, root, required_days=DISK_HOURS / 24, now=now2, free_bytes=FREE)
    inc_s = time.perf_counter() - t
    assert res.added == CAMERAS, res
    index.close()
    return {"disk_files": files, "disk_hours": DISK_HOURS, "disk_create_s": round(create_s, 2), "disk_scan_s": round(scan_s, 3),
            "disk_incremental_s": round(inc_s, 4)}


def timed_audit(job: str, index_path: Path, root: Path) -> float:
    """One audit as a fresh gateway process would run it: `index` audits the 90-day index as it
    is; `scan` syncs the disk tree into a new index, then audits."""
    t = time.perf_counter()
    with SegmentIndex(index_path) as index:
        if job == "index":
            index.rebuild_derived()
            audit_index(index, root, required_days=90, now=NOW, free_bytes=FREE)
        else:
            now = NOW + timedelta(hours=12, seconds=SEG_S)
            index.sync(root, now=now.timestamp())
            audit_index(index, root, required_days=DISK_HOURS / 24, now=now, free_bytes=FREE)
    return time.perf_counter() - t


def empty_page_cache(paths: list[Path]) -> str:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "drop_caches (sync; echo 3 > /proc/sys/vm/drop_caches), fresh process"
    except OSError:
        for path in paths:
            for f in [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file()):
                fd = os.open(f, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                finally:
                    os.close(fd)
        return "posix_fadvise DONTNEED on the files (not root: dentries and inodes stay cached), fresh process"


def in_fresh_process(job: str, index_path: Path, root: Path) -> float:
    run = subprocess.run([sys.executable, __file__, "--timed-audit", job, str(index_path), str(root)],
                         capture_output=True, text=True, check=True)
    return float(run.stdout)


def cold_and_warm(tmp: Path) -> dict:
    out: dict = {}
    big = tmp / "big.sqlite3"
    root = tmp / "rec"
    for job, index_path, files in (("index", big, [big]), ("scan", tmp / "scan.sqlite3", [root])):
        out["cold_method"] = empty_page_cache(files)
        cold = in_fresh_process(job, index_path, root)
        if job == "scan":
            index_path.unlink()
        warm = in_fresh_process(job, index_path, root)
        name = "full_audit" if job == "index" else "disk_scan"
        out |= {f"cold_{name}_s": round(cold, 3), f"warm_{name}_fresh_process_s": round(warm, 3)}
    return out


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--timed-audit":
        print(timed_audit(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])))
        return
    tmp = Path(tempfile.mkdtemp(prefix="cg-retention-bench-"))
    try:
        out = {"bench": "retention", "cameras": CAMERAS, "days": DAYS, "segment_s": SEG_S}
        out |= big_index(tmp)
        out |= disk_tree(tmp)
        out |= cold_and_warm(tmp)
        out |= {"goal_full_audit_s": 10, "goal_incremental_s": 0.05}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
