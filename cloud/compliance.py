"""The compliance rules engine: per facility, a status, a score and findings, each naming its
rule, the source text of the requirement and the evidence.

`gather_facts` reads the store; the rules are pure functions of those facts, the profile and
`now`. What the rules read from uplink envelopes (the latest of each type per facility):
- `retention.report`: `cameras[].camera_id`, `cameras[].achieved_days` (edge/retention.py's report);
- `camera.health`: either one camera `{camera_id, state, fault}` or `{cameras: [...]}` of those;
  a camera is online when `state` is "streaming" and `fault` is empty, and its report is recent;
- `heartbeat`: only its time (the gateway watching the 24-hour zones is alive);
- drills: alarms of kind `test` with a police delivery time (delivered_at)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Callable, Optional

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from cloud.db import alarms, areas, camera_areas, cameras, devices, envelopes
from cloud.profiles import Profile, profile_for
from cloud.registry import CLASS_TYPE_ZH, DeviceKind, Facility, FilingStatus, LicenceKind, get_facility
from contracts.alarms import AlarmKind


class Status(str, Enum):
    COMPLIANT = "compliant"
    WARNING = "warning"
    NON_COMPLIANT = "non_compliant"


class Level(str, Enum):
    WARNING = "warning"   # not yet a breach (a licence about to expire)
    BREACH = "breach"


class Finding(BaseModel):
    rule: str
    level: Level
    message: str
    source: str = Field(description="the requirement's text and where it comes from")
    evidence: dict[str, Any]


class RuleResult(BaseModel):
    rule: str
    passed: bool
    source: str
    evidence: dict[str, Any]


class ComplianceReport(BaseModel):
    facility: str
    profile: str
    checked_at: datetime
    status: Status
    score: float = Field(description="share of rules passed without a breach, 0-100")
    findings: list[Finding]
    rules: list[RuleResult]


class CameraStatus(BaseModel):
    ts: datetime
    online: bool
    state: Optional[str]
    fault: Optional[str]


class FacilityFacts(BaseModel):
    facility: Facility
    panic_buttons: list[str]
    children_areas: dict[str, list[str]] = Field(description="children's area -> cameras covering it")
    camera_ids: list[str]
    retention_report_ts: Optional[datetime] = None
    retention_days: dict[str, float] = Field(default_factory=dict, description="camera -> achieved days")
    camera_health: dict[str, CameraStatus] = Field(default_factory=dict)
    last_heartbeat: Optional[datetime] = None
    last_drill_delivered: Optional[datetime] = None


# --- reading the store ------------------------------------------------------------------------
def _latest_envelope(conn: Connection, facility: str, type_: str):
    e = envelopes.c
    return conn.execute(select(e.ts, e.body).where(e.facility == facility, e.type == type_)
                        .order_by(e.ts.desc()).limit(1)).first()


def _camera_health(conn: Connection, facility: str, since: datetime) -> dict[str, CameraStatus]:
    e = envelopes.c
    out: dict[str, CameraStatus] = {}
    rows = conn.execute(select(e.ts, e.body).where(e.facility == facility, e.type == "camera.health", e.ts >= since)
                        .order_by(e.ts))
    for ts, body in rows:
        entries = body.get("cameras") if isinstance(body.get("cameras"), list) else [body]
        for item in entries:
            if not isinstance(item, dict) or not isinstance(item.get("camera_id"), str):
                continue
            state, fault = item.get("state"), item.get("fault")
            out[item["camera_id"]] = CameraStatus(ts=ts, online=state == "streaming" and not fault,
                                                  state=state if isinstance(state, str) else None,
                                                  fault=str(fault) if fault else None)
    return out


def gather_facts(conn: Connection, facility_id: str, profile: Profile, now: datetime) -> FacilityFacts:
    facility = get_facility(conn, facility_id)
    d = devices.c
    buttons = conn.execute(select(d.device_id).where(d.facility == facility_id, d.kind == DeviceKind.PANIC_BUTTON.value)
                           .order_by(d.device_id)).scalars().all()
    children = {a: [] for a in conn.execute(select(areas.c.area_id).where(areas.c.facility == facility_id,
                                                                           areas.c.children_area.is_(True))
                                            .order_by(areas.c.area_id)).scalars()}
    for cam, area in conn.execute(select(camera_areas.c.camera_id, camera_areas.c.area_id)
                                  .where(camera_areas.c.facility == facility_id).order_by(camera_areas.c.camera_id)):
        if area in children:
            children[area].append(cam)
    cams = conn.execute(select(cameras.c.camera_id).where(cameras.c.facility == facility_id)
                        .order_by(cameras.c.camera_id)).scalars().all()
    facts = FacilityFacts(facility=facility, panic_buttons=list(buttons), children_areas=children, camera_ids=list(cams))
    report = _latest_envelope(conn, facility_id, "retention.report")
    if report is not None:
        facts.retention_report_ts = report.ts
        for cam in report.body.get("cameras") or []:
            if isinstance(cam, dict) and isinstance(cam.get("camera_id"), str) \
                    and isinstance(cam.get("achieved_days"), (int, float)):
                facts.retention_days[cam["camera_id"]] = float(cam["achieved_days"])
    facts.camera_health = _camera_health(conn, facility_id,
                                         now - timedelta(seconds=profile.children_areas_covered.value))
    heartbeat = _latest_envelope(conn, facility_id, "heartbeat")
    facts.last_heartbeat = heartbeat.ts if heartbeat is not None else None
    a = alarms.c
    facts.last_drill_delivered = conn.execute(
        select(func.max(a.delivered_at)).where(a.facility == facility_id, a.kind == AlarmKind.TEST.value)).scalar()
    return facts


# --- rules ------------------------------------------------------------------------------------
Rule = Callable[[FacilityFacts, Profile, datetime], tuple[list[Finding], dict, str]]


def _breach(rule: str, message: str, source: str, **evidence) -> Finding:
    return Finding(rule=rule, level=Level.BREACH, message=message, source=source, evidence=evidence)


def rule_retention(f: FacilityFacts, p: Profile, now: datetime):
    req = p.retention_days
    evidence = {"required_days": req.value, "report_ts": f.retention_report_ts, "achieved_days": f.retention_days}
    if f.retention_report_ts is None:
        return [_breach("retention", "no retention report received", req.source, **evidence)], evidence, req.source
    findings = [_breach("retention", f"camera {cam}: {days:.1f} days of footage, {req.value:g} required",
                        req.source, camera_id=cam, achieved_days=days, required_days=req.value,
                        report_ts=f.retention_report_ts)
                for cam, days in sorted(f.retention_days.items()) if days < req.value]
    missing = sorted(set(f.camera_ids) - set(f.retention_days))
    if missing:
        findings.append(_breach("retention", f"cameras absent from the retention report: {', '.join(missing)}",
                                req.source, cameras=missing, report_ts=f.retention_report_ts))
    return findings, evidence, req.source


def rule_arming_24h(f: FacilityFacts, p: Profile, now: datetime):
    req = p.arming_24h
    age = (now - f.last_heartbeat).total_seconds() if f.last_heartbeat else None
    evidence = {"panic_buttons": f.panic_buttons, "last_heartbeat": f.last_heartbeat, "heartbeat_age_s": age,
                "max_age_s": req.value}
    findings = []
    if not f.panic_buttons:
        findings.append(_breach("arming_24h", "no one-button alarm (panic_button) registered", req.source, **evidence))
    if age is None or age > req.value:
        findings.append(_breach("arming_24h", "the gateway watching the 24-hour zones has not reported "
                                + ("ever" if age is None else f"for {age:.0f} s (at most {req.value:g} s)"),
                                req.source, **evidence))
    return findings, evidence, req.source


def rule_children_areas_covered(f: FacilityFacts, p: Profile, now: datetime):
    req = p.children_areas_covered
    evidence = {"children_areas": f.children_areas,
                "camera_health": {k: v.model_dump(mode="json") for k, v in f.camera_health.items()},
                "health_max_age_s": req.value}
    findings = []
    if not f.children_areas:
        findings.append(_breach("children_areas_covered", "no children's area registered", req.source, **evidence))
    for area, cams in f.children_areas.items():
        online = [c for c in cams if c in f.camera_health and f.camera_health[c].online]
        if not online:
            states = {c: (f.camera_health[c].fault or f.camera_health[c].state) if c in f.camera_health
                      else "no recent health report" for c in cams}
            findings.append(_breach("children_areas_covered",
                                    f"children's area {area}: " + ("no camera covers it" if not cams
                                                                   else "no covering camera online"),
                                    req.source, area_id=area, cameras=states))
    return findings, evidence, req.source


def rule_monthly_drill(f: FacilityFacts, p: Profile, now: datetime):
    req = p.drill_interval_days
    evidence = {"last_drill_delivered": f.last_drill_delivered, "max_days": req.value}
    if f.last_drill_delivered is None:
        return [_breach("monthly_drill", "no alarm drill has reached the police", req.source, **evidence)], evidence, req.source
    days = (now - f.last_drill_delivered).total_seconds() / 86400
    evidence["days_since"] = round(days, 3)
    if days > req.value:
        return [_breach("monthly_drill", f"last drill delivered {days:.1f} days ago (at most {req.value:g})",
                        req.source, **evidence)], evidence, req.source
    return [], evidence, req.source


def rule_class_size(f: FacilityFacts, p: Profile, now: datetime):
    findings = []
    for c in f.facility.classes:
        cap = p.class_size[c.class_type]
        if c.enrolled > cap.value:
            findings.append(_breach("class_size", f"class {c.class_id} ({CLASS_TYPE_ZH[c.class_type]}): {c.enrolled} "
                                    f"children, at most {cap.value:g}", cap.source, class_id=c.class_id,
                                    class_type=c.class_type.value, enrolled=c.enrolled, cap=cap.value))
    caps = {t.value: r.value for t, r in p.class_size.items()}
    return findings, {"caps": caps}, next(iter(p.class_size.values())).source


def rule_carer_ratio(f: FacilityFacts, p: Profile, now: datetime):
    findings = []
    for c in f.facility.classes:
        ratio = p.carer_ratio[c.class_type]
        if c.enrolled > c.carers * ratio.value:
            findings.append(_breach("carer_ratio", f"class {c.class_id} ({CLASS_TYPE_ZH[c.class_type]}): {c.enrolled} "
                                    f"children for {c.carers} carer(s), at most 1:{ratio.value:g}", ratio.source,
                                    class_id=c.class_id, enrolled=c.enrolled, carers=c.carers, ratio=ratio.value))
    ratios = {t.value: r.value for t, r in p.carer_ratio.items()}
    return findings, {"children_per_carer": ratios}, next(iter(p.carer_ratio.values())).source


def rule_enrolment_within_capacity(f: FacilityFacts, p: Profile, now: datetime):
    source = p.filing.source + "（收托人数不超过备案托位）"
    findings = [_breach("enrolment_within_capacity", f"class {c.class_id}: {c.enrolled} enrolled, {c.places} places filed",
                        source, class_id=c.class_id, enrolled=c.enrolled, places=c.places)
                for c in f.facility.classes if c.enrolled > c.places]
    return findings, {"capacity": {k.value: v for k, v in f.facility.capacity.items()}}, source


def rule_licences(f: FacilityFacts, p: Profile, now: datetime):
    req = p.licence_warning_days
    today = now.date()
    held = {lic.kind: lic for lic in f.facility.licences}
    findings = []
    for kind in LicenceKind:
        lic = held.get(kind)
        if lic is None:
            findings.append(_breach("licences", f"no {kind.value} licence on file", req.source, kind=kind.value))
        elif lic.expires_on < today:
            findings.append(_breach("licences", f"{kind.value} licence {lic.number} expired on {lic.expires_on}",
                                    req.source, kind=kind.value, expires_on=lic.expires_on))
        elif (lic.expires_on - today).days <= req.value:
            findings.append(Finding(rule="licences", level=Level.WARNING, source=req.source,
                                    message=f"{kind.value} licence {lic.number} expires on {lic.expires_on}",
                                    evidence={"kind": kind.value, "expires_on": lic.expires_on,
                                              "days_left": (lic.expires_on - today).days}))
    return findings, {"licences": {k.value: str(v.expires_on) for k, v in held.items()}}, req.source


def rule_filing(f: FacilityFacts, p: Profile, now: datetime):
    req = p.filing
    evidence = {"filing_status": f.facility.filing_status.value, "filing_number": f.facility.filing_number}
    if f.facility.filing_status is not FilingStatus.FILED:
        return [_breach("filing", f"filing status is {f.facility.filing_status.value}", req.source, **evidence)], \
            evidence, req.source
    return [], evidence, req.source


RULES: dict[str, Rule] = {
    "retention": rule_retention,
    "arming_24h": rule_arming_24h,
    "children_areas_covered": rule_children_areas_covered,
    "monthly_drill": rule_monthly_drill,
    "class_size": rule_class_size,
    "carer_ratio": rule_carer_ratio,
    "enrolment_within_capacity": rule_enrolment_within_capacity,
    "licences": rule_licences,
    "filing": rule_filing,
}


def evaluate(facts: FacilityFacts, profile: Profile, now: datetime) -> ComplianceReport:
    findings: list[Finding] = []
    results = []
    for name, rule in RULES.items():
        found, evidence, source = rule(facts, profile, now)
        findings += found
        results.append(RuleResult(rule=name, passed=not any(x.level is Level.BREACH for x in found), source=source,
                                  evidence=evidence))
    passed = sum(r.passed for r in results)
    if any(x.level is Level.BREACH for x in findings):
        status = Status.NON_COMPLIANT
    elif findings:
        status = Status.WARNING
    else:
        status = Status.COMPLIANT
    return ComplianceReport(facility=facts.facility.facility_id, profile=profile.name, checked_at=now, status=status,
                            score=round(100 * passed / len(results), 1), findings=findings, rules=results)


def facility_compliance(conn: Connection, facility_id: str, now: datetime) -> ComplianceReport:
    facility = get_facility(conn, facility_id)
    profile = profile_for(facility.district.city)
    return evaluate(gather_facts(conn, facility_id, profile, now), profile, now)
