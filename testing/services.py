"""Real local services (Mosquitto, PostgreSQL, VictoriaMetrics) started on free loopback
ports, for tests and benchmarks. Each is a context manager that stops what it started."""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator, Optional

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {LOOPBACK}:{port} after {timeout}s")


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def _require(binary: str) -> str:
    path = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None)
    if path is None:
        raise RuntimeError(f"{binary} is not installed: run `make test` (installs Debian packages as root)")
    return path


@dataclass(frozen=True)
class BrokerTls:
    """A TLS listener: the broker's certificate and key, the CA its clients' certificates must
    come from, and the CRL it checks them against. With `require_certificate`, a client without
    a certificate from `cafile` is refused; `use_identity_as_username` makes the certificate's
    common name the username the ACL applies to (no password)."""
    cafile: str
    certfile: str
    keyfile: str
    crlfile: Optional[str] = None
    require_certificate: bool = True
    use_identity_as_username: bool = True


class Mosquitto:
    """A Mosquitto broker on loopback, with the settings DESIGN.md asks for (nodelay, deep queues).

    `acl` maps a username to its (password, [ACL lines]); `auth_files` is a (password file, ACL
    file) pair written elsewhere (`careguard edge provision`); without either, anonymous access.
    With `tls`, its one listener speaks TLS only (a plain connection is refused); with
    `use_identity_as_username`, `acl` passwords are unused."""

    def __init__(self, port: int | None = None, *, acl: dict[str, tuple[str, list[str]]] | None = None,
                 auth_files: tuple[Path, Path] | None = None, max_queued: int = 1_000_000, persistence: bool = True,
                 workdir: str | None = None, tls: BrokerTls | None = None):
        self.port = port or free_port()
        self.tls = tls
        self.acl = acl
        self.auth_files = auth_files
        self.max_queued = max_queued
        self.persistence = persistence
        self._own_dir = workdir is None
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="cg-mosq-"))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"mqtts://{LOOPBACK}:{self.port}?cafile={self.tls.cafile}"
        return f"mqtt://{LOOPBACK}:{self.port}"

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} {LOOPBACK}",
            "set_tcp_nodelay true",
            f"max_queued_messages {self.max_queued}",
            "max_inflight_messages 1000",
            "max_packet_size 1048576",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.dir}/",
            "autosave_interval 1",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if os.geteuid() == 0:
            # As root Mosquitto drops to the `mosquitto` user, which cannot write a persistence
            # file into a root-owned temporary folder: sessions would silently not survive a restart.
            lines.append("user root")
        if self.tls is not None:
            t = self.tls
            lines += [f"cafile {t.cafile}", f"certfile {t.certfile}", f"keyfile {t.keyfile}", "tls_version tlsv1.2",
                      f"require_certificate {'true' if t.require_certificate else 'false'}",
                      f"use_identity_as_username {'true' if t.use_identity_as_username else 'false'}"]
            if t.crlfile:
                lines.append(f"crlfile {t.crlfile}")
        if self.auth_files is not None:
            lines += ["allow_anonymous false", f"password_file {self.auth_files[0]}", f"acl_file {self.auth_files[1]}"]
        elif self.acl is None:
            lines.append("allow_anonymous true")
        else:
            acl_file = self.dir / "acl"
            acl_file.write_text("".join(f"user {u}\n" + "".join(f"{r}\n" for r in rules) + "\n"
                                        for u, (_, rules) in self.acl.items()))
            lines += ["allow_anonymous false", f"acl_file {acl_file}"]
            if self.tls is None or not self.tls.use_identity_as_username:
                pw_file = self.dir / "passwd"
                pw_file.write_text("".join(f"{u}:{p}\n" for u, (p, _) in self.acl.items()))
                pw_file.chmod(0o600)
                subprocess.run([_require("mosquitto_passwd"), "-U", str(pw_file)], check=True, capture_output=True)
                lines.append(f"password_file {pw_file}")
        conf = self.dir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self) -> "Mosquitto":
        conf = self._write_config()
        self.log = open(self.dir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([_require("mosquitto"), "-c", str(conf)], stdout=self.log, stderr=self.log)
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None
            self.log.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        """SIGHUP: Mosquitto reads its configuration, ACL, passwords and CRL again, keeping its clients."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run `make test` (installs Debian packages as root)")
    return found[-1]


PG_USER = "careguard"
PG_DB = "careguard"


class PostgresNode:
    """One PostgreSQL server on a free loopback port, in its own folder: a new cluster (`init`) or
    a streaming-replication standby copied from a primary (`clone`).

    PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user.
    Unless `durable`, fsync is off: the tests kill processes, not machines, and the page cache
    outlives a process."""

    def __init__(self, name: str = "pg"):
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix=f"cg-{name}-"))
        self.data = self.root / "data"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres")
        self.proc: subprocess.Popen | None = None

    def _run(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(self._as + list(cmd), check=True, capture_output=True)

    def init(self, **settings: str) -> "PostgresNode":
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", PG_USER, "--auth=trust", "-E", "UTF8")
        self._configure(settings)
        return self

    def clone(self, primary: "PostgresNode", name: str) -> "PostgresNode":
        """A standby of `primary`, streaming from it as `name` (what synchronous_standby_names lists)."""
        # A fast checkpoint: a spread one makes the copy wait for minutes on an idle primary.
        self._run(_pg_bin("pg_basebackup"), "-h", LOOPBACK, "-p", str(primary.port), "-U", PG_USER, "-D",
                  str(self.data), "-X", "stream", "-R", "--checkpoint=fast")
        self._configure({"primary_conninfo": f"'host={LOOPBACK} port={primary.port} user={PG_USER} "
                                             f"application_name={name}'"})
        return self

    def _configure(self, settings: dict[str, str]) -> None:
        if settings:
            with open(self.data / "postgresql.auto.conf", "a") as f:
                f.write("".join(f"{k} = {v}\n" for k, v in settings.items()))

    def start(self, timeout: float = 30.0, *, durable: bool = False) -> "PostgresNode":
        on = "on" if durable else "off"
        with open(self.root / "pg.log", "ab") as log:
            self.proc = subprocess.Popen(self._as + [_pg_bin("postgres"), "-D", str(self.data), "-p", str(self.port),
                                                     "-h", LOOPBACK, "-k", str(self.root), "-c", f"fsync={on}",
                                                     "-c", f"full_page_writes={on}"],
                                         stdout=subprocess.DEVNULL, stderr=log)
        wait_for_port(self.port, timeout, proc=self.proc)
        deadline = time.monotonic() + timeout
        while subprocess.run([_pg_bin("pg_isready"), "-h", LOOPBACK, "-p", str(self.port), "-U", PG_USER],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on {self.port} not ready after {timeout}s")
            time.sleep(0.1)
        return self

    def createdb(self, name: str = PG_DB) -> None:
        self._run(_pg_bin("createdb"), "-h", LOOPBACK, "-p", str(self.port), "-U", PG_USER, name)

    def promote(self) -> None:
        """This standby becomes a primary (pg_ctl promote, waiting until it accepts writes)."""
        self._run(_pg_bin("pg_ctl"), "promote", "-w", "-D", str(self.data))

    def kill(self) -> None:
        """Gone at once, as with its machine: SIGKILL, no shutdown checkpoint."""
        if self.proc is not None and self.proc.poll() is None:
            # runuser would not pass SIGKILL on: find the postmaster by its pid file.
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, 9)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db: str = PG_DB) -> str:
        return f"postgresql+psycopg://{PG_USER}@{LOOPBACK}:{self.port}/{db}"


@contextmanager
def postgres(*, durable: bool = False) -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port; yields a SQLAlchemy URL.

    `durable`: fsync, full page writes and synchronous commit on, as a production server runs
    (benchmarks); otherwise off, which is faster and enough for tests of behaviour."""
    node = PostgresNode()
    try:
        # In the configuration, not on the command line: a replicated primary sets it on for itself.
        node.init(synchronous_commit="on" if durable else "off").start(durable=durable)
        node.createdb()
        yield node.url()
    finally:
        node.close()


class ReplicatedPostgres:
    """A primary and a streaming standby; `url` names both, for whichever accepts writes."""

    def __init__(self, primary: PostgresNode, standby: PostgresNode):
        self.primary = primary
        self.standby = standby

    @property
    def url(self) -> str:
        """libpq's multi-host form: the client tries each and keeps the one that is read-write."""
        hosts = "&".join(f"host={LOOPBACK}:{n.port}" for n in (self.primary, self.standby))
        return f"postgresql+psycopg://{PG_USER}@/{PG_DB}?{hosts}&target_session_attrs=read-write&connect_timeout=3"

    def sql(self, statement: str) -> str:
        """Run one statement on the primary with psql; its rows as text."""
        return subprocess.run(self.primary._as + [_pg_bin("psql"), "-h", LOOPBACK, "-p", str(self.primary.port), "-U",
                                                  PG_USER, "-d", PG_DB, "-Atc", statement],
                              check=True, capture_output=True, text=True).stdout

    def replication_state(self) -> list[tuple[str, ...]]:
        """(application_name, state, sync_state) per standby, as the primary sees it."""
        out = self.sql("SELECT application_name, state, sync_state FROM pg_stat_replication")
        return [tuple(line.split("|")) for line in out.splitlines() if line]

    def wait_for(self, state: tuple[str, str, str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while state not in self.replication_state():
            if time.monotonic() > deadline:
                raise RuntimeError(f"standby not {state} after {timeout}s: {self.replication_state()}")
            time.sleep(0.1)


@contextmanager
def postgres_replicated(synchronous: bool = True, timeout: float = 30.0) -> Iterator[ReplicatedPostgres]:
    """A primary and a standby streaming from it; with `synchronous`, a commit returns only once
    the standby has it (synchronous_standby_names), so a promoted standby holds every commit."""
    settings = {"wal_level": "replica", "max_wal_senders": "5", "hot_standby": "on", "wal_keep_size": "'256MB'"}
    primary, standby = PostgresNode("pg-primary"), PostgresNode("pg-standby")
    try:
        primary.init(**settings).start()
        primary.createdb()
        standby.clone(primary, "standby1").start()
        pair = ReplicatedPostgres(primary, standby)
        pair.wait_for(("standby1", "streaming", "async"), timeout)
        if synchronous:
            # Only now: with a synchronous standby named before it exists, every commit waits for it.
            pair.sql("ALTER SYSTEM SET synchronous_standby_names = 'standby1'")
            pair.sql("SELECT pg_reload_conf()")
            pair.wait_for(("standby1", "streaming", "sync"), timeout)
        yield pair
    finally:
        standby.close()
        primary.close()


# What the cloud's reads need (cloud.store.telemetry): the newest points searchable at once, and a
# point written twice kept once.
VICTORIA_READ_FLAGS = ("-search.latencyOffset=0s", "-dedup.minScrapeInterval=1ms")


@contextmanager
def victoria_metrics(flags: tuple[str, ...] = VICTORIA_READ_FLAGS) -> Iterator[str]:
    """VictoriaMetrics on a free loopback port; yields its base URL (it serves /api/v2/write and
    the Prometheus query API)."""
    port = free_port()
    root = tempfile.mkdtemp(prefix="cg-vm-")
    proc = subprocess.Popen([_require("victoria-metrics"), f"-httpListenAddr={LOOPBACK}:{port}",
                             f"-storageDataPath={root}", "-retentionPeriod=100y", *flags,
                             "-loggerLevel=ERROR"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc=proc)
        base = f"http://{LOOPBACK}:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(base + "/health", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        _stop(proc)
        shutil.rmtree(root, ignore_errors=True)


# --- a RabbitMQ cluster (MQTT plugin, quorum queues) ------------------------------------------------
RABBIT_USER, RABBIT_PASSWORD = "careguard", "careguard-test-password"


class RabbitNode:
    """One RabbitMQ node on loopback ports (AMQP, MQTT, Erlang distribution), in its own folder."""

    def __init__(self, cluster: "RabbitCluster", index: int):
        self.cluster = cluster
        self.name = f"cg{cluster.tag}r{index}@localhost"
        self.amqp_port, self.mqtt_port, self.dist_port = free_port(), free_port(), free_port()
        self.dir = cluster.root / f"node{index}"
        self.dir.mkdir()
        self.proc: subprocess.Popen | None = None

    @property
    def amqp_url(self) -> str:
        return f"amqp://{RABBIT_USER}:{RABBIT_PASSWORD}@{LOOPBACK}:{self.amqp_port}/%2F"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self.mqtt_port}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.cluster.root), "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_PORT": str(self.amqp_port), "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.cluster.root / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"), "RABBITMQ_LOG_BASE": str(self.dir / "log"),
                "RABBITMQ_PID_FILE": str(self.dir / "pid"), "RABBITMQ_ALLOW_INPUT": "",
                "ERL_EPMD_PORT": str(self.cluster.epmd_port)}

    def start(self) -> "RabbitNode":
        peers = "".join(f"cluster_formation.classic_config.nodes.{i + 1} = {n.name}\n"
                        for i, n in enumerate(self.cluster.nodes))
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = {LOOPBACK}:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = {LOOPBACK}:{self.mqtt_port}\n"
            "mqtt.allow_anonymous = true\n"
            f"mqtt.default_user = {RABBIT_USER}\nmqtt.default_pass = {RABBIT_PASSWORD}\n"
            f"default_user = {RABBIT_USER}\ndefault_pass = {RABBIT_PASSWORD}\nloopback_users = none\n"
            "max_message_size = 1048576\n"
            # Gateways keep their sessions (clean_session off): their subscription queues must
            # outlive a node, as the ingest queue does.
            "mqtt.durable_queue_type = quorum\n"
            "cluster_formation.peer_discovery_backend = classic_config\n" + peers +
            "log.console = false\nlog.file.level = warning\n")
        with open(self.dir / "stdout.log", "ab") as log:
            self.proc = subprocess.Popen([_require_at("rabbitmq-server", "/usr/lib/rabbitmq/bin")], env=self.env(),
                                         stdout=log, stderr=log)
        return self

    def wait(self, timeout: float = 120.0) -> None:
        wait_for_port(self.amqp_port, timeout, proc=self.proc)
        wait_for_port(self.mqtt_port, timeout, proc=self.proc)

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        return subprocess.run([_require_at("rabbitmqctl", "/usr/lib/rabbitmq/bin"), "-n", self.name, *args],
                              env=self.env(), check=True, capture_output=True, text=True, timeout=timeout).stdout

    def kill(self) -> None:
        """Gone at once, as with its machine: SIGKILL to the Erlang VM (the pid it wrote; the
        process we started is the shell script waiting on it)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(int((self.dir / "pid").read_text().strip()), 9)
            except (OSError, ValueError):
                self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc, timeout=30)
            self.proc = None


def _require_at(binary: str, folder: str) -> str:
    path = os.path.join(folder, binary)
    if not os.path.exists(path):
        raise RuntimeError(f"{binary} is not installed: run `make test` (installs Debian packages as root)")
    return path


class RabbitCluster:
    """`size` RabbitMQ nodes on loopback forming one cluster (classic peer discovery), with the
    MQTT plugin. Its own epmd port and Erlang cookie, so that it meets no other cluster."""

    def __init__(self, size: int = 3):
        self.tag = secrets.token_hex(4)
        self.root = Path(tempfile.mkdtemp(prefix="cg-rabbit-"))
        self.epmd_port = free_port()
        self.epmd: subprocess.Popen | None = None
        cookie = self.root / ".erlang.cookie"
        cookie.write_text(self.tag * 4)
        cookie.chmod(0o400)
        (self.root / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        self.nodes: list[RabbitNode] = []
        self.nodes = [RabbitNode(self, i) for i in range(1, size + 1)]

    @property
    def mqtt_urls(self) -> list[str]:
        return [n.mqtt_url for n in self.nodes]

    @property
    def amqp_url(self) -> str:
        """Every node, comma-separated: a client moves to the next when one fails."""
        hosts = ",".join(f"{LOOPBACK}:{n.amqp_port}" for n in self.nodes)
        return f"amqp://{RABBIT_USER}:{RABBIT_PASSWORD}@{hosts}/%2F"

    def start(self, timeout: float = 180.0) -> "RabbitCluster":
        # Our own port mapper, in the foreground: one a node started would outlive the cluster.
        self.epmd = subprocess.Popen([_require("epmd"), "-port", str(self.epmd_port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for_port(self.epmd_port, proc=self.epmd)
        # The first node forms the cluster; the others find it and join as they boot.
        self.nodes[0].start().wait(timeout)
        for node in self.nodes[1:]:
            node.start()
        for node in self.nodes[1:]:
            node.wait(timeout)
        deadline = time.monotonic() + timeout
        while True:
            running = set(json.loads(self.nodes[0].ctl("cluster_status", "--formatter", "json"))
                          .get("running_nodes", []))
            if running >= {n.name for n in self.nodes}:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"RabbitMQ cluster did not form: running {sorted(running)}")
            time.sleep(1)

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
        if self.epmd is not None:
            _stop(self.epmd)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "RabbitCluster":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()



def _port_taken(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


class Sipp:
    """SIPp (Debian `sip-tester`) playing a scenario on a loopback port, as the peer a test or a
    benchmark talks to (the police video platform for GB/T 28181); restartable on the same port.
    Every message it sends and receives goes to its message log, read back by `messages()`.

    `keys` fill the scenario's [name] keywords, `variables` its $variables (-set)."""

    def __init__(self, scenario: str | Path, workdir: str | Path, *, transport: str = "udp",
                 port: int | None = None, keys: dict[str, str] | None = None,
                 variables: dict[str, str] | None = None):
        self.scenario = Path(scenario)
        self.dir = Path(workdir)
        self.transport = transport
        self.kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.port = port or free_port()
        self.keys = keys or {}
        self.variables = variables or {}
        self.proc: subprocess.Popen | None = None
        self.runs = 0

    @property
    def message_log(self) -> Path:
        return self.dir / f"sipp-{self.runs}-messages.log"

    def start(self) -> "Sipp":
        self.dir.mkdir(parents=True, exist_ok=True)
        self.runs += 1
        cmd = [_require("sipp"), "-sf", str(self.scenario), "-i", LOOPBACK, "-p", str(self.port),
               "-t", "u1" if self.transport == "udp" else "t1", "-nostdin", "-deadcall_wait", "0",
               "-trace_msg", "-message_file", str(self.message_log),
               "-trace_err", "-error_file", str(self.dir / f"sipp-{self.runs}-errors.log")]
        for k, v in self.keys.items():
            cmd += ["-key", k, v]
        for k, v in self.variables.items():
            cmd += ["-set", k, v]
        self.out = open(self.dir / f"sipp-{self.runs}.out", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not _port_taken(self.port, self.kind):
            if self.proc.poll() is not None:
                raise RuntimeError(f"sipp exited with {self.proc.returncode}: "
                                   + (self.dir / f"sipp-{self.runs}.out").read_text(errors="replace")[-2000:])
            if time.monotonic() > deadline:
                raise TimeoutError(f"sipp not on port {self.port} after 15 s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None
            self.out.close()

    def messages(self, run: int | None = None) -> list[tuple[str, bytes]]:
        """("sent" | "received", message bytes) in the order SIPp logged them, for one run (the latest
        by default; complete once stopped)."""
        return [(direction, raw) for _, direction, raw in self.timed_messages(run)]

    def timed_messages(self, run: int | None = None) -> list[tuple[float, str, bytes]]:
        """As `messages`, each with the epoch time SIPp logged it at (its own clock, this machine's)."""
        path = self.dir / f"sipp-{run or self.runs}-messages.log"
        if not path.exists():
            return []
        out = []
        for block in (b"\n" + path.read_bytes()).split(b"\n-----------------------------------------------")[1:]:
            stamp, _, rest = block.partition(b"\n")
            head, _, message = rest.partition(b"\n")  # "UDP message sent (346 bytes):"
            when = datetime.strptime(stamp.decode().strip(), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            out.append((when, "sent" if b"message sent" in head else "received", message.strip(b"\r\n")))
        return out

    def __enter__(self) -> "Sipp":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
