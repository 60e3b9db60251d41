"""The on-screen display a camera burns into its frames: the time in text for people, and the
same time as a row of black and white blocks that a test can read back after the frame went
through JPEG, H.264, a recorder and a clip (a real camera's OSD clock, made machine-readable).

Block layout, top left: two rows of 25 blocks: a calibration pair (white, black), 40 bits of
the time in tenths of a second since the Unix epoch, and an 8-bit checksum."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import cv2
import numpy as np

_DATA_BITS = 40
_SUM_BITS = 8
_PER_ROW = 25
_ROWS = 2


def _block(width: int) -> int:
    return max(6, width // 40)


def _bits(value: int, n: int) -> list[int]:
    return [(value >> (n - 1 - i)) & 1 for i in range(n)]


def _checksum(ticks: int) -> int:
    return sum((ticks >> s) & 0xFF for s in range(0, _DATA_BITS, 8)) & 0xFF


def stamp(frame: np.ndarray, when: datetime) -> np.ndarray:
    """Draw `when` into `frame` (BGR, in place) and return it."""
    h, w = frame.shape[:2]
    b = _block(w)
    ticks = int(round(when.timestamp() * 10))
    bits = [1, 0] + _bits(ticks, _DATA_BITS) + _bits(_checksum(ticks), _SUM_BITS)
    for i, bit in enumerate(bits):
        r, c = divmod(i, _PER_ROW)
        frame[r * b:(r + 1) * b, c * b:(c + 1) * b] = 255 if bit else 0
    text = when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.") + f"{int(when.microsecond / 1e5)}Z"
    y = _ROWS * b + max(12, b * 2)
    cv2.putText(frame, text, (2, min(y, h - 2)), cv2.FONT_HERSHEY_SIMPLEX, max(0.35, w / 1600), (255, 255, 255), 1,
                cv2.LINE_AA)
    return frame


def read_stamp(frame: np.ndarray) -> Optional[datetime]:
    """The time `stamp` drew into `frame` (BGR or grey), or None where no valid stamp is found."""
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape[:2]
    b = _block(w)
    if _ROWS * b > h or _PER_ROW * b > w:
        return None
    q = max(1, b // 4)
    levels = []
    for i in range(_ROWS * _PER_ROW):
        r, c = divmod(i, _PER_ROW)
        levels.append(float(grey[r * b + q:(r + 1) * b - q, c * b + q:(c + 1) * b - q].mean()))
    white, black = levels[0], levels[1]
    if white - black < 64:
        return None
    cut = (white + black) / 2
    bits = [1 if v > cut else 0 for v in levels[2:]]
    ticks = int("".join(map(str, bits[:_DATA_BITS])), 2)
    if int("".join(map(str, bits[_DATA_BITS:])), 2) != _checksum(ticks):
        return None
    return datetime.fromtimestamp(ticks / 10, tz=timezone.utc)
