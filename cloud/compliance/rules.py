"""The compliance rules engine: per facility, a status, a score and findings, each naming its
rule, the source text of the requirement and the evidence.

`gather_facts` reads the store (for many facilities at once); the rules are pure functions of those facts, the profile and
`now`. What the rules read from uplink envelopes (the latest of each type per facility):
- `retention.report`: `cameras[].camera_id`, `cameras[].achieved_days` (edge/retention.py's report);
- `camera.health`: either one camera `{camera_id, state, fault}` or `{cameras: [...]}` of those;
  a camera is online when `state` is "streaming" and `fault` is empty, and its report is recent;
- `heartbeat`: its time (the gateway watching the 24-hour zones is alive), `police_encrypted`
  (whether its DC-09 path to the police runs with AES) and its `gb28181` section
  (contracts/video_platform.py): registered with the police video platform, which cameras;
- drills: alarms of kind `test` with a police delivery time (delivered_at);
- care (cloud.care.records): rosters and carers on duty, the day's first morning checks, staff health
  documents, and the drill ledger per one-button alarm and month."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any, Callable, Optional, Sequence
from zoneinfo import ZoneInfo

import orjson
from pydantic import BaseModel, Field
from sqlalchemy import Text, cast, func, select
from sqlalchemy.engine import Connection

from cloud.care.health_rules import (
    FACILITY_KEY,
    CertificateStatus,
    certificate_status,
    day_to_judge,
    drill_ledger,
    missing_drills,
    months_to_judge,
    morning_check_missing,
)
from cloud.care.records import StaffRecordKind, care_rosters, first_morning_checks, roster_counts, staff_documents
from cloud.compliance.marks import achieved_days, camera_items, camera_online
from cloud.compliance.profiles import Profile, profile_for
from cloud.registry.records import CLASS_TYPE_ZH, Facility, FilingStatus, LicenceKind, NotFound, facility_rows_to_models
from cloud.store.db import alarms, areas, camera_areas, cameras, devices, envelopes, facilities, staff
from cloud.supervision.fees import FeeReport, fee_reports
from cloud.supervision.scope import Place
from cloud.supervision.inspections import RECTIFICATION_SOURCE, Overdue, overdue_findings
from contracts.alarms import AlarmKind
from contracts.device import DeviceKind
from contracts.video_platform import VideoPlatformStatus, read_video_platform


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
    key: str = Field(description="the message's key, `rule.case`: pages render it in their language from `params`")
    params: dict[str, Any] = Field(default_factory=dict, description="the values the message names")
    message: str = Field(description="the message in English, for logs and exports")
    source: str = Field(description="the requirement's text and where it comes from")
    evidence: dict[str, Any]


class RuleResult(BaseModel):
    rule: str
    passed: bool
    source: str
    evidence: dict[str, Any]


class ComplianceReport(BaseModel):
    facility: str
    facility_name: str
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


class ClassCare(BaseModel):
    children: int = Field(description="children on the roster")
    carers_on_duty: int
    first_morning_check: Optional[datetime] = None


class StaffDocument(BaseModel):
    staff_id: str
    role: str
    kind: str
    expires_on: Optional[date]


class CareFacts(BaseModel):
    """What the care rules read; absent (None) on facts built without the care records."""
    classes: dict[str, ClassCare] = Field(default_factory=dict, description="rostered classes")
    check_day: Optional[date] = Field(default=None, description="the care day whose morning deadline is judged")
    staff_ids: list[str] = Field(default_factory=list)
    documents: list[StaffDocument] = Field(default_factory=list)
    drill_ledger: dict[str, dict[str, int]] = Field(default_factory=dict, description="button -> month -> drills")


class FacilityFacts(BaseModel):
    facility: Facility
    panic_buttons: list[str]
    children_areas: dict[str, list[str]] = Field(description="children's area -> cameras covering it")
    camera_ids: list[str]
    retention_report_ts: Optional[datetime] = None
    retention_days: dict[str, float] = Field(default_factory=dict, description="camera -> achieved days")
    retention_gaps: dict[str, int] = Field(default_factory=dict,
                                           description="camera -> gaps in its footage, where the report lists them")
    camera_health: dict[str, CameraStatus] = Field(default_factory=dict)
    last_heartbeat: Optional[datetime] = None
    police_encrypted: Optional[bool] = Field(default=None, description="from the newest heartbeat; None: not reported")
    video_platform: Optional[VideoPlatformStatus] = Field(default=None, description="from the newest heartbeat")
    last_drill_delivered: Optional[datetime] = None
    care: Optional[CareFacts] = None
    # Names people know things by, for the findings' parameters (ids stay in the evidence).
    area_names: dict[str, str] = Field(default_factory=dict)
    staff_names: dict[str, str] = Field(default_factory=dict)
    device_names: dict[str, str] = Field(default_factory=dict)
    camera_names: dict[str, str] = Field(default_factory=dict)
    overdue_rectifications: list[Overdue] = Field(default_factory=list, description="open findings past deadline")
    fees: Optional[FeeReport] = Field(default=None, description="fee standards against the profile's 普惠 caps")


# --- reading the store ------------------------------------------------------------------------
# Facts are read for many facilities at once, one query per kind of fact: the compliance
# snapshots of a province are evaluated in batches (cloud.compliance.snapshot).
_IN_CHUNK = 500


def _grouped(conn: Connection, query, ids: Sequence[str]):
    """Rows of `query` (its first column the facility, filtered by `.where` on it) for `ids`."""
    for i in range(0, len(ids), _IN_CHUNK):
        yield from conn.execute(query(ids[i:i + _IN_CHUNK]))


def latest_bodies(conn: Connection, type_: str, facility_ids: Sequence[str]) -> dict[str, tuple]:
    """facility -> (ts, body) of the envelope of `type_` the cloud received last, for the registered
    facilities of `facility_ids` (a gateway's clock decides nothing; of one batch's envelopes,
    which share their receive time, the latest in origin time); `ts` stays the time of origin.
    One index probe per facility (newest first, first row), whatever history the table holds: a
    maximum grouped by facility would read every heartbeat a facility ever sent."""
    e, f = envelopes.c, facilities.c
    newer = envelopes.alias("newest")
    newest_id = (select(newer.c.id).where(newer.c.facility == f.facility_id, newer.c.type == type_)
                 .order_by(newer.c.received_at.desc(), newer.c.ts.desc()).limit(1)
                 .correlate(facilities).scalar_subquery())
    rows = _grouped(conn, lambda chunk: select(e.facility, e.ts, e.body)
                    .select_from(facilities.join(envelopes, e.id == newest_id))
                    .where(f.facility_id.in_(chunk)), sorted(set(facility_ids)))
    return {fid: (ts, body if isinstance(body, dict) else {}) for fid, ts, body in rows}


def _camera_health(conn: Connection, since: dict[str, datetime]) -> dict[str, dict[str, CameraStatus]]:
    """Per facility, each camera's newest health report received since the facility's `since`."""
    e = envelopes.c
    out: dict[str, dict[str, CameraStatus]] = {f: {} for f in since}
    ids = sorted(since)
    oldest = min(since.values(), default=None)
    # The bodies as text, parsed here by orjson: a window of reports per facility is most of the
    # work of evaluating it, and the driver's JSON parsing took several times longer. By receive
    # time, as _latest: a report dated ahead does not outrank later ones.
    rows = _grouped(conn, lambda chunk: select(e.facility, e.ts, e.received_at, cast(e.body, Text))
                    .where(e.facility.in_(chunk), e.type == "camera.health", e.received_at >= oldest)
                    .order_by(e.facility, e.received_at.desc(), e.ts.desc()), ids)
    for facility, ts, received_at, text in rows:
        if received_at < since[facility]:
            continue
        body = orjson.loads(text)
        if not isinstance(body, dict):
            continue
        seen = out[facility]
        for item in camera_items(body):
            if item["camera_id"] not in seen:  # newest first: the first report of a camera is its latest
                state, fault = item.get("state"), item.get("fault")
                seen[item["camera_id"]] = CameraStatus(ts=ts, online=camera_online(item),
                                                       state=state if isinstance(state, str) else None,
                                                       fault=str(fault) if fault else None)
    return out


def read_heartbeat(facts: FacilityFacts, body: dict) -> None:
    """What the rules read of the newest heartbeat's body: the police path's encryption and the
    video platform registration."""
    encrypted = body.get("police_encrypted")
    facts.police_encrypted = encrypted if isinstance(encrypted, bool) else None
    facts.video_platform = read_video_platform(body)


# Names people know things by, for the findings' parameters (ids stay in the evidence).
_NAMED = ((areas, "area_id"), (staff, "staff_id"), (devices, "device_id"), (cameras, "camera_id"))


def _names(conn: Connection, table, id_column: str, ids: Sequence[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for facility, item, name in _grouped(conn, lambda chunk: select(table.c.facility, table.c[id_column],
                                                                    table.c.name).where(table.c.facility.in_(chunk)),
                                         ids):
        out.setdefault(facility, {})[item] = name
    return out


def _by_facility(rows) -> dict[str, list]:
    out: dict[str, list] = {}
    for facility, *rest in rows:
        out.setdefault(facility, []).append(rest[0] if len(rest) == 1 else tuple(rest))
    return out


def gather_facts(conn: Connection, facility_ids: Sequence[str],
                 now: datetime) -> dict[str, tuple[Profile, FacilityFacts]]:
    """Each registered facility of `facility_ids` with its profile and facts (unknown ids are left out)."""
    f, d, ar, ca, cm = facilities.c, devices.c, areas.c, camera_areas.c, cameras.c
    rows = list(_grouped(conn, lambda chunk: select(facilities).where(f.facility_id.in_(chunk)), list(facility_ids)))
    models = {m.facility_id: m for m in facility_rows_to_models(conn, rows)}
    ids = sorted(models)
    profiles = {fid: profile_for(m.district.city) for fid, m in models.items()}
    buttons = _by_facility(_grouped(conn, lambda chunk: select(d.facility, d.device_id).where(
        d.facility.in_(chunk), d.kind == DeviceKind.PANIC_BUTTON.value).order_by(d.facility, d.device_id), ids))
    children = _by_facility(_grouped(conn, lambda chunk: select(ar.facility, ar.area_id).where(
        ar.facility.in_(chunk), ar.children_area.is_(True)).order_by(ar.facility, ar.area_id), ids))
    coverage = _by_facility(_grouped(conn, lambda chunk: select(ca.facility, ca.camera_id, ca.area_id).where(
        ca.facility.in_(chunk)).order_by(ca.facility, ca.camera_id), ids))
    cams = _by_facility(_grouped(conn, lambda chunk: select(cm.facility, cm.camera_id).where(
        cm.facility.in_(chunk)).order_by(cm.facility, cm.camera_id), ids))
    names = {table.name: _names(conn, table, id_column, ids) for table, id_column in _NAMED}
    reports = latest_bodies(conn, "retention.report", ids)
    beats = latest_bodies(conn, "heartbeat", ids)
    health = _camera_health(conn, {fid: now - timedelta(seconds=p.children_areas_covered.value)
                                   for fid, p in profiles.items()})
    a = alarms.c
    drills = dict(_grouped(conn, lambda chunk: select(a.facility, func.max(a.delivered_at)).where(
        a.facility.in_(chunk), a.kind == AlarmKind.TEST.value).group_by(a.facility), ids))
    # Overdue rectifications are few province-wide: read them all, keep this batch's.
    overdue = _by_facility((o.facility, o) for o in overdue_findings(conn, now) if o.facility in models)
    places = [Place(r.facility_id, r.name, r.kind, r.province, r.city, r.district) for r in rows]
    fees = {k: v for i in range(0, len(places), _IN_CHUNK) for k, v in fee_reports(conn, places[i:i + _IN_CHUNK]).items()}
    out = {}
    for fid in ids:
        areas_covered = {area: [] for area in children.get(fid, [])}
        for cam, area in coverage.get(fid, []):
            if area in areas_covered:
                areas_covered[area].append(cam)
        facts = FacilityFacts(facility=models[fid], panic_buttons=buttons.get(fid, []), children_areas=areas_covered,
                              camera_ids=cams.get(fid, []), camera_health=health[fid],
                              last_drill_delivered=drills.get(fid), overdue_rectifications=overdue.get(fid, []),
                              fees=fees[fid], area_names=names["areas"].get(fid, {}),
                              staff_names=names["staff"].get(fid, {}), device_names=names["devices"].get(fid, {}),
                              camera_names=names["cameras"].get(fid, {}))
        if fid in beats:
            facts.last_heartbeat, beat = beats[fid]
            read_heartbeat(facts, beat)
        if fid in reports:
            facts.retention_report_ts, body = reports[fid]
            facts.retention_days = achieved_days(body)
            facts.retention_gaps = {i["camera_id"]: len(i["gaps"]) for i in camera_items(body)
                                    if i["camera_id"] in facts.retention_days and isinstance(i.get("gaps"), list)}
        out[fid] = (profiles[fid], facts)
    gather_care_facts(conn, out, now)
    return out


def gather_care_facts(conn: Connection, gathered: dict[str, tuple[Profile, FacilityFacts]], now: datetime) -> None:
    """Fill each facility's care facts: rosters, first morning checks, staff documents, drill ledger."""
    ids = sorted(gathered)
    if not ids:
        return
    counts = roster_counts(conn, ids)
    days = {fid: day_to_judge(now, p.care) for fid, (p, _) in gathered.items()}
    first: dict[tuple[str, str], datetime] = {}
    for day in {d for d in days.values() if d is not None}:
        first |= {k: v for k, v in first_morning_checks(conn, day, [f for f in ids if days[f] == day]).items()}
    rosters = _by_facility(_grouped(conn, lambda chunk: select(care_rosters.c.facility, care_rosters.c.class_id,
                                                               care_rosters.c.carers_on_duty)
                                    .where(care_rosters.c.facility.in_(chunk)), ids))
    staff_ids = _by_facility(_grouped(conn, lambda chunk: select(staff.c.facility, staff.c.staff_id)
                                      .where(staff.c.facility.in_(chunk)).order_by(staff.c.facility, staff.c.staff_id),
                                      ids))
    documents = _by_facility((fac, (s, role, kind, exp)) for fac, s, role, kind, exp in staff_documents(conn, ids))
    months = {fid: months_to_judge(facts.facility.created_at, now, p.care.timezone)
              for fid, (p, facts) in gathered.items()}
    judged = [fid for fid in ids if months[fid]]
    a = alarms.c
    drills = _by_facility(_grouped(conn, lambda chunk: select(a.facility, a.delivered_at,
                                                              func.coalesce(a.device_id, a.source))
                                   .where(a.facility.in_(chunk), a.kind == AlarmKind.TEST.value,
                                          a.delivered_at.is_not(None), a.delivered_at >= now - timedelta(days=400)),
                                   judged))
    for fid, (profile, facts) in gathered.items():
        care = CareFacts(check_day=days[fid], staff_ids=staff_ids.get(fid, []),
                         documents=[StaffDocument(staff_id=s, role=role, kind=kind, expires_on=exp)
                                    for s, role, kind, exp in documents.get(fid, [])])
        for class_id, carers in rosters.get(fid, []):
            care.classes[class_id] = ClassCare(children=counts.get((fid, class_id), 0),
                                               carers_on_duty=len(carers or []),
                                               first_morning_check=first.get((fid, class_id)))
        if months[fid]:
            keys = facts.panic_buttons or [FACILITY_KEY]
            care.drill_ledger = drill_ledger(keys, drills.get(fid, []), months[fid], profile.care.timezone)
        facts.care = care


# --- rules ------------------------------------------------------------------------------------
Rule = Callable[[FacilityFacts, Profile, datetime], tuple[list[Finding], dict, str]]


def _finding(level: Level, key: str, params: dict, message: str, source: str, evidence: dict) -> Finding:
    return Finding(rule=key.split(".", 1)[0], level=level, key=key, params=params, message=message, source=source,
                   evidence=evidence)


def _breach(key: str, params: dict, message: str, source: str, **evidence) -> Finding:
    return _finding(Level.BREACH, key, params, message, source, evidence)


def _warning(key: str, params: dict, message: str, source: str, **evidence) -> Finding:
    return _finding(Level.WARNING, key, params, message, source, evidence)


def rule_retention(f: FacilityFacts, p: Profile, now: datetime):
    req = p.retention_days
    evidence = {"required_days": req.value, "report_ts": f.retention_report_ts, "achieved_days": f.retention_days}
    if f.retention_report_ts is None:
        return [_breach("retention.no_report", {}, "no retention report received", req.source, **evidence)], \
            evidence, req.source
    names = f.camera_names
    findings = []
    for cam, days in sorted(f.retention_days.items()):
        if days >= req.value:
            continue
        params = {"camera": names.get(cam, cam), "days": round(days, 1), "required": req.value}
        evidence = dict(camera_id=cam, achieved_days=days, required_days=req.value, report_ts=f.retention_report_ts)
        # Footage younger than the requirement with no break in it is still building up (a new
        # camera or gateway), as the edge judges it too: a warning until it has had the time.
        if f.retention_gaps.get(cam) == 0:
            findings.append(_warning("retention.building_up", params, f"camera {cam}: {days:.1f} days of footage "
                                     f"without a gap, building up to {req.value:g}", req.source, **evidence))
        else:
            findings.append(_breach("retention.short", params, f"camera {cam}: {days:.1f} days of footage, "
                                    f"{req.value:g} required", req.source, **evidence))
    missing = sorted(set(f.camera_ids) - set(f.retention_days))
    if missing:
        findings.append(_breach("retention.cameras_absent", {"cameras": [names.get(c, c) for c in missing]},
                                f"cameras absent from the retention report: {', '.join(missing)}",
                                req.source, cameras=missing, report_ts=f.retention_report_ts))
    return findings, evidence, req.source


def rule_arming_24h(f: FacilityFacts, p: Profile, now: datetime):
    req = p.arming_24h
    age = (now - f.last_heartbeat).total_seconds() if f.last_heartbeat else None
    evidence = {"panic_buttons": f.panic_buttons, "last_heartbeat": f.last_heartbeat, "heartbeat_age_s": age,
                "max_age_s": req.value}
    findings = []
    if not f.panic_buttons:
        findings.append(_breach("arming_24h.no_button", {}, "no one-button alarm (panic_button) registered",
                                req.source, **evidence))
    if age is None:
        findings.append(_breach("arming_24h.never_reported", {}, "the gateway watching the 24-hour zones has "
                                "not reported ever", req.source, **evidence))
    elif age > req.value:
        findings.append(_breach("arming_24h.silent", {"seconds": round(age), "max": req.value},
                                f"the gateway watching the 24-hour zones has not reported for {age:.0f} s "
                                f"(at most {req.value:g} s)", req.source, **evidence))
    return findings, evidence, req.source


POLICE_PATH_ENCRYPTED_SOURCE = ("CareGuard platform rule: 与公安机关联网的报警通道应加密，防止报警信息被伪造、重放或压制"
                                "（SIA DC-09 AES; EN 50136-1 substitution and information security）")


def rule_police_path_encrypted(f: FacilityFacts, p: Profile, now: datetime):
    evidence = {"police_encrypted": f.police_encrypted, "last_heartbeat": f.last_heartbeat}
    if f.police_encrypted is False:
        return [_breach("police_path_encrypted.plain", {}, "police path not encrypted: alarms to the police can be "
                        "forged and suppressed", POLICE_PATH_ENCRYPTED_SOURCE, **evidence)], evidence, \
            POLICE_PATH_ENCRYPTED_SOURCE
    return [], evidence, POLICE_PATH_ENCRYPTED_SOURCE


def rule_children_areas_covered(f: FacilityFacts, p: Profile, now: datetime):
    req = p.children_areas_covered
    evidence = {"children_areas": f.children_areas,
                "camera_health": {k: v.model_dump(mode="json") for k, v in f.camera_health.items()},
                "health_max_age_s": req.value}
    findings = []
    if not f.children_areas:
        findings.append(_breach("children_areas_covered.no_area", {}, "no children's area registered", req.source,
                                **evidence))
    names = f.area_names
    for area, cams in f.children_areas.items():
        online = [c for c in cams if c in f.camera_health and f.camera_health[c].online]
        if not online:
            states = {c: (f.camera_health[c].fault or f.camera_health[c].state) if c in f.camera_health
                      else "no recent health report" for c in cams}
            case = "no_camera" if not cams else "none_online"
            findings.append(_breach(f"children_areas_covered.{case}",
                                    {"area": names.get(area, area), "cameras": [f.camera_names.get(c, c) for c in cams]},
                                    f"children's area {area}: " + ("no camera covers it" if not cams
                                                                   else "no covering camera online"),
                                    req.source, area_id=area, cameras=states))
    return findings, evidence, req.source


def rule_video_networked(f: FacilityFacts, p: Profile, now: datetime):
    """Video networked with the police: the gateway registered with the police video platform
    (GB/T 28181) at its newest heartbeat, and each children's area seen by one of its channels
    (as coverage asks one camera online per area). A silent gateway is arming_24h's finding."""
    req = p.video_networked
    vp = f.video_platform
    evidence = {"registered": vp.registered if vp else None, "platform": vp.platform if vp else None,
                "reason": vp.reason if vp else None, "networked_cameras": vp.cameras if vp else [],
                "last_heartbeat": f.last_heartbeat}
    if vp is None:
        return [_breach("video_networked.not_reported", {}, "the gateway reports no GB/T 28181 registration: video "
                        "is not networked with the police", req.source, **evidence)], evidence, req.source
    findings = []
    if not vp.registered:
        findings.append(_breach("video_networked.not_registered", {"platform": vp.platform, "reason": vp.reason},
                                f"not registered with the police video platform {vp.platform}: {vp.reason}",
                                req.source, **evidence))
    networked = set(vp.cameras)
    unseen = [area for area, cams in f.children_areas.items() if cams and not networked.intersection(cams)]
    if unseen:
        findings.append(_breach("video_networked.areas_unseen", {"areas": [f.area_names.get(a, a) for a in unseen]},
                                "children's areas no camera networked with the police sees: " + ", ".join(unseen),
                                req.source, areas=unseen, networked_cameras=sorted(networked)))
    return findings, evidence, req.source


def rule_monthly_drill(f: FacilityFacts, p: Profile, now: datetime):
    req = p.drill_interval_days
    evidence = {"last_drill_delivered": f.last_drill_delivered, "max_days": req.value}
    if f.last_drill_delivered is None:
        return [_breach("monthly_drill.never", {}, "no alarm drill has reached the police", req.source,
                        **evidence)], evidence, req.source
    days = (now - f.last_drill_delivered).total_seconds() / 86400
    evidence["days_since"] = round(days, 3)
    if days > req.value:
        return [_breach("monthly_drill.overdue", {"days": round(days, 1), "max": req.value},
                        f"last drill delivered {days:.1f} days ago (at most {req.value:g})",
                        req.source, **evidence)], evidence, req.source
    return [], evidence, req.source


def _class_params(c, **more) -> dict:
    return {"class": c.name, "class_type": c.class_type.value, **more}


def rule_class_size(f: FacilityFacts, p: Profile, now: datetime):
    findings = []
    for c in f.facility.classes:
        cap = p.class_size[c.class_type]
        if c.enrolled > cap.value:
            findings.append(_breach("class_size.over_cap", _class_params(c, children=c.enrolled, cap=cap.value),
                                    f"class {c.class_id} ({CLASS_TYPE_ZH[c.class_type]}): {c.enrolled} "
                                    f"children, at most {cap.value:g}", cap.source, class_id=c.class_id,
                                    class_type=c.class_type.value, enrolled=c.enrolled, cap=cap.value))
    caps = {t.value: r.value for t, r in p.class_size.items()}
    return findings, {"caps": caps}, next(iter(p.class_size.values())).source


def rule_carer_ratio(f: FacilityFacts, p: Profile, now: datetime):
    findings = []
    for c in f.facility.classes:
        ratio = p.carer_ratio[c.class_type]
        if c.enrolled > c.carers * ratio.value:
            findings.append(_breach("carer_ratio.too_few",
                                    _class_params(c, children=c.enrolled, carers=c.carers, ratio=ratio.value),
                                    f"class {c.class_id} ({CLASS_TYPE_ZH[c.class_type]}): {c.enrolled} "
                                    f"children for {c.carers} carer(s), at most 1:{ratio.value:g}", ratio.source,
                                    class_id=c.class_id, enrolled=c.enrolled, carers=c.carers, ratio=ratio.value))
    ratios = {t.value: r.value for t, r in p.carer_ratio.items()}
    return findings, {"children_per_carer": ratios}, next(iter(p.carer_ratio.values())).source


def rule_enrolment_within_capacity(f: FacilityFacts, p: Profile, now: datetime):
    source = p.filing.source + "（收托人数不超过备案托位）"
    findings = [_breach("enrolment_within_capacity.over_places",
                        _class_params(c, children=c.enrolled, places=c.places),
                        f"class {c.class_id}: {c.enrolled} enrolled, {c.places} places filed",
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
            findings.append(_breach("licences.missing", {"licence": kind.value}, f"no {kind.value} licence on file",
                                    req.source, kind=kind.value))
        elif lic.expires_on < today:
            findings.append(_breach("licences.expired", {"licence": kind.value, "number": lic.number,
                                                         "date": lic.expires_on.isoformat()},
                                    f"{kind.value} licence {lic.number} expired on {lic.expires_on}",
                                    req.source, kind=kind.value, expires_on=lic.expires_on))
        elif (lic.expires_on - today).days <= req.value:
            findings.append(_warning("licences.expiring", {"licence": kind.value, "number": lic.number,
                                                           "date": lic.expires_on.isoformat(),
                                                           "days": (lic.expires_on - today).days},
                                     f"{kind.value} licence {lic.number} expires on {lic.expires_on}", req.source,
                                     kind=kind.value, expires_on=lic.expires_on,
                                     days_left=(lic.expires_on - today).days))
    return findings, {"licences": {k.value: str(v.expires_on) for k, v in held.items()}}, req.source


def rule_filing(f: FacilityFacts, p: Profile, now: datetime):
    req = p.filing
    evidence = {"filing_status": f.facility.filing_status.value, "filing_number": f.facility.filing_number}
    if f.facility.filing_status is not FilingStatus.FILED:
        return [_breach("filing.not_filed", {"status": f.facility.filing_status.value},
                        f"filing status is {f.facility.filing_status.value}", req.source, **evidence)], \
            evidence, req.source
    return [], evidence, req.source


def _care_rule(rule):
    """A care rule finds nothing on facts built without care records."""
    def wrapped(f: FacilityFacts, p: Profile, now: datetime):
        if f.care is None:
            source = rule(CareFacts(), f, p, now)[2]
            return [], {"care_records": "not gathered"}, source
        return rule(f.care, f, p, now)
    return wrapped


def _rostered_classes(c: CareFacts, f: FacilityFacts):
    """(class id, its roster facts, its filed class) for each class with both, in id order."""
    by_id = {cl.class_id: cl for cl in f.facility.classes}
    return [(class_id, care, by_id[class_id]) for class_id, care in sorted(c.classes.items()) if class_id in by_id]


def rule_roster_class_size(c: CareFacts, f: FacilityFacts, p: Profile, now: datetime):
    """Size caps and filed places against the children actually on the class roster."""
    findings = []
    for class_id, care, cl in _rostered_classes(c, f):
        cap = p.class_size[cl.class_type]
        if care.children > cap.value:
            findings.append(_breach("roster_class_size.over_cap", _class_params(cl, children=care.children,
                                                                                 cap=cap.value),
                                    f"class {class_id} ({CLASS_TYPE_ZH[cl.class_type]}): "
                                    f"{care.children} children on the roster, at most {cap.value:g}", cap.source,
                                    class_id=class_id, on_roster=care.children, cap=cap.value))
        if care.children > cl.places:
            findings.append(_breach("roster_class_size.over_places", _class_params(cl, children=care.children,
                                                                                    places=cl.places),
                                    f"class {class_id}: {care.children} children on the roster, "
                                    f"{cl.places} places filed", p.filing.source + "（收托人数不超过备案托位）",
                                    class_id=class_id, on_roster=care.children, places=cl.places))
    source = next(iter(p.class_size.values())).source
    return findings, {"on_roster": {k: v.children for k, v in c.classes.items()}}, source


def rule_roster_carer_ratio(c: CareFacts, f: FacilityFacts, p: Profile, now: datetime):
    findings = []
    for class_id, care, cl in _rostered_classes(c, f):
        ratio = p.carer_ratio[cl.class_type]
        if care.children > care.carers_on_duty * ratio.value:
            findings.append(_breach("roster_carer_ratio.too_few",
                                    _class_params(cl, children=care.children, carers=care.carers_on_duty,
                                                  ratio=ratio.value),
                                    f"class {class_id} ({CLASS_TYPE_ZH[cl.class_type]}): "
                                    f"{care.children} children for {care.carers_on_duty} carer(s) on duty, "
                                    f"at most 1:{ratio.value:g}", ratio.source, class_id=class_id,
                                    on_roster=care.children, carers_on_duty=care.carers_on_duty, ratio=ratio.value))
    return findings, {"carers_on_duty": {k: v.carers_on_duty for k, v in c.classes.items()}}, \
        next(iter(p.carer_ratio.values())).source


def rule_morning_checks(c: CareFacts, f: FacilityFacts, p: Profile, now: datetime):
    source = p.care.morning_check_source
    evidence = {"day": c.check_day, "deadline": p.care.morning_check_by}
    if c.check_day is None:
        return [], evidence, source
    names = {cl.class_id: cl.name for cl in f.facility.classes}
    findings = [_breach("morning_checks.missing", {"class": names.get(class_id, class_id),
                                                   "deadline": p.care.morning_check_by,
                                                   "day": c.check_day.isoformat()},
                        f"class {class_id}: no morning check by {evidence['deadline']} on {c.check_day}",
                        source, class_id=class_id, day=c.check_day, children=care.children,
                        first_morning_check=care.first_morning_check)
                for class_id, care in sorted(c.classes.items())
                if morning_check_missing(care.children, care.first_morning_check, c.check_day, now, p.care)]
    return findings, evidence, source


def rule_staff_health(c: CareFacts, f: FacilityFacts, p: Profile, now: datetime):
    source = p.care.certificate_source
    today = now.astimezone(ZoneInfo(p.care.timezone)).date()
    findings = []
    health = StaffRecordKind.HEALTH_CERTIFICATE.value
    holders = {d.staff_id for d in c.documents if d.kind == health and d.expires_on is not None}
    names = f.staff_names
    for staff_id in c.staff_ids:
        if staff_id not in holders:
            findings.append(_breach("staff_health.no_certificate", {"staff": names.get(staff_id, staff_id)},
                                    f"staff {staff_id}: no health certificate on file", source, staff_id=staff_id))
    for d in c.documents:
        if d.expires_on is None:
            continue
        status = certificate_status(d.expires_on, today, p.care.certificate_warning_days)
        evidence = dict(staff_id=d.staff_id, role=d.role, kind=d.kind, expires_on=d.expires_on,
                        days_left=(d.expires_on - today).days)
        params = {"staff": names.get(d.staff_id, d.staff_id), "document": d.kind, "date": d.expires_on.isoformat(),
                  "days": (d.expires_on - today).days}
        if status is CertificateStatus.EXPIRED:
            findings.append(_breach("staff_health.expired", params,
                                    f"staff {d.staff_id}: {d.kind} expired on {d.expires_on}", source, **evidence))
        elif status is CertificateStatus.EXPIRING:
            findings.append(_warning("staff_health.expiring", params,
                                     f"staff {d.staff_id}: {d.kind} expires on {d.expires_on}", source, **evidence))
    return findings, {"staff": len(c.staff_ids), "warning_days": p.care.certificate_warning_days}, source


def rule_drill_ledger(c: CareFacts, f: FacilityFacts, p: Profile, now: datetime):
    source = p.drill_interval_days.source
    names = f.device_names
    findings = [_breach("drill_ledger.facility_month" if key == FACILITY_KEY else "drill_ledger.button_month",
                        {"month": month, **({} if key == FACILITY_KEY else {"button": names.get(key, key)})},
                        f"{'the facility' if key == FACILITY_KEY else 'button ' + key}: no alarm drill "
                        f"reached the police in {month}", source, button=key, month=month)
                for key, month in missing_drills(c.drill_ledger)]
    return findings, {"ledger": c.drill_ledger}, source


def rule_rectification_overdue(f: FacilityFacts, p: Profile, now: datetime):
    findings = [_breach("rectification_overdue.past_deadline", {"finding": o.finding_id, "item": o.item_id,
                                                                "severity": o.severity, "date": str(o.deadline)},
                        f"finding {o.finding_id} ({o.item_id}, {o.severity}): not rectified by {o.deadline}",
                        RECTIFICATION_SOURCE, finding_id=o.finding_id, item_id=o.item_id, deadline=o.deadline,
                        escalated=o.escalated)
                for o in f.overdue_rectifications]
    return findings, {"overdue": len(f.overdue_rectifications)}, RECTIFICATION_SOURCE


def rule_fee_cap(f: FacilityFacts, p: Profile, now: datetime):
    source = next(iter(p.fee_caps.monthly_yuan.values())).source if p.fee_caps else "（本地未设普惠收费上限）"
    if f.fees is None:
        return [], {"fees": "not gathered"}, source
    findings = [_breach("fee_cap.over_cap", {"class_type": fee.class_type.value, "service": fee.service_type.value,
                                             "amount": fee.amount_yuan, "unit": fee.unit, "cap": fee.cap_yuan},
                        f"{fee.class_type.value} {fee.service_type.value}: {fee.amount_yuan} {fee.unit}, "
                        f"普惠 cap {fee.cap_yuan}", fee.cap_source, class_type=fee.class_type.value,
                        service_type=fee.service_type.value, amount_yuan=fee.amount_yuan, cap_yuan=fee.cap_yuan)
                for fee in f.fees.fees if fee.within_cap is False]
    return findings, {"caps_apply": f.fees.caps_apply, "puhui": f.fees.puhui}, source


RULES: dict[str, Rule] = {
    "retention": rule_retention,
    "arming_24h": rule_arming_24h,
    "police_path_encrypted": rule_police_path_encrypted,
    "children_areas_covered": rule_children_areas_covered,
    "video_networked": rule_video_networked,
    "monthly_drill": rule_monthly_drill,
    "class_size": rule_class_size,
    "carer_ratio": rule_carer_ratio,
    "enrolment_within_capacity": rule_enrolment_within_capacity,
    "licences": rule_licences,
    "filing": rule_filing,
    "roster_class_size": _care_rule(rule_roster_class_size),
    "roster_carer_ratio": _care_rule(rule_roster_carer_ratio),
    "morning_checks": _care_rule(rule_morning_checks),
    "staff_health": _care_rule(rule_staff_health),
    "drill_ledger": _care_rule(rule_drill_ledger),
    "rectification_overdue": rule_rectification_overdue,
    "fee_cap": rule_fee_cap,
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
    return ComplianceReport(facility=facts.facility.facility_id, facility_name=facts.facility.name, profile=profile.name, checked_at=now, status=status,
                            score=round(100 * passed / len(results), 1), findings=findings, rules=results)


def facility_compliance(conn: Connection, facility_id: str, now: datetime) -> ComplianceReport:
    """One facility evaluated now; raises NotFound for an unknown one."""
    gathered = gather_facts(conn, [facility_id], now)
    if facility_id not in gathered:
        raise NotFound(f"no facility {facility_id!r}")
    profile, facts = gathered[facility_id]
    return evaluate(facts, profile, now)

