"""What `make run` files in the registry and the tokens it hands out, so that every
dashboard has facilities, classes, devices and staff to show on a first try."""

from __future__ import annotations

import secrets
from datetime import date, timedelta

from sqlalchemy.engine import Engine

from cloud.config import Role, TokenEntry
from cloud.registry.records import (AreaIn, ClassIn, ClassType, Contact, DeviceIn, DistrictPath,
                            FacilityKind, FacilityRegistration, FilingStatus, Licence, LicenceKind, Location,
                            NotFound, StaffIn, StaffRole, register_facility, require_facility, uscc_check_char)
from contracts.device import DeviceKind
from contracts.timefmt import utcnow

# (facility id, DC-09 account, name, district, kind, lat, lon)
FACILITIES = [
    ("F001", "1001", "阳光托育园", "任城区", FacilityKind.INCLUSIVE, 35.405, 116.587),
    ("F002", "1002", "小星星托育中心", "兖州区", FacilityKind.PRIVATE, 35.553, 116.783),
    ("F003", "1003", "彩虹宝贝托育", "任城区", FacilityKind.PUBLIC, 35.414, 116.575),
]

# Edge zones (id, number, name, kind, [(device suffix, registry kind)]); the registry files the
# same zones as areas, and the simulator runs one device per entry.
ZONES = [
    ("class-1", 1, "托小班 一键报警", "panic", [("btn-1", DeviceKind.PANIC_BUTTON)]),
    ("class-2", 2, "托大班 一键报警", "panic", [("btn-2", DeviceKind.PANIC_BUTTON)]),
    ("gate", 3, "大门", "intrusion", [("door-1", DeviceKind.DOOR)]),
    ("kitchen", 4, "厨房 烟感", "fire", [("smoke-1", DeviceKind.SMOKE)]),
    ("nap-room", 5, "午睡室 环境", "environment",
     [("temp-1", DeviceKind.TEMPERATURE), ("hum-1", DeviceKind.HUMIDITY), ("co2-1", DeviceKind.CO2)]),
]
CHILDREN_AREAS = {"class-1", "class-2", "nap-room"}


def _uscc(n: int) -> str:
    first17 = f"52370811MJ{n:07d}"[:17]
    return first17 + uscc_check_char(first17)


def registration(index: int, fid: str, name: str, district: str, kind: FacilityKind, lat: float,
                 lon: float) -> FacilityRegistration:
    expires = date.today() + timedelta(days=365)
    return FacilityRegistration(
        facility_id=fid, name=name, uscc=_uscc(index + 1), kind=kind,
        district=DistrictPath(province="山东省", city="济宁市", district=district, street="示范街道"),
        address=f"济宁市{district}示范路{index + 1}号", location=Location(lat=lat, lon=lon),
        contact=Contact(name="园长", phone=f"0537-55500{index + 1:02d}"),
        filing_status=FilingStatus.FILED, filing_number=f"JN-TY-2026-{index + 1:03d}",
        licences=[Licence(kind=k, number=f"{k.value}-{fid}", expires_on=expires) for k in LicenceKind],
        classes=[ClassIn(class_id="c1", name="托小班", class_type=ClassType.TODDLER, places=15, enrolled=12, carers=3),
                 ClassIn(class_id="c2", name="托大班", class_type=ClassType.OLDER, places=20, enrolled=18, carers=3)],
        areas=[AreaIn(area_id=z, name=zname, children_area=z in CHILDREN_AREAS) for z, _, zname, _, _ in ZONES],
        devices=[DeviceIn(device_id=f"{fid}-{d}", kind=k, name=zname, zone=z, area_id=z)
                 for z, _, zname, _, devs in ZONES for d, k in devs],
        staff=[StaffIn(staff_id="guard-1", name="保安 王师傅", role=StaffRole.SECURITY),
               StaffIn(staff_id="director", name="园长", role=StaffRole.DIRECTOR)],
    )


def seed_registry(engine: Engine) -> None:
    """File the demo facilities once; a second run finds them there and leaves them be."""
    now = utcnow()
    with engine.begin() as conn:
        for i, (fid, _, name, district, kind, lat, lon) in enumerate(FACILITIES):
            try:
                require_facility(conn, fid)
            except NotFound:
                register_facility(conn, registration(i, fid, name, district, kind, lat, lon), now)


def demo_tokens() -> list[TokenEntry]:
    """One fresh token per role; the facility token is F001's."""
    def tok() -> str:
        return secrets.token_urlsafe(18)
    return [TokenEntry(token=tok(), user="police", role=Role.POLICE),
            TokenEntry(token=tok(), user="health", role=Role.HEALTH),
            TokenEntry(token=tok(), user="supervisor", role=Role.SUPERVISOR),
            TokenEntry(token=tok(), user="F001-director", role=Role.FACILITY, facility_id="F001"),
            TokenEntry(token=tok(), user="admin", role=Role.ADMIN)]
