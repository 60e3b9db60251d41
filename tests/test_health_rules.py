"""The care and health rules on their edges: the 10:00 deadline, the 48-hour cluster window at
exactly 48 h, sustained climate breaches just under and at the duration, seasons, certificate
expiry, and the drill ledger's judged months."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from cloud.care.health_rules import (CertificateStatus, Symptom, SymptomObservation, active_clusters, certificate_status,
                                climate_state, day_to_judge, drill_ledger, missing_drills, months_to_judge,
                                morning_check_missing, symptoms_of)
from cloud.compliance.profiles import NATIONAL

SH = ZoneInfo("Asia/Shanghai")
CARE = NATIONAL.care
CLIMATE = NATIONAL.climate
DAY = date(2026, 6, 15)  # a Monday
TEN = datetime(2026, 6, 15, 10, 0, tzinfo=SH)
US = timedelta(microseconds=1)


def test_morning_check_deadline_at_ten_local():
    assert not morning_check_missing(5, None, DAY, TEN, CARE)          # at 10:00 the deadline has not passed
    assert morning_check_missing(5, None, DAY, TEN + US, CARE)
    assert not morning_check_missing(5, TEN, DAY, TEN + US, CARE)      # a check at 10:00 still counts
    assert morning_check_missing(5, TEN + US, DAY, TEN + timedelta(hours=1), CARE)
    assert not morning_check_missing(0, None, DAY, TEN + US, CARE)     # no children, nothing to check
    # 02:00 UTC is 10:00 in Shanghai: the zone is the profile's, not UTC.
    assert morning_check_missing(5, None, DAY, datetime(2026, 6, 15, 2, 0, 1, tzinfo=timezone.utc), CARE)
    assert day_to_judge(TEN + US, CARE) == DAY
    assert day_to_judge(TEN, CARE) == date(2026, 6, 12)                # before the deadline: last Friday


def obs(child: str, at: datetime, symptom=Symptom.RASH, class_id="c1") -> SymptomObservation:
    return SymptomObservation("F", class_id, child, symptom, at)


def test_cluster_window_is_exactly_48_hours():
    t0 = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)
    three = [obs("a", t0), obs("b", t0 + timedelta(hours=24)), obs("c", t0 + timedelta(hours=48))]
    [cluster] = active_clusters(three, t0 + timedelta(hours=48), window=timedelta(hours=48), threshold=3)
    assert (cluster.count, cluster.first_at, cluster.last_at, cluster.source) == (3, t0, t0 + timedelta(hours=48),
                                                                                  "c1/rash")
    assert active_clusters(three, t0 + timedelta(hours=48) + US, window=timedelta(hours=48), threshold=3) == []
    # Two children only, or the same child twice, or another class or symptom: no cluster.
    at = t0 + timedelta(hours=30)
    assert active_clusters([obs("a", t0), obs("b", t0), obs("a", at)], at, window=timedelta(hours=48), threshold=3) == []
    mixed = [obs("a", t0), obs("b", t0), obs("c", t0, class_id="c2"), obs("d", t0, symptom=Symptom.COUGH)]
    assert active_clusters(mixed, at, window=timedelta(hours=48), threshold=3) == []


def test_fever_from_temperature():
    assert symptoms_of([], 37.3, CARE) == {Symptom.FEVER}
    assert symptoms_of([Symptom.COUGH], 37.29, CARE) == {Symptom.COUGH}


def series(start: datetime, values: list[float], step_s: float = 60) -> list[tuple[datetime, float]]:
    return [(start + timedelta(seconds=i * step_s), v) for i, v in enumerate(values)]


def test_sustained_breach_needs_the_whole_duration():
    start = datetime(2026, 7, 1, 1, 0, tzinfo=timezone.utc)  # cooling season: 22-28 °C
    assert CLIMATE.sustained_s == 900
    under = series(start, [25.0] + [29.0] * 15)   # out of range for 14 minutes
    state = climate_state("temperature", under, CLIMATE, CARE.timezone)
    assert (state.in_range, state.sustained, state.breach_since) == (False, False, start + timedelta(minutes=1))
    at = series(start, [25.0] + [29.0] * 16)      # 15 minutes
    assert climate_state("temperature", at, CLIMATE, CARE.timezone).sustained
    broken = series(start, [29.0] * 8 + [27.0] + [29.0] * 8)  # one reading back in range restarts the run
    assert not climate_state("temperature", broken, CLIMATE, CARE.timezone).sustained
    assert climate_state("temperature", series(start, [28.0] * 20), CLIMATE, CARE.timezone).in_range


def test_seasons_humidity_and_co2_limits():
    winter = datetime(2026, 1, 10, 2, 0, tzinfo=timezone.utc)
    state = climate_state("temperature", [(winter, 16.0)], CLIMATE, CARE.timezone)
    assert (state.limit_low, state.limit_high, state.in_range) == (16.0, 24.0, True)
    assert not climate_state("temperature", [(winter, 15.9)], CLIMATE, CARE.timezone).in_range
    # 15 March is the last heating day, 16 March the first cooling day (local dates).
    assert climate_state("temperature", [(datetime(2026, 3, 15, 12, tzinfo=SH), 20.0)], CLIMATE, CARE.timezone).in_range
    assert not climate_state("temperature", [(datetime(2026, 3, 16, 0, tzinfo=SH), 20.0)], CLIMATE,
                             CARE.timezone).in_range
    assert climate_state("co2", [(winter, 1000.0)], CLIMATE, CARE.timezone).in_range
    assert not climate_state("co2", [(winter, 1001.0)], CLIMATE, CARE.timezone).in_range
    assert climate_state("humidity", [(winter, 30.0)], CLIMATE, CARE.timezone).in_range
    assert not climate_state("humidity", [(winter, 80.1)], CLIMATE, CARE.timezone).in_range
    assert climate_state("pressure", [(winter, 1.0)], CLIMATE, CARE.timezone) is None


def test_certificate_expiry_edges():
    today = date(2026, 6, 15)
    assert certificate_status(today + timedelta(days=31), today, 30) is CertificateStatus.OK
    assert certificate_status(today + timedelta(days=30), today, 30) is CertificateStatus.EXPIRING
    assert certificate_status(today, today, 30) is CertificateStatus.EXPIRING
    assert certificate_status(today - timedelta(days=1), today, 30) is CertificateStatus.EXPIRED


def test_drill_ledger_judges_complete_months_only():
    registered = datetime(2026, 3, 20, tzinfo=SH)
    now = datetime(2026, 6, 15, tzinfo=SH)
    months = months_to_judge(registered, now, CARE.timezone)
    assert months == [(2026, 4), (2026, 5)]  # not March (partly registered), not June (still running)
    assert months_to_judge(now, now, CARE.timezone) == []
    drills = [(datetime(2026, 4, 30, 23, 30, tzinfo=SH), "btn-1"),   # the last evening of April
              (datetime(2026, 5, 1, 0, 30, tzinfo=SH), "btn-1"),    # 16:30 UTC on 30 April: May locally
              (datetime(2026, 5, 2, tzinfo=SH), "other")]
    ledger = drill_ledger(["btn-1", "btn-2"], drills, months, CARE.timezone)
    assert ledger == {"btn-1": {"2026-04": 1, "2026-05": 1}, "btn-2": {"2026-04": 0, "2026-05": 0}}
    assert missing_drills(ledger) == [("btn-2", "2026-04"), ("btn-2", "2026-05")]
    facility = drill_ledger(["facility"], drills, months, CARE.timezone)
    assert missing_drills(facility) == []
