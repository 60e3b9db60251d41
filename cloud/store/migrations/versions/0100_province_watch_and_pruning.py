"""A province's hot paths: the gateways' status state as a column (the gateway watch filters on it
in the database), active alarms found by kind and state, and envelopes by kind and receive time
(pruning of the high-rate kinds).

Revision ID: 0100_province_watch_and_pruning
Revises: 0100_scale_compliance_snapshots
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = '0100_province_watch_and_pruning'
down_revision = '0100_scale_compliance_snapshots'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('gateways', sa.Column('status_state', sa.String(length=16), nullable=True))
    state = ("status->>'state'" if op.get_bind().dialect.name == "postgresql"
             else "json_extract(status, '$.state')")
    # Only a string state: what ingest writes (cloud.ingest.sql.touch_gateways).
    op.execute(f"UPDATE gateways SET status_state = substr({state}, 1, 16) WHERE status IS NOT NULL")
    op.create_index('ix_alarms_kind_state', 'alarms', ['kind', 'state'], unique=False)
    # On a store already holding a province's envelopes this build blocks ingest for its length:
    # there, run `CREATE INDEX CONCURRENTLY ix_envelopes_type_received ON envelopes (type, received_at)`
    # by hand first, and this finds it made.
    op.create_index('ix_envelopes_type_received', 'envelopes', ['type', 'received_at'], unique=False,
                    if_not_exists=True)


def downgrade() -> None:
    op.drop_index('ix_envelopes_type_received', table_name='envelopes')
    op.drop_index('ix_alarms_kind_state', table_name='alarms')
    op.drop_column('gateways', 'status_state')
