"""Bearer tokens mapped to a user and a role, and the FastAPI dependency that checks them.

401: no token or an unknown one. 403: a known user whose role may not use the endpoint."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Callable, Iterable

from fastapi import HTTPException, Request, status

from cloud.config import Role, TokenEntry


@dataclass(frozen=True)
class Principal:
    user: str
    role: Role


class TokenTable:
    def __init__(self, entries: Iterable[TokenEntry]):
        self._entries = [(e.token.encode(), Principal(e.user, e.role)) for e in entries]

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
