"""What `make run` files in the registry, the story each demo facility tells, and the tokens it
hands out, so that every page has something true to show on a first try:

- 阳光托育园 (F001) is compliant: 35 days of footage, every check done, a drill delivered;
- 小星星托育中心 (F002) has warnings: its footage is still building up (12 days, no gap) and a
  carer's health certificate expires in 12 days;
- 彩虹宝贝托育 (F003) is non-compliant: a two-day gap in its footage, no drill has reached the
  police, one class without its morning check, and three children of a class with fever.

Each facility's device and camera sources are chosen here (`devices`, `cameras`): CareGuard's own
simulated devices or off-the-shelf Zigbee devices behind a simulated Zigbee2MQTT bridge; MJPEG
cameras or RTSP ones (main stream recorded, sub-stream analysed). 彩虹宝贝托育 runs on Zigbee and
RTSP, as issue 15 asks of one facility."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from cloud.care.health_rules import CheckKind, day_to_judge, local_day
from cloud.care.privacy import FieldCipher
from cloud.care.records import (CheckIn, ChildIn, RosterIn, StaffRecordIn, StaffRecordKind, care_checks,
                                care_staff_records, record_check, record_staff_record, write_roster)
from cloud.compliance.profiles import profile_for
from cloud.config import Role, TokenEntry
from cloud.registry.records import (AreaIn, CameraIn, ClassIn, ClassType, Contact, DeviceIn, DistrictPath,
                                    FacilityKind, FacilityRegistration, FilingStatus, Licence, LicenceKind, Location,
                                    NotFound, StaffIn, StaffRole, register_facility, require_facility, uscc_check_char)
from cloud.registry.statistics import PopulationIn, set_population
from contracts.device import DeviceKind
from contracts.timefmt import utcnow
from edge.retention.index import SegmentIndex
from edge.retention.segments import format_segment_path

Story = Literal["compliant", "warning", "non_compliant"]
DeviceSource = Literal["native", "zigbee2mqtt"]
CameraSource = Literal["mjpeg", "rtsp"]

CITY = "济宁市"
TIMEZONE = profile_for(CITY).care.timezone
REQUIRED_DAYS = int(profile_for(CITY).retention_days.value)
# Resident populations (常住人口) of the demo's districts, as a supervisor would enter them.
POPULATIONS = {"任城区": 1_160_000, "兖州区": 620_000}
DEMO_USER = "careguard-demo"


@dataclass(frozen=True)
class Footage:
    """The recordings a facility's cameras have when `make run` starts: `days` of hourly
    segments up to now, without the hours of `gap` (start, end) in days before now."""
    days: float
    gap: tuple[float, float] | None = None


@dataclass(frozen=True)
class DemoFacility:
    facility_id: str
    account: str                 # DC-09 account at the police receiver
    name: str
    district: str
    kind: FacilityKind
    lat: float
    lon: float
    story: Story
    footage: Footage
    drilled: bool                # a drill has reached the police this month
    expiring_certificate: bool   # a carer's health certificate expires within 30 days
    unchecked_classes: tuple[str, ...] = ()   # classes without a morning check on the day judged
    fever_class: str | None = None            # a class where three children have fever
    devices: DeviceSource = "native"
    cameras: CameraSource = "mjpeg"

    def device_list(self) -> list[tuple[str, str, DeviceKind, str]]:
        """(zone, device id, registry kind, name) of each of its devices, from its device source."""
        if self.devices == "zigbee2mqtt":
            return [(z, f"{self.facility_id}-{d}", k, name) for _, _, d, _, k, name, z in Z2M_DEVICES]
        return [(z, f"{self.facility_id}-{d}", k, name) for z, _, _, _, devs in ZONES for d, k, name in devs]


FACILITIES = [
    DemoFacility("F001", "1001", "阳光托育园", "任城区", FacilityKind.INCLUSIVE, 35.405, 116.587, "compliant",
                 Footage(days=35), drilled=True, expiring_certificate=False),
    DemoFacility("F002", "1002", "小星星托育中心", "兖州区", FacilityKind.PRIVATE, 35.553, 116.783, "warning",
                 Footage(days=12), drilled=True, expiring_certificate=True),
    DemoFacility("F003", "1003", "彩虹宝贝托育", "任城区", FacilityKind.PUBLIC, 35.414, 116.575, "non_compliant",
                 Footage(days=40, gap=(11, 9)), drilled=False, expiring_certificate=False,
                 unchecked_classes=("c2",), fever_class="c1", devices="zigbee2mqtt", cameras="rtsp"),
]

# Edge zones (id, number, zone name, kind, [(device suffix, registry kind, device name)]); the
# registry files the same zones as areas, and the simulator runs one device per entry.
ZONES = [
    ("class-1", 1, "托小班活动室", "panic", [("btn-1", DeviceKind.PANIC_BUTTON, "托小班一键报警按钮")]),
    ("class-2", 2, "托大班活动室", "panic", [("btn-2", DeviceKind.PANIC_BUTTON, "托大班一键报警按钮")]),
    ("gate", 3, "大门", "intrusion", [("door-1", DeviceKind.DOOR, "大门门磁")]),
    ("kitchen", 4, "厨房", "fire", [("smoke-1", DeviceKind.SMOKE, "厨房烟感")]),
    ("nap-room", 5, "午睡室", "environment",
     [("temp-1", DeviceKind.TEMPERATURE, "午睡室温度"), ("hum-1", DeviceKind.HUMIDITY, "午睡室湿度"),
      ("co2-1", DeviceKind.CO2, "午睡室二氧化碳")]),
]
CHILDREN_AREAS = {"class-1", "class-2", "nap-room"}
# The same zones on Zigbee devices behind Zigbee2MQTT: (friendly name, bridge kind, device suffix,
# edge profile, registry kind, name, zone). The climate sensor reports temperature, humidity and CO2.
Z2M_DEVICES = [
    ("class-1/sos", "sos", "zb-sos-1", "button", DeviceKind.PANIC_BUTTON, "托小班紧急按钮（Zigbee）", "class-1"),
    ("class-2/button", "button", "zb-btn-2", "button", DeviceKind.PANIC_BUTTON, "托大班一键报警（Zigbee）", "class-2"),
    ("gate/door", "contact", "zb-door-1", "contact", DeviceKind.DOOR, "大门门磁（Zigbee）", "gate"),
    ("kitchen/smoke", "smoke", "zb-smoke-1", "smoke", DeviceKind.SMOKE, "厨房烟感（Zigbee）", "kitchen"),
    ("nap-room/air", "climate", "zb-air-1", "climate", DeviceKind.TEMPERATURE, "午睡室空气质量（Zigbee）", "nap-room"),
]
# Two cameras per facility (suffix, name, areas covered, scene of the simulator); each covers the
# zone of a panic button, so a press brings the police that zone's picture.
CAMERAS = [
    ("cam-1", "托小班与午睡室摄像机", ("class-1", "nap-room"), "nursery"),
    ("cam-2", "托大班摄像机", ("class-2",), "day"),
]
ZONE_CAMERAS = {"class-1": ("cam-1",), "nap-room": ("cam-1",), "class-2": ("cam-2",)}
CLASSES = [("c1", "托小班", ClassType.TODDLER, 15, 12), ("c2", "托大班", ClassType.OLDER, 20, 18)]
# Carers on duty per class: within 1:5 (托小班) and 1:7 (托大班).
CARERS = {"c1": ("carer-1", "carer-2", "carer-3"), "c2": ("carer-4", "carer-5", "carer-6")}
CARER_NAMES = ["李老师", "张老师", "刘老师", "陈老师", "杨老师", "赵老师"]


def camera_id(fid: str, suffix: str) -> str:
    return f"{fid}-{suffix}"


def _uscc(n: int) -> str:
    first17 = f"52370811MJ{n:07d}"[:17]
    return first17 + uscc_check_char(first17)


def registration(index: int, f: DemoFacility) -> FacilityRegistration:
    expires = date.today() + timedelta(days=365)
    fid = f.facility_id
    return FacilityRegistration(
        facility_id=fid, name=f.name, uscc=_uscc(index + 1), kind=f.kind,
        district=DistrictPath(province="山东省", city=CITY, district=f.district, street="示范街道"),
        address=f"{f.district}示范路{index + 1}号", location=Location(lat=f.lat, lon=f.lon),
        contact=Contact(name="园长", phone=f"0537-55500{index + 1:02d}"),
        filing_status=FilingStatus.FILED, filing_number=f"JN-TY-2026-{index + 1:03d}",
        licences=[Licence(kind=k, number=f"{k.value}-{fid}", expires_on=expires) for k in LicenceKind],
        classes=[ClassIn(class_id=c, name=name, class_type=ct, places=places, enrolled=enrolled, carers=3)
                 for c, name, ct, places, enrolled in CLASSES],
        areas=[AreaIn(area_id=z, name=zname, children_area=z in CHILDREN_AREAS) for z, _, zname, _, _ in ZONES],
        cameras=[CameraIn(camera_id=camera_id(fid, c), name=name, areas=list(areas)) for c, name, areas, _ in CAMERAS],
        devices=[DeviceIn(device_id=d, kind=k, name=dname, zone=z, area_id=z) for z, d, k, dname in f.device_list()],
        staff=[StaffIn(staff_id="guard-1", name="保安 王师傅", role=StaffRole.SECURITY),
               StaffIn(staff_id="director", name="园长", role=StaffRole.DIRECTOR)]
        + [StaffIn(staff_id=s, name=CARER_NAMES[i], role=StaffRole.CARER)
           for i, s in enumerate(s for c in CARERS.values() for s in c)],
    )


def seed_registry(engine: Engine) -> None:
    """File the demo facilities once; a second run finds them there and leaves them be."""
    now = utcnow()
    with engine.begin() as conn:
        for i, f in enumerate(FACILITIES):
            try:
                require_facility(conn, f.facility_id)
            except NotFound:
                register_facility(conn, registration(i, f), now)


# --- the care story --------------------------------------------------------------------------
def _local(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), ZoneInfo(TIMEZONE)).astimezone(timezone.utc)


def children_of(fid: str, class_id: str, n: int) -> list[str]:
    """The pseudonyms of the class's children on the demo roster."""
    return [f"{fid.lower()}-{class_id}-k{i + 1:02d}" for i in range(n)]


def seed_care(engine: Engine, cipher: FieldCipher, now: datetime | None = None) -> None:
    """Populations, class rosters, staff health certificates, and the morning and noon checks of
    the day judged and of today, as each facility's story has them. Checks already recorded for a
    day are left as they are, so a restart adds nothing twice."""
    now = now or utcnow()
    care = profile_for(CITY).care
    today = local_day(now, care)
    judged = day_to_judge(now, care)
    with engine.begin() as conn:
        for district, population in POPULATIONS.items():
            set_population(conn, f"山东省/{CITY}/{district}", PopulationIn(population=population, year=today.year),
                           user=DEMO_USER, now=now)
        for f in FACILITIES:
            fid = f.facility_id
            for class_id, _, _, _, enrolled in CLASSES:
                write_roster(conn, cipher, fid, class_id, RosterIn(
                    children=[ChildIn(child_id=k, birth_month=f"{today.year - 2}-0{1 + i % 9}")
                              for i, k in enumerate(children_of(fid, class_id, enrolled))],
                    carers_on_duty=list(CARERS[class_id])), user=DEMO_USER, now=now)
            _seed_certificates(conn, f, today, now)
            for day in sorted({d for d in (judged, today) if d is not None}):
                _seed_checks(conn, cipher, f, day, now, judged_day=day == judged)


def _seed_certificates(conn, f: DemoFacility, today: date, now: datetime) -> None:
    held = conn.execute(select(func.count()).select_from(care_staff_records)
                        .where(care_staff_records.c.facility == f.facility_id)).scalar_one()
    if held:
        return
    staff_ids = ["guard-1", "director", *(s for c in CARERS.values() for s in c)]
    for s in staff_ids:
        expires = today + timedelta(days=12 if f.expiring_certificate and s == "carer-4" else 300)
        record_staff_record(conn, s, StaffRecordIn(facility=f.facility_id, kind=StaffRecordKind.HEALTH_CERTIFICATE,
                                                   number=f"JK-{f.facility_id}-{s}", issued_on=expires - timedelta(days=365),
                                                   expires_on=expires), user=DEMO_USER, now=now)


def _seed_checks(conn, cipher: FieldCipher, f: DemoFacility, day: date, now: datetime, judged_day: bool) -> None:
    fid = f.facility_id
    done = conn.execute(select(func.count()).select_from(care_checks)
                        .where(care_checks.c.facility == fid, care_checks.c.local_date == day)).scalar_one()
    if done:
        return
    morning = min(_local(day, 8, 30), now - timedelta(minutes=1))
    noon = _local(day, 12, 20)
    for class_id, _, _, _, enrolled in CLASSES:
        if class_id in f.unchecked_classes:
            continue
        kids = children_of(fid, class_id, enrolled)
        # Today's checks are in progress: most children of the morning, a few at noon once it is noon.
        morning_kids = kids if judged_day else kids[:max(1, enrolled - 2)]
        for i, k in enumerate(morning_kids):
            fever = f.fever_class == class_id and i < 3
            record_check(conn, cipher, fid, CheckIn(class_id=class_id, child_id=k, kind=CheckKind.MORNING,
                                                    temperature_c=38.1 if fever else 36.5 + (i % 5) / 10,
                                                    at=morning + timedelta(seconds=40 * i)), user=DEMO_USER, now=now)
        if noon < now:
            for i, k in enumerate(kids[:enrolled // 2]):
                record_check(conn, cipher, fid, CheckIn(class_id=class_id, child_id=k, kind=CheckKind.NOON,
                                                        temperature_c=36.6, at=noon + timedelta(seconds=30 * i)),
                             user=DEMO_USER, now=now)


# --- recordings ------------------------------------------------------------------------------
SEGMENT_EXT = "mkv"
SEEDED_SEGMENT_S = 3600
SEEDED_BYTES = 64  # a stand-in for an hour of footage: the audit reads names, sizes and times


def seed_footage(root: Path, index_path: Path, f: DemoFacility, now: datetime | None = None) -> int:
    """Lay out the facility's recordings history as hourly segment files, and index them, so the
    edge's retention audit has `f.footage` to measure. The history is laid anew at every start
    (the demo's own folders only), so the story holds however long `make run` was stopped."""
    now = (now or utcnow()).replace(minute=0, second=0, microsecond=0)
    if index_path.exists():
        index_path.unlink()
    written = 0
    with SegmentIndex(str(index_path)) as index:
        for suffix, *_ in CAMERAS:
            cam = camera_id(f.facility_id, suffix)
            cam_dir = root / cam
            if cam_dir.exists():
                for old in sorted(cam_dir.rglob("*"), reverse=True):
                    old.unlink() if old.is_file() else old.rmdir()
            hours = int(f.footage.days * 24)
            rows = []
            for h in range(hours, 0, -1):
                start = now - timedelta(hours=h)
                age_days = h / 24
                if f.footage.gap and f.footage.gap[1] < age_days <= f.footage.gap[0]:
                    continue
                path = format_segment_path(root, cam, start, SEGMENT_EXT)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"\0" * SEEDED_BYTES)
                st = path.stat()
                rows.append((int(start.timestamp()), SEGMENT_EXT, float(SEEDED_SEGMENT_S), st.st_size, st.st_mtime_ns,
                             None))
            index.bulk_load(cam, rows)
            written += len(rows)
    return written


def demo_tokens() -> list[TokenEntry]:
    """One fresh token per role, for people named as the pages show them; the facility token is F001's."""
    def tok() -> str:
        return secrets.token_urlsafe(18)
    return [TokenEntry(token=tok(), user="jn110-zhang.wei", role=Role.POLICE),
            TokenEntry(token=tok(), user="rc-health-li.na", role=Role.HEALTH),
            TokenEntry(token=tok(), user="jn-supervisor-wang", role=Role.SUPERVISOR),
            TokenEntry(token=tok(), user="F001-director", role=Role.FACILITY, facility_id="F001"),
            TokenEntry(token=tok(), user="admin", role=Role.ADMIN)]
