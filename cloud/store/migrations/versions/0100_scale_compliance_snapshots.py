"""Compliance snapshots: each facility's compliance report as last evaluated, kept current by
marks from ingest and the registry and by deadlines, for the supervision pages.

Revision ID: 0100_scale_compliance_snapshots
Revises: pages_0004
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = '0100_scale_compliance_snapshots'
down_revision = 'pages_0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('compliance_snapshots',
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('marked', sa.Integer(), nullable=False),
    sa.Column('computed_mark', sa.Integer(), nullable=False),
    sa.Column('recheck_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_digest', sa.String(length=64), nullable=False),
    sa.Column('camera_digest', sa.String(length=64), nullable=False),
    sa.Column('cameras_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('retention_required_days', sa.Float(), nullable=False),
    sa.Column('retention_digest', sa.String(length=64), nullable=False),
    sa.Column('cameras', sa.Integer(), nullable=False),
    sa.Column('cameras_online', sa.Integer(), nullable=False),
    sa.Column('retention_cameras', sa.Integer(), nullable=False),
    sa.Column('retention_compliant', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('facility')
    )
    op.create_index('ix_compliance_snapshots_recheck', 'compliance_snapshots', ['recheck_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_compliance_snapshots_recheck', table_name='compliance_snapshots')
    op.drop_table('compliance_snapshots')
