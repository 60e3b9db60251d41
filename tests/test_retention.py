"""Retention: segment layout, the incremental index, the audit, tamper, cleanup and the CLI.

Archives are faked cheaply: tiny files named by the layout, with mtimes set to each segment's end
(os.utime), mostly one-hour segments so 90 days are 2,160 files per camera."""

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from contracts.alarms import AlarmKind, Severity
from edge.retention.cleanup import plan_cleanup, run_cleanup
from edge.retention.audit import CameraState, audit, audit_index
from edge.retention.index import SegmentIndex
from edge.retention.segments import (SegmentPathError, ffmpeg_output_pattern, format_segment_path, parse_segment_path)

REPO = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
HOUR = 3600
DAY = 86400
BIG_FREE = 10 ** 12


def write_seg(root: Path, cam: str, start: datetime, seg_s: float, data: bytes = b"seg!") -> Path:
    p = format_segment_path(root, cam, start, "mp4")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    end = start.timestamp() + seg_s
    os.utime(p, (end, end))
    return p


def make_tree(root: Path, cam: str, start: datetime, end: datetime, seg_s: int = HOUR,
              data: bytes = b"seg!", skip: tuple[datetime, ...] = ()) -> int:
    n, t = 0, start
    while t < end:
        if t not in skip:
            write_seg(root, cam, t, seg_s, data)
            n += 1
        t += timedelta(seconds=seg_s)
    return n


def age_folders(root: Path, before: datetime = NOW - timedelta(days=200)) -> None:
    """Day folders of a real archive were last written long ago; ours were just made."""
    for d in root.glob("*/*"):
        os.utime(d, (before.timestamp(), before.timestamp()))


def check(root: Path, required_days: float, *, free_bytes: int = BIG_FREE, now: datetime = NOW, index=None):
    index = index or SegmentIndex()
    synced = index.sync(root, now=now.timestamp())
    return index, synced, audit_index(index, root, required_days=required_days, now=now, free_bytes=free_bytes,
                                      skipped=synced.skipped_count)


# ---- layout ---------------------------------------------------------------------------------
def test_segment_path_round_trip(tmp_path):
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    p = format_segment_path(tmp_path, "cam-1", start, "mkv")
    assert p == tmp_path / "cam-1" / "2026-01-02" / "03-04-05.mkv"
    seg = parse_segment_path(tmp_path, p)
    assert (seg.camera_id, seg.start, seg.ext) == ("cam-1", start, "mkv")
    assert ffmpeg_output_pattern(tmp_path, "cam-1") == str(tmp_path / "cam-1" / "%Y-%m-%d" / "%H-%M-%S.mp4")


@pytest.mark.parametrize("rel, named", [
    ("cam/2026-01-02/24-00-00.mp4", "not a time of day"),
    ("cam/2026-01-02/10-00-00.txt", "not a video container"),
    ("cam/2026-13-02/10-00-00.mp4", "not a calendar date"),
    ("cam/20260102/10-00-00.mp4", "not YYYY-MM-DD"),
    ("bad cam/2026-01-02/10-00-00.mp4", "not a camera id"),
    ("cam/2026-01-02/x/10-00-00.mp4", "camera_id/YYYY-MM-DD/HH-MM-SS.ext"),
])
def test_bad_segment_paths_are_named(tmp_path, rel, named):
    with pytest.raises(SegmentPathError, match=named):
        parse_segment_path(tmp_path, tmp_path / rel)


# ---- audit ------------------------------------------------------------------------------------
def test_complete_90_days_is_compliant(tmp_path):
    for cam in ("room1", "room2"):
        make_tree(tmp_path, cam, NOW - timedelta(days=90), NOW)
    _, synced, report = check(tmp_path, 90, free_bytes=96 * 10)
    assert synced.added == 2 * 90 * 24 and not synced.tamper
    assert report.compliant and not report.projected_breach and report.tamper == []
    for cam in report.cameras:
        assert cam.segment_s == HOUR and cam.gaps == [] and cam.compliant
        assert cam.achieved_days == pytest.approx(90)
        assert cam.write_rate_bytes_per_day == pytest.approx(24 * 4)
        assert cam.days_disk_can_hold == pytest.approx(960 / (2 * 96))
    assert report.model_dump(mode="json")["checked_at"] == "2026-11-25T12:00:00.000Z"


def test_gap_of_exactly_two_segments_is_not_reported_one_second_more_is(tmp_path):
    t0 = NOW - timedelta(hours=3)
    starts, t = [], t0
    while t < NOW:
        starts.append(t)
        t += timedelta(seconds=60)
    first, second = t0 + timedelta(minutes=30), t0 + timedelta(minutes=90)
    # after `first`, the next segment starts 2 x 60 s after first's end; after `second`, 2 x 60 + 1 s
    starts = [s for s in starts if not (first < s <= first + timedelta(seconds=180)) and not (second < s <= second + timedelta(seconds=181))]
    starts += [first + timedelta(seconds=180), second + timedelta(seconds=181)]
    for s in sorted(starts):
        write_seg(tmp_path, "cam", s, 60)
    _, _, report = check(tmp_path, 0.1)
    cam = report.cameras[0]
    assert cam.segment_s == 60
    assert [(g.start, g.end, g.seconds) for g in cam.gaps] == [
        (second + timedelta(seconds=60), second + timedelta(seconds=181), 121.0)]
    assert cam.achieved_days == pytest.approx((NOW - (second + timedelta(seconds=181))).total_seconds() / DAY)
    assert any(f.code == "gaps" for f in cam.findings)


def test_city_profile_of_30_days(tmp_path):
    broken = NOW - timedelta(days=35)
    make_tree(tmp_path, "cam", NOW - timedelta(days=40), NOW, skip=(broken, broken + timedelta(hours=1), broken + timedelta(hours=2)))
    index, _, national = check(tmp_path, 90)
    city = audit_index(index, tmp_path, required_days=30, now=NOW, free_bytes=BIG_FREE)
    assert national.cameras[0].achieved_days == pytest.approx(35 - 3 / 24)
    assert not national.compliant and national.cameras[0].findings[0].code == "retention_short"
    assert national.cameras[0].findings[0].alarm == AlarmKind.RETENTION_BREACH
    assert city.compliant and city.cameras[0].required_days == 30


def test_stopped_recording_breaks_retention_now(tmp_path):
    make_tree(tmp_path, "cam", NOW - timedelta(days=10), NOW - timedelta(hours=3))
    _, _, report = check(tmp_path, 5)
    cam = report.cameras[0]
    assert cam.achieved_days == 0 and not cam.compliant
    assert cam.gaps[-1].ongoing and cam.gaps[-1].end == NOW and cam.gaps[-1].seconds == 3 * HOUR
    assert cam.findings[0].code == "recording_stopped"


def test_nearly_full_disk_projects_the_breach_before_it_happens(tmp_path):
    # 89 days at 4 B/segment, then the bitrate went up tenfold: today's rate fills the disk long
    # before 90 days of footage fit, while the archive still holds 90 unbroken days.
    make_tree(tmp_path, "cam", NOW - timedelta(days=90), NOW - timedelta(days=1))
    make_tree(tmp_path, "cam", NOW - timedelta(days=1), NOW, data=b"x" * 40)
    index, _, tight = check(tmp_path, 90, free_bytes=100)
    cam = tight.cameras[0]
    assert cam.compliant and cam.achieved_days == pytest.approx(90)
    assert cam.projected_breach and tight.projected_breach
    footage = 89 * 24 * 4 + 24 * 40
    assert cam.capacity_days == pytest.approx((footage + 100) / 960)
    assert cam.projected_days_short == pytest.approx(90 - (footage + 100) / 960)
    finding = next(f for f in cam.findings if f.code == "projected_breach")
    assert finding.severity == Severity.WARNING and finding.alarm == AlarmKind.RETENTION_BREACH
    roomy = audit_index(index, tmp_path, required_days=90, now=NOW, free_bytes=960 * 90)
    assert not roomy.projected_breach and roomy.compliant


def test_pure_audit_without_footage_says_so():
    report = audit([], required_days=90, now=NOW, free_bytes=0)
    assert not report.compliant and report.findings[0].code == "no_footage"
    with pytest.raises(ValueError, match="required_days"):
        audit([], required_days=0, now=NOW, free_bytes=0)
    state = CameraState("c", 60.0, 1, 10, int(NOW.timestamp()) - 30, int(NOW.timestamp()) - 30, None, NOW.timestamp())
    assert audit([state], required_days=1, now=NOW, free_bytes=0).cameras[0].gaps == []


# ---- the index: incremental, tamper -----------------------------------------------------------
def test_sync_lists_only_changed_day_folders(tmp_path):
    make_tree(tmp_path, "cam", NOW - timedelta(days=5), NOW - timedelta(hours=1))
    age_folders(tmp_path)
    index, first, _ = check(tmp_path, 1)
    assert first.days_scanned == 6 and first.added == 5 * 24 - 1
    again = index.sync(tmp_path, now=NOW.timestamp())
    assert again.days_scanned == 0 and again.added == 0
    write_seg(tmp_path, "cam", NOW - timedelta(hours=1), HOUR)
    later = index.sync(tmp_path, now=NOW.timestamp())
    assert later.days_scanned == 1 and later.added == 1 and later.tamper == []


def test_bad_entries_are_skipped_named_and_counted(tmp_path):
    make_tree(tmp_path, "cam", NOW - timedelta(days=1), NOW)
    day = tmp_path / "cam" / (NOW.strftime("%Y-%m-%d"))
    (day / "notes.txt").write_text("x")
    (day / "10-00-00.txt").write_text("x")
    (day / "25-00-00.mp4").write_bytes(b"x")
    (tmp_path / "README").write_text("x")
    (tmp_path / "bad cam").mkdir()
    _, synced, report = check(tmp_path, 1)
    reasons = {Path(s.path).name: s.reason for s in synced.skipped}
    assert synced.skipped_count == 5 and "not a video container" in reasons["10-00-00.txt"]
    assert "not HH-MM-SS.ext" in reasons["notes.txt"] and "not a time of day" in reasons["25-00-00.mp4"]
    assert "not a camera folder" in reasons["README"] and "not a camera id" in reasons["bad cam"]
    assert report.compliant and any(f.code == "skipped_paths" for f in report.findings)


def test_files_deleted_outside_the_recorder_are_tamper(tmp_path):
    make_tree(tmp_path, "cam", NOW - timedelta(days=10), NOW)
    index, _, _ = check(tmp_path, 5)
    gone = [NOW - timedelta(days=3, hours=h) for h in (2, 3, 4)]
    for s in gone:
        format_segment_path(tmp_path, "cam", s, "mp4").unlink()
    shutil.rmtree(tmp_path / "cam" / (NOW - timedelta(days=6)).strftime("%Y-%m-%d"))
    synced = index.sync(tmp_path, now=NOW.timestamp())
    runs = sorted((t.first_start, t.last_start, t.segments, t.kind) for t in synced.tamper)
    day6 = datetime.combine((NOW - timedelta(days=6)).date(), datetime.min.time(), timezone.utc)
    assert runs == [(day6, day6 + timedelta(hours=23), 24, "missing"), (min(gone), max(gone), 3, "missing")]
    report = audit_index(index, tmp_path, required_days=5, now=NOW, free_bytes=BIG_FREE)
    assert not report.compliant and len(report.tamper) == 2
    assert {f.alarm for f in report.findings} == {AlarmKind.TAMPER}
    assert report.cameras[0].achieved_days == pytest.approx(3 + 1 / 24)  # the hole is a gap too
    index.acknowledge_tamper([t.id for t in report.tamper])
    assert index.open_tamper() == []


def test_altered_files_are_found_by_verify(tmp_path):
    make_tree(tmp_path, "cam", NOW - timedelta(days=2), NOW)
    index, synced, _ = check(tmp_path, 1)
    assert synced.hashed == 2 * 24 - 1  # every sealed segment; the newest is still being written
    same_size = format_segment_path(tmp_path, "cam", NOW - timedelta(hours=10), "mp4")
    st = same_size.stat()
    same_size.write_bytes(b"SEG!")
    os.utime(same_size, ns=(st.st_atime_ns, st.st_mtime_ns))  # hides the edit from size and mtime
    grown = format_segment_path(tmp_path, "cam", NOW - timedelta(hours=20), "mp4")
    with open(grown, "ab") as f:
        f.write(b"more")
    assert index.sync(tmp_path, now=NOW.timestamp()).tamper == []  # content edits do not move folders
    found = index.verify(tmp_path, max_files=1000, now=NOW.timestamp())
    kinds = {(t.kind, t.first_start) for t in found.tamper}
    assert kinds == {("checksum_mismatch", NOW - timedelta(hours=10)), ("changed", NOW - timedelta(hours=20))}
    assert index.verify(tmp_path, max_files=1000, now=NOW.timestamp()).tamper == []  # reported once


def test_verify_rotates_through_the_archive_in_bounded_steps(tmp_path):
    make_tree(tmp_path, "cam", NOW - timedelta(days=1), NOW)
    index, _, _ = check(tmp_path, 1)
    victim = format_segment_path(tmp_path, "cam", NOW - timedelta(hours=23), "mp4")
    st = victim.stat()
    victim.write_bytes(b"SEG?")
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    found = []
    for step in range(6):
        res = index.verify(tmp_path, max_files=5, now=NOW.timestamp() + step + 1)
        assert res.checked <= 5
        found += res.tamper
    assert [t.kind for t in found] == ["checksum_mismatch"]


# ---- cleanup ------------------------------------------------------------------------------------
def test_cleanup_deletes_only_footage_older_than_required(tmp_path):
    make_tree(tmp_path, "cam", NOW - timedelta(days=100), NOW)
    index, _, _ = check(tmp_path, 90)
    result = run_cleanup(index, tmp_path, required_days=90, min_free_bytes=5 * 24 * 4, free_bytes=0, now=NOW)
    assert result.deleted == 5 * 24 and result.freed_bytes == 5 * 24 * 4 and result.findings == []
    left = sorted(parse_segment_path(tmp_path, p).start for p in tmp_path.glob("*/*/*"))
    assert left[0] == NOW - timedelta(days=95)
    synced = index.sync(tmp_path, now=NOW.timestamp())
    assert synced.tamper == []  # our own deletions are logged, not tamper


def test_cleanup_refuses_to_delete_younger_footage(tmp_path):
    make_tree(tmp_path, "cam", NOW - timedelta(days=92), NOW)
    index, _, _ = check(tmp_path, 90)
    result = run_cleanup(index, tmp_path, required_days=90, min_free_bytes=10 ** 6, free_bytes=0, now=NOW)
    assert result.deleted == 2 * 24
    assert result.shortfall_bytes == 10 ** 6 - 2 * 24 * 4
    [finding] = result.findings
    assert finding.code == "cleanup_refused" and finding.severity == Severity.CRITICAL
    assert finding.alarm == AlarmKind.RETENTION_BREACH
    left = [parse_segment_path(tmp_path, p).start for p in tmp_path.glob("*/*/*")]
    assert len(left) == 90 * 24 and min(left) == NOW - timedelta(days=90)
    assert audit_index(index, tmp_path, required_days=90, now=NOW, free_bytes=0).cameras[0].compliant


def test_cleanup_plan_is_oldest_first_and_bounded():
    from edge.retention.index import SegmentRef
    refs = [SegmentRef("b", 20, "mp4", 5, 30.0), SegmentRef("a", 10, "mp4", 5, 20.0), SegmentRef("a", 30, "mp4", 5, 40.0)]
    plan = plan_cleanup(refs, free_bytes=3, min_free_bytes=12)
    assert [r.start for r in plan.delete] == [10, 20] and plan.shortfall_bytes == 0
    assert plan_cleanup(refs, free_bytes=100, min_free_bytes=12).delete == []


# ---- a folder ffmpeg wrote -------------------------------------------------------------------------
def test_folder_written_by_ffmpeg_segment_muxer(tmp_path):
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
           "-t", "3.5", "-c:v", "mpeg4", "-g", "10", "-f", "segment", "-segment_time", "1", "-reset_timestamps", "1",
           "-strftime", "1", ffmpeg_output_pattern(tmp_path, "lobby", "mkv")]
    today = datetime.now(timezone.utc).date()
    for day in (today, today + timedelta(days=1)):  # the segment muxer creates no folders
        (tmp_path / "lobby" / day.isoformat()).mkdir(parents=True)
    subprocess.run(cmd, check=True, timeout=60, env={**os.environ, "TZ": "UTC"})
    now = datetime.now(timezone.utc)
    files = sorted(tmp_path.glob("lobby/*/*.mkv"))
    assert len(files) >= 3
    _, synced, report = check(tmp_path, 1 / 86400, now=now)
    assert synced.skipped_count == 0 and synced.added == len(files)  # an empty day folder is no footage
    cam = report.cameras[0]
    assert cam.camera_id == "lobby" and cam.segments == len(files) and cam.bytes > 0
    assert cam.segment_s == pytest.approx(1, abs=1)
    assert abs((cam.oldest - now).total_seconds()) < 600  # named in UTC, not local time
    assert cam.gaps == [] and report.tamper == []


# ---- CLI ---------------------------------------------------------------------------------------
def cli(*args):
    return subprocess.run([sys.executable, "-m", "careguard", "retention-check", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_cli_prints_one_json_report_and_keeps_its_index(tmp_path):
    root = tmp_path / "rec"
    make_tree(root, "cam", NOW - timedelta(days=31), NOW)
    args = ["--root", str(root), "--required-days", "30", "--free-bytes", "100000", "--at", "2026-11-25T12:00:00Z",
            "--index", str(tmp_path / "idx.sqlite3"), "--json"]
    ok = cli(*args)
    assert ok.returncode == 0, ok.stderr
    report = json.loads(ok.stdout)
    assert report["compliant"] and report["cameras"][0]["camera_id"] == "cam" and report["required_days"] == 30
    format_segment_path(root, "cam", NOW - timedelta(days=2), "mp4").unlink()
    tampered = cli(*args)
    assert tampered.returncode == 1
    assert json.loads(tampered.stdout)["tamper"][0]["kind"] == "missing"


@pytest.mark.parametrize("args, named", [
    (["--root", "{tmp}/nowhere", "--required-days", "90"], "--root"),
    (["--root", "{tmp}", "--required-days", "-3"], "--required-days"),
    (["--root", "{tmp}", "--required-days", "ninety"], "--required-days"),
    (["--root", "{tmp}", "--required-days", "90", "--free-bytes", "lots"], "--free-bytes"),
    (["--root", "{tmp}", "--required-days", "90", "--at", "2026-11-25T12:00:00"], "--at"),
    (["--required-days", "90"], "--root"),
])
def test_cli_bad_arguments_are_named(tmp_path, args, named):
    out = cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert out.returncode == 2 and named in out.stderr and out.stdout == ""
