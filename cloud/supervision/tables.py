"""The supervision loop's tables (created by migration 0100_supervision). Ids of workflow records
are UUIDs made by the cloud; histories are append-only rows, one per step."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)

from cloud.store.db import UTCDateTime, metadata

_AUTO = Integer().with_variant(BigInteger, "postgresql")
_UUID = 36


def _facility_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["facility"], ["facilities.facility_id"], ondelete="CASCADE")


# Photos, evidence and filing documents: checked by their bytes, stored encrypted.
uploads = Table(
    "sv_uploads", metadata,
    Column("upload_id", String(_UUID), primary_key=True),
    Column("facility", String(32), nullable=False, index=True),
    Column("purpose", String(16), nullable=False, doc="photo / evidence / document"),
    Column("media_type", String(32), nullable=False, doc="found from the bytes, never taken from the client"),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("data_enc", LargeBinary, nullable=False, doc="AES-GCM, the upload's id and facility as associated data"),
    Column("uploaded_by", String(64), nullable=False),
    Column("uploaded_at", UTCDateTime, nullable=False),
    _facility_fk(),
)

inspections = Table(
    "sv_inspections", metadata,
    Column("inspection_id", String(_UUID), primary_key=True),
    Column("facility", String(32), nullable=False, index=True),
    Column("kind", String(16), nullable=False, doc="routine / joint / special / follow_up"),
    Column("profile", String(32), nullable=False, doc="the jurisdiction profile whose checklist was used"),
    Column("inspected_on", Date, nullable=False),
    Column("departments", JSON, nullable=False, doc="departments taking part (joint inspections)"),
    Column("results", JSON, nullable=False, doc="[{item_id, result, note}]"),
    Column("note", String(1000)),
    Column("inspector", String(64), nullable=False),
    Column("inspector_role", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    _facility_fk(),
    Index("ix_sv_inspections_day", "inspected_on"),
)

findings = Table(
    "sv_findings", metadata,
    Column("finding_id", String(_UUID), primary_key=True),
    Column("inspection_id", String(_UUID), nullable=False, index=True),
    Column("facility", String(32), nullable=False, index=True),
    Column("item_id", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("description", String(1000), nullable=False),
    Column("photos", JSON, nullable=False, doc="upload ids"),
    Column("deadline", Date, nullable=False, doc="rectify by the end of this local day"),
    Column("status", String(16), nullable=False, doc="open / submitted / rectified"),
    Column("escalated_for", Date, doc="the deadline whose overrun was escalated; a new deadline may escalate again"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    ForeignKeyConstraint(["inspection_id"], ["sv_inspections.inspection_id"], ondelete="CASCADE"),
    _facility_fk(),
    Index("ix_sv_findings_open", "status", "deadline"),
)

finding_events = Table(
    "sv_finding_events", metadata,
    Column("id", _AUTO, primary_key=True, autoincrement=True),
    Column("finding_id", String(_UUID), nullable=False, index=True),
    Column("step", String(24), nullable=False, doc="raised / rectification_submitted / accepted / reopened / escalated"),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("note", String(1000)),
    Column("evidence", JSON, nullable=False, doc="upload ids"),
    Column("deadline", Date),
    ForeignKeyConstraint(["finding_id"], ["sv_findings.finding_id"], ondelete="CASCADE"),
)

# Hazards a facility found (隐患) and incidents that happened (事故): children only as counts.
incidents = Table(
    "sv_incidents", metadata,
    Column("report_id", String(_UUID), primary_key=True),
    Column("facility", String(32), nullable=False, index=True),
    Column("kind", String(16), nullable=False, doc="hazard / incident"),
    Column("category", String(16), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("description", String(2000), nullable=False),
    Column("children_affected", Integer, nullable=False),
    Column("actions_taken", String(2000), nullable=False),
    Column("reported_by", String(64), nullable=False),
    Column("reported_at", UTCDateTime, nullable=False),
    _facility_fk(),
)

# What a role of a jurisdiction was told: one row per (what, about which record, which role).
notices = Table(
    "sv_notices", metadata,
    Column("id", _AUTO, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("role", String(16), nullable=False),
    Column("province", String(32), nullable=False),
    Column("city", String(32), nullable=False),
    Column("district", String(32), nullable=False),
    Column("facility", String(32), nullable=False),
    Column("kind", String(32), nullable=False, doc="hazard / incident / rectification_overdue"),
    Column("ref", String(64), nullable=False),
    Column("summary", JSON, nullable=False),
    UniqueConstraint("kind", "ref", "role", name="uq_sv_notice"),
    Index("ix_sv_notices_scope", "role", "province", "city", "district"),
)

# 备案: each submission (initial filing, change, closure) and its review.
filings = Table(
    "sv_filings", metadata,
    Column("filing_id", String(_UUID), primary_key=True),
    Column("facility", String(32), nullable=False, index=True),
    Column("kind", String(16), nullable=False, doc="initial / change / closure"),
    Column("status", String(16), nullable=False, doc="submitted / returned / accepted"),
    Column("details", JSON, nullable=False, doc="what is filed (FilingDetails); for a closure, the reason"),
    Column("documents", JSON, nullable=False, doc="document kind -> upload id"),
    Column("receipt_number", String(64), unique=True, doc="备案回执 number, on acceptance"),
    Column("reasons", JSON, nullable=False, doc="why it was last returned"),
    Column("submitted_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime),
    Column("decided_by", String(64)),
    _facility_fk(),
)

filing_events = Table(
    "sv_filing_events", metadata,
    Column("id", _AUTO, primary_key=True, autoincrement=True),
    Column("filing_id", String(_UUID), nullable=False, index=True),
    Column("facility", String(32), nullable=False, index=True),
    Column("step", String(16), nullable=False, doc="submitted / resubmitted / returned / accepted"),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("detail", JSON, nullable=False),
    ForeignKeyConstraint(["filing_id"], ["sv_filings.filing_id"], ondelete="CASCADE"),
)

# Registrations pushed by the registration body (登记机关), by credit code: the facilities the
# health department should expect a filing from.
registrations = Table(
    "sv_registrations", metadata,
    Column("uscc", String(18), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("legal_form", String(16), nullable=False, doc="for_profit / non_profit"),
    Column("authority", String(64), nullable=False),
    Column("registered_on", Date, nullable=False),
    Column("province", String(32), nullable=False),
    Column("city", String(32), nullable=False),
    Column("district", String(32), nullable=False),
    Column("address", String(256), nullable=False),
    Column("service_types", JSON, nullable=False),
    Column("status", String(16), nullable=False, doc="registered / deregistered at the registration body"),
    Column("received_at", UTCDateTime, nullable=False),
    Column("received_from", String(64), nullable=False),
)

fee_standards = Table(
    "sv_fee_standards", metadata,
    Column("facility", String(32), primary_key=True),
    Column("class_type", String(16), primary_key=True),
    Column("service_type", String(16), primary_key=True),
    Column("amount_yuan", Integer, nullable=False, doc="in the service type's unit (per month, hour or day)"),
    Column("effective_from", Date, nullable=False),
    Column("set_by", String(64), nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
    _facility_fk(),
)

# Construction acceptances (验收): new places that count for the construction subsidy.
acceptances = Table(
    "sv_construction_acceptances", metadata,
    Column("id", _AUTO, primary_key=True, autoincrement=True),
    Column("facility", String(32), nullable=False, index=True),
    Column("accepted_on", Date, nullable=False),
    Column("new_places", Integer, nullable=False),
    Column("note", String(500)),
    Column("recorded_by", String(64), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    _facility_fk(),
)

credit_entries = Table(
    "sv_credit_entries", metadata,
    Column("id", _AUTO, primary_key=True, autoincrement=True),
    Column("facility", String(32), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("rule", String(32), nullable=False),
    Column("ref", String(64), nullable=False, doc="the record that triggered it (finding, filing, report)"),
    Column("points", Integer, nullable=False),
    Column("detail", JSON, nullable=False),
    UniqueConstraint("rule", "ref", name="uq_sv_credit_rule_ref"),
    _facility_fk(),
)

# --- the public read model (公示): only what may be published, written when it changes -----
public_facilities = Table(
    "sv_public_facilities", metadata,
    Column("facility_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("province", String(32), nullable=False),
    Column("city", String(32), nullable=False),
    Column("district", String(32), nullable=False),
    Column("address", String(256), nullable=False),
    Column("status", String(16), nullable=False, doc="filed / changed / closed"),
    Column("receipt_number", String(64), nullable=False),
    Column("filed_on", Date, nullable=False),
    Column("changed_on", Date),
    Column("closed_on", Date),
    Column("puhui", Integer, nullable=False, doc="1 for a 普惠 facility"),
    Column("service_types", JSON, nullable=False),
    Column("places", JSON, nullable=False, doc="class type -> places"),
    Column("fees", JSON, nullable=False, doc="[{class_type, service_type, amount_yuan, unit}]"),
    Column("licences", JSON, nullable=False, doc="[{kind, valid_until}]"),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_sv_public_district", "province", "city", "district"),
)

public_events = Table(
    "sv_public_events", metadata,
    Column("id", _AUTO, primary_key=True, autoincrement=True),
    Column("facility_id", String(32), nullable=False, index=True),
    Column("name", String(128), nullable=False),
    Column("province", String(32), nullable=False),
    Column("city", String(32), nullable=False),
    Column("district", String(32), nullable=False),
    Column("event", String(16), nullable=False, doc="filed / changed / closed"),
    Column("on_date", Date, nullable=False),
    Column("receipt_number", String(64), nullable=False),
)
