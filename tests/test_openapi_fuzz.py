"""Schemathesis against the app's own OpenAPI document: generated requests (valid and not) never
get a 5xx, and every response conforms to the documented schema (status, content type, body).

Not checked: that every schema-valid request is accepted. Some validity is beyond a JSON schema
(a credit code's check character, a cursor this API handed out, an area that must exist), and
those requests are rightly refused with 422 or 409."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from cloud.api.app import create_app
from cloud.api.auth import TokenGrant, TokenTable
from cloud.store.db import create_schema, make_engine
from cloud.alarms.events_bus import EventBus
from cloud.registry.records import FacilityRegistration, register_facility, uscc_check_char

ADMIN = "fuzz-admin-token-0123"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'c.db'}")
    create_schema(engine)
    first17 = "91370800000000042"
    with engine.begin() as conn:
        register_facility(conn, FacilityRegistration.model_validate({
            "facility_id": "A", "name": "a", "uscc": first17 + uscc_check_char(first17), "kind": "public",
            "address": "a", "district": {"province": "p", "city": "济宁市", "district": "d", "street": "s"}}),
            datetime.now(timezone.utc))
    yield create_app(engine=engine, bus=EventBus(), tokens=TokenTable([TokenGrant(ADMIN, "fuzz", "admin")]))
    engine.dispose()


def test_api_conforms(app):
    # The event streams never end by design; every other operation is fuzzed.
    schema = (schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Authorization": f"Bearer {ADMIN}"})
              .exclude(path="/api/alarms/stream").exclude(path="/api/notices/stream"))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"},
                                   excluded_checks=[positive_data_acceptance])

        check()
