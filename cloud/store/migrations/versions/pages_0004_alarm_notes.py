"""The police's notes on an alarm: what was dispatched, and how it was closed.

Revision ID: pages_0004
Revises: 0100_cloudtrust_gateway_certs
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = 'pages_0004'
down_revision = '0100_cloudtrust_gateway_certs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alarms') as batch:
        batch.add_column(sa.Column('dispatch_note', sa.String(length=500), nullable=True))
        batch.add_column(sa.Column('resolve_note', sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alarms') as batch:
        batch.drop_column('resolve_note')
        batch.drop_column('dispatch_note')
