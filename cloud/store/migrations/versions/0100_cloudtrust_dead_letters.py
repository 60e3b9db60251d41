"""Dead letters (messages ingest will never store, kept with their reason), and envelopes found by
their receive time: the "latest" report of a facility is the one the cloud received last.

Revision ID: 0100_cloudtrust_dead_letters
Revises: 0100_supervision_loop
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = '0100_cloudtrust_dead_letters'
down_revision = '0100_supervision_loop'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dead_letters',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=True),
    sa.Column('topic', sa.String(length=256), nullable=False),
    sa.Column('reason_key', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=512), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('payload_bytes', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('digest')
    )
    op.create_index('ix_dead_letters_facility', 'dead_letters', ['facility'], unique=False)
    op.create_index('ix_envelopes_facility_type_received', 'envelopes', ['facility', 'type', 'received_at'],
                    unique=False)


def downgrade() -> None:
    op.drop_index('ix_envelopes_facility_type_received', table_name='envelopes')
    op.drop_index('ix_dead_letters_facility', table_name='dead_letters')
    op.drop_table('dead_letters')
