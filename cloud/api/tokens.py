"""Routes for access itself: an admin creates, lists, revokes and reloads API tokens (a new
token is shown once, only its hash is kept), and any signed-in page asks for a short-lived
ticket to open the alarm stream with."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Optional

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import AwareDatetime, BaseModel, Field, model_validator

from cloud.alarms.records import record_audit
from cloud.api.auth import STREAM_TICKET_TTL_S, Principal, require_role
from cloud.api.common import transaction
from cloud.config import JURISDICTION_ROLES, Role
from cloud.registry.api_tokens import create_token, list_tokens, revoke_token
from cloud.registry.jurisdiction import JURISDICTION_RE
from contracts.ids import FACILITY_ID_RE
from contracts.timefmt import utcnow

router = APIRouter(tags=["access"])

MAX_TOKEN_DAYS = 3650


class TokenIn(BaseModel):
    user: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Role
    facility_id: Optional[str] = Field(default=None, pattern=FACILITY_ID_RE,
                                       description="required for, and only for, role facility")
    jurisdiction: Optional[str] = Field(default=None, pattern=JURISDICTION_RE, max_length=100,
                                        description="province[/city[/district]]; police, health and supervisor only")
    expires_in_days: Optional[float] = Field(default=365, gt=0, le=MAX_TOKEN_DAYS,
                                             description="none: never expires")

    @model_validator(mode="after")
    def _scope(self) -> "TokenIn":
        if (self.role is Role.FACILITY) != (self.facility_id is not None):
            raise ValueError("facility_id is required for, and only for, role facility")
        if self.jurisdiction is not None and self.role not in JURISDICTION_ROLES:
            raise ValueError("only police, health and supervisor tokens take a jurisdiction")
        return self


class TokenInfo(BaseModel):
    token_id: str
    user: str
    role: Role
    facility_id: Optional[str] = None
    jurisdiction: Optional[str] = None
    created_at: AwareDatetime
    created_by: str
    expires_at: Optional[AwareDatetime] = None
    revoked_at: Optional[AwareDatetime] = None


class NewToken(TokenInfo):
    token: str = Field(description="shown this once: only its SHA-256 is kept")


class TokenList(BaseModel):
    items: list[TokenInfo]


class Reloaded(BaseModel):
    live_tokens: int


class StreamTicket(BaseModel):
    ticket: str = Field(description="for GET /api/alarms/stream?ticket=...; single use")
    expires_in_s: float


TokenIdPath = Annotated[str, Path(pattern=r"^tk_[0-9a-f]{12}$")]


@router.post("/api/tokens", response_model=NewToken, status_code=status.HTTP_201_CREATED)
def post_token(request: Request, body: TokenIn,
               who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> NewToken:
    now = utcnow()
    expires_at: Optional[datetime] = now + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    with transaction(request) as conn:
        token_id, token = create_token(conn, user=body.user, role=body.role.value, facility_id=body.facility_id,
                                       jurisdiction=body.jurisdiction, expires_at=expires_at, created_by=who.user,
                                       now=now)
        record_audit(conn, at=now, actor=who.user, role=who.role.value, action="token.created", target=token_id,
                     detail={"user": body.user, "role": body.role.value, "facility_id": body.facility_id,
                             "jurisdiction": body.jurisdiction})
    request.app.state.tokens.reload()
    return NewToken(token_id=token_id, token=token, user=body.user, role=body.role, facility_id=body.facility_id,
                    jurisdiction=body.jurisdiction, created_at=now, created_by=who.user, expires_at=expires_at)


@router.get("/api/tokens", response_model=TokenList)
def get_tokens(request: Request, _who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> TokenList:
    """The tokens made through this API (never the tokens themselves)."""
    with transaction(request) as conn:
        return TokenList(items=[TokenInfo.model_validate(dict(r._mapping)) for r in list_tokens(conn)])


@router.delete("/api/tokens/{token_id}", response_model=TokenInfo)
def delete_token(request: Request, token_id: TokenIdPath,
                 who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> TokenInfo:
    """Revoke: refused from the next request on."""
    now = utcnow()
    with transaction(request) as conn:
        if not revoke_token(conn, token_id, now):
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no token {token_id}")
        record_audit(conn, at=now, actor=who.user, role=who.role.value, action="token.revoked", target=token_id,
                     detail={})
        info = next(r for r in list_tokens(conn) if r.token_id == token_id)
    request.app.state.tokens.reload()
    return TokenInfo.model_validate(dict(info._mapping))


@router.post("/api/tokens/reload", response_model=Reloaded)
def reload_tokens(request: Request, _who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> Reloaded:
    """Read the tokens file and the API tokens again (as SIGHUP does)."""
    try:
        return Reloaded(live_tokens=request.app.state.tokens.reload())
    except Exception as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"tokens not reloaded: {exc}") from None


@router.post("/api/stream-tickets", response_model=StreamTicket, status_code=status.HTTP_201_CREATED)
def post_stream_ticket(request: Request, who: Annotated[Principal, Depends(require_role(*Role))]) -> StreamTicket:
    """A single-use ticket, valid briefly, for the alarm stream (EventSource cannot send the token)."""
    return StreamTicket(ticket=request.app.state.stream_tickets.issue(who), expires_in_s=STREAM_TICKET_TTL_S)
