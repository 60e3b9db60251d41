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

from firmware_sim.camera_rooms import CAMERA_HEIGHTS, LAYOUTS, Geometry, draw_room

BASE_W, BASE_H = 640, 360
HOUR = 3600.0


class LightMode(str, Enum):
    DAY = "day"      # room lights on, colour picture
    DIM = "dim"      # lights off, the camera has not switched to infrared yet
    IR = "ir"        # infrared night mode: grey, flatter, noisier


class DayPlan(BaseModel):
    """A nursery's day, for a scene whose `t` is seconds since local midnight: room lights on
    in opening hours except at nap time and a few short spells (story time, a projector);
    curtains drawn for the nap and the night; daylight from sunrise to sunset through the
    window; the camera in infrared whenever the room is too dark; people in the room while it
    is open, and now and then someone passing right in front of the lens."""
    model_config = ConfigDict(frozen=True)

    opens_h: float = 7.0
    closes_h: float = 18.5
    nap_h: tuple[float, float] = (12.0, 14.5)
    sunrise_h: float = 6.5
    sunset_h: float = 17.8
    daylight_peak: float = Field(default=1.0, gt=0, le=1.5, description="1: a south window; lower: north-facing")
    ir_below: float = Field(default=0.3, description="room light level under which the camera goes infrared")
    lights_off_spells: int = Field(default=4, ge=0, description="short spells of lights off in opening hours")
    close_passes_per_hour: float = Field(default=6.0, ge=0, description="people passing right in front of the lens")
    people_open: int = Field(default=4, ge=0, le=6)
    people_nap: int = Field(default=1, ge=0, le=6)
    noise_scale: float = Field(default=1.0, gt=0, description="sensor noise relative to the scene's levels")
    ir_hotspot: float = Field(default=1.0, ge=0, description="strength of the illuminator's hotspot")


class Scene(BaseModel):
    """A room and what happens in it. Timings repeat every `cycle_s` seconds so that a short
    clip sees every lighting change: day for `[0, lights_off_at)`, dim until `ir_at`, infrared
    until `lights_on_at`, day again until the cycle ends. With a `day` plan, `t` is the time
    of day instead, and the plan decides lights, curtains and people."""
    model_config = ConfigDict(frozen=True)

    name: str
    seed: int = 0
    layout: str = Field(default="classic", description="room style: " + ", ".join(LAYOUTS))
    camera_height: str = Field(default="mid", description="low, mid or high on the wall")
    day: Optional[DayPlan] = None
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
        if self.layout not in LAYOUTS or self.camera_height not in CAMERA_HEIGHTS:
            raise ValueError(f"layout must be one of {LAYOUTS} and camera_height one of {CAMERA_HEIGHTS}")
        if self.cycle_s is not None and not 0 <= self.lights_off_at <= self.ir_at <= self.lights_on_at <= self.cycle_s:
            raise ValueError("need 0 <= lights_off_at <= ir_at <= lights_on_at <= cycle_s")
        return self

    def mode_at(self, t: float) -> LightMode:
        if self.day is not None:
            return _day_light(self, t)[0]
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


class SceneFamily(BaseModel):
    """What a scene looks like, apart from its seed: a room layout, a camera height, a lighting."""
    model_config = ConfigDict(frozen=True)

    layout: str
    camera_height: str
    lighting: str


# Lighting of whole days: how much daylight, how noisy the sensor, how strong the IR hotspot.
# "east-window" is for tuning only (the classic-day scene); the others are held out.
DAY_LIGHTING: dict[str, DayPlan] = {
    "bright-south": DayPlan(),
    "dim-north": DayPlan(daylight_peak=0.45, ir_below=0.22, lights_off_spells=6, close_passes_per_hour=8,
                         noise_scale=1.4, ir_hotspot=1.6, people_open=5),
    # A cleaner sensor than either held-out lighting: the harder case for telling a frozen
    # stream from a still room.
    "east-window": DayPlan(opens_h=7.5, closes_h=18.0, sunrise_h=6.0, sunset_h=17.0, daylight_peak=0.7,
                           ir_below=0.26, lights_off_spells=5, close_passes_per_hour=7, noise_scale=0.8,
                           ir_hotspot=1.3, people_open=3),
}


SCENES: dict[str, Scene] = {
    # Every lighting change within three minutes, two people walking through.
    "nursery": Scene(name="nursery"),
    "day": Scene(name="day", cycle_s=None, fixed_mode=LightMode.DAY),
    "night": Scene(name="night", cycle_s=None, fixed_mode=LightMode.IR, people=1),
    # Nap room: nobody moves, the hardest case for telling a frozen stream from a still room.
    "empty": Scene(name="empty", cycle_s=None, fixed_mode=LightMode.DAY, people=0),
    # Lights flicked off and on quickly, infrared on for short spells.
    "switching": Scene(name="switching", cycle_s=40.0, lights_off_at=15.0, ir_at=18.0, lights_on_at=28.0, people=3),
    # A whole day in the classic room (t: seconds of the day), for tuning on days as the
    # held-out families are evaluated.
    "classic-day": Scene(name="classic-day", day=DAY_LIGHTING["east-window"]),
}


def family_of(scene: Scene) -> SceneFamily:
    lighting = "cycle" if scene.day is None else next(
        (name for name, plan in DAY_LIGHTING.items() if plan == scene.day), "custom-day")
    return SceneFamily(layout=scene.layout, camera_height=scene.camera_height, lighting=lighting)


# The camera health thresholds (edge/video/health.py) were tuned on SCENES only: the classic
# room seen from mid height, on a cycle or an east-window day. Evaluation uses
# HELD_OUT_FAMILIES: other layouts, heights and lighting.
TUNING_FAMILIES = frozenset(family_of(scene) for scene in SCENES.values())
HELD_OUT_FAMILIES = (
    SceneFamily(layout="playroom", camera_height="low", lighting="bright-south"),
    SceneFamily(layout="napping", camera_height="high", lighting="dim-north"),
    SceneFamily(layout="playroom", camera_height="high", lighting="dim-north"),
    SceneFamily(layout="napping", camera_height="low", lighting="bright-south"),
)
if {f.layout for f in TUNING_FAMILIES} & {f.layout for f in HELD_OUT_FAMILIES} or \
        {f.camera_height for f in TUNING_FAMILIES} & {f.camera_height for f in HELD_OUT_FAMILIES} or \
        {f.lighting for f in TUNING_FAMILIES} & {f.lighting for f in HELD_OUT_FAMILIES}:
    raise RuntimeError("held-out scene families share a layout, height or lighting with the tuning scenes")


def held_out_scene(family: SceneFamily, seed: int) -> Scene:
    """A scene of a held-out family, for evaluation only: its `t` is seconds of the day."""
    if family in TUNING_FAMILIES:
        raise ValueError(f"{family} is a tuning family")
    return Scene(name=f"{family.layout}-{family.camera_height}-{family.lighting}", seed=seed, layout=family.layout,
                 camera_height=family.camera_height, day=DAY_LIGHTING[family.lighting])


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
def _room(layout: str, camera_height: str, seed: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The static room (float32 BGR) and the mask of its window, drawn once per size."""
    return draw_room(layout, camera_height, seed, width, height)


@lru_cache(maxsize=8)
def _ir_hotspot(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return 1.15 - (((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2)


def _daylight(scene: Scene, t: float) -> float:
    if scene.day is not None:
        return _day_light(scene, t)[1]
    return 0.65 + 0.35 * math.sin(2 * math.pi * t / scene.daylight_period_s + scene.seed)


def _spells(scene: Scene, day_index: int) -> list[tuple[float, float]]:
    """The day's short lights-off spells (start, end) in seconds of the day."""
    plan = scene.day
    rng = np.random.default_rng([scene.seed & 0xFFFFFFFF, day_index, 17])
    spells = []
    for _ in range(plan.lights_off_spells):
        start = float(rng.uniform(plan.opens_h + 0.5, plan.closes_h - 0.5)) * HOUR
        spells.append((start, start + float(rng.uniform(60, 600))))
    return spells


def _day_light(scene: Scene, t: float) -> tuple[LightMode, float, bool]:
    """(camera mode, daylight at the window 0..1, curtains drawn) at `t` seconds of the day."""
    plan = scene.day
    h = (t % (24 * HOUR)) / HOUR
    curtains = not (plan.opens_h <= h < plan.closes_h) or plan.nap_h[0] <= h < plan.nap_h[1]
    sun = 0.0
    if plan.sunrise_h < h < plan.sunset_h:
        sun = plan.daylight_peak * math.sin(math.pi * (h - plan.sunrise_h) / (plan.sunset_h - plan.sunrise_h))
    daylight = 0.05 + 0.95 * min(1.0, sun)
    in_spell = any(a <= t % (24 * HOUR) < b for a, b in _spells(scene, int(t // (24 * HOUR))))
    lit = plan.opens_h <= h < plan.closes_h and not (plan.nap_h[0] <= h < plan.nap_h[1]) and not in_spell
    if lit:
        return LightMode.DAY, daylight, curtains
    room_light = daylight * (0.35 if curtains else 1.0)
    return (LightMode.DIM if room_light >= plan.ir_below else LightMode.IR), daylight, curtains


def _people_now(scene: Scene, t: float) -> int:
    plan = scene.day
    if plan is None:
        return scene.people
    h = (t % (24 * HOUR)) / HOUR
    if not plan.opens_h <= h < plan.closes_h:
        return 0
    return plan.people_nap if plan.nap_h[0] <= h < plan.nap_h[1] else plan.people_open


def _draw_people(img: np.ndarray, scene: Scene, t: float) -> None:
    h, w = img.shape[:2]
    sx, sy = w / BASE_W, h / BASE_H
    g = Geometry.for_height(scene.camera_height)
    rng = np.random.default_rng(scene.seed + 7919)
    for _ in range(_people_now(scene, t)):
        speed = float(rng.uniform(25, 60))       # px/s at 640 wide: a walking adult at this distance
        period = 2 * (BASE_W + 200) / speed       # out and back, leaving the picture on both sides
        phase = float(rng.uniform(0, period))
        depth = float(rng.uniform(0.75, 1.15))
        colour = tuple(float(v) for v in rng.integers(20, 235, 3))
        u = ((t + phase) % period) / period
        x = -100 + (BASE_W + 200) * (2 * u if u < 0.5 else 2 - 2 * u)
        # The classic mid-height view keeps its feet at 290..330; other heights move them with the horizon.
        feet = g.horizon + (130 - 40 * (1.15 - depth)) * (BASE_H - g.horizon) / 160
        body_h = 150 * depth * g.scale
        bob = 3 * math.sin(2 * math.pi * t * speed / 40)
        centre = _pt(x, feet - body_h * 0.45 + bob, sx, sy)
        cv2.ellipse(img, centre, _pt(28 * depth, body_h * 0.42, sx, sy), 0, 0, 360, colour, -1)
        cv2.circle(img, _pt(x, feet - body_h * 0.95 + bob, sx, sy), max(1, int(16 * depth * sx)), (150, 170, 210), -1)


def close_passes(scene: Scene, hour_index: int) -> list[tuple[float, float, float, tuple[float, ...], int]]:
    """Someone passing right in front of the lens in this hour: (start s, duration s, size,
    colour, direction) each, from the plan's rate while the room is open."""
    plan = scene.day
    h = hour_index % 24
    if plan is None or hour_index < 0 or not plan.opens_h <= h < plan.closes_h:
        return []
    rng = np.random.default_rng([scene.seed & 0xFFFFFFFF, hour_index, 29])
    passes = []
    for _ in range(int(rng.poisson(plan.close_passes_per_hour))):
        start = hour_index * HOUR + float(rng.uniform(0, HOUR))
        passes.append((start, float(rng.uniform(1.5, 6.0)), float(rng.uniform(0.5, 1.1)),
                       tuple(float(v) for v in rng.integers(15, 120, 3)), int(rng.choice((-1, 1)))))
    return passes


def _draw_close_pass(img: np.ndarray, scene: Scene, t: float) -> None:
    """A torso a hand's breadth from the lens: large, dark, out of focus, crossing in seconds."""
    hour = int(t // HOUR)
    for start, duration, size, colour, direction in close_passes(scene, hour) + close_passes(scene, hour - 1):
        u = (t - start) / duration
        if not 0 <= u < 1:
            continue
        h, w = img.shape[:2]
        x = (-0.4 + 1.8 * u if direction > 0 else 1.4 - 1.8 * u) * w
        mask = np.zeros((h // 4, w // 4), np.float32)
        cv2.ellipse(mask, (int(x / 4), int(h * 0.6 / 4)), (int(w * 0.3 * size / 4), int(h * 0.75 * size / 4)),
                    0, 0, 360, 1.0, -1)
        alpha = cv2.resize(cv2.GaussianBlur(mask, (0, 0), max(1.0, w / 160)), (w, h))[..., None]
        img *= 1 - alpha
        img += alpha * np.array(colour, np.float32)


def _noise(shape: tuple[int, ...], sigma: float, seed: int, t: float, salt: int = 0) -> np.ndarray:
    rng = np.random.default_rng([seed & 0xFFFFFFFF, int(round(t * 1000)) & 0xFFFFFFFF, salt])
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)


def _scaled_sigma(sigma: float, width: int) -> float:
    # Scaling a picture down by k averages about k*k pixels, dividing independent noise by k.
    return sigma * min(1.0, width / BASE_W)


def render(scene: Scene, t: float, width: int = BASE_W, height: int = BASE_H) -> np.ndarray:
    """The scene at time `t` as a BGR uint8 frame, without faults."""
    room, window = _room(scene.layout, scene.camera_height, scene.seed, width, height)
    img = room.copy()
    daylight = _daylight(scene, t)
    if scene.day is not None and _day_light(scene, t)[2]:
        # Curtains drawn: a plain cloth lit through from behind.
        img[window > 0] = np.float32(70 + 120 * daylight) * np.array([0.75, 0.85, 0.95], np.float32)
    else:
        img[window > 0] = np.float32(255 * daylight) * np.array([1.0, 0.97, 0.9], np.float32)
    _draw_people(img, scene, t)
    if scene.day is not None:
        _draw_close_pass(img, scene, t)
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
        hotspot = _ir_hotspot(width, height)
        if scene.day is not None and scene.day.ir_hotspot != 1.0:
            hotspot = 1.15 + (hotspot - 1.15) * np.float32(scene.day.ir_hotspot)
        img = np.repeat((grey * hotspot)[..., None], 3, axis=2)
        sigma = scene.noise_ir
    if scene.day is not None:
        sigma *= scene.day.noise_scale
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
