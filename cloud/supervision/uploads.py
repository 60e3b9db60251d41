"""Uploads (inspection photos, rectification evidence, filing documents): the type is found from
the bytes and the structure checked before anything is stored; what is stored is encrypted with
the data key (cloud.care.privacy), bound to the upload's id and facility.

`inspect_upload` is pure: bytes in, a verdict out, so every refusal can be tested without I/O."""

from __future__ import annotations

import hashlib
import struct
import uuid
import zlib
from datetime import datetime
from enum import Enum
from typing import Optional

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.engine import Connection

from cloud.care.privacy import FieldCipher
from cloud.registry.records import require_facility
from cloud.supervision.errors import InputError, NotFound
from cloud.supervision.tables import uploads

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_IMAGE_SIDE = 20_000   # pixels: a header claiming more is a decompression bomb, not a photo
MAX_SEGMENTS = 4096       # JPEG segments / PNG chunks walked before giving up

JPEG, PNG, PDF = "image/jpeg", "image/png", "application/pdf"


class Purpose(str, Enum):
    PHOTO = "photo"          # an inspector's photo of a finding
    EVIDENCE = "evidence"    # a facility's rectification evidence
    DOCUMENT = "document"    # a filing document


ALLOWED = {Purpose.PHOTO: (JPEG, PNG), Purpose.EVIDENCE: (JPEG, PNG, PDF), Purpose.DOCUMENT: (PDF, JPEG, PNG)}


class Refusal(Exception):
    """Why an upload is refused, and the HTTP status that says so (413 too large, 415 a type we do
    not take, 422 a file of the right type that is broken)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _sniff(data: bytes) -> Optional[str]:
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"%PDF-"):
        return PDF
    return None


def _check_jpeg(data: bytes) -> None:
    pos, frame = 2, False
    for _ in range(MAX_SEGMENTS):
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise Refusal(422, f"malformed JPEG: no segment marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        if length < 2 or pos + 2 + length > len(data):
            raise Refusal(422, f"malformed JPEG: segment {marker:#04x} at byte {pos} runs past the end")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if length < 8:
                raise Refusal(422, "malformed JPEG: frame header too short")
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
                raise Refusal(422, f"JPEG of {width}x{height} pixels refused (1-{MAX_IMAGE_SIDE} per side)")
            frame = True
        if marker == 0xDA:  # start of scan: entropy-coded data follows up to the end marker
            if not frame:
                raise Refusal(422, "malformed JPEG: image data before any frame header")
            if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
                raise Refusal(422, "malformed JPEG: truncated (no end-of-image marker)")
            return
        pos += 2 + length
    raise Refusal(422, "malformed JPEG: no image data found")


def _check_png(data: bytes) -> None:
    pos, first = 8, True
    for _ in range(MAX_SEGMENTS):
        if pos + 12 > len(data):
            raise Refusal(422, "malformed PNG: truncated (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise Refusal(422, f"malformed PNG: chunk {kind!r} at byte {pos} runs past the end")
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:end])
        if zlib.crc32(kind + body) != crc:
            raise Refusal(422, f"malformed PNG: chunk {kind.decode('latin-1')} at byte {pos} fails its CRC")
        if first:
            if kind != b"IHDR" or length != 13:
                raise Refusal(422, "malformed PNG: the first chunk is not IHDR")
            width, height = struct.unpack(">II", body[:8])
            if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
                raise Refusal(422, f"PNG of {width}x{height} pixels refused (1-{MAX_IMAGE_SIDE} per side)")
            first = False
        if kind == b"IEND":
            return
        pos = end
    raise Refusal(422, "malformed PNG: too many chunks")


# Names whose presence makes a PDF run something when opened; a filing document never needs them.
PDF_ACTIVE = (b"/JavaScript", b"/JS", b"/Launch", b"/EmbeddedFile", b"/OpenAction", b"/AA")


def _check_pdf(data: bytes) -> None:
    if len(data) < 9 or data[5:6] not in (b"1", b"2") or data[6:7] != b".":
        raise Refusal(422, "malformed PDF: the header is not %PDF-1.x or %PDF-2.x")
    if b"%%EOF" not in data[-1024:]:
        raise Refusal(422, "malformed PDF: truncated (no %%EOF in the last 1024 bytes)")
    active = [name.decode() for name in PDF_ACTIVE if name in data]
    if active:
        raise Refusal(415, f"PDF with active content ({', '.join(active)}) refused: upload a plain PDF or a picture")


CHECKS = {JPEG: _check_jpeg, PNG: _check_png, PDF: _check_pdf}


def inspect_upload(data: bytes, purpose: Purpose, declared: Optional[str] = None) -> str:
    """The media type of `data` for `purpose`, or a Refusal saying why not. `declared` is the
    client's Content-Type: it must agree with the bytes when it names a type we take."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise Refusal(413, f"file of {len(data)} bytes is larger than {MAX_UPLOAD_BYTES} bytes")
    if not data:
        raise Refusal(422, "empty file")
    found = _sniff(data)
    allowed = ALLOWED[purpose]
    if found is None:
        raise Refusal(415, f"not a {' / '.join(t.split('/')[1].upper() for t in allowed)} file "
                           f"(starts with {data[:8].hex()})")
    if found not in allowed:
        raise Refusal(415, f"a {purpose.value} must be {' or '.join(allowed)}, this is {found}")
    declared_type = (declared or "").split(";")[0].strip().lower()
    if declared_type in CHECKS and declared_type != found:
        raise Refusal(415, f"declared {declared_type} but the content is {found}")
    CHECKS[found](data)
    return found


class UploadInfo(BaseModel):
    upload_id: str
    facility: str
    purpose: Purpose
    media_type: str
    size: int
    sha256: str
    uploaded_at: datetime


def _context(upload_id: str, facility: str) -> str:
    return f"upload:{upload_id}:{facility}"


def store_upload(conn: Connection, cipher: FieldCipher, *, facility: str, purpose: Purpose, media_type: str,
                 data: bytes, user: str, now: datetime) -> UploadInfo:
    require_facility(conn, facility)
    upload_id = str(uuid.uuid4())
    digest = hashlib.sha256(data).hexdigest()
    conn.execute(uploads.insert().values(upload_id=upload_id, facility=facility, purpose=purpose.value,
                                         media_type=media_type, size=len(data), sha256=digest,
                                         data_enc=cipher.encrypt_bytes(data, _context(upload_id, facility)),
                                         uploaded_by=user, uploaded_at=now))
    return UploadInfo(upload_id=upload_id, facility=facility, purpose=purpose, media_type=media_type, size=len(data),
                      sha256=digest, uploaded_at=now)


def read_upload(conn: Connection, cipher: FieldCipher, upload_id: str) -> tuple[UploadInfo, bytes]:
    row = conn.execute(select(uploads).where(uploads.c.upload_id == upload_id)).first()
    if row is None:
        raise NotFound(f"no upload {upload_id!r}")
    info = UploadInfo.model_validate(dict(row._mapping))
    return info, cipher.decrypt_bytes(row.data_enc, _context(upload_id, row.facility))


def require_uploads(conn: Connection, facility: str, upload_ids: list[str], field: str,
                    purposes: tuple[Purpose, ...]) -> None:
    """Each id names an upload of `facility` made for one of `purposes`; else an InputError on `field`."""
    if not upload_ids:
        return
    rows = {r.upload_id: r for r in conn.execute(select(uploads.c.upload_id, uploads.c.facility, uploads.c.purpose)
                                                 .where(uploads.c.upload_id.in_(upload_ids)))}
    for upload_id in upload_ids:
        r = rows.get(upload_id)
        if r is None or r.facility != facility:
            raise InputError(field, f"no upload {upload_id} for facility {facility}")
        if r.purpose not in {p.value for p in purposes}:
            raise InputError(field, f"upload {upload_id} was made as a {r.purpose}, "
                                    f"not as {' or '.join(p.value for p in purposes)}")
