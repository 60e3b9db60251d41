"""The annual report upward (济宁: 每年将辖区内婴幼儿照护服务发展工作情况报市卫生健康委), per district and
year: facilities and places, places per 1,000 against the target, 普惠 share, inspections and
findings with the rectification rate, hazards and incidents, alarms and police response times,
subsidies; as figures (JSON), as an XLSX workbook and as a printable page."""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import Optional
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Font
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from cloud.alarms.lifecycle import response_times
from cloud.compliance.profiles import profile_for
from cloud.registry.records import FilingStatus
from cloud.registry.statistics import PUHUI_KINDS, places_by_district
from cloud.store.db import classes, facilities
from cloud.supervision.credit import credit_record
from cloud.supervision.inspections import FindingStatus
from cloud.supervision.subsidies import subsidy_report
from cloud.supervision.tables import finding_events, findings, incidents, inspections


class AnnualFigures(BaseModel):
    district: str = Field(description="province/city/district")
    year: int
    facilities: int = Field(description="registered and not closed")
    filed_facilities: int
    places: int
    enrolled: int
    population: Optional[int]
    places_per_1000: Optional[float]
    places_target: Optional[float]
    places_target_source: Optional[str]
    puhui_places: int
    puhui_share: Optional[float] = Field(description="0-1")
    inspections: int = Field(description="inspections made in the year")
    findings: int = Field(description="findings raised in the year")
    findings_rectified: int = Field(description="of those, rectified and accepted")
    rectification_rate: Optional[float] = Field(description="findings_rectified / findings, 0-1")
    rectifications_overdue: int = Field(description="escalations of overdue rectification in the year")
    hazards: int
    incidents: int
    children_affected: int = Field(description="children affected by the incidents (a count)")
    alarms: int = Field(description="alarms raised in the year, drills excluded")
    alarms_acknowledged: int
    ack_median_s: Optional[float]
    ack_p90_s: Optional[float]
    dispatch_median_s: Optional[float]
    subsidy_construction_yuan: int
    subsidy_operation_yuan: int
    subsidy_total_yuan: int


class AnnualFacilityRow(BaseModel):
    facility: str
    name: str
    filing_status: FilingStatus
    filing_number: Optional[str]
    puhui: bool
    places: int
    enrolled: int
    inspections: int
    findings: int
    findings_rectified: int
    incidents: int
    credit_score: int
    credit_level: str
    subsidy_yuan: int


class AnnualReport(BaseModel):
    figures: AnnualFigures
    facilities: list[AnnualFacilityRow]
    generated_at: datetime


def _ratio(a: int, b: int, digits: int = 4) -> Optional[float]:
    return round(a / b, digits) if b else None


def annual_report(conn: Connection, province: str, city: str, district: str, year: int,
                  now: datetime) -> AnnualReport:
    tz = ZoneInfo(profile_for(city).care.timezone)
    since, until = datetime(year, 1, 1, tzinfo=tz), datetime(year + 1, 1, 1, tzinfo=tz)
    path = f"{province}/{city}/{district}"
    f, c = facilities.c, classes.c
    fac_rows = conn.execute(select(f.facility_id, f.name, f.kind, f.filing_status, f.filing_number)
                            .where(f.province == province, f.city == city, f.district == district,
                                   f.filing_status != FilingStatus.REVOKED.value)
                            .order_by(f.facility_id)).all()
    ids = [r.facility_id for r in fac_rows]
    cap: dict[str, tuple[int, int]] = {}
    if ids:
        cap = {fid: (int(p or 0), int(e or 0)) for fid, p, e in conn.execute(
            select(c.facility, func.sum(c.places), func.sum(c.enrolled)).where(c.facility.in_(ids)).group_by(c.facility))}

    def per_facility(query) -> dict[str, int]:
        return {fid: int(n) for fid, n in conn.execute(query)} if ids else {}

    i, g, e, r = inspections.c, findings.c, finding_events.c, incidents.c
    n_insp = per_facility(select(i.facility, func.count()).where(
        i.facility.in_(ids), i.inspected_on >= date(year, 1, 1), i.inspected_on < date(year + 1, 1, 1))
        .group_by(i.facility))
    raised = (g.facility.in_(ids), g.created_at >= since, g.created_at < until)
    n_find = per_facility(select(g.facility, func.count()).where(*raised).group_by(g.facility))
    n_done = per_facility(select(g.facility, func.count()).where(*raised, g.status == FindingStatus.RECTIFIED.value)
                          .group_by(g.facility))
    n_inc = per_facility(select(r.facility, func.count()).where(
        r.facility.in_(ids), r.kind == "incident", r.occurred_at >= since, r.occurred_at < until).group_by(r.facility))
    overdue = conn.execute(select(func.count()).select_from(finding_events).join(findings, g.finding_id == e.finding_id)
                           .where(g.facility.in_(ids), e.step == "escalated", e.at >= since, e.at < until)
                           ).scalar_one() if ids else 0
    (hazards, _), (incident_count, children) = [
        conn.execute(select(func.count(), func.coalesce(func.sum(r.children_affected), 0))
                     .where(r.facility.in_(ids), r.kind == kind, r.occurred_at >= since, r.occurred_at < until)
                     ).one() if ids else (0, 0)
        for kind in ("hazard", "incident")]
    subsidies = subsidy_report(conn, year, jurisdiction=path)
    by_line = {x.facility: x for x in subsidies.lines}
    places = next((p for p in places_by_district(conn, city=city) if p.district == path), None)
    response = next((x for x in response_times(conn, since=since, until=until, city=city)
                     if (x.province, x.district) == (province, district)), None)
    rows = []
    for fr in fac_rows:
        credit = credit_record(conn, fr.facility_id, fr.name)
        p, en = cap.get(fr.facility_id, (0, 0))
        rows.append(AnnualFacilityRow(
            facility=fr.facility_id, name=fr.name, filing_status=fr.filing_status, filing_number=fr.filing_number,
            puhui=fr.kind in PUHUI_KINDS, places=p, enrolled=en, inspections=n_insp.get(fr.facility_id, 0),
            findings=n_find.get(fr.facility_id, 0), findings_rectified=n_done.get(fr.facility_id, 0),
            incidents=n_inc.get(fr.facility_id, 0), credit_score=credit.score, credit_level=credit.level,
            subsidy_yuan=by_line[fr.facility_id].total_yuan if fr.facility_id in by_line else 0))
    found, done = sum(n_find.values()), sum(n_done.values())
    district_sub = next((d for d in subsidies.districts if d.district == path), None)
    figures = AnnualFigures(
        district=path, year=year, facilities=len(rows),
        filed_facilities=sum(1 for x in rows if x.filing_status is FilingStatus.FILED),
        places=sum(x.places for x in rows), enrolled=sum(x.enrolled for x in rows),
        population=places.population if places else None,
        places_per_1000=places.places_per_1000 if places else None,
        places_target=places.target if places else None,
        places_target_source=places.target_source if places else None,
        puhui_places=sum(x.places for x in rows if x.puhui),
        puhui_share=_ratio(sum(x.places for x in rows if x.puhui), sum(x.places for x in rows)),
        inspections=sum(n_insp.values()), findings=found, findings_rectified=done,
        rectification_rate=_ratio(done, found), rectifications_overdue=int(overdue),
        hazards=int(hazards), incidents=int(incident_count), children_affected=int(children),
        alarms=response.alarms if response else 0, alarms_acknowledged=response.acknowledged if response else 0,
        ack_median_s=response.ack_median_s if response else None, ack_p90_s=response.ack_p90_s if response else None,
        dispatch_median_s=response.dispatch_median_s if response else None,
        subsidy_construction_yuan=district_sub.construction_yuan if district_sub else 0,
        subsidy_operation_yuan=district_sub.operation_yuan if district_sub else 0,
        subsidy_total_yuan=district_sub.total_yuan if district_sub else 0)
    return AnnualReport(figures=figures, facilities=rows, generated_at=now)


# The workbook's labels, in the order of AnnualFigures; the printable page uses the same words.
FIGURE_LABELS = {
    "district": "区县", "year": "年度", "facilities": "托育机构数", "filed_facilities": "已备案机构数", "places": "托位数",
    "enrolled": "在托人数", "population": "常住人口", "places_per_1000": "每千人口托位数", "places_target": "每千人口托位目标",
    "places_target_source": "目标依据", "puhui_places": "普惠托位数", "puhui_share": "普惠托位占比",
    "inspections": "督导检查次数", "findings": "发现问题数", "findings_rectified": "已整改问题数",
    "rectification_rate": "整改率", "rectifications_overdue": "逾期未整改（上报次数）", "hazards": "安全隐患报告数",
    "incidents": "安全事故数", "children_affected": "事故涉及婴幼儿人数", "alarms": "报警数（不含演练）",
    "alarms_acknowledged": "已确认报警数", "ack_median_s": "接警确认中位时间（秒）", "ack_p90_s": "接警确认P90（秒）",
    "dispatch_median_s": "派警中位时间（秒）", "subsidy_construction_yuan": "建设补助（元）",
    "subsidy_operation_yuan": "运营补助（元）", "subsidy_total_yuan": "补助合计（元）",
}
FACILITY_LABELS = {
    "facility": "机构编号", "name": "机构名称", "filing_status": "备案状态", "filing_number": "备案回执编号", "puhui": "普惠",
    "places": "托位数", "enrolled": "在托人数", "inspections": "督导检查次数", "findings": "发现问题数",
    "findings_rectified": "已整改问题数", "incidents": "安全事故数", "credit_score": "信用分", "credit_level": "信用等级",
    "subsidy_yuan": "补助合计（元）",
}
SUMMARY_SHEET, FACILITY_SHEET = "汇总", "机构明细"


def _append(sheet, values: list) -> None:
    """A row whose text stays text: openpyxl stores a string starting with '=' as a formula, and a
    facility names itself, so every string is typed as a string."""
    sheet.append(values)
    for cell in sheet[sheet.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"


def annual_xlsx(report: AnnualReport) -> bytes:
    """The report as a workbook: the figures (one per row: label, key, value) and the facilities."""
    wb = Workbook()
    ws = wb.active
    ws.title = SUMMARY_SHEET
    _append(ws, ["指标", "字段", "数值"])
    figures = report.figures.model_dump()
    for key, label in FIGURE_LABELS.items():
        _append(ws, [label, key, figures[key]])
    facilities_ws = wb.create_sheet(FACILITY_SHEET)
    _append(facilities_ws, list(FACILITY_LABELS.values()))
    for row in report.facilities:
        values = row.model_dump(mode="json")
        _append(facilities_ws, [values[k] for k in FACILITY_LABELS])
    for sheet in (ws, facilities_ws):
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.column_dimensions["A"].width = 28
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
