"""Room layouts for the simulated cameras, drawn from parameters, so that the scenes a
detector is evaluated on can differ from the ones it was tuned on in what the camera sees.

A layout is a style (what furniture, where the windows are) drawn from a seed, seen from a
camera height: a camera low on the wall sees the far wall large and little floor; one high
in a corner sees mostly floor, small furniture and a horizon near the top. Pure functions
of their arguments: (image float32 BGR, window mask) at any size, from a 640x360 canvas."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BASE_W, BASE_H = 640, 360
LAYOUTS = ("classic", "playroom", "napping")
CAMERA_HEIGHTS = ("low", "mid", "high")


@dataclass(frozen=True)
class Geometry:
    """Where the floor meets the far wall (the horizon, y on the 640x360 canvas) and how large
    things at the far wall look, for one camera height."""
    horizon: float
    scale: float

    @classmethod
    def for_height(cls, camera_height: str) -> "Geometry":
        return {"low": cls(245.0, 1.25), "mid": cls(200.0, 1.0), "high": cls(130.0, 0.72)}[camera_height]


class _Canvas:
    """Drawing on the 640x360 canvas coordinates, at the requested size."""

    def __init__(self, width: int, height: int, geometry: Geometry):
        self.img = np.zeros((height, width, 3), np.uint8)
        self.window = np.zeros((height, width), np.uint8)
        self.sx, self.sy = width / BASE_W, height / BASE_H
        self.g = geometry

    def pt(self, x: float, y: float) -> tuple[int, int]:
        return int(round(x * self.sx)), int(round(y * self.sy))

    def lw(self, w: float) -> int:
        return max(1, int(round(w * self.sx)))

    def rect(self, x0, y0, x1, y1, colour, thickness=-1) -> None:
        cv2.rectangle(self.img, self.pt(x0, y0), self.pt(x1, y1), colour,
                      thickness if thickness < 0 else self.lw(thickness))

    def poly(self, points, colour) -> None:
        cv2.fillPoly(self.img, [np.array([self.pt(x, y) for x, y in points], np.int32)], colour)

    def window_at(self, x0, y0, x1, y1, frame=(60, 60, 60), mullions: int = 1) -> None:
        cv2.rectangle(self.window, self.pt(x0, y0), self.pt(x1, y1), 255, -1)
        self.rect(x0 - 4, y0 - 4, x1 + 4, y1 + 4, frame, 4)
        for k in range(1, mullions + 1):
            x = x0 + (x1 - x0) * k / (mullions + 1)
            cv2.line(self.img, self.pt(x, y0), self.pt(x, y1), frame, self.lw(3))

    def floor_lines(self, colour, spacing: float, vanish_x: float) -> None:
        """Boards or mat seams converging on a vanishing point above the horizon."""
        h = self.g.horizon
        for x in np.arange(-400, BASE_W + 400, spacing):
            bottom_x = vanish_x + (x - vanish_x) * (BASE_H - h) / 60.0
            cv2.line(self.img, self.pt(x, h), self.pt(bottom_x, BASE_H), colour, self.lw(2))


def _rand_colour(rng, lo: int, hi: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def _classic(c: _Canvas, rng) -> None:
    """The room the thresholds were tuned on: cribs, pictures, a shelf, a window on the left."""
    g = c.g
    c.img[:] = _rand_colour(rng, 170, 230)
    c.rect(0, g.horizon, BASE_W, BASE_H, (110, 150, 190))
    for x in range(0, BASE_W, 48):
        cv2.line(c.img, c.pt(x, g.horizon), c.pt(x - 60, BASE_H), (80, 115, 150), c.lw(2))
    top = g.horizon - 175 * g.scale
    c.window_at(30, max(8, top), 190, max(8, top) + 115 * g.scale)
    for i in range(3):
        x0 = 240 + i * 120 + int(rng.integers(-10, 10))
        colour = _rand_colour(rng, 20, 240)
        y0 = g.horizon - 160 * g.scale
        c.rect(x0, y0, x0 + 70 * g.scale, y0 + 60 * g.scale, colour)
        cv2.circle(c.img, c.pt(x0 + 35 * g.scale, y0 + 30 * g.scale), c.lw(18 * g.scale), (250, 250, 250), -1)
    for x0 in (230, 400):
        y0, y1 = g.horizon - 30 * g.scale, g.horizon + 50 * g.scale
        c.rect(x0, y0, x0 + 150 * g.scale, y1, (40, 80, 140), 4)
        for bx in np.arange(x0 + 12, x0 + 150 * g.scale, 14 * g.scale):
            cv2.line(c.img, c.pt(bx, y0), c.pt(bx, y1), (40, 80, 140), c.lw(3))
    c.rect(560, g.horizon - 80 * g.scale, 630, g.horizon + 100 * g.scale, (90, 120, 160))
    for row in range(4):
        for col in range(2):
            y = g.horizon - 72 * g.scale + row * 44 * g.scale
            c.rect(566 + col * 32, y, 590 + col * 32, y + 32 * g.scale, _rand_colour(rng, 0, 255))
    cy = min(330, g.horizon + 100)
    cv2.ellipse(c.img, c.pt(150, cy), c.pt(110, 35), 0, 0, 360, (160, 90, 200), -1)
    cv2.ellipse(c.img, c.pt(150, cy), c.pt(70, 20), 0, 0, 360, (230, 200, 120), c.lw(6))


def _playroom(c: _Canvas, rng) -> None:
    """Foam mats in colours, low tables and chairs, toy boxes, a mural; windows on the right."""
    g = c.g
    c.img[:] = _rand_colour(rng, 190, 245)
    mats = [_rand_colour(rng, 60, 240) for _ in range(4)]
    rows = np.linspace(g.horizon, BASE_H, 6)
    for r in range(5):  # mats: bands of colour, seams converging
        c.rect(0, rows[r], BASE_W, rows[r + 1], mats[r % 4])
    c.floor_lines((70, 70, 70), 80, float(rng.uniform(200, 440)))
    for k in range(int(rng.integers(1, 3))):
        x0 = 400 + k * 110 + float(rng.uniform(-15, 15))
        top = max(10.0, g.horizon - 190 * g.scale)
        c.window_at(x0, top, x0 + 90 * g.scale, top + 130 * g.scale, frame=(240, 240, 240), mullions=0)
    for _ in range(int(rng.integers(5, 9))):  # mural: circles and triangles
        x, y = float(rng.uniform(20, 380)), float(rng.uniform(20, g.horizon - 40))
        r = float(rng.uniform(12, 35)) * g.scale
        colour = _rand_colour(rng, 30, 220)
        if rng.random() < 0.5:
            cv2.circle(c.img, c.pt(x, y), c.lw(r), colour, -1)
        else:
            c.poly([(x, y - r), (x - r, y + r), (x + r, y + r)], colour)
    for k in range(int(rng.integers(2, 4))):  # low tables with chairs
        x = 60 + k * 170 + float(rng.uniform(-20, 20))
        y = g.horizon + (60 + 40 * (k % 2)) * g.scale
        w = 120 * g.scale
        top = _rand_colour(rng, 120, 240)
        c.poly([(x, y), (x + w, y), (x + w + 15, y + 25 * g.scale), (x - 15, y + 25 * g.scale)], top)
        for lx in (x - 8, x + w + 2):
            c.rect(lx, y + 25 * g.scale, lx + 6, y + 60 * g.scale, (60, 60, 60))
        for cx in (x + 10, x + w - 30):
            c.rect(cx, y - 30 * g.scale, cx + 26 * g.scale, y, _rand_colour(rng, 40, 200))
    for k in range(int(rng.integers(3, 6))):  # toy boxes along the wall
        x = 20 + k * 70
        c.rect(x, g.horizon - 45 * g.scale, x + 55 * g.scale, g.horizon, _rand_colour(rng, 20, 230))


def _napping(c: _Canvas, rng) -> None:
    """Rows of cots with blankets, curtains beside a tall window, a cabinet and a clock."""
    g = c.g
    c.img[:] = _rand_colour(rng, 120, 185)
    c.rect(0, g.horizon, BASE_W, BASE_H, _rand_colour(rng, 90, 140))
    c.floor_lines(_rand_colour(rng, 60, 90), 64, float(rng.uniform(250, 390)))
    wx = float(rng.uniform(180, 300))
    top = max(6.0, g.horizon - 200 * g.scale)
    c.window_at(wx, top, wx + 120 * g.scale, g.horizon - 20 * g.scale, frame=(90, 90, 90), mullions=2)
    curtain = _rand_colour(rng, 40, 200)
    for side in (wx - 45 * g.scale, wx + 125 * g.scale):  # drawn-back curtains with folds
        c.rect(side, top - 8, side + 40 * g.scale, g.horizon - 10 * g.scale, curtain)
        for k in range(4):
            fx = side + (k + 0.5) * 10 * g.scale
            cv2.line(c.img, c.pt(fx, top - 8), c.pt(fx, g.horizon - 10 * g.scale),
                     tuple(int(v * 0.7) for v in curtain), c.lw(2))
    c.rect(560, g.horizon - 130 * g.scale, 635, g.horizon + 20 * g.scale, _rand_colour(rng, 50, 120))
    cv2.circle(c.img, c.pt(90, g.horizon - 140 * g.scale), c.lw(22 * g.scale), (235, 235, 235), -1)
    cv2.circle(c.img, c.pt(90, g.horizon - 140 * g.scale), c.lw(22 * g.scale), (30, 30, 30), c.lw(3))
    for row in range(2):  # cots in two rows, the near row larger
        depth = 1.0 + 0.45 * row
        y = g.horizon + (35 + 85 * row) * g.scale
        for k in range(int(rng.integers(3, 5))):
            x = 30 + k * 150 * depth * g.scale + float(rng.uniform(-10, 10))
            w, h = 110 * depth * g.scale, 38 * depth * g.scale
            c.rect(x, y, x + w, y + h, (200, 200, 205))
            c.rect(x + w * 0.25, y + 3, x + w - 4, y + h - 3, _rand_colour(rng, 40, 230))
            c.rect(x, y, x + w, y + h, (70, 70, 80), 2)


_DRAW = {"classic": _classic, "playroom": _playroom, "napping": _napping}


def draw_room(layout: str, camera_height: str, seed: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The static room (float32 BGR) and its window mask."""
    try:
        draw = _DRAW[layout]
    except KeyError:
        raise ValueError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}") from None
    c = _Canvas(width, height, Geometry.for_height(camera_height))
    draw(c, np.random.default_rng(seed))
    return c.img.astype(np.float32), c.window
