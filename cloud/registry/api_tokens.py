"""API tokens an admin creates through the API: kept as SHA-256 hashes (the token itself is
shown once, at creation), with an expiry and a revocation time. Tokens from the cloud's
configuration live in its tokens file instead; cloud.api.auth.TokenTable reads both."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Optional

from sqlalchemy import Column, String, Table, select, update
from sqlalchemy.engine import Connection

from cloud.store.db import UTCDateTime, metadata

TOKEN_BYTES = 24

api_tokens = Table(
    "api_tokens", metadata,
    Column("token_id", String(32), primary_key=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("user", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("facility_id", String(32)),
    Column("jurisdiction", String(100), doc="province/city/district the token is bound to; null: everywhere"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("expires_at", UTCDateTime),
    Column("revoked_at", UTCDateTime),
)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: Connection, *, user: str, role: str, facility_id: Optional[str], jurisdiction: Optional[str],
                 expires_at: Optional[datetime], created_by: str, now: datetime) -> tuple[str, str]:
    """A new token: returns (token_id, token). Only its hash is stored."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    token_id = "tk_" + secrets.token_hex(6)
    conn.execute(api_tokens.insert().values(
        token_id=token_id, token_sha256=token_hash(token), user=user, role=role, facility_id=facility_id,
        jurisdiction=jurisdiction, created_at=now, created_by=created_by, expires_at=expires_at))
    return token_id, token


def revoke_token(conn: Connection, token_id: str, now: datetime) -> bool:
    """Revoke; False if there is no such token. Revoking twice keeps the first time."""
    t = api_tokens.c
    found = conn.execute(select(t.token_id).where(t.token_id == token_id)).first()
    if found is None:
        return False
    conn.execute(update(api_tokens).where(t.token_id == token_id, t.revoked_at.is_(None)).values(revoked_at=now))
    return True


def list_tokens(conn: Connection) -> list:
    """Every API-created token's record, without its hash, newest first."""
    t = api_tokens.c
    return conn.execute(select(t.token_id, t.user, t.role, t.facility_id, t.jurisdiction, t.created_at, t.created_by,
                               t.expires_at, t.revoked_at).order_by(t.created_at.desc(), t.token_id)).all()


def live_token_rows(conn: Connection, now: datetime) -> list:
    """The tokens neither revoked nor expired, with their hashes, for the token table."""
    t = api_tokens.c
    return conn.execute(select(api_tokens).where(t.revoked_at.is_(None))
                        .where((t.expires_at.is_(None)) | (t.expires_at > now))).all()
