"""Cloud ingest end to end: a publisher fleet (QoS 1, many facilities) -> Mosquitto -> K ingest
worker processes (shared subscription) -> relational store (PostgreSQL or SQLite) and telemetry
store (relational or VictoriaMetrics). Prints one JSON line; never pass/fail.

Rates are measured from the first publish to the moment the store holds every envelope (and,
for VictoriaMetrics, every point). Lost and duplicated counts compare what the stores hold with
the ids published; a fraction of envelopes is published twice on purpose, as QoS 1 and gateway
retries do. CPU seconds are read from /proc for the workers and the broker; the publishers
report their own (they share the cores). PostgreSQL and VictoriaMetrics are not counted.

    python bench/ingest.py --workers 1,2 --db postgresql --telemetry relational
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import select
import socket
import struct
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from wire.mqtt_client import parse_broker_url  # noqa: E402
from testing.services import Mosquitto, postgres, victoria_metrics  # noqa: E402
from cloud.config import CloudConfig  # noqa: E402
from cloud.store.db import create_schema, envelopes, make_engine, telemetry  # noqa: E402
from cloud.ingest.workers import IngestWorkers  # noqa: E402
from contracts.topics import Stream, up  # noqa: E402

METRICS = ("temp_c", "co2_ppm")


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def make_payloads(publisher: int, count: int, facilities: int, points: int, resend_every: int, base: datetime):
    """(topic, payload, id) per message; ids and point times are unique across the fleet."""
    out = []
    for i in range(count):
        n = publisher * count + i
        fac = f"F{n % facilities:04d}"
        ts = base + timedelta(milliseconds=n)
        iso = ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        pts = [{"device_id": f"th-{k // len(METRICS)}", "metric": METRICS[k % len(METRICS)], "value": 20.0 + k,
                "ts": iso} for k in range(points)]
        eid = str(uuid.UUID(int=(publisher << 64) | i | (1 << 127)))
        env = {"v": 1, "id": eid, "facility": fac, "source": "sim", "type": "telemetry.batch", "ts": iso,
               "seq": i, "body": {"points": pts}}
        payload = json.dumps(env, separators=(",", ":")).encode()
        out.append((up(fac, Stream.TELEMETRY), payload, eid))
        if resend_every and i % resend_every == 0:
            out.append((up(fac, Stream.TELEMETRY), payload, eid))
    return out


# The fleet speaks MQTT 3.1.1 from pre-encoded packets: a paho publisher spends about as much CPU
# per message as an ingest worker, and the real gateways do not run on the cloud's cores.
_PUBACK = 0x40
INFLIGHT = 1000  # unacknowledged QoS 1 messages per publisher, as a paho client set to 1000


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n // 128, n % 128
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str) -> bytes:
    var = _utf8("MQTT") + bytes((4, 0x02)) + struct.pack("!H", 60)  # 3.1.1, clean session, keepalive 60 s
    body = var + _utf8(client_id)
    return b"\x10" + _remaining_length(len(body)) + body


def publish_packet(topic: str, payload: bytes, packet_id: int) -> bytes:
    body = _utf8(topic) + struct.pack("!H", packet_id) + payload
    return b"\x32" + _remaining_length(len(body)) + body  # PUBLISH, QoS 1


def publish_all(url: str, client_id: str, packets: list[bytes], go, timeout_s: float) -> int:
    """Send `packets` keeping at most INFLIGHT unacknowledged; returns how many the broker acknowledged."""
    addr = parse_broker_url(url)
    with socket.create_connection((addr.host, addr.port), timeout=10) as sock:
        sock.sendall(connect_packet(client_id))
        connack = sock.recv(4)
        if len(connack) != 4 or connack[0] != 0x20 or connack[3] != 0:
            raise RuntimeError(f"broker refused the publisher: {connack!r}")
        go.wait(60)
        sent = acked = 0
        pending = b""
        deadline = time.monotonic() + timeout_s
        while acked < len(packets) and time.monotonic() < deadline:
            room = min(len(packets) - sent, INFLIGHT - (sent - acked), 100)
            if room > 0:
                sock.sendall(b"".join(packets[sent:sent + room]))
                sent += room
            can_send = sent < len(packets) and sent - acked < INFLIGHT
            readable, _, _ = select.select([sock], [], [], 0 if can_send else 1.0)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                pending += data
                n = len(pending) // 4
                if any(pending[4 * k] != _PUBACK for k in range(n)):
                    raise RuntimeError("the broker sent something other than PUBACK")
                acked += n
                pending = pending[4 * n:]
        sock.sendall(b"\xe0\x00")  # DISCONNECT
    return acked


def publisher_main(url: str, index: int, count: int, facilities: int, points: int, resend_every: int,
                   base_iso: str, go, done) -> None:
    payloads = make_payloads(index, count, facilities, points, resend_every, datetime.fromisoformat(base_iso))
    # Packet ids cycle through 1..65535; with at most INFLIGHT in flight, a reused id was acknowledged long ago.
    packets = [publish_packet(topic, payload, 1 + k % 65535) for k, (topic, payload, _) in enumerate(payloads)]
    cpu0 = time.process_time()
    acked = publish_all(url, f"bench-pub-{index}-{os.getpid()}", packets, go, 120)
    # Its own CPU time for publishing: the fleet shares this machine's cores.
    done.put((index, acked, len(packets), time.process_time() - cpu0))


def _vm_points(vm: str, since: datetime) -> int:
    q = urllib.parse.urlencode({"query": "sum(count_over_time(cg_telemetry_value[2h]))",
                                "time": f"{(since + timedelta(hours=1)).timestamp():.3f}"})
    data = json.loads(urllib.request.urlopen(f"{vm}/api/v1/query?{q}", timeout=10).read())
    result = data["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def run_once(args, broker: Mosquitto, db_url: str, vm_url: str | None, workers: int) -> dict:
    engine = make_engine(db_url)
    create_schema(engine)
    config = CloudConfig(broker_url=broker.url, db_url=db_url, shared_subscription=True, ingest_workers=workers,
                         client_id=f"bench-{uuid.uuid4().hex[:6]}", batch_max=args.batch_max,
                         telemetry_url=vm_url)
    pool = IngestWorkers(config).start()
    ctx = mp.get_context("spawn")
    go, done = ctx.Event(), ctx.Queue()
    per_pub = args.envelopes // args.publishers
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30)
    pubs = [ctx.Process(target=publisher_main, args=(broker.url, i, per_pub, args.facilities, args.points,
                                                      args.resend_every, base.isoformat(), go, done), daemon=True)
            for i in range(args.publishers)]
    result: dict = {"workers": workers}
    try:
        if not pool.wait_ready(30):
            raise RuntimeError("ingest workers did not subscribe within 30 s")
        for p in pubs:
            p.start()
        time.sleep(args.warmup_s)  # publishers build their payloads before the clock starts
        watched = pool.pids() + [broker.proc.pid]
        cpu0 = {pid: _cpu_s(pid) for pid in watched}
        expected = per_pub * args.publishers
        expected_points = expected * args.points
        t0 = time.monotonic()
        go.set()
        stored = 0
        deadline = t0 + args.timeout_s
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                stored = conn.execute(sa.select(sa.func.count()).select_from(envelopes)).scalar_one()
            if stored >= expected:
                break
            time.sleep(0.1)
        t_env = time.monotonic() - t0
        points = 0
        while time.monotonic() < deadline:
            if vm_url:
                points = _vm_points(vm_url, base)
            else:
                with engine.connect() as conn:
                    points = conn.execute(sa.select(sa.func.count()).select_from(telemetry)).scalar_one()
            if points >= expected_points or stored < expected:
                break
            time.sleep(0.2)
        t_pts = time.monotonic() - t0
        cpu = {pid: _cpu_s(pid) - cpu0[pid] for pid in watched}
        published = [done.get(timeout=30) for _ in pubs]
        with engine.connect() as conn:
            distinct = conn.execute(sa.select(sa.func.count(sa.distinct(envelopes.c.id)))).scalar_one()
        worker_cpu = sum(cpu[pid] for pid in pool.pids())
        result.update(
            envelopes_published=expected, resent=sum(p[2] for p in published) - expected,
            publish_confirmed=sum(p[1] for p in published) == sum(p[2] for p in published),
            envelopes_stored=stored, points_stored=points, seconds=round(t_pts, 2),
            envelopes_per_s=round(stored / t_env, 1), points_per_s=round(points / t_pts, 1),
            envelopes_per_s_per_core=round(stored / t_env / os.cpu_count(), 1),
            points_per_s_per_core=round(points / t_pts / os.cpu_count(), 1),
            envelopes_per_worker_cpu_s=round(stored / worker_cpu, 1) if worker_cpu else None,
            worker_cpu_s=round(worker_cpu, 2), broker_cpu_s=round(cpu[broker.proc.pid], 2),
            publisher_cpu_s=round(sum(p[3] for p in published), 2),
            lost=expected - distinct, duplicated_envelopes=stored - distinct,
            duplicated_points=max(0, points - expected_points), missing_points=max(0, expected_points - points))
    finally:
        go.set()
        for p in pubs:
            p.join(30)
            if p.is_alive():
                p.terminate()
        pool.stop()
        engine.dispose()
    # After the stop: each worker's last counters arrive as it leaves.
    counters = pool.counters()
    result.update(duplicates_dropped_by_ingest=counters["duplicates"], rejected=counters["rejected"],
                  store_errors=counters["store_errors"])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2", help="ingest worker counts to compare, e.g. 1,2")
    ap.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    ap.add_argument("--telemetry", choices=("relational", "vm"), default="relational")
    ap.add_argument("--envelopes", type=int, default=40_000)
    ap.add_argument("--points", type=int, default=10, help="telemetry points per envelope")
    ap.add_argument("--facilities", type=int, default=500)
    ap.add_argument("--publishers", type=int, default=2, help="publisher processes")
    ap.add_argument("--resend-every", type=int, default=100, help="publish every Nth envelope twice; 0: never")
    ap.add_argument("--batch-max", type=int, default=1000)
    ap.add_argument("--warmup-s", type=float, default=3.0)
    ap.add_argument("--timeout-s", type=float, default=60.0, help="per run, for everything to be stored")
    args = ap.parse_args()
    runs = []
    with ExitStack() as stack:
        vm_url = stack.enter_context(victoria_metrics()) if args.telemetry == "vm" else None
        pg_url = stack.enter_context(postgres()) if args.db == "postgresql" else None
        for k in (int(w) for w in args.workers.split(",")):
            broker = stack.enter_context(Mosquitto())
            if pg_url:
                name = f"bench_{uuid.uuid4().hex[:8]}"
                admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.exec_driver_sql(f"CREATE DATABASE {name}")
                admin.dispose()
                db_url = pg_url.rsplit("/", 1)[0] + "/" + name
            else:
                db_url = f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory(prefix='cg-bench-'))}/cloud.db"
            if vm_url:
                # A fresh series set per run: the count query must see only this run's points.
                urllib.request.urlopen(urllib.request.Request(
                    f"{vm_url}/api/v1/admin/tsdb/delete_series?match[]=cg_telemetry_value", method="POST"),
                    timeout=10).read()
            runs.append(run_once(args, broker, db_url, vm_url, k))
            broker.close()
    print(json.dumps({"bench": "ingest", "cores": os.cpu_count(), "db": args.db, "telemetry": args.telemetry,
                      "envelopes": args.envelopes, "points_per_envelope": args.points, "facilities": args.facilities,
                      "publishers": args.publishers, "resend_every": args.resend_every, "batch_max": args.batch_max,
                      "goal": {"envelopes_per_s": 5000, "points_per_s": 50000}, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
