"""Care and health: class rosters of pseudonymous children, morning and noon checks, staff health
records, the lifetime ban list (references only), and district populations for statistics.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_BIGID = sa.Integer().with_variant(sa.BigInteger(), 'postgresql')


def upgrade() -> None:
    op.create_table('care_rosters',
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('class_id', sa.String(length=64), nullable=False),
    sa.Column('carers_on_duty', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('facility', 'class_id')
    )
    op.create_table('care_children',
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('child_ref', sa.String(length=64), nullable=False),
    sa.Column('class_id', sa.String(length=64), nullable=False),
    sa.Column('child_id_enc', sa.String(length=400), nullable=False),
    sa.Column('birth_month_enc', sa.String(length=400), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('facility', 'child_ref')
    )
    op.create_index('ix_care_children_class', 'care_children', ['facility', 'class_id'], unique=False)
    op.create_table('care_checks',
    sa.Column('id', _BIGID, autoincrement=True, nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('class_id', sa.String(length=64), nullable=False),
    sa.Column('child_ref', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('temperature_c', sa.Float(), nullable=True),
    sa.Column('symptoms', sa.JSON(), nullable=False),
    sa.Column('action_enc', sa.String(length=1200), nullable=True),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_care_checks_day', 'care_checks', ['facility', 'local_date'], unique=False)
    op.create_index('ix_care_checks_at', 'care_checks', ['at'], unique=False)
    op.create_table('care_staff_records',
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('staff_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=True),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['facility', 'staff_id'], ['staff.facility', 'staff.staff_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('facility', 'staff_id', 'kind')
    )
    op.create_table('care_ban_list',
    sa.Column('id', _BIGID, autoincrement=True, nullable=False),
    sa.Column('name_ref', sa.String(length=64), nullable=False),
    sa.Column('id_ref', sa.String(length=64), nullable=True),
    sa.Column('listed_on', sa.Date(), nullable=False),
    sa.Column('authority', sa.String(length=128), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_care_ban_list_name_ref'), 'care_ban_list', ['name_ref'], unique=False)
    op.create_index(op.f('ix_care_ban_list_id_ref'), 'care_ban_list', ['id_ref'], unique=False)
    op.create_table('district_population',
    sa.Column('province', sa.String(length=32), nullable=False),
    sa.Column('city', sa.String(length=32), nullable=False),
    sa.Column('district', sa.String(length=32), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('population', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('province', 'city', 'district')
    )


def downgrade() -> None:
    op.drop_table('district_population')
    op.drop_index(op.f('ix_care_ban_list_id_ref'), table_name='care_ban_list')
    op.drop_index(op.f('ix_care_ban_list_name_ref'), table_name='care_ban_list')
    op.drop_table('care_ban_list')
    op.drop_table('care_staff_records')
    op.drop_index('ix_care_checks_at', table_name='care_checks')
    op.drop_index('ix_care_checks_day', table_name='care_checks')
    op.drop_table('care_checks')
    op.drop_index('ix_care_children_class', table_name='care_children')
    op.drop_table('care_children')
    op.drop_table('care_rosters')
