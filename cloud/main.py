"""`careguard cloud`: ingest, the gateway watch, the API and the dashboards, and `CloudService`,
the same thing as a Python object for `make run` and tests.

With `ingest_workers = 1` ingest runs in this process; with more, in that many worker processes
sharing one MQTT v5 subscription (cloud.ingest.workers). `careguard cloud --ingest-only` runs
one ingest worker and nothing else, for spreading workers over machines."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
from datetime import timedelta
from typing import Optional

import uvicorn

from wire.envelope_signing import public_key_hex

from cloud.alarms.downlink import Downlink
from cloud.alarms.events_bus import EventBus
from cloud.alarms.gateway_watch import GatewayWatch
from cloud.alarms.lifecycle import EscalationPolicy, EscalationRunner
from cloud.alarms.signing_key import SigningKeyError, load_or_create
from cloud.api.app import create_app
from cloud.api.auth import TokenTable
from cloud.background import BackgroundProcess, make_health_runner, make_pruner, make_refresher
from cloud.config import CloudConfig, ConfigError, data_key_file, load_config, load_tokens, with_generated_police_token
from cloud.ingest.workers import AlarmFollower, IngestWorkers, make_ingest
from cloud.periodic import PeriodicTask
from cloud.registry.gateway_ca import GatewayCA
from cloud.status.snapshots import SnapshotSweeper
from cloud.store.db import create_schema, make_engine
from cloud.store.telemetry import make_telemetry_store
from cloud.supervision.inspections import RectificationWatch
from cloud.video.clips import prune_clips
from cloud.video.live import LiveHub, request_live_view
from contracts.timefmt import utcnow
from wire.mqtt_client import redact_url

log = logging.getLogger("careguard.cloud")


class CloudService:
    """Start with `.start()`, stop with `.stop()`; `.port` is the HTTP port actually bound."""

    def __init__(self, config: CloudConfig):
        self.config = config
        self.engine = make_engine(config.db_url)
        self.bus = EventBus()
        self.signing_key = load_or_create(config.signing_key_path)
        self.downlink = Downlink(config.broker_url, self.signing_key, f"{config.client_id}-down")
        # One worker stays in this process so its alarms reach the live stream at once.
        self.ingest = (make_ingest(config, self.engine, client_id=config.client_id, on_alarms=self._fan_out)
                       if config.ingest_workers == 1 else None)
        self.workers = IngestWorkers(config) if config.ingest_workers > 1 else None
        # Other processes write alarms too: the live stream follows them in the store.
        self.follower = (AlarmFollower(self.engine, self._fan_out)
                         if self.workers or config.background_work == "process" else None)
        self.gateway_watch = GatewayWatch(self.engine, threshold_s=config.gateway_offline_s,
                                          check_s=config.gateway_check_s, on_alarms=self._fan_out)
        self.escalation = EscalationRunner(self.engine, self.bus, EscalationPolicy(
            after_s=config.escalation_after_s, renotify_s=config.escalation_renotify_s,
            max_notifications=config.escalation_max_notifications), interval_s=1.0)
        # Reads for the health runner and the environment pages, from wherever ingest writes.
        self.telemetry = make_telemetry_store(config.telemetry_url, token=config.telemetry_token,
                                              org=config.telemetry_org, bucket=config.telemetry_bucket,
                                              query_url=config.telemetry_query_url)
        in_threads = config.background_work == "thread"
        self.compliance = make_refresher(config, self.engine) if in_threads else None
        self.health = (make_health_runner(config, self.engine, self.telemetry, on_alarms=self._fan_out)
                       if in_threads else None)
        self.pruner = make_pruner(config, self.engine) if in_threads else None
        self.background = BackgroundProcess(config) if config.background_work == "process" else None
        self.snapshots = SnapshotSweeper(self.engine, keep_days=config.snapshot_retention_days)
        self.live = LiveHub(config.broker_url, f"{config.client_id}-live",
                            lambda f, c, until: request_live_view(self.downlink, f, c, until))
        self.clip_retention = PeriodicTask("clip-retention", 3600.0, self._prune_clips, logger=log,
                                           what="clip retention")
        self.notice_bus = EventBus()
        self.rectification = RectificationWatch(self.engine, self.notice_bus, interval_s=60.0)
        tokens_file = config.tokens_file
        self.tokens = TokenTable(config.tokens, engine=self.engine,
                                 load_entries=(lambda: load_tokens(tokens_file)) if tokens_file else None)
        self.app = create_app(engine=self.engine, bus=self.bus, tokens=self.tokens, downlink=self.downlink,
                              ingest_counters=lambda: self.counters, live_hub=self.live, notice_bus=self.notice_bus,
                              max_body_bytes=config.max_body_bytes, hsts=config.tls_cert is not None,
                              telemetry=self.telemetry)
        self.app.state.data_key_file = data_key_file(config)
        self.app.state.gateway_ca = GatewayCA(config.gateway_ca_dir) if config.gateway_ca_dir else None
        self._server: Optional[uvicorn.Server] = None
        self._thread: Optional[threading.Thread] = None
        self._sock: Optional[socket.socket] = None
        self.port: int = config.port

    @property
    def public_key_hex(self) -> str:
        """What each gateway pins as `[uplink] cloud_public_key`."""
        return public_key_hex(self.signing_key)

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls_cert else "http"
        return f"{scheme}://{self.config.host}:{self.port}"

    def reload_tokens(self) -> None:
        """Read the tokens file and the API tokens again (SIGHUP); a bad file keeps the old tokens."""
        try:
            log.info("tokens reloaded: %d live", self.tokens.reload())
        except Exception as exc:
            log.error("tokens not reloaded, the previous ones stay: %s", exc)

    @property
    def counters(self) -> dict:
        return self.ingest.counters.snapshot() if self.ingest is not None else self.workers.counters()

    def _fan_out(self, rows) -> None:
        for row in rows:
            self.bus.publish(row)

    def _prune_clips(self) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            prune_clips(conn, older_than=now - timedelta(days=self.config.clip_retention_days), now=now)

    def start(self, timeout: float = 15.0) -> "CloudService":
        create_schema(self.engine)
        self.tokens.reload()  # the API tokens, now that their table exists
        for problem in self.telemetry.check_server():
            log.error("telemetry store %s: %s", self.config.telemetry_query_url or self.config.telemetry_url, problem)
        self.downlink.start()
        self.live.start()
        self.clip_retention.start()
        if self.ingest is not None:
            self.ingest.start()
        else:
            self.workers.start()
        if self.follower is not None:
            self.follower.start()
        self.gateway_watch.start()
        self.escalation.start()
        for background in (self.health, self.compliance, self.pruner, self.background):
            if background is not None:
                background.start()
        self.snapshots.start()
        self.rectification.start()
        # Bind first, so port 0 resolves before anyone asks for `.port`.
        self._sock = socket.socket(socket.AF_INET6 if ":" in self.config.host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.config.host, self.config.port))
        self.port = self._sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=2,
                                                     lifespan="off", ssl_certfile=self.config.tls_cert,
                                                     ssl_keyfile=self.config.tls_key))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="cloud-http", daemon=True)
        self._thread.start()
        if not self._wait(lambda: self._server.started, timeout):
            self.stop()
            raise RuntimeError(f"cloud HTTP server did not start on {self.url} within {timeout}s")
        return self

    @staticmethod
    def _wait(predicate, timeout: float) -> bool:
        done = threading.Event()
        for _ in range(int(timeout / 0.05)):
            if predicate():
                return True
            done.wait(0.05)
        return predicate()

    def wait_ingest_ready(self, timeout: float = 10.0) -> bool:
        """True once every ingest session is subscribed at the broker."""
        if self.ingest is not None:
            return self.ingest.consumer.subscribed.wait(timeout)
        return self.workers.wait_ready(timeout)

    def stop(self) -> None:
        self.clip_retention.stop()
        self.live.stop()
        self.escalation.stop()
        for background in (self.health, self.compliance, self.pruner, self.background):
            if background is not None:
                background.stop()
        self.snapshots.stop()
        self.rectification.stop()
        self.bus.close()
        self.notice_bus.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self.gateway_watch.stop()
        if self.follower is not None:
            self.follower.stop()
        if self.ingest is not None:
            self.ingest.stop()
        else:
            self.workers.stop()
        self.downlink.stop()
        self.telemetry.close()
        self.engine.dispose()

    def __enter__(self) -> "CloudService":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML file with CloudConfig keys (flags override it)")
    parser.add_argument("--broker", help="uplink broker URL, mqtt://host:port")
    parser.add_argument("--db", help="database URL: sqlite:///FILE or postgresql+psycopg://...")
    parser.add_argument("--listen", help="HTTP host:port")
    parser.add_argument("--tokens", help="TOML file of [[tokens]] token/user/role")
    parser.add_argument("--shared", action="store_true", default=None,
                        help="MQTT v5 shared subscription $share/ingest/... (Mosquitto, EMQX; not amqtt)")
    parser.add_argument("--workers", type=int, help="ingest worker processes (needs --shared)")
    parser.add_argument("--telemetry-url", help="InfluxDB v2 write API base URL; none: relational store")
    parser.add_argument("--ingest-only", action="store_true",
                        help="run one ingest worker only (no API, no gateway watch); give each its own --client-id")
    parser.add_argument("--client-id", help="ingest MQTT client id")
    parser.add_argument("--tls-cert", help="PEM certificate: serve HTTPS (with HSTS)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument("--public-key", action="store_true",
                        help="print the command signing public key (made if absent) for the gateways to pin, and exit")


def _listen(value: Optional[str]) -> dict:
    if not value:
        return {}
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--listen {value!r}: expected host:port")
    return {"host": host.strip("[]") or "127.0.0.1", "port": int(port)}


def build_config(args: argparse.Namespace) -> tuple[CloudConfig, Optional[str]]:
    overrides = dict(broker_url=args.broker, db_url=args.db, shared_subscription=args.shared,
                     ingest_workers=args.workers, telemetry_url=args.telemetry_url, client_id=args.client_id,
                     tokens_file=args.tokens, tls_cert=args.tls_cert, tls_key=args.tls_key, **_listen(args.listen))
    config = load_config(args.config, **overrides)
    if config.tokens_file:
        load_tokens(config.tokens_file)  # a bad file stops the start, naming the key
        return config, None
    return with_generated_police_token(config)


def _wait_for_signal(on_hangup=None) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if on_hangup is not None:
        signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=on_hangup, name="cloud-sighup").start())
    while not stop.wait(1.0):
        pass


def run_ingest_only(config: CloudConfig) -> int:
    engine = make_engine(config.db_url)
    create_schema(engine)
    ingest = make_ingest(config, engine, client_id=config.client_id).start()
    print(f"careguard cloud: ingest worker {config.client_id} from {redact_url(config.broker_url)} into "
          f"{redact_url(config.db_url)}"
          f"{', telemetry ' + config.telemetry_url if config.telemetry_url else ''}", flush=True)
    _wait_for_signal()
    ingest.stop()
    engine.dispose()
    return 0


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config, generated = build_config(args)
    except ConfigError as exc:
        print(f"careguard cloud: {exc}", file=sys.stderr)
        return 2
    if args.ingest_only:
        return run_ingest_only(config)
    try:
        if args.public_key:
            print(public_key_hex(load_or_create(config.signing_key_path)))
            return 0
        service = CloudService(config)
    except SigningKeyError as exc:
        print(f"careguard cloud: {exc}", file=sys.stderr)
        return 2
    try:
        service.start()
    except Exception as exc:
        print(f"careguard cloud: could not start: {exc}", file=sys.stderr)
        return 1
    print(f"careguard cloud: police page {service.url}/police, ingest from {redact_url(config.broker_url)}, "
          f"store {redact_url(config.db_url)}, commands signed by {service.public_key_hex}", flush=True)
    if generated:
        print(f"careguard cloud: no tokens configured; police token for this run: {generated}", flush=True)
    _wait_for_signal(on_hangup=service.reload_tokens)
    service.stop()
    return 0
