"""Commands to a gateway are the cloud's or nobody's: a drill from the cloud API reaches the gateway
and the police as a signed command; unsigned, wrongly signed, stale, replayed (also after a
restart) and other-facility commands published straight on the down topic are refused, and the
refusals reach the cloud as security events. Real parts: Mosquitto, the cloud service, the edge
agent, the ARC receiver."""

from __future__ import annotations

import json
import os
import stat
import threading
import uuid
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from arc.receiver import ArcAccount, ArcReceiver
from careguard.demo_data import seed_registry
from careguard.run_all import EdgeRuntime
from cloud.alarms.signing_key import SigningKeyError, load_or_create
from cloud.config import CloudConfig, TokenEntry
from cloud.main import CloudService
from cloud.store.db import envelopes
from contracts import topics
from contracts.envelope import make_envelope
from contracts.timefmt import utcnow
from helpers import sync_until
from testing.services import free_port
from wire.envelope_signing import public_key_hex, sign
from wire.mqtt_client import make_client

ADMIN = "admin-token-0123456789"
AES = "00112233445566778899aabbccddeeff"


class DownWire:
    """An attacker (or a witness) on the uplink broker: records the down commands, publishes its own."""

    def __init__(self, url: str):
        self.seen: list[bytes] = []
        self.ready = threading.Event()
        self.client, addr = make_client(url, f"down-wire-{uuid.uuid4().hex[:6]}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topics.down_all("F001"), qos=1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = lambda c, u, msg: self.seen.append(msg.payload)
        self.client.connect(addr.host, addr.port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def publish(self, payload: bytes) -> None:
        self.client.publish(topics.down("F001", "arm"), payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def edge_config(tmp_path, broker: str, arc_port: int, cloud_key: str) -> dict:
    return {"facility_id": "F001", "local_broker": broker,
            "uplink": {"broker": broker, "heartbeat_s": 1, "cloud_public_key": cloud_key},
            "police": {"account": "1001", "key": AES, "receivers": [{"host": "127.0.0.1", "port": arc_port}]},
            "outbox": {"path": str(tmp_path / "edge.sqlite3")},
            "zones": [{"id": "class-1", "number": 1, "kind": "panic", "devices": ["F001-btn-1"]}]}


def drill(zone: str = "class-1", **kw) -> dict:
    return make_envelope("F001", "arm.set", {"action": "test", "zone": zone, "by": "attacker"}, source="cloud", **kw)


def security_events(cloud: CloudService) -> list[dict]:
    with cloud.engine.connect() as conn:
        rows = conn.execute(sa.select(envelopes.c.body).where(envelopes.c.type == "event.security")).scalars().all()
    return [r if isinstance(r, dict) else json.loads(r) for r in rows]


def test_signed_commands_work_forged_ones_are_refused(uplink_broker, tmp_path):
    cloud = CloudService(CloudConfig(broker_url=uplink_broker.url, db_url=f"sqlite:///{tmp_path / 'cloud.db'}", port=0,
                                     client_id=f"ingest-{uuid.uuid4().hex[:8]}",
                                     signing_key_path=tmp_path / "keys" / "cloud.key",
                                     tokens=[TokenEntry(token=ADMIN, user="admin-wu", role="admin")])).start()
    seed_registry(cloud.engine)
    hits = []
    arc = ArcReceiver({"1001": ArcAccount(key=AES, facility="F001")}, port=free_port(), on_alarm=hits.append)
    wire = DownWire(uplink_broker.url)
    runtime = None

    def start_gateway() -> EdgeRuntime:
        rt = EdgeRuntime(arc, [edge_config(tmp_path, uplink_broker.url, arc.port, cloud.public_key_hex)])
        rt.start()
        assert sync_until(lambda: rt.agents[0].uplink.connected, 10)
        return rt

    def drills() -> list[int]:
        return [h.zone for h in hits if h.code == "TX"]

    try:
        assert cloud.wait_ingest_ready()
        runtime = start_gateway()
        agent = runtime.agents[0]
        with httpx.Client(base_url=cloud.url, headers={"Authorization": f"Bearer {ADMIN}"}) as http:
            r = http.post("/api/facilities/F001/drill", json={"zone": "class-1"})
            assert r.status_code == 202 and r.json()["published"], r.text
            assert sync_until(lambda: drills() == [1], 10)  # the signed command, end to end
            assert sync_until(lambda: wire.seen, 5)
            genuine = wire.seen[0]
            assert json.loads(genuine)["sig"]

            other_key = Ed25519PrivateKey.generate()
            forged = {
                "unsigned": drill().to_bytes(),
                "signed by another key": sign(drill(), other_key).to_bytes(),
                "stale (captured 5 min ago)": sign(drill(ts=utcnow() - timedelta(minutes=5)), cloud.signing_key).to_bytes(),
                "replayed": genuine,
                "another facility's": sign(make_envelope("F002", "arm.set", {"action": "test", "zone": "class-1"},
                                                         source="cloud"), cloud.signing_key).to_bytes(),
                "body edited after signing": json.dumps({**json.loads(genuine), "body": {
                    "action": "disarm", "zone": "class-1", "by": "attacker"}}).encode(),
            }
            for payload in forged.values():
                wire.publish(payload)
            assert sync_until(lambda: agent.security.refused == len(forged), 10), agent.security.refused
            # A signed command after them goes through; none of the forged ones did before it.
            assert http.post("/api/facilities/F001/drill", json={"zone": "class-1"}).status_code == 202
            assert sync_until(lambda: len(drills()) == 2, 10)
            assert drills() == [1, 1]
            assert sync_until(lambda: security_events(cloud), 10)
            (first,) = security_events(cloud)
            assert first["kind"] == "command_refused" and first["source"] == "downlink"
        runtime.stop()

        runtime = start_gateway()  # the ids it has carried out survive the restart
        wire.publish(genuine)
        assert sync_until(lambda: runtime.agents[0].security.refused == 1, 10)
        assert sync_until(lambda: len(security_events(cloud)) == 2, 10)
        assert "replay" in security_events(cloud)[1]["reason"]
        assert drills() == [1, 1]
    finally:
        if runtime is not None:
            runtime.stop()
        wire.close()
        cloud.stop()


def test_signing_key_is_private_and_kept(tmp_path):
    path = tmp_path / "keys" / "cloud.key"
    key = load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert public_key_hex(load_or_create(path)) == public_key_hex(key)  # made once, then read
    os.chmod(path, 0o644)
    with pytest.raises(SigningKeyError, match="mode 0644"):
        load_or_create(path)
