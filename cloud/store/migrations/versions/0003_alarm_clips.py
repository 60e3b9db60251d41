"""Alarm clips: per-camera clip records and their chunks, encrypted.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('clips',
    sa.Column('clip_id', sa.String(length=36), nullable=False),
    sa.Column('alarm_id', sa.String(length=36), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('camera_id', sa.String(length=64), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('missing', sa.JSON(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('transcoded', sa.Boolean(), nullable=False),
    sa.Column('truncated', sa.Boolean(), nullable=False),
    sa.Column('chunks', sa.Integer(), nullable=False),
    sa.Column('received', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('complete_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('corrupt', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('clip_id')
    )
    op.create_index('ix_clips_alarm_id', 'clips', ['alarm_id'])
    op.create_index('ix_clips_facility', 'clips', ['facility'])
    op.create_table('clip_chunks',
    sa.Column('clip_id', sa.String(length=36), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('clip_id', 'idx')
    )


def downgrade() -> None:
    op.drop_table('clip_chunks')
    op.drop_index('ix_clips_facility', table_name='clips')
    op.drop_index('ix_clips_alarm_id', table_name='clips')
    op.drop_table('clips')
