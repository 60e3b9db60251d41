"""Uploads under /api/uploads: inspection photos, rectification evidence and filing documents,
sent as the raw body, checked by their bytes (type, size, structure) and stored encrypted. Every
refusal says why and is counted; an authority's read of a file is audited."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel

from cloud.alarms.records import record_audit
from cloud.api.auth import Principal, require_role
from cloud.api.common import Problem, transaction
from cloud.api.scope import INSPECTORS, check_facility
from cloud.care.privacy import app_cipher
from cloud.config import Role
from cloud.supervision.uploads import (
    MAX_UPLOAD_BYTES,
    PDF,
    Purpose,
    Refusal,
    UploadInfo,
    inspect_upload,
    read_upload,
    store_upload,
)
from contracts.ids import FACILITY_ID_RE
from contracts.timefmt import utcnow

router = APIRouter(prefix="/api/uploads", tags=["supervision"])

# Inspectors take photos; facilities send evidence and documents.
MAY_UPLOAD = {Purpose.PHOTO: INSPECTORS, Purpose.EVIDENCE: (Role.FACILITY, Role.ADMIN),
              Purpose.DOCUMENT: (Role.FACILITY, Role.ADMIN)}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
MEDIA_TYPES = ("image/jpeg", "image/png", PDF)


class RefusalCounts(BaseModel):
    by_status: dict[str, int]


def _counts(request: Request) -> Counter:
    counts = getattr(request.app.state, "upload_refusals", None)
    if counts is None:
        counts = request.app.state.upload_refusals = Counter()
    return counts


async def _read_body(request: Request) -> bytes:
    """The body, refused as soon as it passes the limit (a client cannot make us hold more)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise Refusal(413, f"file of {declared} bytes is larger than {MAX_UPLOAD_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_UPLOAD_BYTES:
            raise Refusal(413, f"file larger than {MAX_UPLOAD_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("", response_model=UploadInfo, status_code=status.HTTP_201_CREATED,
             openapi_extra={"requestBody": {"required": True, "content": {
                 t: _BINARY for t in ("application/octet-stream", *MEDIA_TYPES)}}},
             responses={413: {"model": Problem, "description": "larger than the limit"},
                        415: {"model": Problem, "description": "not a type taken for this purpose"},
                        422: {"model": Problem, "description": "the file is broken, or a parameter is wrong"}})
async def upload(request: Request,
                 who: Annotated[Principal, Depends(require_role(*INSPECTORS, Role.FACILITY))],
                 facility_id: Annotated[str, Query(pattern=FACILITY_ID_RE)],
                 purpose: Purpose) -> UploadInfo:
    """Send the file as the raw body (JPEG or PNG for photos; also PDF for evidence and documents),
    at most 5 MiB. The type is found from the bytes; a Content-Type that disagrees is refused."""
    if who.role not in MAY_UPLOAD[purpose]:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"role {who.role.value!r} may not upload a "
                                                              f"{purpose.value}")
    try:
        data = await _read_body(request)
        media_type = inspect_upload(data, purpose, request.headers.get("content-type"))
    except Refusal as exc:
        _counts(request)[str(exc.status)] += 1
        raise HTTPException(exc.status, detail=f"upload refused: {exc.reason}") from None

    def save() -> UploadInfo:
        with transaction(request) as conn:
            check_facility(conn, who, facility_id)
            return store_upload(conn, app_cipher(request.app), facility=facility_id, purpose=purpose,
                                media_type=media_type, data=data, user=who.user, now=utcnow())

    return await run_in_threadpool(save)


@router.get("/refusals", response_model=RefusalCounts)
def refusals(request: Request, _who: Annotated[Principal, Depends(require_role(Role.ADMIN))]) -> RefusalCounts:
    """Uploads refused since start, by HTTP status (413, 415, 422)."""
    return RefusalCounts(by_status=dict(_counts(request)))


@router.get("/{upload_id}", response_class=Response,
            responses={200: {"content": {t: _BINARY for t in MEDIA_TYPES}, "description": "the file"}})
def read(request: Request, upload_id: Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")],
         who: Annotated[Principal, Depends(require_role(*INSPECTORS, Role.FACILITY))]) -> Response:
    with transaction(request) as conn:
        info, data = read_upload(conn, app_cipher(request.app), upload_id)
        check_facility(conn, who, info.facility)
        if who.role is not Role.FACILITY:
            record_audit(conn, at=utcnow(), actor=who.user, role=who.role.value, action="upload.read",
                         target=f"{info.facility}/{upload_id}", detail={"purpose": info.purpose.value})
    ext = {"image/jpeg": "jpg", "image/png": "png", PDF: "pdf"}[info.media_type]
    return Response(data, media_type=info.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{upload_id}.{ext}"',
                             "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})
