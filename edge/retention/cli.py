"""`careguard retention-check`: audit any recordings folder in the layout
`{root}/{camera_id}/{YYYY-MM-DD}/{HH-MM-SS}.{ext}` and print one report.

Exit status: 0 compliant, 1 a camera is short, a breach is projected or footage was tampered
with, 2 the command could not run (its message names what was wrong)."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path

from edge.retention.audit import RetentionReport, audit_index
from edge.retention.index import SegmentIndex

log = logging.getLogger(__name__)


def _positive_days(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if not 0 < v <= 3650:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0 and at most 3650 days")
    return v


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return v


def _utc_time(text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    if ts.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone (add Z for UTC)")
    return ts


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="recordings folder: camera_id/YYYY-MM-DD/HH-MM-SS.ext")
    parser.add_argument("--required-days", required=True, type=_positive_days,
                        help="retention the jurisdiction requires (national 90; some cities 30)")
    parser.add_argument("--index", help="SQLite segment index to keep between runs (default: build one in memory)")
    parser.add_argument("--free-bytes", type=_count, help="free space to assume instead of the disk's own figure")
    parser.add_argument("--at", type=_utc_time, help="audit as of this time (ISO 8601 with zone; default now)")
    parser.add_argument("--verify-files", type=_count, default=1000, help="segments re-checked against the disk per run")
    parser.add_argument("--verify-bytes", type=_count, default=256 * 1024 * 1024, help="bytes re-hashed per run")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def _human(report: RetentionReport) -> str:
    lines = [f"{report.root}: {'compliant' if report.compliant else 'NOT compliant'} "
             f"({report.required_days:g} days required, {len(report.cameras)} camera(s), free {report.disk_free_bytes} B)"]
    for c in report.cameras:
        lines.append(f"  {c.camera_id}: {c.achieved_days:.2f} days, {len(c.gaps)} gap(s), "
                     f"{'ok' if c.compliant else 'SHORT'}{', breach projected' if c.projected_breach else ''}")
    lines += [f"  [{f.severity.value}] {f.message}" for f in report.findings]
    lines += [f"  [{f.severity.value}] {c.camera_id}: {f.message}" for c in report.cameras for f in c.findings]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not root.is_dir():
        print(f"careguard retention-check: --root {root}: no such folder", file=sys.stderr)
        return 2
    now = args.at or datetime.now(timezone.utc)
    try:
        index = SegmentIndex(args.index or ":memory:")
    except (sqlite3.Error, OSError) as exc:
        print(f"careguard retention-check: --index {args.index}: cannot open as SQLite: {exc}", file=sys.stderr)
        return 2
    with index:
        synced = index.sync(root, now=now.timestamp())
        index.verify(root, max_files=args.verify_files, max_bytes=args.verify_bytes, now=now.timestamp())
        report = audit_index(index, root, required_days=args.required_days, now=now,
                             free_bytes=args.free_bytes, skipped=synced.skipped_count)
    print(report.model_dump_json() if args.json else _human(report))
    return 0 if report.compliant and not report.projected_breach else 1
