"""Gateway client certificates the cloud's CA issued and revoked (the CRL is built from them).

Revision ID: 0100_cloudtrust_gateway_certs
Revises: 0100_cloudtrust_tokens
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = '0100_cloudtrust_gateway_certs'
down_revision = '0100_cloudtrust_tokens'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gateway_certificates',
    sa.Column('serial', sa.String(length=40), nullable=False),
    sa.Column('gateway_id', sa.String(length=64), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('common_name', sa.String(length=100), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('serial')
    )
    op.create_index('ix_gateway_certificates_gateway_id', 'gateway_certificates', ['gateway_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_gateway_certificates_gateway_id', table_name='gateway_certificates')
    op.drop_table('gateway_certificates')
