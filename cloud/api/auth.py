"""Bearer tokens mapped to a user and a role, and the FastAPI dependency that checks them.

401: no token or an unknown one. 403: a known user whose role may not use the endpoint, or a
facility token asking about another facility (a facility token is bound to one facility_id)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from fastapi import HTTPException, Request, status

from cloud.config import Role, TokenEntry


@dataclass(frozen=True)
class Principal:
    user: str
    role: Role
    facility_id: Optional[str] = None  # set for, and only for, the facility role
    jurisdiction: Optional[str] = None  # "province/city[/district]" an authority's token is limited to

    def may_see(self, facility_id: str) -> bool:
        return self.role is not Role.FACILITY or self.facility_id == facility_id

    def covers(self, province: str, city: str, district: str) -> bool:
        """Whether a facility in province/city/district lies within this token's jurisdiction."""
        if self.jurisdiction is None:
            return True
        scope = tuple(self.jurisdiction.split("/"))
        return (province, city, district)[:len(scope)] == scope


@dataclass(frozen=True)
class TokenGrant:
    """A token as TokenTable needs it; config's TokenEntry works too once it carries `facility_id`."""
    token: str
    user: str
    role: Role
    facility_id: Optional[str] = None
    jurisdiction: Optional[str] = None


class TokenTable:
    def __init__(self, entries: Iterable[TokenEntry | TokenGrant]):
        self._entries = []
        for e in entries:
            role = Role(e.role)
            facility_id = getattr(e, "facility_id", None)
            if (role is Role.FACILITY) != (facility_id is not None):
                raise ValueError(f"token of user {e.user!r}: a facility_id is required for, and only for, "
                                 f"the facility role")
            self._entries.append((e.token.encode(), Principal(e.user, role, facility_id,
                                                              getattr(e, "jurisdiction", None))))

    def lookup(self, token: str) -> Principal | None:
        # Compare against every entry in constant time, so timing does not reveal a prefix.
        given = token.encode()
        found = None
        for known, principal in self._entries:
            if hmac.compare_digest(known, given):
                found = principal
        return found


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=reason, headers={"WWW-Authenticate": "Bearer"})


def require_role(*roles: Role | str, allow_query_token: bool = False) -> Callable[[Request], Principal]:
    """A dependency admitting only `roles`. `allow_query_token` also accepts `?token=`, for
    EventSource, which cannot set headers; elsewhere tokens stay out of URLs (and logs)."""
    allowed = frozenset(Role(r) for r in roles)

    def dependency(request: Request) -> Principal:
        token = None
        header = request.headers.get("authorization")
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise _unauthorized("Authorization header must be 'Bearer <token>'")
            token = value.strip()
        elif allow_query_token:
            token = request.query_params.get("token")
        if not token:
            raise _unauthorized("missing bearer token")
        principal = request.app.state.tokens.lookup(token)
        if principal is None:
            raise _unauthorized("unknown token")
        if principal.role not in allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail=f"role {principal.role.value!r} may not do this; needs one of "
                                       f"{sorted(r.value for r in allowed)}")
        return principal

    return dependency


def forbid_other_facility(who: Principal, facility_id: str) -> None:
    """403 unless `who` may read or act on `facility_id`."""
    if not who.may_see(facility_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"a facility token for {who.facility_id!r} may not access facility {facility_id!r}")


def scope_facility(who: Principal, requested: Optional[str]) -> Optional[str]:
    """The facility filter a list must apply: a facility token sees its own facility only."""
    if who.role is Role.FACILITY:
        if requested is not None:
            forbid_other_facility(who, requested)
        return who.facility_id
    return requested
