"""The whole alarm loop on real parts: a simulated button on the gateway's Mosquitto, the edge
agent, the police receiver over DC-09, the cloud on the uplink Mosquitto, and the police page
in Chromium: the press appears without reload, with its delivery time, and the dispatcher's
Acknowledge reaches the facility's gateway."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
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
            expect(row.locator(".c-times")).to_contain_text(re.compile(r"\d+ ms"), timeout=5_000)  # delivery time

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


class JournalReader:
    """What the gateway journaled, read from its own SQLite file while it runs: every envelope
    it put in its outbox (acknowledged rows stay there a while before they are purged, so a
    reader this frequent sees each one) and every alarm it raised."""

    def __init__(self, path: Path):
        self.path = path
        self.envelopes: dict[str, dict] = {}
        self.alarm_ids: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def read(self) -> None:
        if not self.path.exists():
            return
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        try:
            for (payload,) in conn.execute("SELECT payload FROM outbox"):
                env = json.loads(payload)
                self.envelopes[env["id"]] = env
            self.alarm_ids |= {r[0] for r in conn.execute("SELECT alarm_id FROM alarms")}
        except sqlite3.OperationalError:
            pass  # the agent has not created its tables yet
        finally:
            conn.close()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.read()

    def __enter__(self) -> "JournalReader":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)
        self.read()


def test_cloud_away_then_back_nothing_lost_nothing_duplicated(mosquitto, uplink_broker, tmp_path):
    """The uplink broker goes away for a while under load; the police path does not care; when it
    is back, every envelope and alarm the gateway journaled is in the cloud's store, and every
    reading in it once."""
    import sqlalchemy as sa

    from cloud.store.db import alarms, envelopes, telemetry
    from firmware_sim import SensorFleet

    cloud = CloudService(CloudConfig(broker_url=uplink_broker.url, db_url=f"sqlite:///{tmp_path / 'cloud.db'}",
                                     port=0, client_id="ingest-away", signing_key_path=tmp_path / "cloud.key",
                                     tokens=[TokenEntry(token=POLICE, user="officer-zhao", role="police")])).start()
    hits = []
    arc_port = free_port()
    arc = ArcReceiver({"2001": ArcAccount(plaintext=True)}, port=arc_port, on_alarm=hits.append)
    journal_path = tmp_path / "edge.sqlite3"
    runtime = EdgeRuntime(arc, [{
        "facility_id": "F9", "local_broker": mosquitto.url, "uplink": {"broker": uplink_broker.url, "heartbeat_s": 1},
        "police": {"account": "2001", "receivers": [{"host": "127.0.0.1", "port": arc_port}]},
        "outbox": {"path": str(journal_path)},
        "zones": [{"id": "toddlers", "number": 7, "kind": "panic", "devices": ["F9-btn"]},
                  {"id": "rooms", "number": 8, "kind": "environment", "devices": ["t1", "t2"]}],
    }])
    fleet = None

    def stored() -> tuple[set[str], set[str]]:
        with cloud.engine.connect() as conn:
            ids = {str(r[0]) for r in conn.execute(sa.select(envelopes.c.id).where(envelopes.c.facility == "F9"))}
            alarm_ids = {str(r[0]) for r in conn.execute(sa.select(alarms.c.alarm_id).where(alarms.c.facility == "F9"))}
        return ids, alarm_ids

    with JournalReader(journal_path) as journal:
        try:
            assert cloud.wait_ingest_ready()
            runtime.start()
            agent = runtime.agents[0]
            fleet = SensorFleet(mosquitto.url, [{"device_id": d, "kind": "temperature", "interval_s": 0.1, "seed": i}
                                                for i, d in enumerate(("t1", "t2"))]).start()
            assert sync_until(lambda: any(e["type"] == "telemetry.batch" for e in journal.envelopes.values()), 10)
            uplink_broker.stop()  # the cloud is away
            button = connect_button(mosquitto.url, "F9-btn", announce_status=False)
            button.press()
            button.link.close()
            assert sync_until(lambda: hits, 10), "the police path must not depend on the cloud"
            # While it is away the gateway keeps journaling: the delivery report and more readings.
            assert sync_until(lambda: any(e["type"] == "alarm.delivered" for e in journal.envelopes.values())
                              and journal.alarm_ids, 10)
            assert not agent.uplink.connected and agent.journal.outbox.count() > 0
            uplink_broker.start()
            fleet.stop()
            fleet = None
            assert sync_until(lambda: agent.uplink.connected and agent.journal.outbox.count() == 0, 30)
            journal.read()
            assert sync_until(lambda: set(journal.envelopes) <= stored()[0], 15)
        finally:
            if fleet is not None:
                fleet.stop()
            runtime.stop()
            cloud.stop()
    ids, alarm_ids = stored()
    sent = journal.envelopes
    # Every fact the gateway journaled is stored; the status envelopes its goodbye wrote at the
    # end may not have been flushed, and nothing else is stored than what it journaled or its
    # broker will (retained online/offline status, by the broker on its behalf).
    facts = {i for i, e in sent.items() if e["type"] != "status.gateway"}
    assert facts <= ids, [(sent[i]["type"], sent[i]["ts"]) for i in facts - ids]
    assert journal.alarm_ids == alarm_ids and str(hits[0].alarm_id) in alarm_ids
    assert {sent[i]["type"] for i in facts} >= {"alarm.raised", "alarm.delivered", "telemetry.batch"}
    # Nothing twice: each reading the gateway journaled is one row of the store, none more.
    points = [(p["device_id"], p["metric"], p["ts"]) for e in sent.values() if e["type"] == "telemetry.batch"
              for p in e["body"]["points"]]
    with cloud.engine.connect() as conn:
        rows = conn.execute(sa.select(telemetry.c.device_id, telemetry.c.metric, telemetry.c.ts)
                            .where(telemetry.c.facility == "F9")).all()
    assert len(points) == len(set(points)) and len(rows) == len(points), (len(rows), len(points))
    assert {(d, m) for d, m, _ in rows} == {(d, m) for d, m, _ in points}
