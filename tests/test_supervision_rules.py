"""The supervision rules as pure functions, at their edges: which fees a 普惠 cap holds and where,
subsidy days and rounding, credit bands, jurisdictions, and the profile data itself (every
checklist item cites its source; 济宁's caps and rates as its plan writes them)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from cloud.api.auth import Principal
from cloud.compliance.profiles import JINING_CENTRAL_CITY, all_profiles, profile_for
from cloud.config import Role
from cloud.registry.records import ClassType, FilingStatus
from cloud.supervision.credit import level_for
from cloud.supervision.export import csv_text
from cloud.supervision.fees import FeeIn, assess, cap_for
from cloud.supervision.scope import Place
from cloud.supervision.subsidies import construction_amount, days_filed, filed_spans, operation_lines
from cloud.supervision.vocabulary import ServiceType

JINING = profile_for("济宁")
SH = ZoneInfo("Asia/Shanghai")


def place(kind: str = "inclusive", district: str = "任城区", city: str = "济宁市") -> Place:
    return Place("F", "园", kind, "山东省", city, district)


@pytest.mark.parametrize("kind, district, service, expected", [
    ("inclusive", "任城区", ServiceType.FULL_DAY, 2500),
    ("inclusive", "兖州区", ServiceType.HALF_DAY, 2500),
    ("public", "太白湖新区", ServiceType.FULL_DAY, 2500),     # 公办 places are 普惠 too
    ("inclusive", "任城区", ServiceType.HOURLY, None),         # not charged by the month
    ("private", "任城区", ServiceType.FULL_DAY, None),         # not 普惠
    ("inclusive", "曲阜市", ServiceType.FULL_DAY, None),       # outside the central city: the county prices it
])
def test_which_fees_a_cap_holds(kind, district, service, expected):
    cap = cap_for(JINING, place(kind, district), ClassType.INFANT, service)
    assert (cap.value if cap else None) == expected


def test_no_caps_where_the_city_sets_none():
    assert cap_for(profile_for("株洲市"), place(city="株洲市", district="天元区"), ClassType.INFANT,
                   ServiceType.FULL_DAY) is None


@pytest.mark.parametrize("class_type, cap", [(ClassType.INFANT, 2500), (ClassType.TODDLER, 1900),
                                             (ClassType.OLDER, 1900), (ClassType.MIXED, 1900)])
def test_cap_edges(class_type, cap):
    fees = [FeeIn(class_type=class_type, service_type=ServiceType.FULL_DAY, amount_yuan=amount,
                  effective_from=date(2026, 1, 1)) for amount in (cap - 1, cap)]
    assert assess(JINING, place(), fees).breaches == 0
    over = assess(JINING, place(), [fees[0].model_copy(update={"amount_yuan": cap + 1})])
    assert over.breaches == 1 and over.fees[0].cap_yuan == cap and "不高于" in over.fees[0].cap_source


def test_days_filed_edges():
    assert days_filed([(date(2026, 1, 1), None)], 2026) == 365
    assert days_filed([(date(2026, 12, 31), None)], 2026) == 1
    assert days_filed([(date(2025, 6, 1), date(2026, 1, 1))], 2026) == 0   # closed as the year began
    assert days_filed([(date(2027, 1, 1), None)], 2026) == 0
    assert days_filed([(date(2020, 3, 1), None)], 2028) == 366            # a leap year
    assert days_filed([(date(2026, 1, 1), date(2026, 2, 1)), (date(2026, 12, 1), None)], 2026) == 31 + 31


def test_operation_and_construction_amounts():
    rates = JINING.subsidies
    full = operation_lines(rates, {ClassType.INFANT: 8, ClassType.TODDLER: 12, ClassType.OLDER: 0}, 365, 2026)
    assert [(x.class_type, x.amount_yuan) for x in full] == [(ClassType.INFANT, 24_000), (ClassType.TODDLER, 24_000)]
    one_day = operation_lines(rates, {ClassType.MIXED: 1}, 1, 2026)
    assert one_day[0].amount_yuan == 5                                     # 2000/365 = 5.48, rounded
    half = operation_lines(rates, {ClassType.INFANT: 1}, 183, 2028)
    assert half[0].amount_yuan == 1500                                     # 3000 * 183/366 exactly
    assert operation_lines(rates, {ClassType.INFANT: 3}, 0, 2026)[0].amount_yuan == 0
    assert construction_amount(rates, 1) == 2000 and construction_amount(rates, 0) == 0


def test_filed_spans_from_acceptances():
    def at(y, m, d, h=12):
        return datetime(y, m, d, h, tzinfo=timezone.utc)
    registered = at(2020, 1, 1)
    assert filed_spans([], FilingStatus.FILED, registered, SH) == [(date(2020, 1, 1), None)]
    assert filed_spans([], FilingStatus.UNFILED, registered, SH) == []
    # accepted at 20:00 UTC is the next local day in Shanghai
    periods = [("initial", at(2026, 3, 1, 20)), ("closure", at(2026, 6, 1)), ("initial", at(2026, 9, 1))]
    assert filed_spans(periods, FilingStatus.FILED, registered, SH) == [
        (date(2026, 3, 2), date(2026, 6, 1)), (date(2026, 9, 1), None)]


@pytest.mark.parametrize("score, level", [(100, "A"), (90, "A"), (89, "B"), (75, "B"), (74, "C"), (60, "C"), (59, "D")])
def test_credit_bands(score, level):
    assert level_for(score) == level


def test_jurisdictions():
    city = Principal("u", Role.HEALTH, jurisdiction="山东省/济宁市")
    district = Principal("u", Role.SUPERVISOR, jurisdiction="山东省/济宁市/任城区")
    assert city.covers("山东省", "济宁市", "兖州区") and not city.covers("湖南省", "株洲市", "天元区")
    assert district.covers("山东省", "济宁市", "任城区") and not district.covers("山东省", "济宁市", "兖州区")
    assert Principal("u", Role.ADMIN).covers("湖南省", "株洲市", "天元区")


def test_profile_data_cites_its_sources():
    for profile in all_profiles():
        ids = [i.item_id for i in profile.checklist]
        assert len(ids) == len(set(ids)), profile.name
        assert all(i.source and i.text and i.area for i in profile.checklist), profile.name
        assert {"消防", "安全", "饮食", "卫生保健", "保育规范", "收费价格"} <= {i.area for i in profile.checklist}
    caps = JINING.fee_caps
    assert {k: v.value for k, v in caps.monthly_yuan.items()} == {
        ClassType.INFANT: 2500, ClassType.TODDLER: 1900, ClassType.OLDER: 1900, ClassType.MIXED: 1900}
    assert set(caps.districts) == set(JINING_CENTRAL_CITY) and "中心城区" in caps.monthly_yuan[ClassType.INFANT].source
    rates = JINING.subsidies
    assert rates.construction_per_place.value == 2000 and "经验收合格后" in rates.construction_per_place.source
    assert {k: v.value for k, v in rates.operation_per_child_year.items()} == {
        ClassType.INFANT: 3000, ClassType.TODDLER: 2000, ClassType.OLDER: 2000, ClassType.MIXED: 2000}
    assert profile_for(None).fee_caps is None and profile_for(None).subsidies is None


def test_csv_cells_never_run_as_formulas():
    text = csv_text(("名称", "金额"), [("=HYPERLINK(\"http://x\")", -5), ("+1", "@SUM(A1)"), ("托育园", 1900)])
    lines = text.splitlines()
    assert lines[1] == "\"'=HYPERLINK(\"\"http://x\"\")\",'-5" and lines[2] == "'+1,'@SUM(A1)"
    assert lines[3] == "托育园,1900"
