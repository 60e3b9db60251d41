"""The care and health rules as pure functions of facts, a profile and `now`: morning checks
missing by their deadline, symptom clusters, room climate against GB/T 18883 with sustained
breaches, certificate expiry, and the monthly alarm drill ledger.

No I/O here: cloud.care.health_runner and cloud.compliance.rules read the store and apply the answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Iterable, Optional, Sequence
from zoneinfo import ZoneInfo

from cloud.compliance.profiles import CareRules, ClimateRules


class Symptom(str, Enum):
    FEVER = "fever"
    COUGH = "cough"
    RASH = "rash"
    VOMITING = "vomiting"
    DIARRHOEA = "diarrhoea"
    EYE_REDNESS = "eye_redness"
    HFMD_SIGNS = "hfmd_signs"  # hand-foot-mouth disease signs (手足口病)


class CheckKind(str, Enum):
    MORNING = "morning"
    NOON = "noon"


class CertificateStatus(str, Enum):
    OK = "ok"
    EXPIRING = "expiring"
    EXPIRED = "expired"


class ClimateMetric(str, Enum):
    TEMPERATURE = "temperature"
    HUMIDITY = "humidity"
    CO2 = "co2"


# --- morning checks ---------------------------------------------------------------------------
def local_day(ts: datetime, care: CareRules) -> date:
    return ts.astimezone(ZoneInfo(care.timezone)).date()


def morning_deadline(day: date, care: CareRules) -> datetime:
    return datetime.combine(day, care.morning_deadline_time, tzinfo=ZoneInfo(care.timezone))


def morning_check_missing(children: int, first_morning_check: Optional[datetime], day: date, now: datetime,
                          care: CareRules) -> bool:
    """A class with children whose first morning check of `day` was not recorded by the deadline
    (a check at the deadline itself counts), once the deadline has passed."""
    deadline = morning_deadline(day, care)
    if children <= 0 or now <= deadline:
        return False
    return first_morning_check is None or first_morning_check > deadline


def day_to_judge(now: datetime, care: CareRules) -> Optional[date]:
    """The latest care day whose morning deadline has passed (today after 10:00, else the care day
    before), looking back a week at most."""
    today = local_day(now, care)
    for back in range(8):
        day = today - timedelta(days=back)
        if day.weekday() in care.care_weekdays and now > morning_deadline(day, care):
            return day
    return None


def symptoms_of(symptoms: Iterable[Symptom], temperature_c: Optional[float], care: CareRules) -> set[Symptom]:
    """The symptoms a check records: those ticked, and fever whenever the temperature reaches the threshold."""
    found = set(symptoms)
    if temperature_c is not None and temperature_c >= care.fever_c:
        found.add(Symptom.FEVER)
    return found


# --- symptom clusters -------------------------------------------------------------------------
@dataclass(frozen=True)
class SymptomObservation:
    facility: str
    class_id: str
    child_ref: str
    symptom: Symptom
    at: datetime


@dataclass(frozen=True)
class Cluster:
    facility: str
    class_id: str
    symptom: Symptom
    count: int            # distinct children, never who they are
    first_at: datetime
    last_at: datetime

    @property
    def source(self) -> str:
        return f"{self.class_id}/{self.symptom.value}"


def active_clusters(observations: Iterable[SymptomObservation], at: datetime, *, window: timedelta,
                    threshold: int) -> list[Cluster]:
    """Per (facility, class, symptom): the distinct children observed in [at - window, at], both
    ends included, when there are at least `threshold` of them."""
    start = at - window
    groups: dict[tuple[str, str, Symptom], dict[str, datetime]] = {}
    for o in observations:
        if start <= o.at <= at:
            first = groups.setdefault((o.facility, o.class_id, o.symptom), {})
            first[o.child_ref] = min(first.get(o.child_ref, o.at), o.at)
    out = []
    for (facility, class_id, symptom), children in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1],
                                                                                            kv[0][2].value)):
        if len(children) >= threshold:
            times = sorted(children.values())
            out.append(Cluster(facility, class_id, symptom, len(children), times[0], times[-1]))
    return out


def clusters_for(observations: Sequence[SymptomObservation], at: datetime, care: CareRules) -> list[Cluster]:
    return active_clusters(observations, at, window=timedelta(hours=care.cluster_window_h),
                           threshold=care.cluster_threshold)


# --- room climate -----------------------------------------------------------------------------
def climate_limits(metric: str, ts: datetime, climate: ClimateRules,
                   tz: str) -> Optional[tuple[Optional[float], Optional[float]]]:
    """(low, high) for `metric` at `ts` (the season by local date); None when nothing applies."""
    if metric == ClimateMetric.HUMIDITY.value:
        return climate.humidity_pct
    if metric == ClimateMetric.CO2.value:
        return (None, climate.co2_ppm_max)
    if metric == ClimateMetric.TEMPERATURE.value:
        local = ts.astimezone(ZoneInfo(tz))
        for season in climate.seasons:
            if season.holds(local.month, local.day):
                return season.temperature_c
    return None


def in_range(value: float, limits: tuple[Optional[float], Optional[float]]) -> bool:
    low, high = limits
    return (low is None or value >= low) and (high is None or value <= high)


@dataclass(frozen=True)
class ClimateState:
    latest: float
    latest_ts: datetime
    limit_low: Optional[float]
    limit_high: Optional[float]
    in_range: bool
    breach_since: Optional[datetime]  # first reading of the current unbroken run out of range
    sustained: bool                   # that run has lasted at least the profile's duration


def climate_state(metric: str, readings: Sequence[tuple[datetime, float]], climate: ClimateRules,
                  tz: str) -> Optional[ClimateState]:
    """The state of one sensor's metric from its readings (ascending by time). A breach is
    sustained when every reading from `breach_since` to the latest is out of range and they span
    at least `sustained_s`: one reading out of range is never enough."""
    if not readings:
        return None
    latest_ts, latest = readings[-1]
    limits = climate_limits(metric, latest_ts, climate, tz)
    if limits is None:
        return None
    since = None
    for ts, value in reversed(readings):
        lim = climate_limits(metric, ts, climate, tz)
        if lim is None or in_range(value, lim):
            break
        since = ts
    sustained = since is not None and (latest_ts - since).total_seconds() >= climate.sustained_s
    return ClimateState(latest=latest, latest_ts=latest_ts, limit_low=limits[0], limit_high=limits[1],
                        in_range=since is None, breach_since=since, sustained=sustained)


# --- certificates -----------------------------------------------------------------------------
def certificate_status(expires_on: date, today: date, warning_days: int) -> CertificateStatus:
    """Expired the day after `expires_on`; expiring from `warning_days` days before it."""
    if expires_on < today:
        return CertificateStatus.EXPIRED
    if (expires_on - today).days <= warning_days:
        return CertificateStatus.EXPIRING
    return CertificateStatus.OK


# --- alarm drill ledger -----------------------------------------------------------------------
Month = tuple[int, int]


def months_to_judge(registered_at: datetime, now: datetime, tz: str, *, most: int = 12) -> list[Month]:
    """Complete local calendar months after the one the facility registered in, up to `most` of
    the latest: a month still running, or one the facility was not registered for all of, is not judged."""
    zone = ZoneInfo(tz)
    start = registered_at.astimezone(zone)
    cur = now.astimezone(zone)
    months = []
    y, m = cur.year, cur.month
    for _ in range(most):
        y, m = (y, m - 1) if m > 1 else (y - 1, 12)
        if (y, m) <= (start.year, start.month):
            break
        months.append((y, m))
    return sorted(months)


def drill_ledger(keys: Sequence[str], drills: Iterable[tuple[datetime, Optional[str]]], months: Sequence[Month],
                 tz: str) -> dict[str, dict[str, int]]:
    """Drills delivered to the police per key (a button, or the facility when it has none) and
    month ("YYYY-MM"). A drill counts for the button it names; with no buttons every drill counts."""
    zone = ZoneInfo(tz)
    ledger = {k: {f"{y:04d}-{m:02d}": 0 for y, m in months} for k in keys}
    for ts, key in drills:
        local = ts.astimezone(zone)
        month = f"{local.year:04d}-{local.month:02d}"
        target = key if key in ledger else (keys[0] if len(keys) == 1 and keys[0] == FACILITY_KEY else None)
        if target is not None and month in ledger[target]:
            ledger[target][month] += 1
    return ledger


FACILITY_KEY = "facility"


def missing_drills(ledger: dict[str, dict[str, int]]) -> list[tuple[str, str]]:
    return [(key, month) for key, months in sorted(ledger.items()) for month, n in sorted(months.items()) if n == 0]
