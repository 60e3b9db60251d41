"""TLS on every link (issue 10, point 4): a Mosquitto TLS listener with certificates this test
makes through the cloud's gateway CA; gateways authenticate with client certificates whose
common name is their MQTT username; plain MQTT, a wrong CA and a revoked certificate are
refused; the cloud serves HTTPS with HSTS."""

from __future__ import annotations

import socket
import ssl
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from cloud.config import CloudConfig, TokenEntry
from cloud.main import CloudService
from cloud.registry.gateway_ca import GatewayCA, IssuedCertificate
from cloud.registry.records import FacilityRegistration, register_facility, uscc_check_char
from cloud.store.db import create_schema, envelopes, make_engine
from contracts import topics
from contracts.envelope import make_envelope
from contracts.topics import Stream, up
from helpers import sync_until
from testing.services import BrokerTls, Mosquitto
from wire import mqtt_codec as codec
from wire.mqtt_client import make_client, parse_broker_url, tls_context

FAC = "F001"
GATEWAY = "gw-1"
USERNAME = f"{FAC}.{GATEWAY}"
ADMIN = "tls-admin-0123456789"


def _files(where: Path, name: str, issued: IssuedCertificate) -> tuple[str, str]:
    cert, key = where / f"{name}.pem", where / f"{name}.key"
    cert.write_text(issued.certificate_pem)
    key.write_text(issued.private_key_pem)
    key.chmod(0o600)
    return str(cert), str(key)


def connects(url: str) -> bool:
    """Whether the broker at `url` accepts an MQTT connection (CONNACK with return code 0)."""
    addr = parse_broker_url(url)
    try:
        with socket.create_connection((addr.host, addr.port), timeout=5) as raw:
            sock = tls_context(addr).wrap_socket(raw, server_hostname=addr.host) if addr.tls else raw
            sock.sendall(codec.encode_connect(f"probe-{uuid.uuid4().hex[:6]}", v5=False, clean=True,
                                              username=addr.username, password=addr.password))
            reply = sock.recv(4)
            return len(reply) == 4 and reply[0] == 0x20 and reply[3] == 0
    except (OSError, ssl.SSLError):
        return False


@pytest.fixture
def pki(tmp_path):
    """The cloud's CA, the broker's server certificate, the cloud's own client certificate, a
    registered gateway, and a Mosquitto speaking only TLS with them."""
    now = datetime.now(timezone.utc)
    ca = GatewayCA(tmp_path / "ca")
    server_cert, server_key = _files(tmp_path, "broker", ca.issue_server(("127.0.0.1",), now))
    cloud_cert, cloud_key = _files(tmp_path, "cloud", ca.issue_service("cloud", now))
    db = f"sqlite:///{tmp_path / 'cloud.db'}"
    engine = make_engine(db)
    create_schema(engine)
    first17 = "91370800000000077"
    with engine.begin() as conn:
        register_facility(conn, FacilityRegistration.model_validate({
            "facility_id": FAC, "name": "a", "uscc": first17 + uscc_check_char(first17), "kind": "public",
            "address": "a", "district": {"province": "p", "city": "c", "district": "d", "street": "s"},
            "gateway": {"gateway_id": GATEWAY}}), now)
        ca.write_crl(conn, now)
    engine.dispose()
    acl = {USERNAME: ("", [f"topic write {topics.up_all(FAC)}", f"topic read {topics.down_all(FAC)}"]),
           "cloud": ("", ["topic readwrite cg/#"])}
    broker = Mosquitto(workdir=str(tmp_path / "mosq"), acl=acl,
                       tls=BrokerTls(cafile=str(ca.cert_path), certfile=server_cert, keyfile=server_key,
                                     crlfile=str(ca.crl_path)))
    (tmp_path / "mosq").mkdir()
    broker.start()
    try:
        yield dict(ca=ca, broker=broker, db=db, tmp=tmp_path,
                   cloud_url=f"{broker.url}&certfile={cloud_cert}&keyfile={cloud_key}")
    finally:
        broker.close()


def test_gateway_and_cloud_over_mutual_tls_and_the_refusals(pki):
    broker, tmp = pki["broker"], pki["tmp"]
    config = CloudConfig(broker_url=pki["cloud_url"], db_url=pki["db"], port=0, shared_subscription=True,
                         client_id=f"ingest-{uuid.uuid4().hex[:6]}", gateway_ca_dir=str(pki["ca"].dir),
                         tokens=[TokenEntry(token=ADMIN, user="ops", role="admin")])
    cloud = CloudService(config).start()
    try:
        assert cloud.wait_ingest_ready(), "ingest never subscribed over TLS"
        # The admin has the cloud's CA issue the gateway's certificate: key shown once.
        with httpx.Client(base_url=cloud.url, headers={"Authorization": f"Bearer {ADMIN}"}) as http:
            r = http.post(f"/api/gateways/{GATEWAY}/certificate")
        assert r.status_code == 201, r.text
        issued = r.json()
        assert issued["common_name"] == USERNAME
        gw_cert, gw_key = _files(tmp, "gateway", IssuedCertificate(**{k: issued[k] for k in (
            "serial", "common_name", "not_after", "certificate_pem", "private_key_pem", "ca_pem")}))
        gateway_url = f"{broker.url}&certfile={gw_cert}&keyfile={gw_key}"

        client, addr = make_client(gateway_url, "edge-F001")
        commands: list[str] = []
        client.on_message = lambda c, u, msg: commands.append(msg.topic)
        client.connect(addr.host, addr.port)
        client.loop_start()
        try:
            client.subscribe(topics.down_all(FAC), qos=1)
            # Down: a command through the cloud's downlink (its own certificate) reaches the gateway.
            with httpx.Client(base_url=cloud.url, headers={"Authorization": f"Bearer {ADMIN}"}) as http:
                assert sync_until(lambda: http.post(f"/api/facilities/{FAC}/zones/z1/arm").json()["published"])
            assert sync_until(lambda: commands), "no command reached the gateway over TLS"
            # Up: the gateway's heartbeat reaches the store.
            beat = make_envelope(FAC, "heartbeat", {})
            info = client.publish(up(FAC, Stream.HEARTBEAT), beat.to_bytes(), qos=1)
            info.wait_for_publish(10)
            assert info.is_published()
            assert sync_until(lambda: cloud.counters["stored"] == 1), cloud.counters
        finally:
            client.disconnect()
            client.loop_stop()
        with cloud.engine.connect() as conn:
            assert conn.execute(sa.select(envelopes.c.id)).scalar_one() == str(beat.id)

        # Refused: plain MQTT on the TLS port, no client certificate, a certificate from another CA,
        # and a client trusting another CA for the broker.
        assert connects(gateway_url)
        assert not connects(f"mqtt://127.0.0.1:{broker.port}")
        assert not connects(broker.url)
        stranger = GatewayCA(tmp / "other-ca")
        now = datetime.now(timezone.utc)
        other_cert, other_key = _files(tmp, "stranger", stranger.issue_service(USERNAME, now))
        assert not connects(f"{broker.url}&certfile={other_cert}&keyfile={other_key}")
        assert not connects(f"mqtts://127.0.0.1:{broker.port}?cafile={stranger.cert_path}"
                            f"&certfile={gw_cert}&keyfile={gw_key}")

        # Revoked through the API: the broker reads the new CRL on SIGHUP and refuses the gateway.
        with httpx.Client(base_url=cloud.url, headers={"Authorization": f"Bearer {ADMIN}"}) as http:
            r = http.delete(f"/api/gateways/{GATEWAY}/certificate")
        assert r.status_code == 200 and r.json()["serials"] == [issued["serial"]], r.text
        broker.reload()
        assert sync_until(lambda: not connects(gateway_url), timeout=10), "a revoked certificate still connects"
        assert connects(pki["cloud_url"]), "the cloud's own certificate was not revoked"
    finally:
        cloud.stop()


def test_https_with_hsts(pki, tmp_path):
    cert, key = _files(tmp_path, "api", pki["ca"].issue_server(("127.0.0.1",), datetime.now(timezone.utc)))
    config = CloudConfig(broker_url=pki["cloud_url"], db_url=pki["db"], port=0, tls_cert=cert, tls_key=key,
                         client_id=f"ingest-{uuid.uuid4().hex[:6]}")
    cloud = CloudService(config).start()
    try:
        assert cloud.url.startswith("https://")
        r = httpx.get(f"{cloud.url}/healthz", verify=ssl.create_default_context(cafile=str(pki["ca"].cert_path)))
        assert r.status_code == 200 and r.headers["strict-transport-security"].startswith("max-age=")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{cloud.port}/healthz", timeout=5)
        with pytest.raises(httpx.ConnectError):  # a client that does not trust the cloud's CA
            httpx.get(f"{cloud.url}/healthz", timeout=5)
    finally:
        cloud.stop()


def test_passwords_over_tls_where_a_site_has_no_certificates(tmp_path):
    now = datetime.now(timezone.utc)
    ca = GatewayCA(tmp_path / "ca")
    cert, key = _files(tmp_path, "broker", ca.issue_server(("127.0.0.1",), now))
    password = "site-pass-0123456789"
    broker = Mosquitto(workdir=str(tmp_path / "mosq"), acl={USERNAME: (password, [f"topic write {topics.up_all(FAC)}"])},
                       tls=BrokerTls(cafile=str(ca.cert_path), certfile=cert, keyfile=key, require_certificate=False,
                                     use_identity_as_username=False))
    (tmp_path / "mosq").mkdir()
    broker.start()
    try:
        tls_url = f"mqtts://{USERNAME}:{password}@127.0.0.1:{broker.port}?cafile={ca.cert_path}"
        assert connects(tls_url)
        assert not connects(f"mqtts://{USERNAME}:wrong-password-000@127.0.0.1:{broker.port}?cafile={ca.cert_path}")
        assert not connects(f"mqtt://{USERNAME}:{password}@127.0.0.1:{broker.port}"), "a password in the clear"
    finally:
        broker.close()
