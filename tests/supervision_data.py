"""What the supervision tests share: small real files of each type (and broken ones), facilities
in two cities, and the tokens of every role with their jurisdictions."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

from cloud.api.auth import TokenGrant
from cloud.registry.records import FacilityRegistration, uscc_check_char

# A real JPEG, made by OpenCV's encoder.
JPEG = cv2.imencode(".jpg", np.random.default_rng(7).integers(0, 255, (48, 48, 3), dtype=np.uint8))[1].tobytes()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int = 1, height: int = 1, *, claimed: tuple[int, int] | None = None) -> bytes:
    """A PNG of width x height black pixels; `claimed` puts other dimensions in its header."""
    raw = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", *(claimed or (width, height)), 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


PNG = png()
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
BROKEN = {
    "truncated JPEG": (JPEG[:-40], "image/jpeg", 422, "truncated"),
    "PNG with a bad CRC": (PNG[:20] + bytes([PNG[20] ^ 0xFF]) + PNG[21:], "image/png", 422, "CRC"),
    "PNG claiming 100000x100000 pixels": (png(claimed=(100_000, 100_000)), "image/png", 422, "100000x100000"),
    "PDF without end": (PDF[:-7], "application/pdf", 422, "%%EOF"),
    "PDF with JavaScript": (PDF.replace(b"/Type /Catalog", b"/Type /Catalog /OpenAction << /JS (app.alert(1)) >>"),
                            "application/pdf", 415, "active content"),
    "GIF": (GIF, "image/gif", 415, "not a"),
    "JPEG declared as PNG": (JPEG, "image/png", 415, "declared image/png"),
    "empty": (b"", "image/jpeg", 422, "empty"),
}

JINING, RENCHENG, YANZHOU = "济宁市", "任城区", "兖州区"
PRIVATE = {  # values that must never appear on the public side
    "contact_name": "王秘密园长", "contact_phone": "0537-7654321", "staff_name": "赵秘密保安",
    "child_id": "child-secret-7", "finding": "灭火器过期未更换（秘密描述）", "incident": "滑梯擦伤（秘密描述）",
}


def uscc(n: int, division: str = "370800") -> str:
    first17 = f"91{division}{n:09d}"
    return first17 + uscc_check_char(first17)


def facility(fid: str, n: int, *, city: str = JINING, district: str = RENCHENG, province: str = "山东省",
             kind: str = "inclusive", filed: bool = False, name: str | None = None) -> FacilityRegistration:
    return FacilityRegistration.model_validate({
        "facility_id": fid, "name": name or f"托育园{n}", "uscc": uscc(n), "kind": kind,
        "district": {"province": province, "city": city, "district": district, "street": "古槐街道"},
        "address": f"古槐路{n}号", "contact": {"name": PRIVATE["contact_name"], "phone": PRIVATE["contact_phone"]},
        "filing_status": "filed" if filed else "unfiled", "filing_number": f"BA-{n}" if filed else None,
        "classes": [{"class_id": "c1", "name": "乳儿一班", "class_type": "infant", "places": 10, "enrolled": 8,
                     "carers": 3},
                    {"class_id": "c2", "name": "托小一班", "class_type": "toddler", "places": 15, "enrolled": 12,
                     "carers": 3}],
        "staff": [{"staff_id": "s1", "name": PRIVATE["staff_name"], "role": "security"}]})


TOKENS = {
    "admin": ("t-admin-0123456789ab", "admin", None, None),
    "supervisor": ("t-super-0123456789ab", "supervisor", None, None),
    "sup_rc": ("t-suprc-0123456789ab", "supervisor", None, f"山东省/{JINING}/{RENCHENG}"),
    "sup_zz": ("t-supzz-0123456789ab", "supervisor", None, "湖南省/株洲市"),
    "health": ("t-health-0123456789a", "health", None, f"山东省/{JINING}"),
    "health_zz": ("t-healthzz-01234567", "health", None, "湖南省/株洲市"),
    "police": ("t-police-0123456789a", "police", None, f"山东省/{JINING}"),
    "police_zz": ("t-policezz-01234567", "police", None, "湖南省/株洲市"),
    "registrar": ("t-registrar-0123456", "registrar", None, None),
    "facA": ("t-facA-0123456789abc", "facility", "A", None),
    "facB": ("t-facB-0123456789abc", "facility", "B", None),
}


def grants() -> list[TokenGrant]:
    return [TokenGrant(token, f"{name}-user", role, fid, scope) for name, (token, role, fid, scope) in TOKENS.items()]


def bearer(name: str) -> dict:
    return {"Authorization": f"Bearer {TOKENS[name][0]}"}
