"""CSV for the people who open exports in a spreadsheet: headed in Chinese, and safe to open."""

from __future__ import annotations

import csv
import io
from typing import Iterable, Sequence


def _cell(value) -> str:
    """Text a spreadsheet will not run: a cell starting with = + - @ is a formula to Excel (CSV
    injection), so it is quoted as text."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_text(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow([_cell(v) for v in header])
    for row in rows:
        w.writerow([_cell(v) for v in row])
    return out.getvalue()
