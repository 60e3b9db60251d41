"""Cloud ingest end to end: a publisher fleet (QoS 1, many facilities) -> Mosquitto -> K ingest
worker processes (shared subscription) -> PostgreSQL (fsync and synchronous commit on) and
VictoriaMetrics. Prints one JSON line; never pass/fail. With no arguments: the README's run.

Each round, on one broker, runs a ceiling leg, then clean and hostile legs interleaved as
clean, hostile, hostile, clean (so a drift of this shared machine's load falls on both alike),
all with the same publishers:
- `ceiling`: the same messages to K consumers that only acknowledge (the broker's own relay
  rate; ingest is reported as a ratio to it);
- `clean`: ingest of good envelopes (a fraction published twice, as QoS 1 and gateway retries do);
- `hostile` (issue 10): the same good envelopes with 1 % poison among them (seq past 63 bits, a
  year-9999 time, a time a day ahead, malformed JSON) and one facility flooding telemetry on top.
  Its good-envelope rate is reported against the clean legs' (goal: within 20 %), and so is its
  cost in worker and broker CPU seconds (steadier than rates when other work shares the cores).
  The flooding facility meets the cloud's default bucket (rate and burst in the JSON).

Rates run from the first publish to the moment the store holds every good envelope (and
VictoriaMetrics every point). Lost and duplicated compare the ids published with the ids stored;
poison is counted in the dead-letter table. CPU seconds are read from /proc for the workers and
the broker; the publishers report their own (they share the cores). PostgreSQL and
VictoriaMetrics are not counted. `--unsafe` runs PostgreSQL with fsync off (labelled).

    python bench/ingest.py [--workers 1,2] [--envelopes N] [--telemetry relational] [--unsafe]
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

from cloud.config import CloudConfig  # noqa: E402
from cloud.ingest.dead_letters import dead_letters  # noqa: E402
from cloud.ingest.session import MqttSession  # noqa: E402
from cloud.ingest.workers import IngestWorkers  # noqa: E402
from cloud.store.db import create_schema, envelopes, make_engine, telemetry  # noqa: E402
from contracts.topics import SHARED_INGEST, Stream, up  # noqa: E402
from testing.services import Mosquitto, postgres, victoria_metrics  # noqa: E402
from wire.mqtt_client import parse_broker_url  # noqa: E402

METRICS = ("temp_c", "co2_ppm")
FLOOD = "FLOOD"
GOOD, POISON, FLOODED = 0, 1, 2  # id tags (bits 120-121), so the kind of any stored id is known


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def envelope_id(kind: int, publisher: int, i: int) -> str:
    return str(uuid.UUID(int=(1 << 127) | (kind << 120) | (publisher << 64) | i))


def _telemetry(fac: str, eid: str, seq: int, iso: str, points: int) -> dict:
    pts = [{"device_id": f"th-{k // len(METRICS)}", "metric": METRICS[k % len(METRICS)], "value": 20.0 + k, "ts": iso}
           for k in range(points)]
    return {"v": 1, "id": eid, "facility": fac, "source": "sim", "type": "telemetry.batch", "ts": iso, "seq": seq,
            "body": {"points": pts}}


def _poison(eid: str, fac: str, n: int, base: datetime) -> bytes:
    """Poison of four kinds in turn: each valid JSON of the right shape but one."""
    iso = base.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    env = {"v": 1, "id": eid, "facility": fac, "source": "sim", "type": "heartbeat", "ts": iso, "seq": n, "body": {}}
    kind = n % 4
    if kind == 0:
        env["seq"] = 2**63 + n
    elif kind == 1:
        env["ts"] = "9999-12-31T23:59:59.000Z"
    elif kind == 2:
        env["ts"] = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    else:
        return json.dumps(env).encode()[:-7]
    return json.dumps(env, separators=(",", ":")).encode()


def make_payloads(publisher: int, count: int, facilities: int, points: int, resend_every: int, base: datetime,
                  hostile: bool, poison_every: int, flood_every: int) -> list[tuple[str, bytes]]:
    """(topic, payload) per message; good ids and point times are unique across the fleet."""
    out = []
    for i in range(count):
        n = publisher * count + i
        fac = f"F{n % facilities:04d}"
        iso = (base + timedelta(milliseconds=n)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        payload = json.dumps(_telemetry(fac, envelope_id(GOOD, publisher, i), i, iso, points),
                             separators=(",", ":")).encode()
        out.append((up(fac, Stream.TELEMETRY), payload))
        if resend_every and i % resend_every == 0:
            out.append((up(fac, Stream.TELEMETRY), payload))
        if hostile and i % poison_every == poison_every - 1:
            out.append((up(fac, Stream.HEARTBEAT), _poison(envelope_id(POISON, publisher, i), fac, i, base)))
        if hostile and i % flood_every == flood_every - 1:
            flood = _telemetry(FLOOD, envelope_id(FLOODED, publisher, i), i, iso, points)
            out.append((up(FLOOD, Stream.TELEMETRY), json.dumps(flood, separators=(",", ":")).encode()))
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
        go.wait(120)
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


def publisher_main(url: str, index: int, args: dict, base_iso: str, hostile: bool, ready, go, done) -> None:
    payloads = make_payloads(index, args["per_pub"], args["facilities"], args["points"], args["resend_every"],
                             datetime.fromisoformat(base_iso), hostile, args["poison_every"], args["flood_every"])
    # Packet ids cycle through 1..65535; with at most INFLIGHT in flight, a reused id was acknowledged long ago.
    packets = [publish_packet(topic, payload, 1 + k % 65535) for k, (topic, payload) in enumerate(payloads)]
    del payloads
    ready.put(index)
    cpu0 = time.process_time()
    acked = publish_all(url, f"bench-pub-{index}-{os.getpid()}", packets, go, args["timeout_s"])
    # Its own CPU time for publishing: the fleet shares this machine's cores.
    done.put((index, acked, len(packets), time.process_time() - cpu0))


def acker_main(url: str, client_id: str, counts, index: int, stop) -> None:
    """A consumer that only acknowledges, on the ingest's own session code and subscription."""
    def on_message(topic: str, payload: bytes, mid: int, qos: int) -> None:
        counts[index] += 1
        session.ack(mid, session.generation)

    session = MqttSession(url, client_id, SHARED_INGEST, on_message, v5=True, session_expiry_s=0,
                          max_packet_bytes=1 << 20)
    session.start()
    stop.wait()
    session.stop()


def _vm_points(vm: str, since: datetime) -> int:
    q = urllib.parse.urlencode({"query": "sum(count_over_time(cg_telemetry_value[2h]))",
                                "time": f"{(since + timedelta(hours=1)).timestamp():.3f}"})
    data = json.loads(urllib.request.urlopen(f"{vm}/api/v1/query?{q}", timeout=10).read())
    result = data["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def _vm_reset(vm: str) -> None:
    # A fresh series set per leg: the count query must see only this leg's points.
    urllib.request.urlopen(urllib.request.Request(
        f"{vm}/api/v1/admin/tsdb/delete_series?match[]=cg_telemetry_value", method="POST"), timeout=10).read()


class Fleet:
    """The publisher processes of one leg: built before the clock starts, released together."""

    def __init__(self, ctx, url: str, args: dict, base: datetime, hostile: bool):
        self.ready, self.go, self.done = ctx.Queue(), ctx.Event(), ctx.Queue()
        self.procs = [ctx.Process(target=publisher_main, args=(url, i, args, base.isoformat(), hostile, self.ready,
                                                               self.go, self.done), daemon=True)
                      for i in range(args["publishers"])]

    def start(self) -> None:
        for p in self.procs:
            p.start()
        for _ in self.procs:
            self.ready.get(timeout=300)

    def results(self) -> list[tuple]:
        return [self.done.get(timeout=60) for _ in self.procs]

    def stop(self) -> None:
        self.go.set()
        for p in self.procs:
            p.join(30)
            if p.is_alive():
                p.terminate()


def ceiling_leg(ctx, args: dict, broker: Mosquitto, workers: int, base: datetime) -> dict:
    counts = ctx.Array("q", workers)
    stop = ctx.Event()
    tag = uuid.uuid4().hex[:6]
    ackers = [ctx.Process(target=acker_main, args=(broker.url, f"ceiling-{tag}-{i}", counts, i, stop), daemon=True)
              for i in range(workers)]
    fleet = Fleet(ctx, broker.url, args, base, hostile=False)
    try:
        for p in ackers:
            p.start()
        fleet.start()
        time.sleep(1.0)  # the ackers subscribe while the fleet waits
        expected = args["per_pub"] * args["publishers"]
        expected += sum(1 for i in range(args["per_pub"]) if args["resend_every"] and i % args["resend_every"] == 0) \
            * args["publishers"]
        watched = [p.pid for p in ackers] + [broker.proc.pid]
        cpu0 = {pid: _cpu_s(pid) for pid in watched}
        t0 = time.monotonic()
        fleet.go.set()
        deadline = t0 + args["timeout_s"]
        while sum(counts) < expected and time.monotonic() < deadline:
            time.sleep(0.02)
        seconds = time.monotonic() - t0
        published = fleet.results()
        return {"messages": sum(counts), "expected": expected, "seconds": round(seconds, 2),
                "messages_per_s": round(sum(counts) / seconds, 1),
                "broker_cpu_s": round(_cpu_s(broker.proc.pid) - cpu0[broker.proc.pid], 2),
                "consumer_cpu_s": round(sum(_cpu_s(p.pid) - cpu0[p.pid] for p in ackers), 2),
                "publish_confirmed": sum(p[1] for p in published) == sum(p[2] for p in published)}
    finally:
        fleet.stop()
        stop.set()
        for p in ackers:
            p.join(10)
            if p.is_alive():
                p.terminate()


def ingest_leg(ctx, args: dict, broker: Mosquitto, db_url: str, vm_url: str | None, workers: int,
               base: datetime, hostile: bool, client_id: str) -> dict:
    engine = make_engine(db_url)
    create_schema(engine)
    if vm_url:
        _vm_reset(vm_url)
    config = CloudConfig(broker_url=broker.url, db_url=db_url, shared_subscription=True, ingest_workers=workers,
                         client_id=client_id, batch_max=args["batch_max"], telemetry_url=vm_url)
    pool = IngestWorkers(config).start()
    fleet = Fleet(ctx, broker.url, args, base, hostile)
    per_pub, pubs = args["per_pub"], args["publishers"]
    good_ids = {envelope_id(GOOD, p, i) for p in range(pubs) for i in range(per_pub)}
    poison = pubs * sum(1 for i in range(per_pub) if i % args["poison_every"] == args["poison_every"] - 1) \
        if hostile else 0
    flood = pubs * sum(1 for i in range(per_pub) if i % args["flood_every"] == args["flood_every"] - 1) \
        if hostile else 0
    result: dict = {"leg": "hostile" if hostile else "clean", "workers": workers}
    try:
        if not pool.wait_ready(30):
            raise RuntimeError("ingest workers did not subscribe within 30 s")
        fleet.start()
        watched = pool.pids() + [broker.proc.pid]
        cpu0 = {pid: _cpu_s(pid) for pid in watched}
        good_filter = envelopes.c.facility != FLOOD
        t0 = time.monotonic()
        fleet.go.set()
        deadline = t0 + args["timeout_s"]
        stored = 0
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                stored = conn.execute(sa.select(sa.func.count()).select_from(envelopes).where(good_filter)).scalar_one()
            if stored >= len(good_ids):
                break
            time.sleep(0.1)
        t_env = time.monotonic() - t0
        expected_points = len(good_ids) * args["points"]
        points = 0
        while time.monotonic() < deadline:
            if vm_url:
                points = _vm_points(vm_url, base)  # the flood is counted apart, below
                with engine.connect() as conn:
                    points -= args["points"] * conn.execute(sa.select(sa.func.count()).select_from(envelopes)
                                                            .where(envelopes.c.facility == FLOOD)).scalar_one()
            else:
                with engine.connect() as conn:
                    points = conn.execute(sa.select(sa.func.count()).select_from(telemetry)
                                          .where(telemetry.c.facility != FLOOD)).scalar_one()
            if points >= expected_points or stored < len(good_ids):
                break
            time.sleep(0.2)
        t_pts = time.monotonic() - t0
        cpu = {pid: _cpu_s(pid) - cpu0[pid] for pid in watched}
        published = fleet.results()
        # Everything accounted for: every poison dead-lettered, every flood message stored or throttled.
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                kept = conn.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar_one()
            if kept >= poison:
                break
            time.sleep(0.1)
        with engine.connect() as conn:
            stored_ids = set(conn.execute(sa.select(envelopes.c.id).where(good_filter)).scalars())
            flood_stored = conn.execute(sa.select(sa.func.count()).select_from(envelopes)
                                        .where(envelopes.c.facility == FLOOD)).scalar_one()
            kept = conn.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar_one()
        worker_cpu = sum(cpu[pid] for pid in pool.pids())
        result.update(
            envelopes_published=len(good_ids), resent=sum(p[2] for p in published) - len(good_ids) - poison - flood,
            publish_confirmed=sum(p[1] for p in published) == sum(p[2] for p in published),
            envelopes_stored=len(stored_ids & good_ids), points_stored=points, seconds=round(t_pts, 2),
            envelopes_per_s=round(stored / t_env, 1), points_per_s=round(points / t_pts, 1),
            envelopes_per_worker_cpu_s=round(stored / worker_cpu, 1) if worker_cpu else None,
            worker_cpu_s=round(worker_cpu, 2), broker_cpu_s=round(cpu[broker.proc.pid], 2),
            publisher_cpu_s=round(sum(p[3] for p in published), 2),
            lost=len(good_ids - stored_ids), unexpected_ids=len(stored_ids - good_ids),
            duplicated_points=max(0, points - expected_points), missing_points=max(0, expected_points - points))
        if hostile:
            result.update(poison_published=poison, dead_lettered=kept, flood_published=flood,
                          flood_stored=flood_stored)
    finally:
        fleet.stop()
        pool.stop()
        engine.dispose()
    # After the stop: each worker's last counters arrive as it leaves.
    counters = pool.counters()
    result.update(duplicates_dropped_by_ingest=counters["duplicates"], rejected=counters["rejected"],
                  throttled=counters["throttled"], store_errors=counters["store_errors"])
    return result


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 1)


def _fresh_db(stack: ExitStack, pg_url: str | None) -> str:
    if pg_url:
        name = f"bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
        admin.dispose()
        return pg_url.rsplit("/", 1)[0] + "/" + name
    return f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory(prefix='cg-bench-'))}/cloud.db"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="2", help="ingest worker counts, e.g. 1,2 (one round each)")
    ap.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    ap.add_argument("--unsafe", action="store_true", help="PostgreSQL with fsync and synchronous commit off")
    ap.add_argument("--telemetry", choices=("relational", "vm"), default="vm")
    ap.add_argument("--envelopes", type=int, default=60_000, help="per leg")
    ap.add_argument("--points", type=int, default=10, help="telemetry points per envelope")
    ap.add_argument("--facilities", type=int, default=500)
    ap.add_argument("--publishers", type=int, default=2, help="publisher processes")
    ap.add_argument("--resend-every", type=int, default=100, help="publish every Nth envelope twice; 0: never")
    ap.add_argument("--poison-every", type=int, default=100, help="hostile leg: one poison per N good (1 %%)")
    ap.add_argument("--flood-every", type=int, default=5,
                    help="hostile leg: one extra message from the flooding facility per N good")
    ap.add_argument("--batch-max", type=int, default=1000)
    ap.add_argument("--timeout-s", type=float, default=120.0, help="per leg, for everything to be stored")
    a = ap.parse_args()
    args = dict(per_pub=a.envelopes // a.publishers, publishers=a.publishers, facilities=a.facilities,
                points=a.points, resend_every=a.resend_every, poison_every=a.poison_every,
                flood_every=a.flood_every, batch_max=a.batch_max, timeout_s=a.timeout_s)
    ctx = mp.get_context("spawn")
    load_before = os.getloadavg()[0]  # other work on these cores shows in every figure
    rounds = []
    with ExitStack() as stack:
        vm_url = stack.enter_context(victoria_metrics()) if a.telemetry == "vm" else None
        pg_url = stack.enter_context(postgres(durable=not a.unsafe)) if a.db == "postgresql" else None
        for k in (int(w) for w in a.workers.split(",")):
            broker = stack.enter_context(Mosquitto())
            base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30)
            ceiling = ceiling_leg(ctx, args, broker, k, base)
            # One client id for both legs, as a restarted cloud keeps its own: a persistent session left
            # behind by another id would stay in the shared group and be handed its share of the messages.
            client_id = f"bench-{uuid.uuid4().hex[:6]}"
            legs = [ingest_leg(ctx, args, broker, _fresh_db(stack, pg_url), vm_url, k, base, hostile, client_id)
                    for hostile in (False, True, True, False)]
            clean_eps = _mean([leg["envelopes_per_s"] for leg in legs if leg["leg"] == "clean"])
            hostile_eps = _mean([leg["envelopes_per_s"] for leg in legs if leg["leg"] == "hostile"])
            # The same good envelopes in every leg: CPU seconds of workers and broker compare their cost,
            # which other work on a shared machine moves far less than their wall-clock rates.
            cpu = {kind: sum(leg["worker_cpu_s"] + leg["broker_cpu_s"] for leg in legs if leg["leg"] == kind)
                   for kind in ("clean", "hostile")}  # two legs of each
            rounds.append({"workers": k, "ceiling": ceiling, "legs": legs, "clean_envelopes_per_s": clean_eps,
                           "hostile_envelopes_per_s": hostile_eps,
                           "clean_to_ceiling": round(clean_eps / ceiling["messages_per_s"], 3),
                           "hostile_to_clean": round(hostile_eps / clean_eps, 3),
                           "hostile_to_clean_by_cpu": round(cpu["clean"] / cpu["hostile"], 3)})
            broker.close()
    durability = ("UNSAFE: fsync=off, synchronous_commit=off" if a.unsafe else "fsync=on, synchronous_commit=on") \
        if a.db == "postgresql" else "sqlite WAL, synchronous=NORMAL"
    defaults = CloudConfig()
    print(json.dumps({"bench": "ingest", "cores": os.cpu_count(), "db": a.db, "durability": durability,
                      "telemetry": a.telemetry, "envelopes_per_leg": args["per_pub"] * a.publishers,
                      "points_per_envelope": a.points, "facilities": a.facilities, "publishers": a.publishers,
                      "resend_every": a.resend_every, "poison_share": round(1 / a.poison_every, 4),
                      "flood_share": round(1 / a.flood_every, 4), "batch_max": a.batch_max,
                      "facility_rate_per_s": defaults.facility_rate_per_s, "facility_burst": defaults.facility_burst,
                      "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
                      "goal": {"envelopes_per_s": 5000, "points_per_s": 50000, "hostile_to_clean": ">= 0.8"},
                      "rounds": rounds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
