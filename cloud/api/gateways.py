"""Gateways: MQTT credentials per facility gateway (the password shown once, a hash kept), the
broker ACL line each needs, and client certificates from the cloud's gateway CA (the private key
shown once, kept nowhere; revocation rewrites the broker's CRL)."""

from __future__ import annotations

from typing import Annotated, Optional

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from pydantic import BaseModel, Field

from cloud.alarms.records import record_audit
from cloud.api.auth import Principal, require_role, scope_facility
from cloud.api.common import Cursor, Limit, transaction
from cloud.api.facilities import FacilityPath
from cloud.config import Role
from cloud.registry import queries
from cloud.registry.gateway_ca import GatewayCA
from cloud.registry.records import (
    Gateway,
    GatewayCredentials,
    GatewayIn,
    gateway_identity,
    issue_gateway,
    rotate_gateway,
)
from cloud.store.paging import Page
from contracts.ids import DEVICE_ID_RE, FACILITY_ID_RE
from contracts.timefmt import utcnow

router = APIRouter(tags=["gateways"])
READERS = (Role.SUPERVISOR, Role.ADMIN, Role.FACILITY)


@router.post("/api/facilities/{facility_id}/gateways", response_model=GatewayCredentials,
             status_code=status.HTTP_201_CREATED)
def issue(request: Request, facility_id: FacilityPath, body: GatewayIn,
          _who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> GatewayCredentials:
    with transaction(request) as conn:
        return issue_gateway(conn, facility_id, body.gateway_id, utcnow())


@router.post("/api/gateways/{gateway_id}/rotate", response_model=GatewayCredentials)
def rotate(request: Request, gateway_id: Annotated[str, Path(pattern=DEVICE_ID_RE)],
           _who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> GatewayCredentials:
    """A new password (shown once); the old one stops working when the broker reloads its password file."""
    with transaction(request) as conn:
        return rotate_gateway(conn, gateway_id, utcnow())


class GatewayCertificate(BaseModel):
    gateway_id: str
    serial: str
    common_name: str = Field(description="the gateway's MQTT username: the broker takes it as the identity")
    not_after: datetime
    certificate_pem: str
    private_key_pem: str = Field(description="shown this once: the cloud keeps no copy")
    ca_pem: str = Field(description="pin this CA for the broker's certificate too")


class Revoked(BaseModel):
    gateway_id: str
    serials: list[str]
    crl_file: str = Field(description="the broker reads it (crlfile) when restarted or sent SIGHUP")


def _ca(request: Request) -> GatewayCA:
    ca = getattr(request.app.state, "gateway_ca", None)
    if ca is None:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="this cloud keeps no gateway CA (set gateway_ca_dir)")
    return ca


GatewayPath = Annotated[str, Path(pattern=DEVICE_ID_RE)]


@router.post("/api/gateways/{gateway_id}/certificate", response_model=GatewayCertificate,
             status_code=status.HTTP_201_CREATED)
def issue_certificate(request: Request, gateway_id: GatewayPath,
                      who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> GatewayCertificate:
    """A client certificate for the gateway; any earlier one is revoked."""
    ca, now = _ca(request), utcnow()
    with transaction(request) as conn:
        facility, username = gateway_identity(conn, gateway_id)
        ca.revoke_gateway(conn, gateway_id, now)
        issued = ca.issue_gateway(conn, gateway_id=gateway_id, facility=facility, common_name=username, now=now)
        record_audit(conn, at=now, actor=who.user, role=who.role.value, action="gateway.certificate.issued",
                     target=gateway_id, detail={"serial": issued.serial})
    return GatewayCertificate(gateway_id=gateway_id, **vars(issued))


@router.delete("/api/gateways/{gateway_id}/certificate", response_model=Revoked)
def revoke_certificate(request: Request, gateway_id: GatewayPath,
                       who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> Revoked:
    ca, now = _ca(request), utcnow()
    with transaction(request) as conn:
        gateway_identity(conn, gateway_id)
        serials = ca.revoke_gateway(conn, gateway_id, now)
        record_audit(conn, at=now, actor=who.user, role=who.role.value, action="gateway.certificate.revoked",
                     target=gateway_id, detail={"serials": serials})
    return Revoked(gateway_id=gateway_id, serials=serials, crl_file=str(ca.crl_path))


@router.get("/api/gateways", response_model=Page[Gateway])
def list_gateways(request: Request, who: Annotated[Principal, Depends(require_role(*READERS))],
                  limit: Limit = 50, cursor: Cursor = None,
                  facility: Annotated[Optional[str], Query(pattern=FACILITY_ID_RE)] = None) -> Page[Gateway]:
    with transaction(request) as conn:
        return queries.list_gateways(conn, limit=limit, cursor=cursor, facility=scope_facility(who, facility),
                                     within=who.within)
