"""Camera health analysis: is the camera still seeing the room it was installed to watch?

Pure and single-threaded: `CameraHealthAnalyser.check(small_grey, t, keyframe_id)` takes a
small grey frame (160x90 by default: a 640x360 sub-stream JPEG decoded at a quarter of its
size, which costs a fraction of a full decode), the time in seconds and, for H.264/H.265,
which key frame the picture was decoded from, and returns the fault events that check
decided. `no_frame(t)` tells it a check found no new frame. Capture,
threads and alarms are elsewhere (capture.py); the same analyser serves the live
gateway, `careguard camera-check` and the benchmark.

Per check it measures (brightness and edges on the frame halved again by area averaging,
which keeps sensor noise, worst in infrared, out of the features at no cost):
- brightness spread (std): a lens covered by tape or a cloth leaves a near-uniform picture;
- focus: curvature at full analysis size (the Laplacian, which blur flattens first) against
  edge strength at half size (which blur barely changes: it spreads an edge, it keeps its
  step), so dimming or infrared contrast does not read as blur; compared to the camera's
  own recent median, so that a soft lens or a busy room is its own baseline. Codecs smooth
  fine detail too, but alike in a sharp picture and in its recent median;
- repeats: a frozen camera sends the same picture again and again, while a live sensor adds
  fresh noise to every picture it takes. A video encoder hides that noise between key frames
  (a still room's P-frames decode near-identical) and re-encodes a frozen picture at the
  quantiser of the moment (a frozen stream's key frames differ by coding noise, as much as a
  live one's by sensor noise), so what tells them apart is recurrence: a frozen stream
  returns to pictures it already sent, identical to the grey level, while pictures of a live
  sensor decoded from different key frames never do. The first picture seen from each key
  frame (each JPEG) votes whether it repeats one of the recent other key frames; frozen is
  3 repeats among the last 6 votes: about 10 s with a key frame every 2 s, a minute with one
  every 10 s. A stream without key frames after its first (intra refresh) never votes;
- where the edges are, cell by cell, against a reference picture the camera learns (the
  median of frames accepted as normal, so people walking past vanish from it). Each cell
  is compared by zero-mean normalised correlation of gradient magnitudes: invariant to
  brightness and contrast, hence to lights and infrared, while a shifted or rotated view
  moves the edges out of nearly every cell at once. A person covers a few cells only.
A condition must hold for several consecutive checks before it is raised (covered, defocused
and displaced also for `min_persist_s`, 10 s by default, whatever the check rate), and clear
for several before it clears; after a fault clears, the same fault waits out a cooldown."""

from __future__ import annotations

import base64
from collections import deque
from enum import Enum
from typing import Optional

import cv2
import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.alarms import AlarmState


class CameraFault(str, Enum):
    OFFLINE = "offline"
    FROZEN = "frozen"
    COVERED = "covered"
    DEFOCUSED = "defocused"
    DISPLACED = "displaced"


# Faults of the view, which passing activity can imitate for a moment: they must persist.
PERSISTENT_FAULTS = frozenset({CameraFault.COVERED, CameraFault.DEFOCUSED, CameraFault.DISPLACED})


class HealthConfig(BaseModel):
    """Thresholds, tuned on firmware_sim's SCENES only, never on its held-out families (bench/camera_health.py
    measures them on those)."""
    model_config = ConfigDict(extra="forbid")

    width: int = Field(default=160, ge=32, description="analysis frame width; frames of another size are resized")
    height: int = Field(default=90, ge=18)
    offline_after_s: float = Field(default=20.0, gt=0, description="no frame for this long: offline")
    confirm_checks: int = Field(default=3, ge=1, description="consecutive checks that confirm a fault")
    min_persist_s: float = Field(default=10.0, ge=0,
                                 description="covered, defocused and displaced are raised only once they have "
                                             "held this long: a person passing close to the lens never does")
    clear_checks: int = Field(default=3, ge=1, description="consecutive normal checks that clear a fault")
    cooldown_s: float = Field(default=60.0, ge=0, description="after a fault clears, the same fault waits this long")
    covered_max_std: float = Field(default=6.0, gt=0, description="grey-level spread below which the view is covered")
    frozen_max_diff: float = Field(default=0.12, ge=0,
                                   description="mean absolute difference (grey levels) under which two pictures "
                                               "are the same picture sent again")
    repeat_history: int = Field(default=8, ge=1,
                                description="recent key frames (JPEG: pictures) whose pictures a new one is "
                                            "compared with")
    repeat_window: int = Field(default=6, ge=1, description="votes (one per key frame, JPEG: per picture) the "
                                                            "frozen count spans")
    repeat_min: int = Field(default=3, ge=1, description="repeats among the last repeat_window votes that make "
                                                         "the picture frozen")
    defocus_max_ratio: float = Field(default=0.7, gt=0, lt=1, description="focus against the camera's own median")
    displaced_min_match: float = Field(default=0.45, gt=0, lt=1,
                                       description="fraction of the reference's edge cells still in place")
    cell_match_min_corr: float = Field(default=0.35, description="correlation at which a cell counts as in place")
    grid_cols: int = Field(default=8, ge=2)
    grid_rows: int = Field(default=5, ge=2)
    reference_every_s: float = Field(default=10.0, gt=0, description="how often a normal frame joins the reference")
    reference_frames: int = Field(default=9, ge=1, description="frames the reference is the median of")
    reference_min_frames: int = Field(default=3, ge=1, description="frames needed before displacement is judged")
    focus_history: int = Field(default=120, ge=1, description="normal checks the focus median spans")
    focus_min_samples: int = Field(default=20, ge=1, description="normal checks needed before focus is judged")


class CheckFeatures(BaseModel):
    """What one check measured; sent with a fault so an operator sees why."""
    mean: float
    std: float
    focus: float
    focus_ref: Optional[float] = None
    diff: Optional[float] = None
    repeats: Optional[int] = Field(default=None, description="votes among the last (one per key frame) that "
                                                             "repeated a picture of another key frame")
    match: Optional[float] = None


class FaultEvent(BaseModel):
    """A fault raised or cleared. `since_s` is when the condition began (raised) or ended
    (cleared), on the analyser's clock, earlier than `t` by the confirmation checks."""
    model_config = ConfigDict(arbitrary_types_allowed=True)

    camera_id: str
    fault: CameraFault
    state: AlarmState
    t: float
    since_s: float
    features: Optional[CheckFeatures] = None
    occurred_at: Optional[AwareDatetime] = Field(default=None, description="wall-clock time of since_s (UTC)")
    snapshot_jpeg: Optional[bytes] = Field(default=None, repr=False)

    def alarm_detail(self) -> dict:
        """The `detail` of the `camera_fault` alarm (AlarmBody): fault, features and snapshot."""
        detail: dict = {"fault": self.fault.value}
        if self.features is not None:
            detail["features"] = self.features.model_dump(exclude_none=True)
        if self.snapshot_jpeg is not None:
            detail["snapshot_jpeg_b64"] = base64.b64encode(self.snapshot_jpeg).decode("ascii")
        return detail


def small_grey_from_jpeg(jpeg: bytes, width: int = 160, height: int = 90) -> np.ndarray:
    """Decode a JPEG straight to a small grey frame. libjpeg scales by 1/2, 1/4 or 1/8 inside
    the inverse DCT, so a reduced decode skips most of the work of a full one."""
    buf = np.frombuffer(jpeg, np.uint8)
    size = _jpeg_size(jpeg)
    flag = cv2.IMREAD_GRAYSCALE
    if size is not None:
        # The coarsest scale that still gives at least the analysis size.
        for reduced, scale in ((cv2.IMREAD_REDUCED_GRAYSCALE_8, 8), (cv2.IMREAD_REDUCED_GRAYSCALE_4, 4),
                               (cv2.IMREAD_REDUCED_GRAYSCALE_2, 2)):
            if size[0] // scale >= width and size[1] // scale >= height:
                flag = reduced
                break
    grey = cv2.imdecode(buf, flag)
    if grey is None:
        raise ValueError("not a decodable JPEG image")
    return to_small_grey(grey, width, height)


def _jpeg_size(jpeg: bytes) -> Optional[tuple[int, int]]:
    """(width, height) from a JPEG's SOF marker, without decoding."""
    i, n = 2, len(jpeg)
    if jpeg[:2] != b"\xff\xd8":
        return None
    while i + 9 < n:
        if jpeg[i] != 0xFF:
            return None
        marker = jpeg[i + 1]
        length = int.from_bytes(jpeg[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return int.from_bytes(jpeg[i + 7:i + 9], "big"), int.from_bytes(jpeg[i + 5:i + 7], "big")
        i += 2 + length
    return None


def to_small_grey(frame: np.ndarray, width: int = 160, height: int = 90) -> np.ndarray:
    """A BGR or grey frame as the analyser's small grey frame."""
    if frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if frame.shape[1] != width or frame.shape[0] != height:
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    return frame


class CameraHealthAnalyser:
    """One camera's health state machine. At most one fault is active at a time (the most
    basic one explains the rest: a covered lens is also "out of focus"), so the edge agent
    keeps one `camera_fault` alarm per camera."""

    def __init__(self, camera_id: str, config: Optional[HealthConfig] = None):
        self.camera_id = camera_id
        self.config = config or HealthConfig()
        self.active: Optional[CameraFault] = None
        self.active_since: Optional[float] = None
        self._candidate: Optional[CameraFault] = None
        self._candidate_streak = 0
        self._candidate_since = 0.0
        self._ok_streak = 0
        self._ok_since = 0.0
        self._cleared_at: dict[CameraFault, float] = {}
        self._last_frame_t: Optional[float] = None
        self._prev: Optional[np.ndarray] = None
        c = self.config
        # For frozen: per recent key frame (JPEG: picture), its id and the first and the latest
        # pictures seen decoded from it; and the last repeat votes.
        self._recent: deque[tuple[Optional[int], tuple[np.ndarray, ...]]] = deque(maxlen=c.repeat_history)
        self._votes: deque[bool] = deque(maxlen=c.repeat_window)
        # Edges are compared on a coarse frame of whole cells, about half the analysis size.
        self._cell_h = max(2, c.height // 2 // c.grid_rows)
        self._cell_w = max(2, c.width // 2 // c.grid_cols)
        self._ref_frames: deque[np.ndarray] = deque(maxlen=c.reference_frames)
        self._ref_zero_mean: Optional[np.ndarray] = None
        self._ref_energy: Optional[np.ndarray] = None
        self._ref_structured: Optional[np.ndarray] = None
        self._ref_sampled_at: Optional[float] = None
        self._focus: deque[float] = deque(maxlen=c.focus_history)
        self._focus_ref: Optional[float] = None
        self.last_features: Optional[CheckFeatures] = None

    # --- features -----------------------------------------------------------------------------

    def _cell_means(self, image: np.ndarray) -> np.ndarray:
        """Per-cell means of an image the size of the coarse frame: cells are whole pixels,
        so area resizing to the grid averages each cell exactly (and in C)."""
        c = self.config
        return cv2.resize(image, (c.grid_cols, c.grid_rows), interpolation=cv2.INTER_AREA)

    @staticmethod
    def _gradient(image: np.ndarray) -> np.ndarray:
        """Sobel gradient magnitude (L1) of a float image, as spatialGradient gives for uint8."""
        gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
        return cv2.add(cv2.absdiff(gx, 0), cv2.absdiff(gy, 0))

    def _match(self, gradients: tuple[np.ndarray, np.ndarray]) -> Optional[float]:
        """Fraction of the reference's structured cells whose edges are still in place."""
        if self._ref_zero_mean is None or self._ref_structured is None:
            return None
        cur = (np.abs(gradients[0]) + np.abs(gradients[1])).astype(np.float32)
        m = self._cell_means(cur)
        var = self._cell_means(cv2.multiply(cur, cur)) - m * m
        # The reference is zero-mean per cell, so the current cell's mean drops out of the product.
        corr = self._cell_means(cv2.multiply(cur, self._ref_zero_mean)) / (
            np.sqrt(np.maximum(var, 0) * self._ref_energy) + 1e-6)
        return float((corr[self._ref_structured] >= self.config.cell_match_min_corr).mean())

    def _update_reference(self, coarse: np.ndarray, features: CheckFeatures, t: float) -> None:
        c = self.config
        self._focus.append(features.focus)
        if self._ref_sampled_at is not None and t - self._ref_sampled_at < c.reference_every_s:
            return
        self._ref_sampled_at = t
        if len(self._focus) >= c.focus_min_samples:
            self._focus_ref = float(np.median(self._focus))
        # Stored normalised, so that frames from day and infrared share one median.
        self._ref_frames.append((coarse.astype(np.float32) - np.float32(features.mean))
                                / np.float32(max(features.std, 1e-3)))
        k = len(self._ref_frames)
        if k < c.reference_min_frames:
            return
        median = np.partition(np.stack(self._ref_frames), k // 2, axis=0)[k // 2]
        grad = self._gradient(median)
        means = self._cell_means(grad)
        zero_mean = grad - cv2.resize(means, (grad.shape[1], grad.shape[0]), interpolation=cv2.INTER_NEAREST)
        energy = self._cell_means(zero_mean * zero_mean)
        # Cells of bare wall have no edges to move; judge only cells with real structure.
        structured = energy > 0.25 * float(np.median(energy))
        if structured.any():
            self._ref_zero_mean, self._ref_energy, self._ref_structured = zero_mean, energy, structured

    def measure(self, small_grey: np.ndarray) -> tuple[CheckFeatures, np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """Features of one frame, the coarse frame and its gradients (for the reference and
        the edge cells).

        Brightness and edges are taken on a frame halved again (area averaging removes most
        sensor noise for free). Focus is the mean absolute Laplacian at full analysis size
        against the mean edge strength at half size: blur flattens curvature long before it
        lowers the steps between regions, and the ratio of two measures of the same edges
        does not move with brightness, whether the room is dim, lit, or in infrared."""
        c = self.config
        coarse = cv2.resize(small_grey, (self._cell_w * c.grid_cols, self._cell_h * c.grid_rows),
                            interpolation=cv2.INTER_AREA)
        mean, std = (float(v[0, 0]) for v in cv2.meanStdDev(coarse))
        dx, dy = cv2.spatialGradient(coarse)
        edges = np.abs(dx) + np.abs(dy)
        curvature = cv2.resize(np.abs(cv2.Laplacian(small_grey, cv2.CV_16S)), (coarse.shape[1], coarse.shape[0]),
                               interpolation=cv2.INTER_AREA)
        edge_mean, edge_std = (float(v[0, 0]) for v in cv2.meanStdDev(edges))
        strongest = cv2.compare(edges, edge_mean + edge_std, cv2.CMP_GE)
        focus = cv2.mean(curvature, strongest)[0] / (cv2.mean(edges, strongest)[0] + 1.0)
        diff = None if self._prev is None else float(cv2.norm(small_grey, self._prev, cv2.NORM_L1)) / small_grey.size
        features = CheckFeatures(mean=mean, std=std, focus=focus, focus_ref=self._focus_ref, diff=diff)
        return features, coarse, (dx, dy)

    def classify(self, f: CheckFeatures, gradients: tuple[np.ndarray, np.ndarray]) -> Optional[CameraFault]:
        c = self.config
        if f.std < c.covered_max_std:
            return CameraFault.COVERED
        if f.repeats is not None and f.repeats >= c.repeat_min:
            return CameraFault.FROZEN
        if f.focus_ref is not None and f.focus < c.defocus_max_ratio * f.focus_ref:
            return CameraFault.DEFOCUSED
        f.match = self._match(gradients)
        if f.match is not None and f.match < c.displaced_min_match:
            return CameraFault.DISPLACED
        return None

    def _vote_repeat(self, small_grey: np.ndarray, keyframe_id: Optional[int]) -> Optional[int]:
        """Returns the repeats among the last votes, or None before the first vote.

        The first picture seen from each key frame votes whether it repeats a picture of a
        recent other key frame. Later pictures from the same key frame do not vote: they share
        its noise, and alike prove nothing; one key frame unlike the others (the encoder
        trying a new quantiser on a frozen picture) counts once, however long its GOP."""
        if keyframe_id is not None and self._recent and self._recent[-1][0] == keyframe_id:
            self._recent[-1] = (keyframe_id, (self._recent[-1][1][0], small_grey))
        else:
            if self._recent:
                limit = self.config.frozen_max_diff * small_grey.size
                self._votes.append(any(cv2.norm(small_grey, p, cv2.NORM_L1) <= limit
                                       for _, pictures in self._recent for p in pictures))
            self._recent.append((keyframe_id, (small_grey,)))
        return sum(self._votes) if self._votes else None

    # --- state machine --------------------------------------------------------------------------

    def check(self, small_grey: np.ndarray, t: float, keyframe_id: Optional[int] = None) -> list[FaultEvent]:
        """Analyse one frame taken at `t` seconds; returns the events this check decided.

        `keyframe_id` names the key frame an inter-coded picture (H.264, H.265) was decoded
        from, any value that changes with each key frame; None for pictures coded on their own
        (JPEG), which are each independent of the last."""
        c = self.config
        small_grey = to_small_grey(small_grey, c.width, c.height)
        events: list[FaultEvent] = []
        if self.active is CameraFault.OFFLINE:
            events.append(self._clear(t, t, None))
        self._last_frame_t = t
        features, coarse, gradients = self.measure(small_grey)
        if features.std >= c.covered_max_std:  # a flat picture has no noise left to tell by
            features.repeats = self._vote_repeat(small_grey, keyframe_id)
        observed = self.classify(features, gradients)
        self._prev = small_grey
        self.last_features = features
        events += self._observe(observed, t, features)
        if observed is None and self.active is None and self._candidate is None:
            self._update_reference(coarse, features, t)
        return events

    def no_frame(self, t: float) -> list[FaultEvent]:
        """A check found no new frame at `t`: offline once none came for `offline_after_s`."""
        if self._last_frame_t is None:
            self._last_frame_t = t  # the clock starts when the camera is first watched
            return []
        if self.active is CameraFault.OFFLINE or t - self._last_frame_t < self.config.offline_after_s:
            return []
        events = [self._clear(t, t, None)] if self.active is not None else []
        # The first pictures back must not count as frozen against old ones.
        self._prev = None
        self._recent.clear()
        self._votes.clear()
        events.append(self._raise(CameraFault.OFFLINE, t, self._last_frame_t, None))
        return events

    def rebase(self) -> None:
        """Forget the learned view and focus (the camera was deliberately moved or refitted)."""
        self._ref_frames.clear()
        self._ref_zero_mean = self._ref_energy = self._ref_structured = None
        self._ref_sampled_at = None
        self._focus.clear()
        self._focus_ref = None

    def _observe(self, observed: Optional[CameraFault], t: float, features: CheckFeatures) -> list[FaultEvent]:
        c = self.config
        if observed is None or observed == self.active:
            self._candidate, self._candidate_streak = None, 0
            if observed is None and self.active is not None:
                if self._ok_streak == 0:
                    self._ok_since = t
                self._ok_streak += 1
                if self._ok_streak >= c.clear_checks:
                    return [self._clear(t, self._ok_since, features)]
            else:
                self._ok_streak = 0
            return []
        self._ok_streak = 0
        if observed != self._candidate:
            self._candidate, self._candidate_streak, self._candidate_since = observed, 0, t
        self._candidate_streak += 1
        cleared_at = self._cleared_at.get(observed)
        if self._candidate_streak < c.confirm_checks or (cleared_at is not None and t - cleared_at < c.cooldown_s):
            return []
        if observed in PERSISTENT_FAULTS and t - self._candidate_since < c.min_persist_s:
            return []
        events = [self._clear(t, self._candidate_since, features)] if self.active is not None else []
        events.append(self._raise(observed, t, self._candidate_since, features))
        self._candidate, self._candidate_streak = None, 0
        return events

    def _raise(self, fault: CameraFault, t: float, since: float, features: Optional[CheckFeatures]) -> FaultEvent:
        self.active, self.active_since = fault, since
        self._ok_streak = 0
        return FaultEvent(camera_id=self.camera_id, fault=fault, state=AlarmState.ACTIVE, t=t, since_s=since,
                          features=features)

    def _clear(self, t: float, since: float, features: Optional[CheckFeatures]) -> FaultEvent:
        fault = self.active
        assert fault is not None
        self.active, self.active_since = None, None
        self._ok_streak = 0
        self._cleared_at[fault] = t
        return FaultEvent(camera_id=self.camera_id, fault=fault, state=AlarmState.CLEARED, t=t, since_s=since,
                          features=features)
