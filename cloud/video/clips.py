"""Alarm clips in the cloud: chunks stored encrypted as ingest receives them, a clip complete
when every chunk is in and its hash matches, read back whole for the police, and deleted past
the footage period (every deletion audited, as for snapshots).

Chunks are idempotent on (clip, index): the outbox's redeliveries and QoS 1 duplicates store
nothing twice. A chunk is encrypted with its clip and index as associated data, so a chunk
moved to another clip or position does not decrypt."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Optional
from uuid import UUID

from pydantic import BaseModel
from sqlalchemy import JSON, Boolean, Column, Integer, LargeBinary, String, Table, delete, func, select, update
from sqlalchemy.engine import Connection

from cloud.alarms.records import UtcTime, record_audit
from cloud.care.privacy import FieldCipher
from cloud.store.db import UTCDateTime, inserted, metadata, upsert_insert
from contracts.envelope import ClipChunkBody, MissingSpan

clips = Table(
    "clips", metadata,
    Column("clip_id", String(36), primary_key=True),
    Column("alarm_id", String(36), nullable=False, index=True),
    Column("facility", String(32), nullable=False, index=True),
    Column("camera_id", String(64), nullable=False),
    Column("window_start", UTCDateTime, nullable=False),
    Column("window_end", UTCDateTime, nullable=False),
    Column("start", UTCDateTime),
    Column("end", UTCDateTime),
    Column("missing", JSON, nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("transcoded", Boolean, nullable=False),
    Column("truncated", Boolean, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("received", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("complete_at", UTCDateTime),
    Column("corrupt", Boolean, nullable=False, default=False),
)

clip_chunks = Table(
    "clip_chunks", metadata,
    Column("clip_id", String(36), primary_key=True),
    Column("idx", Integer, primary_key=True),
    Column("data", LargeBinary, nullable=False),
)


class ClipInfo(BaseModel):
    clip_id: UUID
    alarm_id: UUID
    facility: str
    camera_id: str
    window_start: UtcTime
    window_end: UtcTime
    start: Optional[UtcTime]
    end: Optional[UtcTime]
    missing: list[MissingSpan]
    size: int
    transcoded: bool
    truncated: bool
    chunks: int
    received: int
    complete: bool = False
    corrupt: bool


def _context(clip_id: str, index: int) -> str:
    return f"clip:{clip_id}:{index}"


def store_chunk(conn: Connection, cipher: FieldCipher, facility: str, body: ClipChunkBody, data: bytes,
                now: datetime) -> bool:
    """Store one chunk (ingest's transaction); True when it completed its clip."""
    clip_id = str(body.clip_id)
    c = clips.c
    conn.execute(upsert_insert(conn, clips).values(
        clip_id=clip_id, alarm_id=str(body.alarm_id), facility=facility, camera_id=body.camera_id,
        window_start=body.window_start, window_end=body.window_end, start=body.start, end=body.end,
        missing=[m.model_dump(mode="json") for m in body.missing], size=body.size, sha256=body.sha256,
        transcoded=body.transcoded, truncated=body.truncated, chunks=body.count, received=0, created_at=now,
        corrupt=False).on_conflict_do_nothing(index_elements=["clip_id"]))
    row = conn.execute(select(c.facility, c.chunks, c.received, c.complete_at).where(c.clip_id == clip_id)).one()
    # Another facility's chunks cannot join a clip, nor can chunks of a different chunking.
    if row.facility != facility or row.chunks != body.count:
        raise ValueError(f"clip {clip_id}: chunk from {facility} with count {body.count} does not fit the clip")
    if not inserted(conn, upsert_insert(conn, clip_chunks).values(
            clip_id=clip_id, idx=body.index, data=cipher.encrypt_bytes(data, _context(clip_id, body.index)))
            .on_conflict_do_nothing(index_elements=["clip_id", "idx"]), clip_chunks.c.idx):
        return False
    received = row.received + 1
    conn.execute(update(clips).where(c.clip_id == clip_id).values(received=received))
    if received < row.chunks:
        return False
    whole = read_clip_bytes(conn, cipher, clip_id, row.chunks)
    conn.execute(update(clips).where(c.clip_id == clip_id).values(
        complete_at=now, corrupt=hashlib.sha256(whole).hexdigest() != body.sha256 or len(whole) != body.size))
    return True


def read_clip_bytes(conn: Connection, cipher: FieldCipher, clip_id: str, count: int) -> bytes:
    rows = conn.execute(select(clip_chunks.c.idx, clip_chunks.c.data).where(clip_chunks.c.clip_id == clip_id)
                        .order_by(clip_chunks.c.idx)).all()
    if [r.idx for r in rows] != list(range(count)):
        raise LookupError(f"clip {clip_id} is not complete")
    return b"".join(cipher.decrypt_bytes(r.data, _context(clip_id, r.idx)) for r in rows)


def _info(row) -> ClipInfo:
    m = dict(row._mapping)
    return ClipInfo(**m, complete=m["complete_at"] is not None)


def clips_of_alarm(conn: Connection, alarm_id: UUID) -> list[ClipInfo]:
    return [_info(r) for r in conn.execute(select(clips).where(clips.c.alarm_id == str(alarm_id))
                                           .order_by(clips.c.camera_id))]


def get_clip(conn: Connection, clip_id: UUID) -> Optional[ClipInfo]:
    row = conn.execute(select(clips).where(clips.c.clip_id == str(clip_id))).first()
    return _info(row) if row is not None else None


def prune_clips(conn: Connection, *, older_than: datetime, now: datetime) -> int:
    """Delete clips whose window ended before `older_than`; each deletion is audited."""
    c = clips.c
    old = conn.execute(select(c.clip_id, c.facility, c.alarm_id, c.camera_id).where(c.window_end < older_than)).all()
    for r in old:
        conn.execute(delete(clip_chunks).where(clip_chunks.c.clip_id == r.clip_id))
        conn.execute(delete(clips).where(c.clip_id == r.clip_id))
        record_audit(conn, at=now, actor="retention", role="system", action="clip.delete",
                     target=f"{r.facility}/{r.camera_id}", detail={"clip_id": r.clip_id, "alarm_id": r.alarm_id})
    return len(old)


def clip_count(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(clips)).scalar_one()
