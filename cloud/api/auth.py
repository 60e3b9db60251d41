"""Bearer tokens mapped to a user, a role and a scope, and the FastAPI dependencies that check them.

Tokens are kept as SHA-256 hashes only: from the tokens file (`token_sha256`, or `token` hashed
as it is read) and from the API (cloud.registry.api_tokens, created by an admin, shown once).
Each may expire; API tokens may be revoked. `TokenTable.reload()` re-reads both, without a
restart: after an admin's change at once, and on SIGHUP (cloud.main).

Scope: a facility token sees its own facility; a police, health or supervisor token bound to a
jurisdiction (province/city/district) sees the facilities filed under it, in every list, stream,
export, snapshot and statistic (query functions take `who.within`); an admin sees everything.

401: no token, an unknown, expired or revoked one. 403: a role that may not use the endpoint, or
a facility outside the token's scope.

EventSource cannot send headers, so the alarm stream takes a short-lived, single-use ticket in
its URL (`POST /api/stream-tickets` with the bearer token), never the token itself."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import datetime
from typing import Callable, Iterable, Optional

from fastapi import HTTPException, Request, status
from sqlalchemy.engine import Connection, Engine

from cloud.config import JURISDICTION_ROLES, Role, TokenEntry
from cloud.registry.api_tokens import live_token_rows
from cloud.registry.jurisdiction import Jurisdiction, facility_in, parse_jurisdiction, show
from contracts.timefmt import utcnow

STREAM_TICKET_TTL_S = 30.0
MAX_STREAM_TICKETS = 10_000


@dataclass(frozen=True)
class Principal:
    user: str
    role: Role
    facility_id: Optional[str] = None  # set for, and only for, the facility role
    jurisdiction: Optional[str] = None  # "province[/city[/district]]" an authority's token is limited to
    token_key: str = field(default="", compare=False, repr=False)  # the token's hash, to ask if it still lives

    @cached_property
    def within(self) -> Jurisdiction:
        """The jurisdiction as the query functions take it; () for everywhere."""
        return parse_jurisdiction(self.jurisdiction)

    def may_see(self, facility_id: str) -> bool:
        """The facility-role half of the check; the jurisdiction half needs the registry."""
        return self.role is not Role.FACILITY or self.facility_id == facility_id

    def covers(self, province: str, city: str, district: str) -> bool:
        """Whether a facility in province/city/district lies within this token's jurisdiction."""
        return (province, city, district)[:len(self.within)] == self.within


@dataclass(frozen=True)
class TokenGrant:
    """A token as TokenTable needs it, for code that has no TokenEntry (tests, `make run`)."""
    token: str
    user: str
    role: Role | str
    facility_id: Optional[str] = None
    jurisdiction: Optional[str] = None
    expires_at: Optional[datetime] = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.token.encode()).hexdigest()


def _principal(user: str, role: Role | str, facility_id: Optional[str], jurisdiction: Optional[str]) -> Principal:
    role = Role(role)
    if (role is Role.FACILITY) != (facility_id is not None):
        raise ValueError(f"token of user {user!r}: a facility_id is required for, and only for, the facility role")
    within = parse_jurisdiction(jurisdiction)
    if within and role not in JURISDICTION_ROLES:
        raise ValueError(f"token of user {user!r}: only police, health and supervisor tokens take a jurisdiction")
    return Principal(user, role, facility_id, "/".join(within) or None)


class TokenTable:
    """sha256(token) -> (principal, expiry). `entries` are fixed; `load_entries` (the tokens file)
    and `engine` (API tokens) are read again by `reload()`."""

    def __init__(self, entries: Iterable[TokenEntry | TokenGrant] = (), *, engine: Optional[Engine] = None,
                 load_entries: Optional[Callable[[], list[TokenEntry]]] = None):
        self._fixed = [self._row(e) for e in entries]
        self.engine = engine
        self.load_entries = load_entries
        self._lock = threading.Lock()
        self._by_hash: dict[str, tuple[Principal, Optional[datetime]]] = {}
        # The store's tokens wait for the first reload(): its table may not exist yet.
        self.reload(include_store=False)

    @staticmethod
    def _row(e) -> tuple[str, Principal, Optional[datetime]]:
        return e.sha256, _principal(e.user, e.role, e.facility_id, getattr(e, "jurisdiction", None)), \
            getattr(e, "expires_at", None)

    def is_live(self, principal: Principal) -> bool:
        """Whether the token `principal` signed in with is still known and unexpired (an open
        stream asks this before each event: a revoked token's stream ends at once)."""
        found = self._by_hash.get(principal.token_key)
        return found is not None and (found[1] is None or utcnow() < found[1])

    def reload(self, include_store: bool = True) -> int:
        """Read the tokens file and the API tokens again; returns how many tokens are live. A file
        that fails to load keeps the tokens it gave before (the error is raised to the caller)."""
        rows = list(self._fixed)
        if self.load_entries is not None:
            rows += [self._row(e) for e in self.load_entries()]
        if self.engine is not None and include_store:
            with self.engine.connect() as conn:
                rows += [(r.token_sha256, _principal(r.user, r.role, r.facility_id, r.jurisdiction), r.expires_at)
                         for r in live_token_rows(conn, utcnow())]
        table = {h: (replace(p, token_key=h), exp) for h, p, exp in rows}
        with self._lock:
            self._by_hash = table
        return len(table)

    def lookup(self, token: str) -> Principal | None:
        # A dictionary keyed by the hash: what timing could reveal is about the hash, not the token.
        found = self._by_hash.get(hashlib.sha256(token.encode()).hexdigest())
        if found is None:
            return None
        principal, expires_at = found
        if expires_at is not None and utcnow() >= expires_at:
            return None
        return principal


class StreamTickets:
    """Single-use tickets for the alarm stream, valid STREAM_TICKET_TTL_S: the bearer token never
    appears in a URL (nor in any access log that records URLs)."""

    def __init__(self, ttl_s: float = STREAM_TICKET_TTL_S, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._tickets: dict[str, tuple[Principal, float]] = {}

    def issue(self, who: Principal) -> str:
        ticket = secrets.token_urlsafe(24)
        now = self.clock()
        with self._lock:
            if len(self._tickets) >= MAX_STREAM_TICKETS:
                self._tickets = {k: v for k, v in self._tickets.items() if v[1] > now}
                if len(self._tickets) >= MAX_STREAM_TICKETS:
                    raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail="too many stream tickets pending")
            self._tickets[ticket] = (who, now + self.ttl_s)
        return ticket

    def redeem(self, ticket: str) -> Principal | None:
        with self._lock:
            found = self._tickets.pop(ticket, None)
        if found is None or found[1] <= self.clock():
            return None
        return found[0]


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=reason, headers={"WWW-Authenticate": "Bearer"})


def authenticate(request: Request, *, allow_ticket: bool = False) -> Principal:
    """The caller, from `Authorization: Bearer`, or (`allow_ticket`) a stream ticket; else 401."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _unauthorized("Authorization header must be 'Bearer <token>'")
        principal = request.app.state.tokens.lookup(value.strip())
        if principal is None:
            raise _unauthorized("unknown, expired or revoked token")
        return principal
    ticket = request.query_params.get("ticket") if allow_ticket else None
    if ticket:
        principal = request.app.state.stream_tickets.redeem(ticket)
        if principal is None:
            raise _unauthorized("unknown, used or expired stream ticket")
        return principal
    raise _unauthorized("missing bearer token")


def require_role(*roles: Role | str, allow_ticket: bool = False) -> Callable[[Request], Principal]:
    """A dependency admitting only `roles`. `allow_ticket` also accepts `?ticket=` (the alarm
    stream, for EventSource, which cannot set headers)."""
    allowed = frozenset(Role(r) for r in roles)

    def dependency(request: Request) -> Principal:
        principal = authenticate(request, allow_ticket=allow_ticket)
        if principal.role not in allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail=f"role {principal.role.value!r} may not do this; needs one of "
                                       f"{sorted(r.value for r in allowed)}")
        return principal

    return dependency


def forbid_other_facility(who: Principal, facility_id: str) -> None:
    """403 unless a facility token asks about its own facility (the jurisdiction is not checked:
    see `forbid_outside_scope`)."""
    if not who.may_see(facility_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"a facility token for {who.facility_id!r} may not access facility {facility_id!r}")


def forbid_outside_scope(request: Request, who: Principal, facility_id: str) -> None:
    """403 unless `who` may read or act on `facility_id`: its own facility for a facility token,
    one filed under its jurisdiction for a bound token."""
    forbid_other_facility(who, facility_id)
    if who.within:
        with request.app.state.engine.connect() as conn:
            check_in_scope(conn, who, facility_id)


def check_in_scope(conn: Connection, who: Principal, facility_id: str) -> None:
    """`forbid_outside_scope` on a connection the caller holds."""
    forbid_other_facility(who, facility_id)
    if who.within and not facility_in(conn, facility_id, who.within):
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"facility {facility_id!r} is outside the jurisdiction {show(who.within)!r}")


def forbid_outside_jurisdiction(who: Principal, path: str) -> None:
    """403 unless the province/city/district `path` lies under `who`'s jurisdiction."""
    try:
        inside = parse_jurisdiction(path)[:len(who.within)] == who.within
    except ValueError:
        inside = False
    if not inside:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"{path!r} is outside the jurisdiction {show(who.within)!r}")


def forbid_bound(who: Principal, what: str) -> None:
    """403 for a token bound to a jurisdiction, where `what` spans every jurisdiction."""
    if who.within:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            detail=f"{what} spans every jurisdiction; a token bound to {show(who.within)!r} "
                                   "may not read it")


def scope_facility(who: Principal, requested: Optional[str]) -> Optional[str]:
    """The facility filter a list must apply: a facility token sees its own facility only. A
    jurisdiction is applied by the query function itself (`who.within`)."""
    if who.role is Role.FACILITY:
        if requested is not None:
            forbid_other_facility(who, requested)
        return who.facility_id
    return requested
