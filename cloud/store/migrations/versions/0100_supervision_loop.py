"""The supervision loop: uploads (encrypted), inspections, findings and their history, hazard and
incident reports, notices to roles, filings (备案) and their history, pushed registrations, fee
standards, construction acceptances, credit entries, and the public read model (公示).

Revision ID: 0100_supervision_loop
Revises: 0003
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op


revision = '0100_supervision_loop'
down_revision = '0003'
branch_labels = None
depends_on = None

_BIGID = sa.Integer().with_variant(sa.BigInteger(), 'postgresql')


def upgrade() -> None:
    op.create_table('sv_notices',
    sa.Column('id', _BIGID, autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('province', sa.String(length=32), nullable=False),
    sa.Column('city', sa.String(length=32), nullable=False),
    sa.Column('district', sa.String(length=32), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kind', 'ref', 'role', name='uq_sv_notice')
    )
    op.create_index('ix_sv_notices_scope', 'sv_notices', ['role', 'province', 'city', 'district'], unique=False)

    op.create_table('sv_public_events',
    sa.Column('id', _BIGID, autoincrement=True, nullable=False),
    sa.Column('facility_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('province', sa.String(length=32), nullable=False),
    sa.Column('city', sa.String(length=32), nullable=False),
    sa.Column('district', sa.String(length=32), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('on_date', sa.Date(), nullable=False),
    sa.Column('receipt_number', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_sv_public_events_facility_id'), 'sv_public_events', ['facility_id'], unique=False)

    op.create_table('sv_public_facilities',
    sa.Column('facility_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('province', sa.String(length=32), nullable=False),
    sa.Column('city', sa.String(length=32), nullable=False),
    sa.Column('district', sa.String(length=32), nullable=False),
    sa.Column('address', sa.String(length=256), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('receipt_number', sa.String(length=64), nullable=False),
    sa.Column('filed_on', sa.Date(), nullable=False),
    sa.Column('changed_on', sa.Date(), nullable=True),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.Column('puhui', sa.Integer(), nullable=False),
    sa.Column('service_types', sa.JSON(), nullable=False),
    sa.Column('places', sa.JSON(), nullable=False),
    sa.Column('fees', sa.JSON(), nullable=False),
    sa.Column('licences', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('facility_id')
    )
    op.create_index('ix_sv_public_district', 'sv_public_facilities', ['province', 'city', 'district'], unique=False)

    op.create_table('sv_registrations',
    sa.Column('uscc', sa.String(length=18), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('legal_form', sa.String(length=16), nullable=False),
    sa.Column('authority', sa.String(length=64), nullable=False),
    sa.Column('registered_on', sa.Date(), nullable=False),
    sa.Column('province', sa.String(length=32), nullable=False),
    sa.Column('city', sa.String(length=32), nullable=False),
    sa.Column('district', sa.String(length=32), nullable=False),
    sa.Column('address', sa.String(length=256), nullable=False),
    sa.Column('service_types', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_from', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('uscc')
    )
    op.create_table('sv_construction_acceptances',
    sa.Column('id', _BIGID, autoincrement=True, nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('accepted_on', sa.Date(), nullable=False),
    sa.Column('new_places', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_sv_construction_acceptances_facility'), 'sv_construction_acceptances', ['facility'], unique=False)

    op.create_table('sv_credit_entries',
    sa.Column('id', _BIGID, autoincrement=True, nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rule', sa.String(length=32), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('rule', 'ref', name='uq_sv_credit_rule_ref')
    )
    op.create_index(op.f('ix_sv_credit_entries_facility'), 'sv_credit_entries', ['facility'], unique=False)

    op.create_table('sv_fee_standards',
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('class_type', sa.String(length=16), nullable=False),
    sa.Column('service_type', sa.String(length=16), nullable=False),
    sa.Column('amount_yuan', sa.Integer(), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('set_by', sa.String(length=64), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('facility', 'class_type', 'service_type')
    )
    op.create_table('sv_filings',
    sa.Column('filing_id', sa.String(length=36), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('documents', sa.JSON(), nullable=False),
    sa.Column('receipt_number', sa.String(length=64), nullable=True),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('filing_id'),
    sa.UniqueConstraint('receipt_number')
    )
    op.create_index(op.f('ix_sv_filings_facility'), 'sv_filings', ['facility'], unique=False)

    op.create_table('sv_incidents',
    sa.Column('report_id', sa.String(length=36), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('description', sa.String(length=2000), nullable=False),
    sa.Column('children_affected', sa.Integer(), nullable=False),
    sa.Column('actions_taken', sa.String(length=2000), nullable=False),
    sa.Column('reported_by', sa.String(length=64), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('report_id')
    )
    op.create_index(op.f('ix_sv_incidents_facility'), 'sv_incidents', ['facility'], unique=False)

    op.create_table('sv_inspections',
    sa.Column('inspection_id', sa.String(length=36), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('profile', sa.String(length=32), nullable=False),
    sa.Column('inspected_on', sa.Date(), nullable=False),
    sa.Column('departments', sa.JSON(), nullable=False),
    sa.Column('results', sa.JSON(), nullable=False),
    sa.Column('note', sa.String(length=1000), nullable=True),
    sa.Column('inspector', sa.String(length=64), nullable=False),
    sa.Column('inspector_role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('inspection_id')
    )
    op.create_index('ix_sv_inspections_day', 'sv_inspections', ['inspected_on'], unique=False)
    op.create_index(op.f('ix_sv_inspections_facility'), 'sv_inspections', ['facility'], unique=False)

    op.create_table('sv_uploads',
    sa.Column('upload_id', sa.String(length=36), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('media_type', sa.String(length=32), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('data_enc', sa.LargeBinary(), nullable=False),
    sa.Column('uploaded_by', sa.String(length=64), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('upload_id')
    )
    op.create_index(op.f('ix_sv_uploads_facility'), 'sv_uploads', ['facility'], unique=False)

    op.create_table('sv_filing_events',
    sa.Column('id', _BIGID, autoincrement=True, nullable=False),
    sa.Column('filing_id', sa.String(length=36), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('step', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['filing_id'], ['sv_filings.filing_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_sv_filing_events_facility'), 'sv_filing_events', ['facility'], unique=False)
    op.create_index(op.f('ix_sv_filing_events_filing_id'), 'sv_filing_events', ['filing_id'], unique=False)

    op.create_table('sv_findings',
    sa.Column('finding_id', sa.String(length=36), nullable=False),
    sa.Column('inspection_id', sa.String(length=36), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('item_id', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('description', sa.String(length=1000), nullable=False),
    sa.Column('photos', sa.JSON(), nullable=False),
    sa.Column('deadline', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('escalated_for', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['inspection_id'], ['sv_inspections.inspection_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('finding_id')
    )
    op.create_index(op.f('ix_sv_findings_facility'), 'sv_findings', ['facility'], unique=False)
    op.create_index(op.f('ix_sv_findings_inspection_id'), 'sv_findings', ['inspection_id'], unique=False)
    op.create_index('ix_sv_findings_open', 'sv_findings', ['status', 'deadline'], unique=False)

    op.create_table('sv_finding_events',
    sa.Column('id', _BIGID, autoincrement=True, nullable=False),
    sa.Column('finding_id', sa.String(length=36), nullable=False),
    sa.Column('step', sa.String(length=24), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('note', sa.String(length=1000), nullable=True),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('deadline', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['finding_id'], ['sv_findings.finding_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_sv_finding_events_finding_id'), 'sv_finding_events', ['finding_id'], unique=False)


def downgrade() -> None:
    op.drop_table('sv_finding_events')
    op.drop_table('sv_findings')
    op.drop_table('sv_filing_events')
    op.drop_table('sv_uploads')
    op.drop_table('sv_inspections')
    op.drop_table('sv_incidents')
    op.drop_table('sv_filings')
    op.drop_table('sv_fee_standards')
    op.drop_table('sv_credit_entries')
    op.drop_table('sv_construction_acceptances')
    op.drop_table('sv_registrations')
    op.drop_table('sv_public_facilities')
    op.drop_table('sv_public_events')
    op.drop_table('sv_notices')
