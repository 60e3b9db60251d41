"""Simulated sensors as pure models: what a sensor reads or reports at a given time.

No I/O here: `value_at(t)` and `events_between(t0, t1)` depend only on the time, the
seed and the injected fault, so the same call always gives the same answer and the
models are tested without a broker (device_io.py publishes what they produce).

Time of day is the nursery's local time (China has one zone, UTC+8, no daylight saving)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Callable, Optional

from pydantic import AwareDatetime, BaseModel, ConfigDict

from contracts.device import DeviceEventKind

CHINA_TZ = timezone(timedelta(hours=8), "CST")
# Children are in the rooms from 8:00 to 17:00 (local); CO2 and motion follow them.
OCCUPIED_FROM_H = 8.0
OCCUPIED_TO_H = 17.0


def hour_of_day(t: datetime, tz: timezone = CHINA_TZ) -> float:
    local = t.astimezone(tz)
    return local.hour + local.minute / 60 + (local.second + local.microsecond / 1e6) / 3600


# Daily curves: smooth functions of the local hour, periodic over 24 h.

def temperature_curve(hour: float) -> float:
    """Indoor nursery, heated or cooled to 20-24 °C: coolest before dawn, warmest mid-afternoon."""
    return 22.0 + 1.5 * math.cos(2 * math.pi * (hour - 15.0) / 24)


def humidity_curve(hour: float) -> float:
    """Relative humidity (%) moves against temperature: 44-56 %."""
    return 50.0 - 6.0 * math.cos(2 * math.pi * (hour - 15.0) / 24)


_CO2_OUTDOOR = 450.0      # ppm with the rooms empty
_CO2_OCCUPIED_RISE = 700.0  # ppm above outdoor that a full room approaches
_CO2_RISE_H = 2.5         # time constant of the rise while occupied
_CO2_DECAY_H = 1.5        # time constant of the ventilation after everyone has left


def co2_curve(hour: float) -> float:
    """CO2 (ppm): outdoor level at night, rising while children are in (8:00-17:00), decaying after."""
    occupied_h = OCCUPIED_TO_H - OCCUPIED_FROM_H
    if OCCUPIED_FROM_H <= hour < OCCUPIED_TO_H:
        return _CO2_OUTDOOR + _CO2_OCCUPIED_RISE * (1 - math.exp(-(hour - OCCUPIED_FROM_H) / _CO2_RISE_H))
    peak = _CO2_OCCUPIED_RISE * (1 - math.exp(-occupied_h / _CO2_RISE_H))
    since_left = (hour - OCCUPIED_TO_H) % 24
    return _CO2_OUTDOOR + peak * math.exp(-since_left / _CO2_DECAY_H)


def seeded_noise(seed: int, name: str, t: datetime) -> float:
    """Uniform in [-1, 1], fixed for a (seed, name, millisecond): a reading repeated at the same
    instant reads the same, and two sensors with different seeds do not move together."""
    # random.Random seeded with a str hashes it with SHA-512: stable across processes,
    # unlike hash(), which PYTHONHASHSEED randomises.
    return random.Random(f"{seed}/{name}/{math.floor(t.timestamp() * 1000)}").uniform(-1.0, 1.0)


@dataclass(frozen=True)
class Metric:
    """One measured quantity. `valid_min`..`valid_max` is what a real sensor of this kind can
    report; the out_of_range fault reports `out_of_range_value`, beyond it."""
    name: str
    unit: str
    curve: Callable[[float], float]
    noise: float
    valid_min: float
    valid_max: float
    out_of_range_value: float
    drift_per_hour: float
    decimals: int


METRICS: dict[str, Metric] = {
    "temperature": Metric("temperature", "°C", temperature_curve, noise=0.2, valid_min=-10.0, valid_max=50.0,
                          out_of_range_value=60.0, drift_per_hour=0.5, decimals=2),
    "humidity": Metric("humidity", "%", humidity_curve, noise=1.0, valid_min=0.0, valid_max=100.0,
                       out_of_range_value=120.0, drift_per_hour=2.0, decimals=1),
    "co2": Metric("co2", "ppm", co2_curve, noise=15.0, valid_min=0.0, valid_max=5000.0,
                  out_of_range_value=10000.0, drift_per_hour=50.0, decimals=0),
}


class FaultKind(str, Enum):
    STUCK = "stuck"                # keeps reporting the value it had when the fault began
    DRIFT = "drift"                # reads off by drift_per_hour × hours since the fault began
    DROPOUT = "dropout"            # stops sending readings or events (the link stays up)
    OUT_OF_RANGE = "out_of_range"  # reports a value no healthy sensor can (e.g. 60 °C)


class Fault(BaseModel):
    """A fault injected into a sensor from `since` on. `drift_per_hour` and `value` override the
    metric's defaults for drift and for stuck/out_of_range."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    since: AwareDatetime
    drift_per_hour: Optional[float] = None
    value: Optional[float] = None


@dataclass(frozen=True)
class AnalogueSensor:
    """A temperature, humidity or CO2 sensor: its reading is a pure function of time."""
    metric: Metric
    seed: int = 0
    fault: Optional[Fault] = None
    tz: timezone = CHINA_TZ

    def base_at(self, t: datetime) -> float:
        """The daily curve alone, without noise or fault."""
        return self.metric.curve(hour_of_day(t, self.tz))

    def healthy_value_at(self, t: datetime) -> float:
        noisy = self.base_at(t) + self.metric.noise * seeded_noise(self.seed, self.metric.name, t)
        return round(noisy, self.metric.decimals)

    def value_at(self, t: datetime) -> Optional[float]:
        """What the sensor reports at `t`; None when it sends nothing (dropout)."""
        f = self.fault
        if f is None or t < f.since:
            return self.healthy_value_at(t)
        if f.kind is FaultKind.DROPOUT:
            return None
        if f.kind is FaultKind.STUCK:
            return f.value if f.value is not None else self.healthy_value_at(f.since)
        if f.kind is FaultKind.OUT_OF_RANGE:
            return f.value if f.value is not None else self.metric.out_of_range_value
        rate = f.drift_per_hour if f.drift_per_hour is not None else self.metric.drift_per_hour
        hours = (t - f.since).total_seconds() / 3600
        return round(self.healthy_value_at(t) + rate * hours, self.metric.decimals)

    def with_fault(self, fault: Optional[Fault]) -> "AnalogueSensor":
        return replace(self, fault=fault)


class EventSensorKind(str, Enum):
    SMOKE = "smoke"
    DOOR = "door"
    PIR = "pir"


# Probability of one activity per minute by local hour: doors are busy at drop-off and pick-up,
# motion follows the children; at night a healthy building is still. Smoke only when triggered.
def _door_rate(hour: float) -> float:
    if 7.5 <= hour < 9.0 or 16.5 <= hour < 18.0:
        return 0.25
    if 9.0 <= hour < 16.5:
        return 0.03
    return 0.0


def _pir_rate(hour: float) -> float:
    return 0.6 if OCCUPIED_FROM_H <= hour < OCCUPIED_TO_H else 0.0


_RATES: dict[EventSensorKind, Callable[[float], float]] = {
    EventSensorKind.DOOR: _door_rate,
    EventSensorKind.PIR: _pir_rate,
    EventSensorKind.SMOKE: lambda hour: 0.0,
}

# Faults that make sense for a contact that only reports changes.
EVENT_SENSOR_FAULTS = frozenset({FaultKind.STUCK, FaultKind.DROPOUT})


@dataclass(frozen=True)
class EventSensor:
    """A smoke detector, door contact or PIR: reports changes as events at seeded times.

    Each minute of the day independently holds at most one activity (a door opened and closed
    within the minute, or one motion), so any window of time can be computed on its own."""
    kind: EventSensorKind
    seed: int = 0
    fault: Optional[Fault] = None
    tz: timezone = CHINA_TZ

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault.kind not in EVENT_SENSOR_FAULTS:
            raise ValueError(f"fault {self.fault.kind.value!r} does not apply to a {self.kind.value} sensor "
                             f"(it has no reading); use one of {sorted(k.value for k in EVENT_SENSOR_FAULTS)}")

    def silenced_at(self, t: datetime) -> bool:
        """A stuck contact reports no change and a dropped-out one nothing at all."""
        return self.fault is not None and t >= self.fault.since

    def dropped_out_at(self, t: datetime) -> bool:
        """Dropped out: no heartbeats either (a stuck contact still sends them)."""
        return self.fault is not None and self.fault.kind is FaultKind.DROPOUT and t >= self.fault.since

    def events_between(self, t0: datetime, t1: datetime) -> list[tuple[datetime, DeviceEventKind]]:
        """Events with t0 <= ts < t1, in time order."""
        out: list[tuple[datetime, DeviceEventKind]] = []
        rate_at = _RATES[self.kind]
        for minute in range(math.floor(t0.timestamp() / 60), math.floor(t1.timestamp() / 60) + 1):
            start = datetime.fromtimestamp(minute * 60, timezone.utc)
            rng = random.Random(f"{self.seed}/{self.kind.value}/{minute}")
            if rng.random() >= rate_at(hour_of_day(start, self.tz)):
                continue
            at = start + timedelta(seconds=rng.uniform(0, 40))
            if self.kind is EventSensorKind.DOOR:
                # Closed within the same minute, so a window never sees a close without its open.
                batch = [(at, DeviceEventKind.DOOR_OPEN),
                         (at + timedelta(seconds=rng.uniform(3, 20)), DeviceEventKind.DOOR_CLOSE)]
            else:
                batch = [(at, DeviceEventKind.MOTION)]
            out += [(ts, ev) for ts, ev in batch if t0 <= ts < t1 and not self.silenced_at(ts)]
        return out

    def with_fault(self, fault: Optional[Fault]) -> "EventSensor":
        return replace(self, fault=fault)
