"""Care records (卫生保健): class rosters of pseudonymous children, morning and noon checks (晨午检),
staff health certificates, yearly checks and training, and the lifetime ban list (终身禁入)
checked on hiring.

What identifies a child (the facility's pseudonym, the birth month, free-text actions) is
encrypted at rest (cloud.care.privacy); rows are found by keyed references. Names and identity numbers
are refused at the edge. The functions run in the caller's transaction."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Annotated, Any, Callable, Optional, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    delete,
    func,
    select,
)
from sqlalchemy.engine import Connection

from cloud.registry.jurisdiction import EVERYWHERE, Jurisdiction, facilities_within, path_clause
from cloud.care.health_rules import (
    CertificateStatus,
    CheckKind,
    Symptom,
    SymptomObservation,
    certificate_status,
    local_day,
    morning_check_missing,
    symptoms_of,
)
from cloud.care.privacy import FieldCipher, identifying_field, looks_like_resident_id
from cloud.compliance.marks import mark_facilities
from cloud.compliance.profiles import profile_for
from cloud.registry.records import CLASS_TYPE_ZH, ClassType, NotFound, RegistryConflict
from cloud.store.db import UTCDateTime, classes, facilities, metadata, staff
from contracts.ids import DEVICE_ID_RE

_ID = 64
_ENC = 400  # base64 of nonce + ciphertext + tag of a short field, with room

# --- tables (created by migration 0002) -----------------------------------------------------
care_rosters = Table(
    "care_rosters", metadata,
    Column("facility", String(32), primary_key=True),
    Column("class_id", String(_ID), primary_key=True),
    Column("carers_on_duty", JSON, nullable=False, doc="staff_ids of the carers on duty with the class"),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(64), nullable=False),
    ForeignKeyConstraint(["facility"], ["facilities.facility_id"], ondelete="CASCADE"),
)

care_children = Table(
    "care_children", metadata,
    Column("facility", String(32), primary_key=True),
    Column("child_ref", String(64), primary_key=True, doc="HMAC of the facility's pseudonym: finds, never reveals"),
    Column("class_id", String(_ID), nullable=False),
    Column("child_id_enc", String(_ENC), nullable=False),
    Column("birth_month_enc", String(_ENC), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    ForeignKeyConstraint(["facility"], ["facilities.facility_id"], ondelete="CASCADE"),
    Index("ix_care_children_class", "facility", "class_id"),
)

care_checks = Table(
    "care_checks", metadata,
    Column("id", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("facility", String(32), nullable=False),
    Column("class_id", String(_ID), nullable=False),
    Column("child_ref", String(64), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("local_date", Date, nullable=False, doc="the facility's local day of the check"),
    Column("at", UTCDateTime, nullable=False),
    Column("temperature_c", Float),
    Column("symptoms", JSON, nullable=False, doc="symptom names, fever included when the temperature reached it"),
    Column("action_enc", String(1200)),
    Column("recorded_by", String(64), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    ForeignKeyConstraint(["facility"], ["facilities.facility_id"], ondelete="CASCADE"),
    Index("ix_care_checks_day", "facility", "local_date"),
    Index("ix_care_checks_at", "at"),
)

care_staff_records = Table(
    "care_staff_records", metadata,
    Column("facility", String(32), primary_key=True),
    Column("staff_id", String(_ID), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("number", String(64)),
    Column("issued_on", Date, nullable=False),
    Column("expires_on", Date),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("recorded_by", String(64), nullable=False),
    ForeignKeyConstraint(["facility", "staff_id"], ["staff.facility", "staff.staff_id"], ondelete="CASCADE"),
)

# Only keyed references of the banned person's name and identity number: the list can be checked
# against, not read back.
care_ban_list = Table(
    "care_ban_list", metadata,
    Column("id", Integer().with_variant(BigInteger, "postgresql"), primary_key=True, autoincrement=True),
    Column("name_ref", String(64), nullable=False, index=True),
    Column("id_ref", String(64), index=True),
    Column("listed_on", Date, nullable=False),
    Column("authority", String(128), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("recorded_by", String(64), nullable=False),
)


class CareInputError(Exception):
    """Input that is well-formed but wrong against the store (a child not on the roster); names its field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class BanListMatch(RegistryConflict):
    """The person to hire is on the lifetime ban list (终身禁入)."""


# --- models -----------------------------------------------------------------------------------
ItemId = Annotated[str, Field(pattern=DEVICE_ID_RE)]
BIRTH_MONTH_RE = r"^(19|20)\d{2}-(0[1-9]|1[0-2])$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_identifying_fields(cls, data: Any) -> Any:
        bad = identifying_field(data)
        if bad is not None:
            raise ValueError(f"field {bad!r} is refused: children's names, identity numbers and contact "
                             "details never leave the facility; send the pseudonymous child_id only")
        return data


class ChildIn(_In):
    child_id: Annotated[str, Field(pattern=DEVICE_ID_RE, description="the facility's pseudonym for the child")]
    birth_month: Annotated[str, Field(pattern=BIRTH_MONTH_RE, description="YYYY-MM; never the full date")]

    @field_validator("child_id")
    @classmethod
    def _not_identity_number(cls, v: str) -> str:
        if looks_like_resident_id(v):
            raise ValueError("looks like a resident identity number: use the facility's pseudonym")
        return v


class RosterIn(_In):
    children: Annotated[list[ChildIn], Field(max_length=100)]
    carers_on_duty: Annotated[list[ItemId], Field(max_length=50, description="staff_ids on duty with the class")] = []

    @field_validator("children")
    @classmethod
    def _unique(cls, v: list[ChildIn]) -> list[ChildIn]:
        if len({c.child_id for c in v}) != len(v):
            raise ValueError("child_id must be unique within the roster")
        return v


class Roster(BaseModel):
    facility: str
    class_id: str
    class_type: ClassType
    children: list[ChildIn]
    carers_on_duty: list[str]
    updated_at: Optional[datetime]


class CheckIn(_In):
    class_id: ItemId
    child_id: ItemId
    kind: CheckKind
    temperature_c: Annotated[Optional[float], Field(ge=34.0, le=43.0, description="°C, as measured")] = None
    symptoms: Annotated[list[Symptom], Field(max_length=len(Symptom))] = []
    action: Annotated[Optional[str], Field(max_length=200, description="what was done: sent home, observed...")] = None
    at: Optional[datetime] = Field(default=None, description="time of the check (UTC offset required); default: now")

    @field_validator("at")
    @classmethod
    def _aware(cls, v: Optional[datetime]) -> Optional[datetime]:
        if v is not None and v.tzinfo is None:
            raise ValueError("must carry its UTC offset")
        return v


class CheckRecorded(BaseModel):
    id: int
    facility: str
    class_id: str
    kind: CheckKind
    local_date: date
    at: datetime
    temperature_c: Optional[float]
    symptoms: list[Symptom]


class CheckRecord(CheckRecorded):
    child_id: str
    action: Optional[str]


class CheckSummary(BaseModel):
    facility: str
    facility_name: str
    class_id: str
    class_type: ClassType
    class_type_zh: str
    enrolled: int = Field(description="children on the roster (the filed enrolment when no roster is kept)")
    morning_done: int = Field(description="distinct children checked in the morning")
    noon_done: int
    morning_missing_after_10: bool = Field(description="no morning check by the profile's deadline (10:00 local), "
                                                       "and that deadline has passed")


class StaffRecordKind(str, Enum):
    HEALTH_CERTIFICATE = "health_certificate"  # 健康证
    YEARLY_CHECK = "yearly_check"              # 年度体检
    TRAINING = "training"                      # 岗前/在岗培训


# Health certificate and yearly check hold a year unless the document says otherwise.
DEFAULT_VALIDITY = {StaffRecordKind.HEALTH_CERTIFICATE: 365, StaffRecordKind.YEARLY_CHECK: 365}


class StaffRecordIn(_In):
    facility: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    kind: StaffRecordKind
    number: Annotated[Optional[str], Field(min_length=1, max_length=64)] = None
    issued_on: date
    expires_on: Optional[date] = None

    @model_validator(mode="after")
    def _dates(self) -> "StaffRecordIn":
        if self.expires_on is not None and self.expires_on < self.issued_on:
            raise ValueError("expires_on is before issued_on")
        return self


class StaffRecord(BaseModel):
    facility: str
    staff_id: str
    kind: str
    number: Optional[str]
    issued_on: Optional[date]
    expires_on: Optional[date]


class CertificateItem(BaseModel):
    facility: str
    staff_id: str
    role: str
    kind: str
    expires_on: date
    status: CertificateStatus


class BanEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=64)]
    id_number: Annotated[Optional[str], Field(pattern=r"^(\d{17}[\dXx]|\d{15})$")] = None
    listed_on: date
    authority: Annotated[str, Field(min_length=1, max_length=128, description="who listed the person")]


class BanEntry(BaseModel):
    id: int
    listed_on: date
    authority: str
    has_id_number: bool


# --- rosters ----------------------------------------------------------------------------------
def _ctx(facility: str, child_ref: str, field: str) -> str:
    return f"{facility}/{child_ref}/{field}"


def child_ref(cipher: FieldCipher, facility: str, child_id: str) -> str:
    return cipher.reference("child", facility, child_id)


def class_type_of(conn: Connection, facility: str, class_id: str) -> ClassType:
    row = conn.execute(select(classes.c.class_type).where(classes.c.facility == facility,
                                                          classes.c.class_id == class_id)).first()
    if row is None:
        raise NotFound(f"facility {facility!r} has no class {class_id!r}")
    return ClassType(row[0])


def write_roster(conn: Connection, cipher: FieldCipher, facility: str, class_id: str, body: RosterIn, *,
                 user: str, now: datetime) -> Roster:
    """Replace the class's roster; a child listed here moves from any other class of the facility."""
    ctype = class_type_of(conn, facility, class_id)
    if body.carers_on_duty:
        known = set(conn.execute(select(staff.c.staff_id).where(staff.c.facility == facility,
                                                                staff.c.staff_id.in_(body.carers_on_duty))).scalars())
        unknown = [s for s in body.carers_on_duty if s not in known]
        if unknown:
            raise CareInputError("carers_on_duty", f"not staff of facility {facility!r}: {', '.join(unknown)}")
    c = care_children.c
    conn.execute(delete(care_children).where(c.facility == facility, c.class_id == class_id))
    refs = [child_ref(cipher, facility, ch.child_id) for ch in body.children]
    if refs:
        conn.execute(delete(care_children).where(c.facility == facility, c.child_ref.in_(refs)))
        conn.execute(care_children.insert(), [
            dict(facility=facility, child_ref=ref, class_id=class_id, updated_at=now,
                 child_id_enc=cipher.encrypt(ch.child_id, _ctx(facility, ref, "child_id")),
                 birth_month_enc=cipher.encrypt(ch.birth_month, _ctx(facility, ref, "birth_month")))
            for ref, ch in zip(refs, body.children)])
    r = care_rosters.c
    conn.execute(delete(care_rosters).where(r.facility == facility, r.class_id == class_id))
    conn.execute(care_rosters.insert().values(facility=facility, class_id=class_id,
                                              carers_on_duty=list(dict.fromkeys(body.carers_on_duty)),
                                              updated_at=now, updated_by=user))
    mark_facilities(conn, [facility])
    return Roster(facility=facility, class_id=class_id, class_type=ctype, children=body.children,
                  carers_on_duty=list(dict.fromkeys(body.carers_on_duty)), updated_at=now)


def read_roster(conn: Connection, cipher: FieldCipher, facility: str, class_id: str) -> Roster:
    ctype = class_type_of(conn, facility, class_id)
    c = care_children.c
    children = [ChildIn.model_construct(child_id=cipher.decrypt(row.child_id_enc, _ctx(facility, row.child_ref,
                                                                                        "child_id")),
                                        birth_month=cipher.decrypt(row.birth_month_enc,
                                                                   _ctx(facility, row.child_ref, "birth_month")))
                for row in conn.execute(select(care_children).where(c.facility == facility, c.class_id == class_id))]
    children.sort(key=lambda ch: ch.child_id)
    head = conn.execute(select(care_rosters).where(care_rosters.c.facility == facility,
                                                   care_rosters.c.class_id == class_id)).first()
    return Roster(facility=facility, class_id=class_id, class_type=ctype, children=children,
                  carers_on_duty=list(head.carers_on_duty) if head else [], updated_at=head.updated_at if head else None)


# --- checks -----------------------------------------------------------------------------------
def record_check(conn: Connection, cipher: FieldCipher, facility: str, body: CheckIn, *, user: str,
                 now: datetime) -> CheckRecorded:
    """Record a child's check under the profile of the facility's city (its fever threshold and day)."""
    class_type_of(conn, facility, body.class_id)
    profile = profile_for(conn.execute(select(facilities.c.city).where(facilities.c.facility_id == facility)).scalar())
    at = body.at or now
    if at > now + timedelta(minutes=5):
        raise CareInputError("at", "is in the future")
    ref = child_ref(cipher, facility, body.child_id)
    on_roster = conn.execute(select(care_children.c.class_id).where(care_children.c.facility == facility,
                                                                    care_children.c.child_ref == ref)).first()
    if on_roster is None or on_roster[0] != body.class_id:
        raise CareInputError("child_id", f"not on the roster of class {body.class_id!r}")
    found = sorted(symptoms_of(body.symptoms, body.temperature_c, profile.care), key=lambda s: s.value)
    day = local_day(at, profile.care)
    values = dict(facility=facility, class_id=body.class_id, child_ref=ref, kind=body.kind.value, local_date=day,
                  at=at, temperature_c=body.temperature_c, symptoms=[s.value for s in found],
                  action_enc=cipher.encrypt(body.action, _ctx(facility, ref, "action")) if body.action else None,
                  recorded_by=user, recorded_at=now)
    new_id = conn.execute(care_checks.insert().values(**values)).inserted_primary_key[0]
    mark_facilities(conn, [facility])
    return CheckRecorded(id=new_id, facility=facility, class_id=body.class_id, kind=body.kind, local_date=day, at=at,
                         temperature_c=body.temperature_c, symptoms=found)


def read_checks(conn: Connection, cipher: FieldCipher, facility: str, day: date,
                class_id: Optional[str] = None) -> list[CheckRecord]:
    k = care_checks.c
    q = select(care_checks).where(k.facility == facility, k.local_date == day)
    if class_id is not None:
        q = q.where(k.class_id == class_id)
    refs = {r.child_ref: r for r in conn.execute(select(care_children).where(care_children.c.facility == facility))}
    out = []
    for row in conn.execute(q.order_by(k.at, k.id)):
        child = refs.get(row.child_ref)
        child_id = (cipher.decrypt(child.child_id_enc, _ctx(facility, row.child_ref, "child_id"))
                    if child is not None else "(left the roster)")
        out.append(CheckRecord(id=row.id, facility=facility, class_id=row.class_id, kind=row.kind,
                               local_date=row.local_date, at=row.at, temperature_c=row.temperature_c,
                               symptoms=row.symptoms, child_id=child_id,
                               action=cipher.decrypt(row.action_enc, _ctx(facility, row.child_ref, "action"))
                               if row.action_enc else None))
    return out


Facilities = Optional[str | Sequence[str]]


def _filtered(q, column, facility: Facilities):
    """`q` for one facility, a list of them (compliance reads in batches), or all (None)."""
    if facility is None:
        return q
    return q.where(column == facility if isinstance(facility, str) else column.in_(list(facility)))


def roster_counts(conn: Connection, facility: Facilities = None) -> dict[tuple[str, str], int]:
    c = care_children.c
    q = _filtered(select(c.facility, c.class_id, func.count()).group_by(c.facility, c.class_id), c.facility, facility)
    return {(f, cl): n for f, cl, n in conn.execute(q)}


def first_morning_checks(conn: Connection, day: date, facility: Facilities = None) -> dict[tuple[str, str], datetime]:
    k = care_checks.c
    q = (select(k.facility, k.class_id, func.min(k.at)).where(k.local_date == day, k.kind == CheckKind.MORNING.value)
         .group_by(k.facility, k.class_id))
    return {(f, cl): at for f, cl, at in conn.execute(_filtered(q, k.facility, facility))}


def check_summary(conn: Connection, day: date, now: datetime, facility: Optional[str] = None,
                  within: Jurisdiction = EVERYWHERE) -> list[CheckSummary]:
    f, cl, k = facilities.c, classes.c, care_checks.c
    q = (select(f.facility_id, f.name, f.city, cl.class_id, cl.class_type, cl.enrolled)
         .join(classes, cl.facility == f.facility_id).order_by(f.facility_id, cl.class_id))
    if facility is not None:
        q = q.where(f.facility_id == facility)
    q = q.where(*path_clause((f.province, f.city, f.district), within))
    rows = conn.execute(q).all()
    counts = roster_counts(conn, facility)
    rostered = {(r.facility, r.class_id) for r in conn.execute(select(care_rosters.c.facility, care_rosters.c.class_id))}
    dq = (select(k.facility, k.class_id, k.kind, func.count(func.distinct(k.child_ref)))
          .where(k.local_date == day).group_by(k.facility, k.class_id, k.kind))
    if facility is not None:
        dq = dq.where(k.facility == facility)
    done = {(fac, cid, kind): n for fac, cid, kind, n in conn.execute(dq)}
    first = first_morning_checks(conn, day, facility)
    out = []
    for r in rows:
        key = (r.facility_id, r.class_id)
        enrolled = counts.get(key, 0) if key in rostered else r.enrolled
        care = profile_for(r.city).care
        out.append(CheckSummary(
            facility=r.facility_id, facility_name=r.name, class_id=r.class_id, class_type=r.class_type,
            class_type_zh=CLASS_TYPE_ZH[ClassType(r.class_type)], enrolled=enrolled,
            morning_done=done.get((*key, CheckKind.MORNING.value), 0), noon_done=done.get((*key, CheckKind.NOON.value), 0),
            morning_missing_after_10=morning_check_missing(enrolled, first.get(key), day, now, care)))
    return out


def symptom_observations(conn: Connection, since: datetime, until: datetime,
                         facility: Optional[str] = None) -> list[SymptomObservation]:
    k = care_checks.c
    q = select(k.facility, k.class_id, k.child_ref, k.symptoms, k.at).where(k.at >= since, k.at <= until)
    if facility is not None:
        q = q.where(k.facility == facility)
    out = []
    for r in conn.execute(q):
        for s in r.symptoms or []:
            if s in Symptom._value2member_map_:
                out.append(SymptomObservation(r.facility, r.class_id, r.child_ref, Symptom(s), r.at))
    return out


# --- staff records and certificates -----------------------------------------------------------
def record_staff_record(conn: Connection, staff_id: str, body: StaffRecordIn, *, user: str,
                        now: datetime) -> StaffRecord:
    if conn.execute(select(staff.c.staff_id).where(staff.c.facility == body.facility,
                                                   staff.c.staff_id == staff_id)).first() is None:
        raise NotFound(f"facility {body.facility!r} has no staff member {staff_id!r}")
    expires = body.expires_on
    if expires is None and body.kind in DEFAULT_VALIDITY:
        expires = body.issued_on + timedelta(days=DEFAULT_VALIDITY[body.kind])
    s = care_staff_records.c
    conn.execute(delete(care_staff_records).where(s.facility == body.facility, s.staff_id == staff_id,
                                                  s.kind == body.kind.value))
    conn.execute(care_staff_records.insert().values(facility=body.facility, staff_id=staff_id, kind=body.kind.value,
                                                    number=body.number, issued_on=body.issued_on, expires_on=expires,
                                                    recorded_at=now, recorded_by=user))
    mark_facilities(conn, [body.facility])
    return StaffRecord(facility=body.facility, staff_id=staff_id, kind=body.kind.value, number=body.number,
                       issued_on=body.issued_on, expires_on=expires)


def staff_documents(conn: Connection, facility: Facilities = None) -> list[tuple[str, str, str, str, Optional[date]]]:
    """(facility, staff_id, role, kind, expires_on) for every care record and every registry
    certificate; a registry `health` certificate counts as the health certificate."""
    st, s = staff.c, care_staff_records.c
    q = _filtered(select(st.facility, st.staff_id, st.role, st.certificates), st.facility, facility)
    out = []
    roles = {}
    for r in conn.execute(q):
        roles[(r.facility, r.staff_id)] = r.role
        for cert in r.certificates or []:
            if isinstance(cert, dict) and cert.get("expires_on"):
                kind = StaffRecordKind.HEALTH_CERTIFICATE.value if cert.get("kind") == "health" else str(cert.get("kind"))
                out.append((r.facility, r.staff_id, r.role, kind, date.fromisoformat(cert["expires_on"])))
    rq = _filtered(select(s.facility, s.staff_id, s.kind, s.expires_on), s.facility, facility)
    for r in conn.execute(rq):
        out.append((r.facility, r.staff_id, roles.get((r.facility, r.staff_id), "other"), r.kind, r.expires_on))
    return out


def certificate_items(conn: Connection, today: date, *, facility: Optional[str] = None,
                      within: Jurisdiction = EVERYWHERE,
                      within_days: Optional[int] = None) -> list[CertificateItem]:
    """Documents with an expiry; with `within_days`, only those expiring within that many days or expired."""
    city = dict(conn.execute(select(facilities.c.facility_id, facilities.c.city)).all())
    items = []
    for fac, staff_id, role, kind, expires in staff_documents(conn, facility):
        if expires is None:
            continue
        if within_days is not None and (expires - today).days > within_days:
            continue
        warning = profile_for(city.get(fac)).care.certificate_warning_days
        items.append(CertificateItem(facility=fac, staff_id=staff_id, role=role, kind=kind, expires_on=expires,
                                     status=certificate_status(expires, today, warning)))
    allowed = facilities_within(conn, within)
    if allowed is not None:
        items = [i for i in items if i.facility in allowed]
    items.sort(key=lambda i: (i.expires_on, i.facility, i.staff_id, i.kind))
    return items


# --- lifetime ban list (终身禁入) --------------------------------------------------------------
_SPACE = re.compile(r"\s+")


def _name_ref(cipher: FieldCipher, name: str) -> str:
    return cipher.reference("ban-name", _SPACE.sub("", name))


def _id_ref(cipher: FieldCipher, id_number: str) -> str:
    return cipher.reference("ban-id", id_number.upper())


def add_ban_entry(conn: Connection, cipher: FieldCipher, body: BanEntryIn, *, user: str, now: datetime) -> BanEntry:
    values = dict(name_ref=_name_ref(cipher, body.name), id_ref=_id_ref(cipher, body.id_number) if body.id_number else None,
                  listed_on=body.listed_on, authority=body.authority, recorded_at=now, recorded_by=user)
    new_id = conn.execute(care_ban_list.insert().values(**values)).inserted_primary_key[0]
    return BanEntry(id=new_id, listed_on=body.listed_on, authority=body.authority,
                    has_id_number=body.id_number is not None)


def check_hiring(conn: Connection, get_cipher: Callable[[], FieldCipher], name: str, id_number: Optional[str]) -> None:
    """Raises BanListMatch when the person is banned. With an identity number on both sides the
    number decides; otherwise the name does, so a namesake is refused until a number tells them apart.
    The cipher is asked for only when the list holds anyone, so a store without a data key can hire."""
    b = care_ban_list.c
    if conn.execute(select(b.id).limit(1)).first() is None:
        return
    cipher = get_cipher()
    if id_number:
        hit = conn.execute(select(b.listed_on, b.authority).where(b.id_ref == _id_ref(cipher, id_number))).first()
        if hit is None:
            hit = conn.execute(select(b.listed_on, b.authority).where(b.name_ref == _name_ref(cipher, name),
                                                                      b.id_ref.is_(None))).first()
    else:
        hit = conn.execute(select(b.listed_on, b.authority).where(b.name_ref == _name_ref(cipher, name))).first()
    if hit is not None:
        raise BanListMatch(f"refused: the person is on the lifetime ban list (终身禁入), listed on {hit.listed_on} by "
                           f"{hit.authority}" + ("" if id_number else "; if this is a namesake, give id_number"))
