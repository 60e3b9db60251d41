"""API tokens created by an admin: SHA-256 hashes only, with expiry, revocation and a jurisdiction.

Revision ID: 0100_cloudtrust_tokens
Revises: 0100_cloudtrust_dead_letters
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = '0100_cloudtrust_tokens'
down_revision = '0100_cloudtrust_dead_letters'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('token_id', sa.String(length=32), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('facility_id', sa.String(length=32), nullable=True),
    sa.Column('jurisdiction', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token_id'),
    sa.UniqueConstraint('token_sha256')
    )


def downgrade() -> None:
    op.drop_table('api_tokens')
