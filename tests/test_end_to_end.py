"""The whole alarm loop on real parts: a simulated button on the gateway's Mosquitto, the edge
agent, the police receiver over DC-09, the cloud on the uplink Mosquitto, and the police page
in Chromium: the press appears without reload, with its delivery time, and the dispatcher's
Acknowledge reaches the facility's gateway."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

from careguard.run_all import EdgeRuntime
from testing.services import free_port
from arc.receiver import ArcAccount, ArcReceiver
from cloud.config import CloudConfig, TokenEntry
from cloud.main import CloudService
from firmware_sim import connect_button
from helpers import chromium, logged_in_page, sync_until

POLICE = "police-token-e2e-0123456789"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def test_press_to_police_page_and_acknowledge_back_to_the_gateway(mosquitto, uplink_broker, tmp_path):
    from playwright.sync_api import expect

    cloud = CloudService(CloudConfig(broker_url=uplink_broker.url, db_url=f"sqlite:///{tmp_path / 'cloud.db'}",
                                     port=0, client_id=f"ingest-{uuid.uuid4().hex[:8]}",
                                     signing_key_path=tmp_path / "keys" / "cloud.key",
                                     tokens=[TokenEntry(token=POLICE, user="officer-zhao", role="police")])).start()
    hits = []
    arc_port = free_port()
    aes = "00112233445566778899aabbccddeeff"
    arc = ArcReceiver({"2001": ArcAccount(facility="F9", key=aes)}, port=arc_port, on_alarm=hits.append)
    edge_cfg = {
        "facility_id": "F9", "local_broker": mosquitto.url,
        "uplink": {"broker": uplink_broker.url, "cloud_public_key": cloud.public_key_hex},
        "police": {"account": "2001", "key": aes, "receivers": [{"host": "127.0.0.1", "port": arc_port}]},
        "outbox": {"path": str(tmp_path / "edge.sqlite3")},
        "zones": [{"id": "toddlers", "number": 7, "kind": "panic", "devices": ["F9-btn"]}],
    }
    runtime = None
    try:
        assert cloud.wait_ingest_ready()
        runtime = EdgeRuntime(arc, [edge_cfg])
        runtime.start()
        agent = runtime.agents[0]

        with chromium() as browser:
            page, errors = logged_in_page(browser, f"{cloud.url}/police", POLICE,
                                          viewport={"width": 1400, "height": 700})
            expect(page.locator("#link-state")).to_have_attribute("data-state", "live", timeout=10_000)

            button = connect_button(mosquitto.url, "F9-btn", announce_status=False)
            button.press()
            button.link.close()
            sync_until(lambda: hits, 10)
            assert hits and hits[0].code == "PA" and hits[0].zone == 7
            alarm_id = str(hits[0].alarm_id)
            row = page.locator(f'tr[data-alarm-id="{alarm_id}"]')
            expect(row).to_be_visible(timeout=5_000)  # pushed live, no reload
            expect(row).to_contain_text("F9")
            expect(row.locator("td.num")).to_have_text(re.compile(r"^\d+$"), timeout=5_000)  # delivery ms

            row.get_by_role("button", name=re.compile("^确认")).click()
            sync_until(lambda: alarm_id in agent.acked_by_cloud, 10)
            assert agent.acked_by_cloud[alarm_id]["acked_by"] == "officer-zhao"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "end_to_end_police.png"), full_page=True)
    finally:
        if runtime is not None:
            runtime.stop()
        cloud.stop()
    assert errors == []


def test_cloud_away_then_back_nothing_lost_nothing_duplicated(mosquitto, uplink_broker, collector_factory, tmp_path):
    """The uplink broker goes away for a while under load; the police path does not care; when it
    is back, every envelope the gateway sent is in the cloud's store exactly once."""
    import sqlalchemy as sa

    from cloud.store.db import envelopes
    from firmware_sim import SensorFleet

    cloud = CloudService(CloudConfig(broker_url=uplink_broker.url, db_url=f"sqlite:///{tmp_path / 'cloud.db'}",
                                     port=0, client_id="ingest-away", signing_key_path=tmp_path / "cloud.key",
                                     tokens=[TokenEntry(token=POLICE, user="officer-zhao", role="police")])).start()
    witness = collector_factory(uplink_broker.url, "witness")  # sees what the gateway published
    hits = []
    arc_port = free_port()
    arc = ArcReceiver({"2001": ArcAccount(plaintext=True)}, port=arc_port, on_alarm=hits.append)
    runtime = EdgeRuntime(arc, [{
        "facility_id": "F9", "local_broker": mosquitto.url, "uplink": {"broker": uplink_broker.url, "heartbeat_s": 1},
        "police": {"account": "2001", "receivers": [{"host": "127.0.0.1", "port": arc_port}]},
        "outbox": {"path": str(tmp_path / "edge.sqlite3")},
        "zones": [{"id": "toddlers", "number": 7, "kind": "panic", "devices": ["F9-btn"]},
                  {"id": "rooms", "number": 8, "kind": "environment", "devices": ["t1", "t2"]}],
    }])
    fleet = None
    try:
        assert cloud.wait_ingest_ready()
        runtime.start()
        fleet = SensorFleet(mosquitto.url, [{"device_id": d, "kind": "temperature", "interval_s": 0.1, "seed": i}
                                            for i, d in enumerate(("t1", "t2"))]).start()
        time.sleep(1.5)
        uplink_broker.stop()  # the cloud is away
        button = connect_button(mosquitto.url, "F9-btn", announce_status=False)
        button.press()
        button.link.close()
        sync_until(lambda: hits, 10)
        assert hits, "the police path must not depend on the cloud"
        time.sleep(2)
        uplink_broker.start()
        agent = runtime.agents[0]
        fleet.stop()
        fleet = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.3)
            with cloud.engine.connect() as conn:
                stored = {r[0] for r in conn.execute(sa.select(envelopes.c.id).where(envelopes.c.facility == "F9"))}
            facts = {e["id"] for e in witness.envelopes if e["type"] != "heartbeat"}
            if agent.uplink.connected and facts <= {str(s) for s in stored} and \
                    any(e["type"] == "alarm.delivered" for e in witness.envelopes):
                break
        seen = list(witness.envelopes)  # before the gateway says goodbye at the end
        wanted = {e["id"] for e in seen if e["type"] != "heartbeat"}
        deadline = time.monotonic() + 10
        while True:  # what the witness saw a moment ago may still be on its way into the store
            with cloud.engine.connect() as conn:
                rows = [str(r[0]) for r in conn.execute(sa.select(envelopes.c.id).where(envelopes.c.facility == "F9"))]
            if wanted <= set(rows) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        if fleet is not None:
            fleet.stop()
        runtime.stop()
        cloud.stop()
    assert len(rows) == len(set(rows))  # nothing twice
    # Heartbeats are state, sent at QoS 0 and never buffered; every fact must be there.
    facts = {e["id"] for e in seen if e["type"] != "heartbeat"}
    assert facts <= set(rows), [(e["type"], e["body"], e["ts"]) for e in seen if e["id"] in facts - set(rows)]
    types = {e["type"] for e in seen}
    assert {"alarm.raised", "alarm.delivered", "telemetry.batch"} <= types
