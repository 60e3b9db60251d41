"""Commands to a facility's gateway: a drill (a `test` alarm the police see as a test), latch
reset, arm and disarm. Each is an `arm.set` envelope on `cg/v1/fac/{F}/down/arm` (QoS 1), audited.

Who may do what: a facility runs drills and arms or disarms its own zones; the police reset a
latched panic zone once they have dealt with it; the admin may do all of it."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import BaseModel, Field

from cloud.alarms.records import record_audit
from cloud.api.auth import Principal, forbid_outside_scope, require_role
from cloud.api.common import transaction
from cloud.api.facilities import FacilityPath
from cloud.config import Role
from cloud.registry.records import require_facility
from contracts.envelope import ArmSetBody, DownType, ZoneAction, make_envelope
from contracts.ids import DEVICE_ID_RE
from contracts.timefmt import utcnow
from contracts.topics import DownKind, down

router = APIRouter(prefix="/api/facilities/{facility_id}", tags=["commands"])

ZoneId = Annotated[str, Field(pattern=DEVICE_ID_RE, description="a zone of the gateway's configuration")]
ZonePath = Annotated[str, Path(pattern=DEVICE_ID_RE)]


class DrillRequest(BaseModel):
    zone: ZoneId


class CommandResult(BaseModel):
    facility: str
    zone: str
    action: ZoneAction
    by: str
    envelope_id: UUID
    topic: str
    published: bool = Field(description="the broker confirmed the message (QoS 1); if false it stays queued "
                                        "in the cloud's client and goes out on reconnect")


def send_zone_command(request: Request, who: Principal, facility_id: str, zone: str,
                      action: ZoneAction) -> CommandResult:
    forbid_outside_scope(request, who, facility_id)
    body = ArmSetBody(action=action, zone=zone, by=who.user)
    env = make_envelope(facility_id, DownType.ARM_SET.value, body.model_dump(mode="json"), source="cloud")
    with transaction(request) as conn:
        require_facility(conn, facility_id)
        record_audit(conn, at=utcnow(), actor=who.user, role=who.role.value, action=f"zone.{action.value}",
                     target=f"{facility_id}/{zone}", detail={"envelope": str(env.id)})
    downlink = request.app.state.downlink
    published = downlink.publish(env, DownKind.ARM) if downlink is not None else False
    return CommandResult(facility=facility_id, zone=zone, action=action, by=who.user, envelope_id=env.id,
                         topic=down(facility_id, DownKind.ARM), published=published)


@router.post("/drill", response_model=CommandResult, status_code=status.HTTP_202_ACCEPTED)
def drill(request: Request, facility_id: FacilityPath, body: DrillRequest,
          who: Annotated[Principal, Depends(require_role(Role.FACILITY, Role.ADMIN))]) -> CommandResult:
    """Ask the gateway to raise a `test` alarm in `zone`: it goes to the police receiver as a
    manual test (DC-09 TX) and the police board shows it as a drill, never as a dispatch."""
    return send_zone_command(request, who, facility_id, body.zone, ZoneAction.TEST)


@router.post("/zones/{zone}/reset", response_model=CommandResult, status_code=status.HTTP_202_ACCEPTED)
def reset_zone(request: Request, facility_id: FacilityPath, zone: ZonePath,
               who: Annotated[Principal, Depends(require_role(Role.POLICE, Role.ADMIN))]) -> CommandResult:
    """Unlatch a 24-hour zone after a panic (a latched zone raises nothing new until reset)."""
    return send_zone_command(request, who, facility_id, zone, ZoneAction.RESET)


@router.post("/zones/{zone}/arm", response_model=CommandResult, status_code=status.HTTP_202_ACCEPTED)
def arm_zone(request: Request, facility_id: FacilityPath, zone: ZonePath,
             who: Annotated[Principal, Depends(require_role(Role.FACILITY, Role.ADMIN))]) -> CommandResult:
    return send_zone_command(request, who, facility_id, zone, ZoneAction.ARM)


@router.post("/zones/{zone}/disarm", response_model=CommandResult, status_code=status.HTTP_202_ACCEPTED)
def disarm_zone(request: Request, facility_id: FacilityPath, zone: ZonePath,
                who: Annotated[Principal, Depends(require_role(Role.FACILITY, Role.ADMIN))]) -> CommandResult:
    """The gateway refuses to disarm a 24-hour zone and reports the refusal as an `event.arming`."""
    return send_zone_command(request, who, facility_id, zone, ZoneAction.DISARM)


@router.post("/zones/{zone}/schedule", response_model=CommandResult, status_code=status.HTTP_202_ACCEPTED)
def schedule_zone(request: Request, facility_id: FacilityPath, zone: ZonePath,
                  who: Annotated[Principal, Depends(require_role(Role.FACILITY, Role.ADMIN))]) -> CommandResult:
    """Back to the zone's arming schedule after an arm or disarm by hand."""
    return send_zone_command(request, who, facility_id, zone, ZoneAction.SCHEDULE)
