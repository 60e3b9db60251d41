"""Initial schema: envelopes, alarms and their history, escalations, telemetry, audit, gateway
liveness, and the registry (facilities, licences, classes, gateway credentials, devices, areas,
cameras, staff).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alarm_events',
    sa.Column('id', sa.Integer().with_variant(sa.BigInteger(), 'postgresql'), autoincrement=True, nullable=False),
    sa.Column('alarm_id', sa.String(length=36), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('step', sa.String(length=32), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('alarm_id', 'step', 'n', name='uq_alarm_event_step')
    )
    op.create_table('alarms',
    sa.Column('alarm_id', sa.String(length=36), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('zone', sa.String(length=64), nullable=True),
    sa.Column('device_id', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('sort_ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cleared_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('receiver', sa.String(length=128), nullable=True),
    sa.Column('acked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acked_by', sa.String(length=64), nullable=True),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispatched_by', sa.String(length=64), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('alarm_id')
    )
    op.create_index(op.f('ix_alarms_facility'), 'alarms', ['facility'], unique=False)
    op.create_index(op.f('ix_alarms_sort_ts'), 'alarms', ['sort_ts'], unique=False)

    op.create_table('audit',
    sa.Column('id', sa.Integer().with_variant(sa.BigInteger(), 'postgresql'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=128), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('envelopes',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_envelopes_facility_type_ts', 'envelopes', ['facility', 'type', 'ts'], unique=False)

    op.create_table('escalations',
    sa.Column('id', sa.Integer().with_variant(sa.BigInteger(), 'postgresql'), autoincrement=True, nullable=False),
    sa.Column('alarm_id', sa.String(length=36), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('notified_role', sa.String(length=16), nullable=False),
    sa.Column('unacked_s', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('alarm_id', 'n', name='uq_escalation_n')
    )
    op.create_index(op.f('ix_escalations_facility'), 'escalations', ['facility'], unique=False)

    op.create_table('facilities',
    sa.Column('facility_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('uscc', sa.String(length=18), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('province', sa.String(length=32), nullable=False),
    sa.Column('city', sa.String(length=32), nullable=False),
    sa.Column('district', sa.String(length=32), nullable=False),
    sa.Column('street', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=256), nullable=False),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('contact_name', sa.String(length=64), nullable=True),
    sa.Column('contact_phone', sa.String(length=32), nullable=True),
    sa.Column('filing_status', sa.String(length=16), nullable=False),
    sa.Column('filing_number', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('facility_id'),
    sa.UniqueConstraint('uscc')
    )
    op.create_index(op.f('ix_facilities_city'), 'facilities', ['city'], unique=False)
    op.create_index('ix_facilities_district_path', 'facilities', ['province', 'city', 'district', 'street'], unique=False)

    op.create_table('gateways',
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_type', sa.String(length=64), nullable=False),
    sa.Column('status', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('facility')
    )
    op.create_table('telemetry',
    sa.Column('id', sa.Integer().with_variant(sa.BigInteger(), 'postgresql'), autoincrement=True, nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('metric', sa.String(length=32), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('facility', 'device_id', 'metric', 'ts', name='uq_telemetry_point')
    )
    op.create_table('areas',
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('area_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('children_area', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('facility', 'area_id')
    )
    op.create_table('cameras',
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('camera_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('facility', 'camera_id')
    )
    op.create_table('classes',
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('class_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('class_type', sa.String(length=16), nullable=False),
    sa.Column('places', sa.Integer(), nullable=False),
    sa.Column('enrolled', sa.Integer(), nullable=False),
    sa.Column('carers', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('facility', 'class_id')
    )
    op.create_table('devices',
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('zone', sa.String(length=64), nullable=True),
    sa.Column('area_id', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('facility', 'device_id')
    )
    op.create_table('gateway_credentials',
    sa.Column('gateway_id', sa.String(length=64), nullable=False),
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('mqtt_username', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('gateway_id'),
    sa.UniqueConstraint('mqtt_username')
    )
    op.create_index(op.f('ix_gateway_credentials_facility'), 'gateway_credentials', ['facility'], unique=False)

    op.create_table('licences',
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('facility', 'kind')
    )
    op.create_table('staff',
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('staff_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('certificates', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['facility'], ['facilities.facility_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('facility', 'staff_id')
    )
    op.create_table('camera_areas',
    sa.Column('facility', sa.String(length=32), nullable=False),
    sa.Column('camera_id', sa.String(length=64), nullable=False),
    sa.Column('area_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['facility', 'area_id'], ['areas.facility', 'areas.area_id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['facility', 'camera_id'], ['cameras.facility', 'cameras.camera_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('facility', 'camera_id', 'area_id')
    )


def downgrade() -> None:
    op.drop_table('camera_areas')
    op.drop_table('staff')
    op.drop_table('licences')
    op.drop_index(op.f('ix_gateway_credentials_facility'), table_name='gateway_credentials')

    op.drop_table('gateway_credentials')
    op.drop_table('devices')
    op.drop_table('classes')
    op.drop_table('cameras')
    op.drop_table('areas')
    op.drop_table('telemetry')
    op.drop_table('gateways')
    op.drop_index('ix_facilities_district_path', table_name='facilities')
    op.drop_index(op.f('ix_facilities_city'), table_name='facilities')

    op.drop_table('facilities')
    op.drop_index(op.f('ix_escalations_facility'), table_name='escalations')

    op.drop_table('escalations')
    op.drop_index('ix_envelopes_facility_type_ts', table_name='envelopes')

    op.drop_table('envelopes')
    op.drop_table('audit')
    op.drop_index(op.f('ix_alarms_sort_ts'), table_name='alarms')
    op.drop_index(op.f('ix_alarms_facility'), table_name='alarms')

    op.drop_table('alarms')
    op.drop_table('alarm_events')
