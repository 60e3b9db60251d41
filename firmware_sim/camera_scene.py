"""Synthetic nursery scenes and camera faults, as pure functions of time and seed.

`render(scene, t, width, height)` draws what a camera in a nursery room sees at `t` seconds:
walls, cribs, shelves, a window whose daylight changes, people walking past, the room
lights switched off and on, and the camera's infrared night mode (grey, noisier).
`frame_at(scene, t, faults=...)` applies the faults active at `t` (frozen, covered,
defocused, displaced, heavy noise, low frame rate, offline -> None).

No I/O and no hidden state: the same arguments always give the same frame (noise is seeded
by the scene seed and the time), so clips with known faults can be regenerated anywhere.
The scene is resolution independent: drawing is in a 640x360 canvas scaled to the
requested size, and sensor noise shrinks with the size as it does when a camera's
picture is scaled down, so a 160x90 render stands in for a decoded 640x360 sub-stream."""

from __future__ import annotations

import math
from enum import Enum
from functools import lru_cache
from typing import Optional, Sequence

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

BASE_W, BASE_H = 640, 360


class LightMode(str, Enum):
    DAY = "day"      # room lights on, colour picture
    DIM = "dim"      # lights off, the camera has not switched to infrared yet
    IR = "ir"        # infrared night mode: grey, flatter, noisier


class Scene(BaseModel):
    """A room and what happens in it. Timings repeat every `cycle_s` seconds so that a short
    clip sees every lighting change: day for `[0, lights_off_at)`, dim until `ir_at`, infrared
    until `lights_on_at`, day again until the cycle ends."""
    model_config = ConfigDict(frozen=True)

    name: str
    seed: int = 0
    people: int = Field(default=2, ge=0, le=6, description="people walking through the room")
    cycle_s: Optional[float] = Field(default=180.0, gt=0, description="None: always `fixed_mode`")
    lights_off_at: float = 60.0
    ir_at: float = 72.0
    lights_on_at: float = 120.0
    fixed_mode: LightMode = LightMode.DAY
    daylight_period_s: float = Field(default=600.0, gt=0, description="period of the window's daylight swing")
    noise_day: float = Field(default=3.0, ge=0, description="sensor noise (grey levels at 640x360), lights on")
    noise_dim: float = 7.0
    noise_ir: float = 9.0

    @model_validator(mode="after")
    def _ordered(self) -> "Scene":
        if self.cycle_s is not None and not 0 <= self.lights_off_at <= self.ir_at <= self.lights_on_at <= self.cycle_s:
            raise ValueError("need 0 <= lights_off_at <= ir_at <= lights_on_at <= cycle_s")
        return self

    def mode_at(self, t: float) -> LightMode:
        if self.cycle_s is None:
            return self.fixed_mode
        phase = t % self.cycle_s
        if phase < self.lights_off_at:
            return LightMode.DAY
        if phase < self.ir_at:
            return LightMode.DIM
        if phase < self.lights_on_at:
            return LightMode.IR
        return LightMode.DAY


SCENES: dict[str, Scene] = {
    # Every lighting change within three minutes, two people walking through.
    "nursery": Scene(name="nursery"),
    "day": Scene(name="day", cycle_s=None, fixed_mode=LightMode.DAY),
    "night": Scene(name="night", cycle_s=None, fixed_mode=LightMode.IR, people=1),
    # Nap room: nobody moves, the hardest case for telling a frozen stream from a still room.
    "empty": Scene(name="empty", cycle_s=None, fixed_mode=LightMode.DAY, people=0),
    # Lights flicked off and on quickly, infrared on for short spells.
    "switching": Scene(name="switching", cycle_s=40.0, lights_off_at=15.0, ir_at=18.0, lights_on_at=28.0, people=3),
}


def scene_by_name(name: str, seed: int = 0) -> Scene:
    try:
        return SCENES[name].model_copy(update={"seed": seed})
    except KeyError:
        raise ValueError(f"unknown scene {name!r}; known: {', '.join(SCENES)}") from None


class FaultKind(str, Enum):
    OFFLINE = "offline"
    FROZEN = "frozen"
    COVERED = "covered"
    DEFOCUSED = "defocused"
    DISPLACED = "displaced"
    LOW_FPS = "low_fps"
    NOISE = "noise"
    # How the camera delivers, not what it sees: honoured by the served cameras (camera.py,
    # camera_rtsp.py), left out of frame_at and of files.
    STALL = "stall"            # the connection stays up, no frame comes
    DROPS = "drops"            # the camera closes every connection every `every_s` seconds
    RESOLUTION = "resolution"  # the picture changes size to width x height


DELIVERY_KINDS = frozenset({FaultKind.OFFLINE, FaultKind.STALL, FaultKind.DROPS, FaultKind.RESOLUTION})


class Fault(BaseModel):
    """A fault active on `[start_s, end_s)` of scene time. Parameters apply to their kind only."""
    model_config = ConfigDict(frozen=True)

    kind: FaultKind
    start_s: float = 0.0
    end_s: float = math.inf
    cover: str = Field(default="black", pattern="^(black|cloth)$", description="covered: black tape or a cloth")
    blur_sigma: float = Field(default=7.0, gt=0, description="defocused: Gaussian sigma at 640x360")
    shift_x: float = Field(default=60.0, description="displaced: pixels at 640x360")
    shift_y: float = 25.0
    angle_deg: float = 0.0
    fps: float = Field(default=1.0, gt=0, description="low_fps: frames per second the camera still sends")
    noise_sigma: float = Field(default=45.0, ge=0, description="noise: grey levels at 640x360")
    every_s: float = Field(default=5.0, gt=0, description="drops: seconds between dropped connections")
    width: int = Field(default=480, ge=16, le=3840, description="resolution: new picture width")
    height: int = Field(default=270, ge=16, le=2160)
    stream: str = Field(default="sub", pattern="^[a-z]{1,16}$", description="resolution: which RTSP stream changes")

    @model_validator(mode="after")
    def _interval(self) -> "Fault":
        if not self.end_s > self.start_s:
            raise ValueError(f"fault {self.kind.value}: end_s {self.end_s} must be after start_s {self.start_s}")
        return self

    def active(self, t: float) -> bool:
        return self.start_s <= t < self.end_s


# --- the room --------------------------------------------------------------------------------

def _pt(x: float, y: float, sx: float, sy: float) -> tuple[int, int]:
    return int(round(x * sx)), int(round(y * sy))


@lru_cache(maxsize=32)
def _room(seed: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The static room (float32 BGR) and the mask of its window, drawn once per size."""
    rng = np.random.default_rng(seed)
    sx, sy = width / BASE_W, height / BASE_H
    img = np.zeros((height, width, 3), np.uint8)
    wall = tuple(int(v) for v in rng.integers(170, 230, 3))
    img[:] = wall
    floor_top = int(200 * sy)
    img[floor_top:] = (110, 150, 190)
    for x in range(0, BASE_W, 48):  # floor boards
        cv2.line(img, _pt(x, 200, sx, sy), _pt(x - 60, 360, sx, sy), (80, 115, 150), max(1, int(2 * sx)))
    window = np.zeros((height, width), np.uint8)
    cv2.rectangle(window, _pt(30, 25, sx, sy), _pt(190, 140, sx, sy), 255, -1)
    cv2.rectangle(img, _pt(26, 21, sx, sy), _pt(194, 144, sx, sy), (60, 60, 60), max(1, int(4 * sx)))
    cv2.line(img, _pt(110, 25, sx, sy), _pt(110, 140, sx, sy), (60, 60, 60), max(1, int(3 * sx)))
    for i in range(3):  # pictures on the wall
        x0 = 240 + i * 120 + int(rng.integers(-10, 10))
        colour = tuple(int(v) for v in rng.integers(20, 240, 3))
        cv2.rectangle(img, _pt(x0, 40, sx, sy), _pt(x0 + 70, 100, sx, sy), colour, -1)
        cv2.circle(img, _pt(x0 + 35, 70, sx, sy), max(1, int(18 * sx)), (250, 250, 250), -1)
    for x0 in (230, 400):  # cribs: posts and bars
        cv2.rectangle(img, _pt(x0, 170, sx, sy), _pt(x0 + 150, 250, sx, sy), (40, 80, 140), max(1, int(4 * sx)))
        for bx in range(x0 + 12, x0 + 150, 14):
            cv2.line(img, _pt(bx, 170, sx, sy), _pt(bx, 250, sx, sy), (40, 80, 140), max(1, int(3 * sx)))
    cv2.rectangle(img, _pt(560, 120, sx, sy), _pt(630, 300, sx, sy), (90, 120, 160), -1)  # shelf
    for row in range(4):
        for col in range(2):
            colour = tuple(int(v) for v in rng.integers(0, 255, 3))
            cv2.rectangle(img, _pt(566 + col * 32, 128 + row * 44, sx, sy), _pt(590 + col * 32, 160 + row * 44, sx, sy),
                          colour, -1)
    cv2.ellipse(img, _pt(150, 300, sx, sy), _pt(110, 35, sx, sy), 0, 0, 360, (160, 90, 200), -1)  # rug
    cv2.ellipse(img, _pt(150, 300, sx, sy), _pt(70, 20, sx, sy), 0, 0, 360, (230, 200, 120), max(1, int(6 * sx)))
    return img.astype(np.float32), window


@lru_cache(maxsize=8)
def _ir_hotspot(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return 1.15 - (((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2)


def _daylight(scene: Scene, t: float) -> float:
    return 0.65 + 0.35 * math.sin(2 * math.pi * t / scene.daylight_period_s + scene.seed)


def _draw_people(img: np.ndarray, scene: Scene, t: float) -> None:
    h, w = img.shape[:2]
    sx, sy = w / BASE_W, h / BASE_H
    rng = np.random.default_rng(scene.seed + 7919)
    for _ in range(scene.people):
        speed = float(rng.uniform(25, 60))       # px/s at 640 wide: a walking adult at this distance
        period = 2 * (BASE_W + 200) / speed       # out and back, leaving the picture on both sides
        phase = float(rng.uniform(0, period))
        depth = float(rng.uniform(0.75, 1.15))
        colour = tuple(float(v) for v in rng.integers(20, 235, 3))
        u = ((t + phase) % period) / period
        x = -100 + (BASE_W + 200) * (2 * u if u < 0.5 else 2 - 2 * u)
        feet = 330 - 40 * (1.15 - depth)
        body_h = 150 * depth
        bob = 3 * math.sin(2 * math.pi * t * speed / 40)
        centre = _pt(x, feet - body_h * 0.45 + bob, sx, sy)
        cv2.ellipse(img, centre, _pt(28 * depth, body_h * 0.42, sx, sy), 0, 0, 360, colour, -1)
        cv2.circle(img, _pt(x, feet - body_h * 0.95 + bob, sx, sy), max(1, int(16 * depth * sx)), (150, 170, 210), -1)


def _noise(shape: tuple[int, ...], sigma: float, seed: int, t: float, salt: int = 0) -> np.ndarray:
    rng = np.random.default_rng([seed & 0xFFFFFFFF, int(round(t * 1000)) & 0xFFFFFFFF, salt])
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)


def _scaled_sigma(sigma: float, width: int) -> float:
    # Scaling a picture down by k averages about k*k pixels, dividing independent noise by k.
    return sigma * min(1.0, width / BASE_W)


def render(scene: Scene, t: float, width: int = BASE_W, height: int = BASE_H) -> np.ndarray:
    """The scene at time `t` as a BGR uint8 frame, without faults."""
    room, window = _room(scene.seed, width, height)
    img = room.copy()
    img[window > 0] = np.float32(255 * _daylight(scene, t)) * np.array([1.0, 0.97, 0.9], np.float32)
    _draw_people(img, scene, t)
    mode = scene.mode_at(t)
    if mode is LightMode.DAY:
        img *= np.float32(0.85 + 0.15 * _daylight(scene, t))
        sigma = scene.noise_day
    elif mode is LightMode.DIM:
        # Only the window lights the room; the far side goes dark.
        img *= np.float32(0.3)
        img[window > 0] *= np.float32(2.2)
        sigma = scene.noise_dim
    else:
        # Fabrics and paint reflect near-infrared unlike visible light: a different grey mix,
        # flatter contrast, and the illuminator's hotspot in the middle.
        grey = img[..., 2] * 0.5 + img[..., 1] * 0.3 + img[..., 0] * 0.2
        grey = 60 + 0.6 * grey
        img = np.repeat((grey * _ir_hotspot(width, height))[..., None], 3, axis=2)
        sigma = scene.noise_ir
    img += _noise(img.shape[:2] + (1,), _scaled_sigma(sigma, width), scene.seed, t)
    return np.clip(img, 0, 255).astype(np.uint8)


# --- faults -------------------------------------------------------------------------------

def _covered(scene: Scene, fault: Fault, t: float, width: int, height: int) -> np.ndarray:
    if fault.cover == "black":
        base = np.full((height, width, 1), 4.0, np.float32)
        sigma = 2.0
    else:
        # A cloth over the lens: one colour, lit through, folds too soft for the lens to resolve.
        rng = np.random.default_rng(scene.seed + 31)
        colour = rng.integers(60, 200, 3).astype(np.float32)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        folds = 6 * np.sin(xx / width * 5 + 1.3) * np.cos(yy / height * 3)
        base = colour[None, None, :] + folds[..., None]
        sigma = scene.noise_day
    img = base + _noise((height, width, 1), _scaled_sigma(sigma, width), scene.seed, t, salt=1)
    return np.clip(np.broadcast_to(img, (height, width, 3)), 0, 255).astype(np.uint8)


def _displace(frame: np.ndarray, fault: Fault) -> np.ndarray:
    h, w = frame.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), fault.angle_deg, 1.0)
    m[0, 2] += fault.shift_x * w / BASE_W
    m[1, 2] += fault.shift_y * h / BASE_H
    return cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def frame_at(scene: Scene, t: float, width: int = BASE_W, height: int = BASE_H,
             faults: Sequence[Fault] = ()) -> Optional[np.ndarray]:
    """The frame the camera sends at `t`, or None while it is offline.

    Faults combine in a fixed order: time (offline, frozen, low frame rate), then what is in
    front of the lens (covered), then optics (displaced, defocused), then the sensor (noise)."""
    active = [f for f in faults if f.active(t)]
    kinds = {f.kind: f for f in active}
    if FaultKind.OFFLINE in kinds:
        return None
    t_src = t
    if FaultKind.FROZEN in kinds:
        t_src = kinds[FaultKind.FROZEN].start_s
    elif FaultKind.LOW_FPS in kinds:
        fps = kinds[FaultKind.LOW_FPS].fps
        t_src = math.floor(t * fps) / fps
    if FaultKind.COVERED in kinds:
        frame = _covered(scene, kinds[FaultKind.COVERED], t_src, width, height)
    else:
        frame = render(scene, t_src, width, height)
    if FaultKind.DISPLACED in kinds:
        frame = _displace(frame, kinds[FaultKind.DISPLACED])
    if FaultKind.DEFOCUSED in kinds:
        sigma = kinds[FaultKind.DEFOCUSED].blur_sigma * width / BASE_W
        frame = cv2.GaussianBlur(frame, (0, 0), sigma)
    if FaultKind.NOISE in kinds:
        noisy = frame.astype(np.float32) + _noise(frame.shape[:2] + (1,),
                                                  _scaled_sigma(kinds[FaultKind.NOISE].noise_sigma, width),
                                                  scene.seed, t_src, salt=2)
        frame = np.clip(noisy, 0, 255).astype(np.uint8)
    return frame
