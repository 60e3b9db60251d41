"""Dead letters: messages ingest will never store (refused by the contracts, or refused by the
store for a reason a retry cannot change), kept with their topic, facility, reason and the
first bytes of the payload, so an operator can see what a gateway sent and why it was refused.

A dead-lettered message is acknowledged to the broker after its row commits, so it never holds
the in-flight window and is never delivered again. The row's key is a digest of topic and
payload: a message delivered twice (a crash between commit and acknowledgement) is kept once."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Optional

from sqlalchemy import Column, Index, Integer, LargeBinary, String, Table, func, select
from sqlalchemy.engine import Connection

from cloud.registry.jurisdiction import EVERYWHERE, Jurisdiction, under
from cloud.store.db import UTCDateTime, metadata, upsert_insert
from contracts.ids import FACILITY_ID_RE

# Enough to see what was sent; a flood of large poison must not fill the disk.
PAYLOAD_KEPT_BYTES = 4096
TOPIC_KEPT_CHARS = 256
REASON_KEPT_CHARS = 512

dead_letters = Table(
    "dead_letters", metadata,
    Column("digest", String(64), primary_key=True, doc="SHA-256 of topic and payload"),
    Column("received_at", UTCDateTime, nullable=False),
    Column("facility", String(32), doc="from the topic; null when the topic names none"),
    Column("topic", String(TOPIC_KEPT_CHARS), nullable=False),
    Column("reason_key", String(32), nullable=False),
    Column("reason", String(REASON_KEPT_CHARS), nullable=False),
    Column("payload", LargeBinary, nullable=False, doc=f"the first {PAYLOAD_KEPT_BYTES} bytes"),
    Column("payload_bytes", Integer, nullable=False, doc="the payload's full size"),
    Index("ix_dead_letters_facility", "facility"),
)

_TOPIC_FACILITY_RE = re.compile(r"^cg/v1/fac/(" + FACILITY_ID_RE.strip("^$") + r")/")


def topic_facility(topic: str) -> Optional[str]:
    """The facility a topic names, if it names a well-formed one."""
    m = _TOPIC_FACILITY_RE.match(topic)
    return m.group(1) if m else None


@dataclass
class DeadLetter:
    """A message to keep as a dead letter, and how to acknowledge it once its row committed."""
    topic: str
    payload: bytes
    reason: str
    reason_key: str
    ack: Optional[Callable[[], None]] = None
    envelope_id: Optional[str] = None  # set when refused by the store after its envelope was parsed

    @property
    def facility(self) -> Optional[str]:
        return topic_facility(self.topic)

    @property
    def digest(self) -> str:
        h = hashlib.sha256(self.topic.encode("utf-8", "replace"))
        h.update(b"\0")
        h.update(self.payload)
        return h.hexdigest()


def insert_dead_letters(conn: Connection, letters: list[DeadLetter], now: datetime) -> int:
    """Keep `letters` (each digest once); returns how many were new."""
    if not letters:
        return 0
    rows = {}
    for d in letters:
        rows.setdefault(d.digest, dict(
            digest=d.digest, received_at=now, facility=d.facility, topic=d.topic[:TOPIC_KEPT_CHARS],
            reason_key=d.reason_key[:32], reason=d.reason[:REASON_KEPT_CHARS],
            payload=d.payload[:PAYLOAD_KEPT_BYTES], payload_bytes=len(d.payload)))
    stmt = upsert_insert(conn.dialect.name, dead_letters).on_conflict_do_nothing(index_elements=["digest"])
    return conn.execute(stmt, list(rows.values())).rowcount


def dead_letter_counts(conn: Connection, *, within: Jurisdiction = EVERYWHERE,
                       limit: int = 50) -> list[tuple[str, int]]:
    """(facility, dead letters kept), most first, for the facilities under `within` ('' for
    topics naming no facility, shown to those who see everywhere only)."""
    d = dead_letters.c
    n = func.count().label("n")
    q = select(d.facility, n).group_by(d.facility).order_by(n.desc(), d.facility).limit(limit)
    if within:
        q = q.where(under(d.facility, within))
    return [(f or "", count) for f, count in conn.execute(q).all()]
