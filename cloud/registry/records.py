"""The registry (登记备案): facilities, their licences and classes, gateway credentials, devices,
the areas of a facility and the cameras covering them, and staff.

Models validate at the edge of the program (the API); the functions below each run in the
caller's transaction, so one request writes all of its rows or none."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.engine import Connection

from cloud.compliance.marks import mark_facilities
from cloud.store.db import (
    areas,
    camera_areas,
    cameras,
    classes,
    devices,
    facilities,
    gateway_credentials,
    gateways,
    licences,
    staff,
)
from contracts import topics
from contracts.device import DeviceKind
from contracts.ids import DEVICE_ID_RE, FACILITY_ID_RE

# --- unified social credit code (统一社会信用代码), GB 32100-2015 ------------------------------
USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I, O, Z, S, V
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_check_char(first17: str) -> str:
    """The 18th character of a code whose first 17 are `first17` (weights 3^i mod 31)."""
    total = sum(USCC_CHARSET.index(ch) * w for ch, w in zip(first17, USCC_WEIGHTS))
    return USCC_CHARSET[(31 - total % 31) % 31]


def uscc_problem(code: str) -> Optional[str]:
    """Why `code` is not a valid unified social credit code, or None when it is."""
    if len(code) != 18:
        return f"must have 18 characters, has {len(code)}"
    bad = sorted({ch for ch in code if ch not in USCC_CHARSET})
    if bad:
        return f"characters {''.join(bad)!r} are not used in GB 32100 codes"
    if not code[2:8].isdigit():
        return "characters 3-8 must be the administrative division code (digits)"
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        return f"check character is {code[17]!r}, expected {expected!r}"
    return None


# --- vocabularies ------------------------------------------------------------------------------
class FacilityKind(str, Enum):
    PUBLIC = "public"
    PRIVATE = "private"
    INCLUSIVE = "inclusive"  # 普惠


class FilingStatus(str, Enum):
    UNFILED = "unfiled"
    PENDING = "pending"
    FILED = "filed"
    REVOKED = "revoked"


class LicenceKind(str, Enum):
    HEALTH_EVALUATION = "health_evaluation"  # 卫生评价
    FIRE = "fire"                            # 消防
    FOOD = "food"                            # 食品经营


class ClassType(str, Enum):
    INFANT = "infant"    # 乳儿班, 6-12 months
    TODDLER = "toddler"  # 托小班, 12-24 months
    OLDER = "older"      # 托大班, 24-36 months
    MIXED = "mixed"      # 混龄班, from 18 months


CLASS_TYPE_ZH = {ClassType.INFANT: "乳儿班", ClassType.TODDLER: "托小班", ClassType.OLDER: "托大班",
                 ClassType.MIXED: "混龄班"}


class StaffRole(str, Enum):
    DIRECTOR = "director"
    CARER = "carer"
    HEALTH_WORKER = "health_worker"
    SECURITY = "security"
    COOK = "cook"
    OTHER = "other"


class CertificateKind(str, Enum):
    HEALTH = "health"        # 健康证
    CARER = "carer"          # 保育员证
    TEACHER = "teacher"      # 教师资格证
    FIRST_AID = "first_aid"
    SECURITY = "security"    # 保安员证
    OTHER = "other"


# --- models --------------------------------------------------------------------------------
Text = Annotated[str, Field(min_length=1, max_length=128)]
ItemId = Annotated[str, Field(pattern=DEVICE_ID_RE)]
FacilityIdField = Annotated[str, Field(pattern=FACILITY_ID_RE)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DistrictPath(_In):
    province: Annotated[str, Field(min_length=1, max_length=32)]
    city: Annotated[str, Field(min_length=1, max_length=32)]
    district: Annotated[str, Field(min_length=1, max_length=32)]
    street: Annotated[str, Field(min_length=1, max_length=64)]


class Location(_In):
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]


class Contact(_In):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    phone: Annotated[str, Field(pattern=r"^\+?[0-9][0-9 -]{4,30}$")]


class Licence(_In):
    kind: LicenceKind
    number: Annotated[str, Field(min_length=1, max_length=64)]
    expires_on: date


class ClassIn(_In):
    class_id: ItemId
    name: Text
    class_type: ClassType
    places: Annotated[int, Field(ge=0, le=1000, description="filed places (托位) of this class")]
    enrolled: Annotated[int, Field(ge=0, le=1000)]
    carers: Annotated[int, Field(ge=0, le=100, description="carers (保育人员) assigned to the class")]


class FacilityIn(_In):
    """Everything about a facility that an administrator files; `facility_id` stays fixed."""
    name: Text
    uscc: Annotated[str, Field(description="unified social credit code (统一社会信用代码), GB 32100 checksum")]
    kind: FacilityKind
    district: DistrictPath
    address: Annotated[str, Field(min_length=1, max_length=256)]
    location: Optional[Location] = None
    contact: Optional[Contact] = None
    filing_status: FilingStatus = FilingStatus.UNFILED
    filing_number: Optional[Annotated[str, Field(min_length=1, max_length=64)]] = None
    licences: Annotated[list[Licence], Field(max_length=len(LicenceKind))] = []
    classes: Annotated[list[ClassIn], Field(max_length=200)] = []

    @field_validator("uscc")
    @classmethod
    def _uscc(cls, v: str) -> str:
        problem = uscc_problem(v)
        if problem:
            raise ValueError(f"not a unified social credit code: {problem}")
        return v

    @field_validator("licences")
    @classmethod
    def _one_licence_per_kind(cls, v: list[Licence]) -> list[Licence]:
        if len({lic.kind for lic in v}) != len(v):
            raise ValueError("each licence kind may be listed once")
        return v

    @field_validator("classes")
    @classmethod
    def _unique_classes(cls, v: list[ClassIn]) -> list[ClassIn]:
        if len({c.class_id for c in v}) != len(v):
            raise ValueError("class_id must be unique within the facility")
        return v

    @model_validator(mode="after")
    def _filed_has_number(self) -> "FacilityIn":
        if self.filing_status is FilingStatus.FILED and not self.filing_number:
            raise ValueError("filing_number is required when filing_status is 'filed'")
        return self


class AreaIn(_In):
    area_id: ItemId
    name: Text
    children_area: bool = Field(description="a room children use (活动室, 睡眠室...): must be covered by an online camera")


class CameraIn(_In):
    camera_id: ItemId
    name: Text
    areas: Annotated[list[ItemId], Field(max_length=50, description="area_ids this camera covers")] = []


class DeviceIn(_In):
    device_id: ItemId
    kind: DeviceKind
    name: Text
    zone: Optional[Annotated[str, Field(min_length=1, max_length=64)]] = None
    area_id: Optional[ItemId] = None


class Certificate(_In):
    kind: CertificateKind
    number: Annotated[str, Field(min_length=1, max_length=64)]
    expires_on: Optional[date] = None


class StaffIn(_In):
    staff_id: ItemId
    name: Annotated[str, Field(min_length=1, max_length=64)]
    role: StaffRole
    certificates: Annotated[list[Certificate], Field(max_length=20)] = []


class GatewayIn(_In):
    gateway_id: ItemId


class FacilityRegistration(FacilityIn):
    """A new facility with what it starts with, written in one transaction."""
    facility_id: FacilityIdField
    areas: Annotated[list[AreaIn], Field(max_length=500)] = []
    cameras: Annotated[list[CameraIn], Field(max_length=500)] = []
    devices: Annotated[list[DeviceIn], Field(max_length=2000)] = []
    staff: Annotated[list[StaffIn], Field(max_length=500)] = []
    gateway: Optional[GatewayIn] = Field(default=None, description="issue MQTT credentials for this gateway now")


class Facility(FacilityIn):
    facility_id: str
    capacity: dict[ClassType, int] = Field(description="filed places per class type")
    enrolment: dict[ClassType, int]
    created_at: datetime
    updated_at: datetime


class Area(AreaIn):
    facility: str


class Camera(CameraIn):
    facility: str


class Device(DeviceIn):
    facility: str


class StaffMember(StaffIn):
    facility: str


class Gateway(BaseModel):
    gateway_id: str
    facility: str
    mqtt_username: str
    created_at: datetime
    rotated_at: datetime
    last_seen_at: Optional[datetime] = Field(description="origin time of the facility's newest uplink envelope")
    acl: str = Field(description="the broker ACL lines for this gateway (Mosquitto acl_file)")


class GatewayCredentials(Gateway):
    """Returned once, when issued or rotated: the password is not stored and cannot be shown again."""
    password: str
    password_file_line: str = Field(description="the line for Mosquitto's password_file")


class RegistrationResult(BaseModel):
    facility: Facility
    gateway: Optional[GatewayCredentials] = None


class RegistryConflict(Exception):
    """A write that would duplicate or orphan a record; the message names it."""


class NotFound(Exception):
    pass


# --- gateway credentials ------------------------------------------------------------------
# Mosquitto's own format ($7$: PBKDF2-SHA512), so the hash can go straight into its password_file.
PBKDF2_ITERATIONS = 20_000
SALT_BYTES = 12


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: Optional[bytes] = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, scheme, iterations, salt, digest = stored.split("$")
        if scheme != "7":
            return False
        given = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(given, base64.b64decode(digest))


def mqtt_username(facility_id: str, gateway_id: str) -> str:
    # '.' appears in neither id, so the name maps back to exactly one facility and gateway.
    return f"{facility_id}.{gateway_id}"


def broker_acl(facility_id: str, username: str) -> str:
    """DESIGN.md: gateway F writes only cg/v1/fac/F/up/# (and its live view frames) and reads only
    cg/v1/fac/F/down/#."""
    return (f"user {username}\n"
            f"topic write {topics.up_all(facility_id)}\n"
            f"topic write {topics.live_all(facility_id)}\n"
            f"topic read {topics.down_all(facility_id)}\n")


def _gateway(row, last_seen: Optional[datetime]) -> Gateway:
    m = row._mapping
    return Gateway(gateway_id=m["gateway_id"], facility=m["facility"], mqtt_username=m["mqtt_username"],
                   created_at=m["created_at"], rotated_at=m["rotated_at"], last_seen_at=last_seen,
                   acl=broker_acl(m["facility"], m["mqtt_username"]))


def issue_gateway(conn: Connection, facility_id: str, gateway_id: str, now: datetime) -> GatewayCredentials:
    require_facility(conn, facility_id)
    if conn.execute(select(gateway_credentials.c.gateway_id)
                    .where(gateway_credentials.c.gateway_id == gateway_id)).first():
        raise RegistryConflict(f"gateway {gateway_id!r} is already registered")
    password = secrets.token_urlsafe(24)
    username = mqtt_username(facility_id, gateway_id)
    hashed = hash_password(password)
    conn.execute(gateway_credentials.insert().values(gateway_id=gateway_id, facility=facility_id,
                                                     mqtt_username=username, password_hash=hashed,
                                                     created_at=now, rotated_at=now))
    return GatewayCredentials(gateway_id=gateway_id, facility=facility_id, mqtt_username=username, created_at=now,
                              rotated_at=now, last_seen_at=None, acl=broker_acl(facility_id, username),
                              password=password, password_file_line=f"{username}:{hashed}")


def rotate_gateway(conn: Connection, gateway_id: str, now: datetime) -> GatewayCredentials:
    row = conn.execute(select(gateway_credentials).where(gateway_credentials.c.gateway_id == gateway_id)).first()
    if row is None:
        raise NotFound(f"no gateway {gateway_id!r}")
    password = secrets.token_urlsafe(24)
    hashed = hash_password(password)
    conn.execute(update(gateway_credentials).where(gateway_credentials.c.gateway_id == gateway_id)
                 .values(password_hash=hashed, rotated_at=now))
    m = row._mapping
    return GatewayCredentials(gateway_id=gateway_id, facility=m["facility"], mqtt_username=m["mqtt_username"],
                              created_at=m["created_at"], rotated_at=now, last_seen_at=None,
                              acl=broker_acl(m["facility"], m["mqtt_username"]), password=password,
                              password_file_line=f"{m['mqtt_username']}:{hashed}")


def gateway_identity(conn: Connection, gateway_id: str) -> tuple[str, str]:
    """(facility, MQTT username) of a registered gateway; NotFound otherwise."""
    g = gateway_credentials.c
    row = conn.execute(select(g.facility, g.mqtt_username).where(g.gateway_id == gateway_id)).first()
    if row is None:
        raise NotFound(f"no gateway {gateway_id!r}")
    return row.facility, row.mqtt_username


def gateway_query():
    """Gateways with their facility's liveness; order and filter it, then pass rows to `gateway_rows`."""
    return (select(gateway_credentials, gateways.c.last_seen_at)
            .outerjoin(gateways, gateways.c.facility == gateway_credentials.c.facility))


def gateway_rows(rows) -> list[Gateway]:
    return [_gateway(r, r._mapping["last_seen_at"]) for r in rows]


# --- facilities -----------------------------------------------------------------------------
def require_camera(conn: Connection, facility_id: str, camera_id: str) -> None:
    c = cameras.c
    if conn.execute(select(c.camera_id).where(c.facility == facility_id, c.camera_id == camera_id)).first() is None:
        raise NotFound(f"no camera {camera_id!r} in facility {facility_id!r}")


def require_facility(conn: Connection, facility_id: str) -> None:
    if conn.execute(select(facilities.c.facility_id).where(facilities.c.facility_id == facility_id)).first() is None:
        raise NotFound(f"no facility {facility_id!r}")


def _facility_values(f: FacilityIn) -> dict:
    return dict(name=f.name, uscc=f.uscc, kind=f.kind.value, province=f.district.province, city=f.district.city,
                district=f.district.district, street=f.district.street, address=f.address,
                lat=f.location.lat if f.location else None, lon=f.location.lon if f.location else None,
                contact_name=f.contact.name if f.contact else None,
                contact_phone=f.contact.phone if f.contact else None,
                filing_status=f.filing_status.value, filing_number=f.filing_number)


def _check_uscc_free(conn: Connection, uscc: str, facility_id: str) -> None:
    other = conn.execute(select(facilities.c.facility_id).where(facilities.c.uscc == uscc,
                                                                facilities.c.facility_id != facility_id)).first()
    if other is not None:
        raise RegistryConflict(f"uscc {uscc} is already registered to facility {other[0]!r}")


def _write_children(conn: Connection, facility_id: str, f: FacilityIn) -> None:
    conn.execute(delete(licences).where(licences.c.facility == facility_id))
    conn.execute(delete(classes).where(classes.c.facility == facility_id))
    if f.licences:
        conn.execute(licences.insert(), [dict(facility=facility_id, kind=lic.kind.value, number=lic.number,
                                              expires_on=lic.expires_on) for lic in f.licences])
    if f.classes:
        conn.execute(classes.insert(), [dict(facility=facility_id, **c.model_dump(mode="json")) for c in f.classes])


def register_facility(conn: Connection, reg: FacilityRegistration, now: datetime) -> RegistrationResult:
    if conn.execute(select(facilities.c.facility_id).where(facilities.c.facility_id == reg.facility_id)).first():
        raise RegistryConflict(f"facility {reg.facility_id!r} is already registered")
    _check_uscc_free(conn, reg.uscc, reg.facility_id)
    conn.execute(facilities.insert().values(facility_id=reg.facility_id, created_at=now, updated_at=now,
                                            **_facility_values(reg)))
    _write_children(conn, reg.facility_id, reg)
    for a in reg.areas:
        add_area(conn, reg.facility_id, a)
    for c in reg.cameras:
        add_camera(conn, reg.facility_id, c)
    for d in reg.devices:
        add_device(conn, reg.facility_id, d)
    for s in reg.staff:
        add_staff(conn, reg.facility_id, s)
    creds = issue_gateway(conn, reg.facility_id, reg.gateway.gateway_id, now) if reg.gateway else None
    return RegistrationResult(facility=get_facility(conn, reg.facility_id), gateway=creds)


def update_facility(conn: Connection, facility_id: str, f: FacilityIn, now: datetime) -> Facility:
    require_facility(conn, facility_id)
    _check_uscc_free(conn, f.uscc, facility_id)
    conn.execute(update(facilities).where(facilities.c.facility_id == facility_id)
                 .values(updated_at=now, **_facility_values(f)))
    _write_children(conn, facility_id, f)
    mark_facilities(conn, [facility_id])
    return get_facility(conn, facility_id)


def facility_rows_to_models(conn: Connection, rows) -> list[Facility]:
    ids = [r._mapping["facility_id"] for r in rows]
    if not ids:
        return []
    lic: dict[str, list[Licence]] = {i: [] for i in ids}
    for r in conn.execute(select(licences).where(licences.c.facility.in_(ids)).order_by(licences.c.kind)):
        lic[r.facility].append(Licence(kind=r.kind, number=r.number, expires_on=r.expires_on))
    cls: dict[str, list[ClassIn]] = {i: [] for i in ids}
    for r in conn.execute(select(classes).where(classes.c.facility.in_(ids)).order_by(classes.c.class_id)):
        m = dict(r._mapping)
        m.pop("facility")
        cls[r.facility].append(ClassIn.model_validate(m))
    out = []
    for r in rows:
        m = r._mapping
        fid = m["facility_id"]
        capacity = {t: 0 for t in ClassType}
        enrolment = {t: 0 for t in ClassType}
        for c in cls[fid]:
            capacity[c.class_type] += c.places
            enrolment[c.class_type] += c.enrolled
        out.append(Facility.model_construct(
            facility_id=fid, name=m["name"], uscc=m["uscc"], kind=FacilityKind(m["kind"]),
            district=DistrictPath(province=m["province"], city=m["city"], district=m["district"], street=m["street"]),
            address=m["address"],
            location=Location(lat=m["lat"], lon=m["lon"]) if m["lat"] is not None and m["lon"] is not None else None,
            contact=(Contact.model_construct(name=m["contact_name"], phone=m["contact_phone"])
                     if m["contact_name"] else None),
            filing_status=FilingStatus(m["filing_status"]), filing_number=m["filing_number"],
            licences=lic[fid], classes=cls[fid], capacity=capacity, enrolment=enrolment,
            created_at=m["created_at"], updated_at=m["updated_at"]))
    return out


def get_facility(conn: Connection, facility_id: str) -> Facility:
    row = conn.execute(select(facilities).where(facilities.c.facility_id == facility_id)).first()
    if row is None:
        raise NotFound(f"no facility {facility_id!r}")
    return facility_rows_to_models(conn, [row])[0]


# --- areas, cameras, devices, staff -------------------------------------------------------
def _exists(conn: Connection, table, **key) -> bool:
    return conn.execute(select(func.count()).select_from(table)
                        .where(and_(*(table.c[k] == v for k, v in key.items())))).scalar_one() > 0


def add_area(conn: Connection, facility_id: str, a: AreaIn) -> Area:
    require_facility(conn, facility_id)
    if _exists(conn, areas, facility=facility_id, area_id=a.area_id):
        raise RegistryConflict(f"area {a.area_id!r} already exists in facility {facility_id!r}")
    conn.execute(areas.insert().values(facility=facility_id, **a.model_dump()))
    mark_facilities(conn, [facility_id])
    return Area(facility=facility_id, **a.model_dump())


def add_camera(conn: Connection, facility_id: str, c: CameraIn) -> Camera:
    require_facility(conn, facility_id)
    if _exists(conn, cameras, facility=facility_id, camera_id=c.camera_id):
        raise RegistryConflict(f"camera {c.camera_id!r} already exists in facility {facility_id!r}")
    for area_id in c.areas:
        if not _exists(conn, areas, facility=facility_id, area_id=area_id):
            raise RegistryConflict(f"camera {c.camera_id!r} covers area {area_id!r}, which facility "
                                   f"{facility_id!r} has not registered")
    conn.execute(cameras.insert().values(facility=facility_id, camera_id=c.camera_id, name=c.name))
    if c.areas:
        conn.execute(camera_areas.insert(), [dict(facility=facility_id, camera_id=c.camera_id, area_id=a)
                                             for a in dict.fromkeys(c.areas)])
    mark_facilities(conn, [facility_id])
    return Camera(facility=facility_id, **c.model_dump())


def add_device(conn: Connection, facility_id: str, d: DeviceIn) -> Device:
    require_facility(conn, facility_id)
    if _exists(conn, devices, facility=facility_id, device_id=d.device_id):
        raise RegistryConflict(f"device {d.device_id!r} already exists in facility {facility_id!r}")
    if d.area_id is not None and not _exists(conn, areas, facility=facility_id, area_id=d.area_id):
        raise RegistryConflict(f"device {d.device_id!r} is in area {d.area_id!r}, which facility "
                               f"{facility_id!r} has not registered")
    conn.execute(devices.insert().values(facility=facility_id, **d.model_dump(mode="json")))
    mark_facilities(conn, [facility_id])
    return Device(facility=facility_id, **d.model_dump())


def add_staff(conn: Connection, facility_id: str, s: StaffIn) -> StaffMember:
    require_facility(conn, facility_id)
    if _exists(conn, staff, facility=facility_id, staff_id=s.staff_id):
        raise RegistryConflict(f"staff member {s.staff_id!r} already exists in facility {facility_id!r}")
    body = s.model_dump(mode="json")
    conn.execute(staff.insert().values(facility=facility_id, **body))
    mark_facilities(conn, [facility_id])
    return StaffMember(facility=facility_id, **s.model_dump())


def camera_rows_to_models(conn: Connection, rows) -> list[Camera]:
    keys = [(r.facility, r.camera_id) for r in rows]
    covered: dict[tuple[str, str], list[str]] = {k: [] for k in keys}
    if keys:
        fids = {k[0] for k in keys}
        for r in conn.execute(select(camera_areas).where(camera_areas.c.facility.in_(fids))
                              .order_by(camera_areas.c.area_id)):
            if (r.facility, r.camera_id) in covered:
                covered[(r.facility, r.camera_id)].append(r.area_id)
    return [Camera(facility=r.facility, camera_id=r.camera_id, name=r.name, areas=covered[(r.facility, r.camera_id)])
            for r in rows]
