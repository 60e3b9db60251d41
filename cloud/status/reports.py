"""What the gateways last reported, read for the pages: police paths, the police's facility card,
the facility page and the supervision overview. Query functions on a connection; the routes in
cloud/api/dashboard.py add roles and transactions."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Any, Optional

from pydantic import BaseModel, Field
from sqlalchemy import func, literal, select, union_all
from sqlalchemy.engine import Connection

from cloud.alarms.lifecycle import ResponseTimes, response_times
from cloud.compliance.marks import camera_items
from cloud.compliance.profiles import profile_for
from cloud.compliance.rules import latest_bodies
from cloud.compliance.snapshot import district_rollups
from cloud.registry.records import StaffRole, require_facility
from cloud.registry.jurisdiction import EVERYWHERE, Jurisdiction, path_clause
from cloud.store.db import alarms, areas, camera_areas, cameras, classes, devices, envelopes, facilities, gateways, staff
from cloud.store.paging import Page, keyset, trim
from contracts.alarms import AlarmKind, AlarmState
from contracts.video_platform import VideoPlatformStatus, read_video_platform

ARMING_EVENTS = 50
ARMING_TYPES = ("event.arming", "event.latch_reset")


# --- models -------------------------------------------------------------------------------------
class DevicePlace(BaseModel):
    name: str
    kind: str


class Place(BaseModel):
    """Where an alarm is, as a dispatcher needs it at a glance: names first, ids as keys."""
    facility: str
    name: str
    province: str
    city: str
    district: str
    street: str
    address: str
    contact: Optional[str] = None
    phone: Optional[str] = None
    timezone: str = Field(description="IANA zone the facility's local times are read in")
    zones: dict[str, str] = Field(description="zone or area id -> its name")
    devices: dict[str, DevicePlace] = Field(description="device id -> its name and kind")
    cameras: dict[str, str] = Field(description="camera id -> its name")
    classes: dict[str, str] = Field(description="class id -> its name")
    staff: dict[str, str] = Field(description="staff id -> the person's name")


def _names_by_facility(conn: Connection, named: dict[str, tuple], ids: list[str]) -> dict[str, dict[str, dict[str, str]]]:
    """For each `named` key -> (table, id column): facility -> item id -> name, read in one query
    (the police list asks for this on every page: one round trip, not one per table)."""
    parts = [select(literal(key).label("what"), table.c.facility, table.c[id_column].label("item"), table.c.name)
             .where(table.c.facility.in_(ids)) for key, (table, id_column) in named.items()]
    out: dict[str, dict[str, dict[str, str]]] = {key: {} for key in named}
    for what, fid, item, name in conn.execute(union_all(*parts)):
        out[what].setdefault(fid, {})[item] = name
    return out


class PolicePaths(BaseModel):
    facility: str
    name: str
    city: str
    district: str
    heartbeat_at: Optional[datetime] = Field(description="origin time of the newest heartbeat")
    paths: dict[str, bool] = Field(description="police receiver (host:port) -> path up, from the heartbeat")
    encrypted: Optional[bool] = Field(description="the gateway's DC-09 path runs with AES (false: forgeable); "
                                                  "null: not reported")
    link_down_alarms: int = Field(description="active police_link_down alarms")
    video_platform: Optional[VideoPlatformStatus] = Field(
        default=None, description="GB/T 28181 registration with the police video platform, from the heartbeat")


class PoliceCard(BaseModel):
    facility: str
    place: Place
    lat: Optional[float] = None
    lon: Optional[float] = None
    enrolled: int = Field(description="children enrolled, all classes")
    guards: list[str] = Field(description="names of the facility's security staff (保安)")
    zone: Optional[str]
    zone_cameras: list[str] = Field(description="cameras covering the zone's areas (the zone itself as an area too)")


class CameraState(BaseModel):
    camera_id: str
    name: str
    reported_at: Optional[datetime] = None
    state: Optional[str] = None
    fault: Optional[str] = None
    online: Optional[bool] = Field(default=None, description="streaming without a fault; null: never reported")
    camera_fps: Optional[float] = None
    last_frame_age_s: Optional[float] = None
    connection_quality: Optional[float] = None
    achieved_days: Optional[float] = None
    retention_compliant: Optional[bool] = None
    projected_breach: Optional[Any] = None


class DeviceState(BaseModel):
    device_id: str
    kind: str
    name: str
    zone: Optional[str]
    active_alarms: int


class ArmingEvent(BaseModel):
    ts: datetime
    type: str
    zone: Optional[str]
    armed: Optional[bool] = None
    mode: Optional[str] = None
    by: Optional[str] = None
    refused: Optional[str] = Field(default=None, description="the gateway's English text, for logs and old gateways")
    refused_key: Optional[str] = Field(default=None, description="why, as a stable key (contracts ZoneRefusal) the "
                                                                 "pages word in their language")
    refused_params: dict[str, str] = Field(default_factory=dict, description="the values the wording names")


class ZoneState(BaseModel):
    zone: str
    latched: Optional[str] = Field(default=None, description="the alarm kind the zone is latched on")
    armed: Optional[bool] = Field(default=None, description="from the newest arming event; null: none seen")
    mode: Optional[str] = None


class Retention(BaseModel):
    reported_at: Optional[datetime] = None
    required_days: Optional[float] = None
    cameras: int = 0
    compliant: int = 0


class FacilityStatus(BaseModel):
    facility: str
    name: str
    gateway_last_seen_at: Optional[datetime]
    gateway_online: bool = Field(description="heard from and no active gateway_offline alarm")
    heartbeat_at: Optional[datetime]
    police_paths: dict[str, bool]
    video_platform: Optional[VideoPlatformStatus] = Field(
        default=None, description="GB/T 28181 registration with the police video platform, from the heartbeat")
    active_alarms: int
    zones: list[ZoneState]
    devices: list[DeviceState]
    cameras: list[CameraState]
    retention: Retention
    arming_events: list[ArmingEvent] = Field(description=f"newest first, at most {ARMING_EVENTS}")


class DistrictCompliance(BaseModel):
    province: str
    city: str
    district: str
    facilities: int
    compliant: int
    warning: int
    non_compliant: int
    pending: int = Field(default=0, description="registered a moment ago, not evaluated yet")


class Ratio(BaseModel):
    total: int
    good: int
    ratio: Optional[float] = Field(description="good / total, null without data")


class SupervisionOverview(BaseModel):
    computed_at: datetime
    snapshots_since: Optional[datetime] = Field(
        default=None, description="when the oldest compliance snapshot counted here was evaluated")
    districts: list[DistrictCompliance]
    cameras_online: Ratio = Field(description="registered or reporting cameras; good: a health report within the "
                                              "profile's window says streaming without fault")
    retention_compliant: Ratio = Field(description="cameras in the newest retention reports; good: footage reaches "
                                                   "the profile's required days")
    response_times: list[ResponseTimes] = Field(description="the last 30 days, drills excluded")


# --- reading report bodies ----------------------------------------------------------------------
def _number(value) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _paths(body: dict) -> dict[str, bool]:
    paths = body.get("police_paths")
    return {str(k): bool(v) for k, v in paths.items()} if isinstance(paths, dict) else {}


def _active_alarms(conn: Connection, facility_ids: list[str], kind: Optional[AlarmKind] = None) -> dict[str, int]:
    a = alarms.c
    q = select(a.facility, func.count()).where(a.facility.in_(facility_ids), a.state == AlarmState.ACTIVE.value)
    if kind is not None:
        q = q.where(a.kind == kind.value)
    return dict(conn.execute(q.group_by(a.facility)).all())


# --- places -------------------------------------------------------------------------------------
def places(conn: Connection, facility_ids: list[str]) -> dict[str, Place]:
    """The facilities' names, addresses, phones and time zones, with the names of their zones,
    devices and cameras, for the lists that otherwise carry only ids."""
    ids = sorted(set(facility_ids))
    if not ids:
        return {}
    f, d = facilities.c, devices.c
    names = _names_by_facility(conn, {"areas": (areas, "area_id"), "cameras": (cameras, "camera_id"),
                                      "classes": (classes, "class_id"), "staff": (staff, "staff_id")}, ids)
    area_names, camera_names, class_names, staff_names = (names[k] for k in ("areas", "cameras", "classes", "staff"))
    zones: dict[str, dict[str, str]] = {fid: dict(names) for fid, names in area_names.items()}
    device_places: dict[str, dict[str, DevicePlace]] = {}
    for r in conn.execute(select(d.facility, d.device_id, d.name, d.kind, d.zone, d.area_id).where(d.facility.in_(ids))):
        device_places.setdefault(r.facility, {})[r.device_id] = DevicePlace(name=r.name, kind=r.kind)
        if r.zone:
            # A zone not filed as an area is named after the area its device sits in.
            zones.setdefault(r.facility, {}).setdefault(
                r.zone, area_names.get(r.facility, {}).get(r.area_id or "", r.name))
    out = {}
    for r in conn.execute(select(facilities).where(f.facility_id.in_(ids))):
        out[r.facility_id] = Place(
            facility=r.facility_id, name=r.name, province=r.province, city=r.city, district=r.district,
            street=r.street, address=r.address, contact=r.contact_name, phone=r.contact_phone,
            timezone=profile_for(r.city).care.timezone, zones=zones.get(r.facility_id, {}),
            devices=device_places.get(r.facility_id, {}), cameras=camera_names.get(r.facility_id, {}),
            classes=class_names.get(r.facility_id, {}), staff=staff_names.get(r.facility_id, {}))
    return out


# --- police -------------------------------------------------------------------------------------
def police_paths_page(conn: Connection, limit: int, cursor: Optional[str], city: Optional[str],
                      district: Optional[str], within: Jurisdiction = EVERYWHERE) -> Page[PolicePaths]:
    """Each facility's DC-09 paths as its gateway last reported them, with its open
    police_link_down alarms; a page of facilities by facility_id, under `within`."""
    f = facilities.c
    q = select(f.facility_id, f.name, f.city, f.district).where(*path_clause((f.province, f.city, f.district), within))
    if city is not None:
        q = q.where(f.city == city)
    if district is not None:
        q = q.where(f.district == district)
    rows, nxt = trim(conn.execute(keyset(q, [f.facility_id], limit, cursor)).all(), ["facility_id"], limit)
    ids = [r.facility_id for r in rows]
    beats = latest_bodies(conn, "heartbeat", ids)
    down = _active_alarms(conn, ids, AlarmKind.POLICE_LINK_DOWN)
    items = []
    for r in rows:
        ts, body = beats.get(r.facility_id, (None, {}))
        encrypted = body.get("police_encrypted")
        items.append(PolicePaths(facility=r.facility_id, name=r.name, city=r.city, district=r.district,
                                 heartbeat_at=ts, paths=_paths(body),
                                 encrypted=encrypted if isinstance(encrypted, bool) else None,
                                 link_down_alarms=down.get(r.facility_id, 0), video_platform=read_video_platform(body)))
    return Page[PolicePaths](items=items, next_cursor=nxt)


def police_card(conn: Connection, facility_id: str, zone: Optional[str]) -> PoliceCard:
    """What the facility card needs beyond the facility record, which the police may not read
    elsewhere: the guards, and which cameras look at the alarm's zone."""
    s, d, ca = staff.c, devices.c, camera_areas.c
    require_facility(conn, facility_id)
    guards = conn.execute(select(s.name).where(s.facility == facility_id, s.role == StaffRole.SECURITY.value)
                          .order_by(s.staff_id)).scalars().all()
    zone_cameras: list[str] = []
    if zone is not None:
        area_ids = set(conn.execute(select(d.area_id).where(d.facility == facility_id, d.zone == zone,
                                                            d.area_id.is_not(None))).scalars()) | {zone}
        zone_cameras = list(conn.execute(select(ca.camera_id).distinct()
                                         .where(ca.facility == facility_id, ca.area_id.in_(area_ids))
                                         .order_by(ca.camera_id)).scalars())
    f, cl = facilities.c, classes.c
    loc = conn.execute(select(f.lat, f.lon).where(f.facility_id == facility_id)).one()
    enrolled = conn.execute(select(func.coalesce(func.sum(cl.enrolled), 0)).where(cl.facility == facility_id)).scalar()
    return PoliceCard(facility=facility_id, place=places(conn, [facility_id])[facility_id], lat=loc.lat, lon=loc.lon,
                      enrolled=int(enrolled), guards=list(guards), zone=zone, zone_cameras=zone_cameras)


# --- facility -----------------------------------------------------------------------------------
def _cameras(conn: Connection, facility_id: str, retention: Retention) -> list[CameraState]:
    c = cameras.c
    out = {r.camera_id: CameraState(camera_id=r.camera_id, name=r.name)
           for r in conn.execute(select(c.camera_id, c.name).where(c.facility == facility_id).order_by(c.camera_id))}
    health = latest_bodies(conn, "camera.health", [facility_id]).get(facility_id)
    if health is not None:
        ts, body = health
        for item in camera_items(body):
            cam = out.setdefault(item["camera_id"], CameraState(camera_id=item["camera_id"], name=item["camera_id"]))
            state, fault = item.get("state"), item.get("fault")
            cam.reported_at, cam.state, cam.fault = ts, state if isinstance(state, str) else None, \
                str(fault) if fault else None
            cam.online = state == "streaming" and not fault
            cam.camera_fps = _number(item.get("camera_fps"))
            cam.last_frame_age_s = _number(item.get("last_frame_age_s"))
            cam.connection_quality = _number(item.get("connection_quality"))
    report = latest_bodies(conn, "retention.report", [facility_id]).get(facility_id)
    if report is not None:
        ts, body = report
        retention.reported_at, retention.required_days = ts, _number(body.get("required_days"))
        for item in camera_items(body):
            cam = out.setdefault(item["camera_id"], CameraState(camera_id=item["camera_id"], name=item["camera_id"]))
            cam.achieved_days = _number(item.get("achieved_days"))
            cam.retention_compliant = bool(item.get("compliant"))
            cam.projected_breach = item.get("projected_breach")
            retention.cameras += 1
            retention.compliant += cam.retention_compliant
    return list(out.values())


def _refusal(body: dict) -> dict:
    """An arming event's refusal as its gateway sent it; what is not text is left out (the body
    comes from a gateway and must not break the page)."""
    text, key, params = body.get("refused"), body.get("refused_key"), body.get("refused_params")
    return {"refused": text if isinstance(text, str) else None, "refused_key": key if isinstance(key, str) else None,
            "refused_params": ({k: v for k, v in params.items() if isinstance(k, str) and isinstance(v, str)}
                               if isinstance(params, dict) else {})}


def facility_status(conn: Connection, facility_id: str) -> FacilityStatus:
    """The facility page: gateway, police paths, zones, devices, cameras, retention, arming."""
    e, d, a, g = envelopes.c, devices.c, alarms.c, gateways.c
    require_facility(conn, facility_id)
    name = conn.execute(select(facilities.c.name).where(facilities.c.facility_id == facility_id)).scalar_one()
    last_seen = conn.execute(select(g.last_seen_at).where(g.facility == facility_id)).scalar()
    offline = _active_alarms(conn, [facility_id], AlarmKind.GATEWAY_OFFLINE).get(facility_id, 0)
    beat_ts, beat = latest_bodies(conn, "heartbeat", [facility_id]).get(facility_id, (None, {}))
    per_device = dict(conn.execute(select(a.device_id, func.count())
                                   .where(a.facility == facility_id, a.state == AlarmState.ACTIVE.value,
                                          a.device_id.is_not(None)).group_by(a.device_id)).all())
    device_list = [DeviceState(device_id=r.device_id, kind=r.kind, name=r.name, zone=r.zone,
                               active_alarms=per_device.get(r.device_id, 0))
                   for r in conn.execute(select(devices).where(d.facility == facility_id).order_by(d.device_id))]
    retention = Retention()
    camera_list = _cameras(conn, facility_id, retention)
    events = [ArmingEvent(ts=r.ts, type=r.type, zone=r.body.get("zone"),
                          armed=r.body.get("armed") if isinstance(r.body.get("armed"), bool) else None,
                          mode=r.body.get("mode"), by=r.body.get("by"), **_refusal(r.body))
              for r in conn.execute(select(e.ts, e.type, e.body)
                                    .where(e.facility == facility_id, e.type.in_(ARMING_TYPES))
                                    .order_by(e.ts.desc()).limit(ARMING_EVENTS))]
    active = _active_alarms(conn, [facility_id]).get(facility_id, 0)
    latched = beat.get("latched") if isinstance(beat.get("latched"), dict) else {}
    zones: dict[str, ZoneState] = {z: ZoneState(zone=z) for z in sorted({x.zone for x in device_list if x.zone})}
    for z, kind in latched.items():
        zones.setdefault(str(z), ZoneState(zone=str(z))).latched = str(kind)
    for ev in reversed(events):  # oldest first, so the newest event decides
        if ev.zone and ev.type == "event.arming" and ev.armed is not None:
            zs = zones.setdefault(ev.zone, ZoneState(zone=ev.zone))
            zs.armed, zs.mode = ev.armed, ev.mode or zs.mode
    return FacilityStatus(facility=facility_id, name=name, gateway_last_seen_at=last_seen,
                          gateway_online=last_seen is not None and not offline, heartbeat_at=beat_ts,
                          police_paths=_paths(beat), video_platform=read_video_platform(beat), active_alarms=active,
                          zones=list(zones.values()),
                          devices=device_list, cameras=camera_list, retention=retention, arming_events=events)


# --- supervision --------------------------------------------------------------------------------
# The overview reads the compliance snapshots (cloud.compliance.snapshot), one grouped query; the
# copy kept here spares a room of supervisors reloading the page the response-time aggregation.
OVERVIEW_TTL_S = 10.0


class OverviewCache:
    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[Optional[str], tuple[float, SupervisionOverview]] = {}

    def get(self, key: Optional[str]) -> Optional[SupervisionOverview]:
        with self._lock:
            hit = self._entries.get(key)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < OVERVIEW_TTL_S else None

    def put(self, key: Optional[str], value: SupervisionOverview) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), value)


def _ratio(total: int, good: int) -> Ratio:
    return Ratio(total=total, good=good, ratio=round(good / total, 4) if total else None)


def supervision_overview(conn: Connection, now: datetime, city: Optional[str],
                         within: Jurisdiction = EVERYWHERE) -> SupervisionOverview:
    rollups = district_rollups(conn, city, within)
    oldest = [d.oldest for d in rollups if d.oldest is not None]
    return SupervisionOverview(
        computed_at=now, snapshots_since=min(oldest) if oldest else None,
        districts=[DistrictCompliance(province=d.province, city=d.city, district=d.district, facilities=d.facilities,
                                      compliant=d.compliant, warning=d.warning, non_compliant=d.non_compliant,
                                      pending=d.pending) for d in rollups],
        cameras_online=_ratio(sum(d.cameras for d in rollups), sum(d.cameras_online for d in rollups)),
        retention_compliant=_ratio(sum(d.retention_cameras for d in rollups),
                                   sum(d.retention_compliant for d in rollups)),
        response_times=response_times(conn, since=now - timedelta(days=30), until=now, city=city, within=within))
