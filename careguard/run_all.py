"""`careguard run` (what `make run` calls): the whole system on embedded defaults.

One process: an in-process MQTT broker (amqtt), the cloud (ingest, SQLite, API, police
page), the police alarm centre's DC-09 receiver, and three simulated facilities, each
with its edge agent, a one-button alarm per class and a few sensors. Nothing to install
beyond the Python packages; state lives under `var/`.

Each facility's local broker takes only its provisioned logins (edge/broker_auth.py), as on
site: the devices and the agent log in with the credentials under `var/broker-<facility>/`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import signal
import socket
import threading
from pathlib import Path

from careguard.demo_data import FACILITIES, ZONES, demo_tokens, seed_registry
from careguard.embedded_broker import EmbeddedBroker
from testing.services import LOOPBACK, free_port
from arc.receiver import ArcAccount, ArcReceiver
from arc.store import ArcStore
from cloud.alarms.signing_key import load_or_create
from cloud.config import CloudConfig
from cloud.main import CloudService
from edge.agent import EdgeAgent
from edge.broker_auth import SECRETS_FILE, Provisioned, provision
from edge.config import parse_config
from contracts.device import ANALOGUE_KINDS
from firmware_sim import SensorFleet
from wire.envelope_signing import public_key_hex

log = logging.getLogger("careguard.run")

def _port_or_free(preferred: int) -> int:
    if preferred == 0:
        return free_port()
    with socket.socket() as s:
        try:
            s.bind((LOOPBACK, preferred))
            return preferred
        except OSError:
            return free_port()


def facility_config(fid: str, account: str, aes_key: str, cloud_key: str, local_url: str, broker_port: int,
                    arc_port: int, var: Path) -> dict:
    return {
        "facility_id": fid,
        "local_broker": local_url,
        # A username gives the gateway a persistent session on the embedded broker.
        "uplink": {"broker": f"mqtt://{fid}:{fid}@{LOOPBACK}:{broker_port}", "heartbeat_s": 10,
                   "cloud_public_key": cloud_key},
        "police": {"account": account, "key": aes_key, "receivers": [{"host": LOOPBACK, "port": arc_port}]},
        "outbox": {"path": str(var / f"edge-{fid}.sqlite3")},
        "device_auth": {"dir": str(var / f"broker-{fid}")},
        "zones": [{"id": z, "number": n, "name": name, "kind": kind, "devices": [f"{fid}-{d}" for d, _ in devs],
                   **({"schedule": [{"arm": "18:00:00", "disarm": "07:00:00"}]} if kind == "intrusion" else {})}
                  for z, n, name, kind, devs in ZONES],
    }


def device_specs(fid: str, seed: int, auth: Provisioned) -> list[dict]:
    return [{"device_id": f"{fid}-{d}", "kind": k.value, "seed": seed,
             "interval_s": 5 if k in ANALOGUE_KINDS else 30, "password": auth.passwords[f"{fid}-{d}"]}
            for _, _, _, _, devs in ZONES for d, k in devs]


class EdgeRuntime:
    """The ARC receiver and the edge agents on one asyncio loop of their own thread."""

    def __init__(self, arc: ArcReceiver, configs: list[dict]):
        self.arc = arc
        self.configs = configs
        self.agents: list[EdgeAgent] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="edge-runtime", daemon=True)

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self) -> None:
        await self.arc.start()
        for cfg in self.configs:
            agent = EdgeAgent(parse_config(cfg, f"facility {cfg['facility_id']}"))
            await agent.start()
            self.agents.append(agent)

    def stop(self) -> None:
        async def _stop():
            for agent in self.agents:
                await agent.stop()
            await self.arc.close()
        asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--http-port", type=int, default=8000, help="dashboards and API (default 8000)")
    parser.add_argument("--broker-port", type=int, default=1883, help="embedded MQTT broker (default 1883, or a free one)")
    parser.add_argument("--arc-port", type=int, default=12128, help="DC-09 receiver (default 12128, or a free one)")
    parser.add_argument("--var", default="var", help="folder for the databases")
    parser.add_argument("--keys", help="folder for the cloud's command signing key (default: `keys` beside --var)")
    parser.add_argument("--log-level", default="WARNING")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    var = Path(args.var)
    var.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(_port_or_free(args.broker_port)).start()
    arc_port = _port_or_free(args.arc_port)
    # Keys on, as in production: a fresh AES key per police account for this run, and the cloud's
    # signing key (kept across runs) pinned in every gateway's config.
    aes = {f[1]: secrets.token_hex(16) for f in FACILITIES}
    signing_key = (Path(args.keys) if args.keys else var.resolve().parent / "keys") / "cloud-signing.key"
    cloud_key = public_key_hex(load_or_create(signing_key))
    # Each facility's gateway has its own local broker for its devices, as on site, taking only
    # the logins provisioned for its configuration (the same on every start, unless rotated).
    ports = {f[0]: free_port() for f in FACILITIES}
    configs = {fid: facility_config(fid, account, aes[account], cloud_key, f"mqtt://{LOOPBACK}:{ports[fid]}",
                                    broker.port, arc_port, var)
               for fid, account, *_ in FACILITIES}
    auth = {fid: provision(parse_config(cfg, f"facility {fid}")) for fid, cfg in configs.items()}
    local = {fid: EmbeddedBroker(ports[fid], auth=auth[fid]).start() for fid in configs}
    arc = ArcReceiver({f[1]: ArcAccount(facility=f[0], key=aes[f[1]]) for f in FACILITIES}, port=arc_port,
                      store=ArcStore(var / "arc.sqlite3"))
    tokens = demo_tokens()
    cloud = CloudService(CloudConfig(
        broker_url=f"mqtt://cloud:cloud@{LOOPBACK}:{broker.port}", db_url=f"sqlite:///{var / 'cloud.db'}",
        port=_port_or_free(args.http_port), tokens=tokens, signing_key_path=signing_key)).start()
    seed_registry(cloud.engine)
    runtime = EdgeRuntime(arc, list(configs.values()))
    runtime.start()
    fleets = [SensorFleet(local[f[0]].url, device_specs(f[0], i, auth[f[0]])).start() for i, f in enumerate(FACILITIES)]

    pages = "  ".join(f"{cloud.url}/{p}" for p in ("police", "health", "supervision", "facility", "inspections",
                                                  "facility-supervision", "public"))
    token_lines = "\n".join(f"    {t.role.value:10} {t.token}" + (f"   ({t.facility_id})" if t.facility_id else "")
                            for t in tokens)
    print(f"""
CareGuard is running on embedded defaults.

  dashboards      {pages}
  tokens (one per role, paste one into a page):
{token_lines}
  uplink broker   {broker.url}   (in-process; gateways to cloud)
  local brokers   {', '.join(f'{fid} {b.url}' for fid, b in local.items())}   (each facility's devices)
  police ARC      DC-09 over TCP on {LOOPBACK}:{arc_port}   accounts {', '.join(f[1] for f in FACILITIES)} (AES-128)
  commands        signed by the cloud's key {signing_key}, pinned by each gateway
  facilities      {', '.join(f'{f[0]} {f[2]}' for f in FACILITIES)}
  state           {var}/

Press a one-button alarm (in another terminal; the button logs in with its own credentials):
  .venv/bin/careguard sim press --broker {local['F001'].url} --credentials {auth['F001'].directory / SECRETS_FILE} --device-id F001-btn-1

Ctrl-C stops everything.
""", flush=True)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    print("stopping...", flush=True)
    for fleet in fleets:
        fleet.stop()
    runtime.stop()
    cloud.stop()
    for b in (*local.values(), broker):
        b.stop()
    return 0
