"""A province on one cloud: N simulated gateways (firmware_sim.fleet, in their own process) with
per-gateway credentials and ACL -> Mosquitto -> the cloud as deployed (`careguard cloud`, its own
process, configured as deploy/cloud.province.example.toml but for the broker: 2 ingest worker
processes, the compliance refresher, health runner and envelope pruner in a background process,
a day of envelope retention) -> PostgreSQL (fsync on) + VictoriaMetrics. Prints one JSON line;
never pass/fail.

Per fleet size, on a registry seeded with the N facilities (cameras, a children's room, a panic
button, climate sensors):
- connect: time until every gateway is connected (first connections paced at --connect-per-s),
  and each gateway's first connect time p50/p99;
- steady state over --steady-s: envelopes stored per second against what the fleet sent, and the
  ingest lag (stored minus origin time) p50/p99 of the live streams;
- page latency under that load, sampled interleaved: supervision overview (recomputed, not the
  cached copy) and the police alarm list, p50/p99;
- offline detection: K gateways dropped (connection cut: the broker sends their last will) and K
  hung (connection left open: only the cloud's silence threshold finds them), from the kill to the
  gateway_offline alarm, p50/p99;
- resident memory of the cloud (API process + ingest workers), Mosquitto and the simulator, and
  their CPU seconds per second in the steady window; compliance snapshots evaluated by its end, and
  the time from the cloud's start until every facility had one (the first full pass), watched
  until the offline detection ends, with whether that was within the steady window;
  envelope rows a day at the measured rate, what pruning must keep up with; and the time the cloud
  takes to stop (SIGTERM) at the end.

    python bench/fleet.py                     # 1,000, 3,000 and 10,000 gateways
    python bench/fleet.py --sizes 10000 --steady-s 60
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from cloud.registry.records import broker_acl  # noqa: E402
from cloud.store.db import (  # noqa: E402
    alarms,
    areas,
    camera_areas,
    cameras,
    compliance_snapshots,
    create_schema,
    devices,
    facilities,
    licences,
    make_engine,
)
from contracts.topics import UP_WILDCARD  # noqa: E402
from firmware_sim.fleet import Fleet, FleetConfig, raise_open_files  # noqa: E402
from testing.services import Mosquitto, free_port, postgres, victoria_metrics, wait_for_port  # noqa: E402

SECRET = b"bench-fleet"
CLOUD_USER, CLOUD_PASSWORD = "cloud", "cloud-bench-password"
TOKENS = {"police": "bench-police-token-0001", "supervisor": "bench-super-token-00001",
          "admin": "bench-admin-token-00001"}
CITIES = 16
DISTRICTS = 8


def password(facility: str) -> str:
    return hmac.new(SECRET, facility.encode(), hashlib.sha256).hexdigest()[:24]


def credentials(facility: str) -> tuple[str, str]:
    return f"{facility}.g1", password(facility)


# --- the registry, seeded in bulk -----------------------------------------------------------------
def seed_registry(engine, cfg: FleetConfig) -> None:
    now = datetime.now(timezone.utc)
    rows: dict[str, list[dict]] = {t: [] for t in ("facilities", "licences", "areas", "cameras", "camera_areas",
                                                   "devices")}
    for i in range(cfg.gateways):
        fid = cfg.facility(i)
        city = f"市{i % CITIES:02d}"
        rows["facilities"].append(dict(
            facility_id=fid, name=f"托育园{fid}", uscc=f"91370800{i:010d}", kind="inclusive", province="山东省",
            city=city, district=f"{city}区{(i // CITIES) % DISTRICTS}", street="街道", address="路1号",
            filing_status="filed", filing_number=f"BA-{i}", created_at=now, updated_at=now))
        rows["licences"] += [dict(facility=fid, kind=k, number="L", expires_on=now.date() + timedelta(days=365))
                             for k in ("health_evaluation", "fire", "food")]
        rows["areas"].append(dict(facility=fid, area_id="room1", name="活动室", children_area=True))
        rows["cameras"] += [dict(facility=fid, camera_id=f"cam-{k}", name=f"摄像机{k}")
                            for k in range(1, cfg.cameras + 1)]
        rows["camera_areas"] += [dict(facility=fid, camera_id=f"cam-{k}", area_id="room1")
                                 for k in range(1, min(cfg.cameras, 2) + 1)]
        rows["devices"].append(dict(facility=fid, device_id="btn-1", kind="panic_button", name="一键报警",
                                    zone="zone-1"))
        rows["devices"] += [dict(facility=fid, device_id=f"th-{k}", kind="temperature", name="温湿度", zone="room1")
                            for k in range(1, cfg.sensors + 1)]
    tables = {"facilities": facilities, "licences": licences, "areas": areas, "cameras": cameras,
              "camera_areas": camera_areas, "devices": devices}
    with engine.begin() as conn:
        for name, table in tables.items():
            for i in range(0, len(rows[name]), 5000):
                conn.execute(table.insert(), rows[name][i:i + 5000])


def broker_users(cfg: FleetConfig) -> dict[str, tuple[str, list[str]]]:
    """Mosquitto's password and ACL entries: the registry's per-gateway ACL, and the cloud."""
    users = {}
    for i in range(cfg.gateways):
        fid = cfg.facility(i)
        user, pw = credentials(fid)
        users[user] = (pw, broker_acl(fid, user).splitlines()[1:])
    users[CLOUD_USER] = (CLOUD_PASSWORD, [f"topic read $share/ingest/{UP_WILDCARD}", f"topic read {UP_WILDCARD}",
                                          "topic write cg/v1/fac/+/down/#"])
    return users


# --- the simulator, in its own process ------------------------------------------------------------
def _sim_main(config_json: str, conn) -> None:
    raise_open_files(200_000)
    asyncio.run(_sim(FleetConfig.model_validate_json(config_json), conn))


async def _sim(cfg: FleetConfig, conn) -> None:
    fleet = await Fleet(cfg, credentials).start()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def on_command() -> None:
        cmd = conn.recv()
        if cmd[0] == "summary":
            conn.send(fleet.summary())
        elif cmd[0] == "kill":
            at = time.time()
            conn.send((fleet.kill(cmd[1], silent=cmd[2]), at))
        elif cmd[0] == "stop":
            done.set()

    loop.add_reader(conn.fileno(), on_command)
    await done.wait()
    loop.remove_reader(conn.fileno())
    await fleet.stop()
    conn.send(fleet.summary())


class SimProcess:
    def __init__(self, cfg: FleetConfig):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_sim_main, args=(cfg.model_dump_json(), child), daemon=True, name="fleet-sim")
        self.proc.start()

    def ask(self, *cmd):
        self.conn.send(cmd)
        return self.conn.recv()

    def stop(self) -> dict:
        if not self.proc.is_alive():
            return {}
        try:
            self.conn.send(("stop",))
            summary = self.conn.recv() if self.conn.poll(30) else {}
        except (EOFError, OSError):
            summary = {}  # it died: the error that brought us here is the one to see
        finally:
            self.proc.join(10)
            if self.proc.is_alive():
                self.proc.kill()
        return summary


# --- measuring --------------------------------------------------------------------------------------
def _proc_stat(pid: int) -> tuple[int, float]:
    """(parent pid, CPU seconds) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parents[int(entry)] = _proc_stat(int(entry))[0]
            except (OSError, ValueError, IndexError):
                pass
    out, frontier = [pid], [pid]
    while frontier:
        frontier = [p for p, pp in parents.items() if pp in frontier]
        out += frontier
    return out


def rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


def cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += _proc_stat(pid)[1]
        except (OSError, ValueError, IndexError):
            pass
    return total


def pct(values: list[float], q: float):
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


def start_cloud(workdir: Path, broker_port: int, db_url: str, vm_url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    conf = workdir / "cloud.toml"
    tokens = "".join(f'[[tokens]]\ntoken = "{t}"\nuser = "{r}"\nrole = "{r}"\n\n' for r, t in TOKENS.items())
    conf.write_text(f'broker_url = "mqtt://{CLOUD_USER}:{CLOUD_PASSWORD}@127.0.0.1:{broker_port}"\n'
                    f'db_url = "{db_url}"\nport = {port}\nshared_subscription = true\ningest_workers = 2\n'
                    f'telemetry_url = "{vm_url}"\nbackground_work = "process"\nenvelope_retention_days = 1\n'
                    f'client_id = "cloud-{uuid.uuid4().hex[:6]}"\n\n{tokens}')
    log = open(workdir / "cloud.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "careguard.cli", "cloud", "--config", str(conf)],
                            stdout=log, stderr=log, cwd=str(Path(__file__).resolve().parent.parent))
    wait_for_port(port, timeout=60, proc=proc)
    return proc, f"http://127.0.0.1:{port}"


def drop_database(admin, name: str) -> None:
    with admin.connect() as c:
        c.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")


def stored(http: httpx.Client) -> int:
    r = http.get("/api/ingest/stats", headers={"Authorization": f"Bearer {TOKENS['admin']}"})
    r.raise_for_status()
    return r.json()["stored"]


def snapshot_count(engine) -> int:
    with engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(compliance_snapshots)).scalar_one()


def run_size(n: int, args, pg_url: str, vm_url: str) -> dict:
    cfg = FleetConfig(gateways=n, brokers=["mqtt://127.0.0.1:1"], facility_prefix=f"F{n}x",
                      connect_per_s=args.connect_per_s, alarms_per_hour=args.alarms_per_hour,
                      outages_per_hour=args.outages_per_hour, seed=n)
    out: dict = {"gateways": n}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cg-fleet-")))
        admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        db = f"fleet_{n}_{uuid.uuid4().hex[:6]}"
        with admin.connect() as c:
            c.exec_driver_sql(f"CREATE DATABASE {db}")
        db_url = pg_url.rsplit("/", 1)[0] + "/" + db
        engine = make_engine(db_url)
        stack.callback(admin.dispose)
        stack.callback(drop_database, admin, db)
        stack.callback(engine.dispose)
        create_schema(engine)
        t = time.monotonic()
        seed_registry(engine, cfg)
        out["seed_s"] = round(time.monotonic() - t, 1)
        broker = stack.enter_context(Mosquitto(acl=broker_users(cfg)))
        cfg = cfg.model_copy(update={"brokers": [broker.url]})
        cloud_started = time.monotonic()
        cloud, base = start_cloud(work, broker.port, db_url, vm_url)
        stack.callback(lambda: (cloud.terminate(), cloud.wait(20)))
        http = stack.enter_context(httpx.Client(base_url=base, timeout=30))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                stored(http)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        sim = SimProcess(cfg)
        stack.callback(sim.stop)
        started = time.monotonic()
        # Every gateway connected once (an outage may have one away again by then).
        while time.monotonic() - started < args.connect_timeout_s and sim.ask("summary")["ever_connected"] < n:
            time.sleep(0.2)
        summary = sim.ask("summary")
        out["connect_all_s"] = round(time.monotonic() - started, 1) if summary["ever_connected"] >= n else None
        out["connected"] = summary["ever_connected"]
        out["first_connect_p50_s"], out["first_connect_p99_s"] = (summary["first_connect_p50_s"],
                                                                 summary["first_connect_p99_s"])
        time.sleep(args.warmup_s)

        # Steady state: ingest rate and lag, page latency sampled in between.
        cloud_pids, broker_pids, sim_pids = tree(cloud.pid), [broker.proc.pid], [sim.proc.pid]
        cpu0 = [cpu_s(p) for p in (cloud_pids, broker_pids, sim_pids)]
        s0, f0 = stored(http), sim.ask("summary")
        t0 = time.monotonic()
        wall0 = datetime.now(timezone.utc)
        lat: dict[str, list[float]] = {"supervision": [], "police_list": []}
        probes = (("supervision", "/api/dashboard/supervision?fresh=true", "supervisor"),
                  ("police_list", "/api/alarms?limit=50", "police"))
        i = 0
        first_pass_s = None
        while time.monotonic() - t0 < args.steady_s:
            if first_pass_s is None and snapshot_count(engine) >= n:
                first_pass_s = round(time.monotonic() - cloud_started, 1)
            name, path, role = probes[i % 2]
            i += 1
            q = time.perf_counter()
            r = http.get(path, headers={"Authorization": f"Bearer {TOKENS[role]}"})
            lat[name].append((time.perf_counter() - q) * 1000)
            r.raise_for_status()
            time.sleep(args.probe_every_s)
        elapsed = time.monotonic() - t0
        # The machine is shared: its load says how far the figures are the cloud's own.
        out["loadavg_1m"] = round(os.getloadavg()[0], 2)
        s1, f1 = stored(http), sim.ask("summary")
        cpu1 = [cpu_s(p) for p in (tree(cloud.pid), broker_pids, sim_pids)]
        sent = (f1["published"] + f1["heartbeats"]) - (f0["published"] + f0["heartbeats"])
        out["fleet_msgs_per_s"] = round(sent / elapsed, 1)
        out["stored_per_s"] = round((s1 - s0) / elapsed, 1)
        out["envelope_rows_per_day_m"] = round((s1 - s0) / elapsed * 86400 / 1e6, 1)
        with engine.connect() as c:
            lags = c.exec_driver_sql(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - ts)), "
                "percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - ts)) FROM envelopes "
                "WHERE received_at >= %s AND type IN ('heartbeat', 'camera.health', 'telemetry.batch')",
                (wall0,)).one()
        out["lag_p50_s"], out["lag_p99_s"] = round(lags[0], 3), round(lags[1], 3)
        for name, values in lat.items():
            out[f"{name}_p50_ms"], out[f"{name}_p99_ms"] = pct(values, 0.5), pct(values, 0.99)
        out["probes"] = sum(len(v) for v in lat.values())
        for name, before, after in zip(("cloud", "broker", "sim"), cpu0, cpu1):
            out[f"{name}_cpu_per_s"] = round((after - before) / elapsed, 3)
        out["cloud_rss_mb"] = rss_mb(tree(cloud.pid))
        out["broker_rss_mb"] = rss_mb(broker_pids)
        out["sim_rss_mb"] = rss_mb(sim_pids)
        out["snapshots"] = snapshot_count(engine)
        out["compliance_first_pass_in_window"] = first_pass_s is not None

        # Offline detection: K dropped, K hung.
        k = max(1, n // args.kill_per)
        dropped, t_drop = sim.ask("kill", k, False)
        hung, t_hung = sim.ask("kill", k, True)
        killed_at = {f: t_drop for f in dropped} | {f: t_hung for f in hung}
        found: dict[str, float] = {}
        deadline = time.monotonic() + args.detect_timeout_s
        while time.monotonic() < deadline and len(found) < len(killed_at):
            if first_pass_s is None and snapshot_count(engine) >= n:
                first_pass_s = round(time.monotonic() - cloud_started, 1)
            with engine.connect() as c:
                for fac, raised in c.execute(sa.select(alarms.c.facility, alarms.c.raised_at).where(
                        alarms.c.kind == "gateway_offline", alarms.c.facility.in_(list(killed_at)))):
                    found.setdefault(fac, raised.timestamp() - killed_at[fac])
            time.sleep(0.5)
        out["compliance_first_pass_s"] = first_pass_s
        for name, group in (("dropped", dropped), ("hung", hung)):
            d = [found[f] for f in group if f in found]
            out[f"offline_{name}_n"], out[f"offline_{name}_found"] = len(group), len(d)
            out[f"offline_{name}_p50_s"], out[f"offline_{name}_p99_s"] = pct(d, 0.5), pct(d, 0.99)
        final = sim.stop()
        out["fleet_dropped_facts"] = final.get("dropped")
        out["fleet_refused"] = final.get("refused")
        # How long the cloud takes to stop under a province's data (SIGTERM, as systemd sends it).
        t = time.monotonic()
        cloud.terminate()
        cloud.wait(60)
        out["cloud_stop_s"] = round(time.monotonic() - t, 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,3000,10000", help="fleet sizes, e.g. 1000,3000,10000")
    ap.add_argument("--steady-s", type=float, default=20.0)
    ap.add_argument("--warmup-s", type=float, default=5.0)
    ap.add_argument("--probe-every-s", type=float, default=0.2)
    ap.add_argument("--connect-per-s", type=float, default=2000.0)
    ap.add_argument("--connect-timeout-s", type=float, default=90.0)
    ap.add_argument("--kill-per", type=int, default=200, help="kill 1 in this many gateways, twice (dropped, hung)")
    ap.add_argument("--detect-timeout-s", type=float, default=40.0)
    ap.add_argument("--alarms-per-hour", type=float, default=0.1)
    ap.add_argument("--outages-per-hour", type=float, default=0.02)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    # Each gateway is a connection in the simulator and in Mosquitto (started from here).
    limit = raise_open_files(2 * max(sizes) + 1024)
    if limit < max(sizes) + 512:
        print(json.dumps({"error": f"open files limited to {limit}, {max(sizes)} gateways need more"}))
        return 1
    results = []
    with postgres(durable=True) as pg_url, victoria_metrics() as vm_url:
        for n in sizes:
            results.append(run_size(n, args, pg_url, vm_url))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"bench": "fleet", "steady_s": args.steady_s, "runs": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
