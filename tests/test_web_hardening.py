"""Web hardening and secrets (issue 10, points 6 and 7): a huge body is refused before it is read,
security headers on every page, the OpenAPI document for admins only, CSV cells that cannot run
as formulas, and logs of a whole scenario that hold no password and no token."""

from __future__ import annotations

import logging
import socket
import uuid
from pathlib import Path

import httpx
import pytest

from cloud.config import CloudConfig, TokenEntry
from cloud.main import CloudService
from contracts.envelope import make_envelope
from contracts.topics import Stream, up
from helpers import chromium, fresh_pg_database, logged_in_page, sync_until
from testing.services import Mosquitto
from wire.mqtt_client import make_client, redact_url

ADMIN = "hard-admin-0123456789"
POLICE = "hard-police-012345678"


@pytest.fixture
def cloud(mosquitto, tmp_path):
    config = CloudConfig(broker_url=mosquitto.url, db_url=f"sqlite:///{tmp_path / 'cloud.db'}", port=0,
                         client_id=f"ingest-{uuid.uuid4().hex[:8]}",
                         tokens=[TokenEntry(token=ADMIN, user="ops", role="admin"),
                                 TokenEntry(token=POLICE, user="officer", role="police")])
    service = CloudService(config).start()
    yield service
    service.stop()


def _exchange(port: int, head: bytes, body_chunks) -> tuple[bytes, int]:
    """Send `head` and then body chunks until the server answers; returns (answer, body bytes sent)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sock.settimeout(0.05)
        for chunk in body_chunks:
            try:
                answer = sock.recv(4096)
                if answer:
                    return answer, sent
            except socket.timeout:
                pass
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
        sock.settimeout(10)
        return sock.recv(4096), sent


def test_a_100_mb_body_without_a_token_is_refused_before_it_is_read(cloud):
    mb = b"x" * (1024 * 1024)
    head = (f"POST /api/facilities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {100 * len(mb)}\r\n\r\n").encode()
    answer, sent = _exchange(cloud.port, head, (mb for _ in range(100)))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent <= 4 * len(mb), f"{sent} bytes went in before the refusal"
    # Without a Content-Length (chunked), it is counted and cut off just past the limit.
    head = (b"POST /api/facilities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n" % len(mb) + mb + b"\r\n"
    answer, sent = _exchange(cloud.port, head, (chunk for _ in range(100)))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent <= 4 * len(chunk), f"{sent} bytes went in before the refusal"
    # And the server goes on serving.
    assert httpx.get(f"{cloud.url}/healthz").status_code == 200
    assert httpx.get(f"{cloud.url}/api/alarms", headers={"Authorization": f"Bearer {POLICE}"}).status_code == 200


def test_security_headers_and_the_api_document_for_admins_only(cloud):
    with httpx.Client(base_url=cloud.url) as http:
        for path in ("/police", "/supervision", "/static/common.js", "/healthz", "/api/alarms"):
            h = http.get(path).headers
            csp = h["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
            assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"
            assert "strict-transport-security" not in h, "HSTS only over TLS"
        assert http.get("/openapi.json").status_code == 401
        assert http.get("/openapi.json", headers={"Authorization": f"Bearer {POLICE}"}).status_code == 403
        doc = http.get("/openapi.json", headers={"Authorization": f"Bearer {ADMIN}"})
        assert doc.status_code == 200 and "/api/alarms" in doc.json()["paths"]
        assert http.get("/docs").status_code == 404 and http.get("/redoc").status_code == 404


def test_csv_cells_cannot_run_as_formulas(cloud):
    with chromium() as browser:
        page, errors = logged_in_page(browser, f"{cloud.url}/police", POLICE, accept_downloads=True)
        with page.expect_download() as dl:
            page.evaluate("""CG.downloadCsv("x.csv", [{key: "v", label: "v"}],
                [{v: "=HYPERLINK(\\"http://x\\")"}, {v: "+1"}, {v: "-2+3"}, {v: "@SUM(A1)"}, {v: -4.5}, {v: "ok"}])""")
        lines = Path(dl.value.path()).read_text(encoding="utf-8-sig").splitlines()
        page.close()
    assert lines[1:] == ['"\'=HYPERLINK(""http://x"")"', "'+1", "'-2+3", "'@SUM(A1)", "-4.5", "ok"], lines
    assert errors == [], errors  # no page script refused by the CSP either


def test_logs_of_a_scenario_hold_no_password_and_no_token(tmp_path, pg_url, caplog, capfd):
    broker_password, db_password = "Br0ker-Secret-7731", "Db-Secret-4412"
    broker = Mosquitto(workdir=str(tmp_path / "mosq"), acl={"cloud": (broker_password, ["topic readwrite #"]),
                                                            "gw": ("gw-pass-zz9", ["topic readwrite #"])})
    (tmp_path / "mosq").mkdir()
    broker.start()
    caplog.set_level(logging.DEBUG)
    try:
        with fresh_pg_database(pg_url, "logs") as url:
            # Trust authentication ignores the password; the URL still carries it, as in production.
            db_url = url.replace("careguard@", f"careguard:{db_password}@")
            broker_url = f"mqtt://cloud:{broker_password}@127.0.0.1:{broker.port}"
            config = CloudConfig(broker_url=broker_url, db_url=db_url, port=0, shared_subscription=True,
                                 client_id=f"ingest-{uuid.uuid4().hex[:8]}",
                                 tokens=[TokenEntry(token=ADMIN, user="ops", role="admin")])
            cloud = CloudService(config).start()
            try:
                assert cloud.wait_ingest_ready()
                with httpx.Client(base_url=cloud.url, headers={"Authorization": f"Bearer {ADMIN}"}) as http:
                    made = http.post("/api/tokens", json={"user": "desk", "role": "police"}).json()
                    ticket = http.post("/api/stream-tickets").json()["ticket"]
                    http.get("/api/alarms", headers={"Authorization": f"Bearer {made['token']}"})
                    http.get("/api/alarms", headers={"Authorization": "Bearer wrong-token-0123456789"})
                gw, addr = make_client(f"mqtt://gw:gw-pass-zz9@127.0.0.1:{broker.port}")
                gw.connect(addr.host, addr.port)
                gw.loop_start()
                gw.publish(up("F1", Stream.HEARTBEAT), make_envelope("F1", "heartbeat", {}).to_bytes(), qos=1)
                gw.publish(up("F1", Stream.HEARTBEAT), b'{"poison": ', qos=1).wait_for_publish(5)
                assert sync_until(lambda: cloud.counters["stored"] == 1 and cloud.counters["dead_lettered"] == 1)
                broker.restart()  # the cloud logs its lost connection and its reconnection
                assert sync_until(lambda: cloud.wait_ingest_ready(0.1), timeout=20)
                gw.disconnect()
                gw.loop_stop()
            finally:
                cloud.stop()
    finally:
        broker.close()
    out, err = capfd.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records) + out + err
    assert "ingest connected to mqtt://cloud:***@" in logged, "the scenario logged nothing to check"
    for secret in (broker_password, db_password, "gw-pass-zz9", ADMIN, made["token"], ticket):
        assert secret not in logged, f"a secret reached the logs: {secret[:4]}…"


def test_redact_url():
    assert redact_url("mqtt://u:p%40ss@h:1883") == "mqtt://u:***@h:1883"
    assert redact_url("postgresql+psycopg://a:b@h1:5432,h2/db?password=x&sslmode=require") == \
        "postgresql+psycopg://a:***@h1:5432,h2/db?password=***&sslmode=require"
    assert redact_url("mqtts://h:8883?cafile=/ca.pem") == "mqtts://h:8883?cafile=/ca.pem"
